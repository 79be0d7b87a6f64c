import Foundation
import GSLoRAFormat

/// The one overwrite policy of every command, checked before any model is loaded or trained: an output is never one
/// of the inputs (same path or same file), an existing output is replaced only with `--force`, and the folder it goes
/// into exists and is writable.
public enum OutputPolicy {
    /// Why an output may not be written. An output that is an input or already exists is the caller's choice of
    /// arguments (exit 2); a folder that is missing or not writable is the machine's state (exit 1).
    public struct Refused: Error, CustomStringConvertible, UsageProblem {
        public let description: String
        public let isUsageProblem: Bool
    }

    /// Checks that the file `output` may be written.
    public static func checkFile(_ output: String, inputs: [String], force: Bool) throws {
        try checkNotInput(output, inputs: inputs)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDir) {
            if isDir.boolValue {
                throw Refused(description: "\(output) is a folder; give the path of a file to write", isUsageProblem: true)
            }
            guard force else {
                throw Refused(description: "\(output) exists; pass --force to replace it, or choose another output path", isUsageProblem: true)
            }
        }
        try checkFolder(folder(of: output), for: output)
    }

    /// Checks a run folder a command writes `files` (paths inside it) into: the folder exists and is writable or can
    /// be created, no file is an input, and none exists unless `force`. `existing` says what to do instead of --force.
    public static func checkFolderOutputs(
        _ dir: String, files: [String], inputs: [String], force: Bool,
        existing: (String) -> String = { "\($0) exists; pass --force to replace it, or choose another output folder" }
    ) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue else { throw Refused(description: "\(dir) is a file; the output is a folder", isUsageProblem: true) }
            try checkFolder(dir, for: dir)
        } else {
            // Created with its missing parents: the nearest existing ancestor must take new entries.
            var ancestor = folder(of: dir)
            while !FileManager.default.fileExists(atPath: ancestor) && ancestor != "/" && ancestor != "." { ancestor = folder(of: ancestor) }
            try checkFolder(ancestor, for: dir)
        }
        for f in files { try checkNotInput(f, inputs: inputs) }
        if !force, let f = files.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            throw Refused(description: existing(f), isUsageProblem: true)
        }
    }

    static func checkNotInput(_ output: String, inputs: [String]) throws {
        for i in inputs where i == output || AtomicFile.sameFile(i, output) {
            throw Refused(
                description: "\(output) is an input (\(i)); it is never overwritten: choose a different output path",
                isUsageProblem: true)
        }
    }

    /// The folder exists, is a folder, and this process may create files in it.
    static func checkFolder(_ dir: String, for output: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else {
            throw Refused(description: "\(output): the folder \(dir) does not exist; create it first", isUsageProblem: false)
        }
        guard isDir.boolValue else { throw Refused(description: "\(output): \(dir) is not a folder", isUsageProblem: false) }
        guard access(dir, W_OK | X_OK) == 0 else {
            throw Refused(description: "\(output): the folder \(dir) is not writable (\(String(cString: strerror(errno))))", isUsageProblem: false)
        }
    }

    /// "a/b/c.gslr" → "a/b"; "c.gslr" → ".".
    public static func folder(of path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        let d = String(p[..<slash])
        return d.isEmpty ? "/" : d
    }

    /// The default output beside `input`: its name with the extension replaced by `suffix` ("model.pth", ".gslr" →
    /// "model.gslr"; "base.gslr", ".merged.gslr" → "base.merged.gslr").
    public static func beside(_ input: String, suffix: String) -> String {
        (input as NSString).deletingPathExtension + suffix
    }
}
