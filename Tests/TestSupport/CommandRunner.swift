import Foundation

/// Runs a built gslora command as a process, as users and scripts run it. `swift test` builds the commands into the
/// products folder that holds the test bundle; a command that is not there fails the test (it is never skipped).
public enum CommandRunner {
    public struct NotBuilt: Error, CustomStringConvertible {
        public let description: String
    }

    public static func binary(_ name: String) throws -> URL {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let folders = [here, here.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        guard let bin = folders.map({ $0.appendingPathComponent(name) }).first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw NotBuilt(description: "\(name) is not built next to the tests (\(CommandLine.arguments[0])); run `swift build` first")
        }
        return bin
    }

    /// Exit status, standard output and standard error of `name args…`.
    public static func run(_ name: String, _ args: [String]) throws -> (code: Int32, out: String, err: String) {
        try run(executable: try binary(name), args)
    }

    /// Exit status, standard output and standard error of any program (e.g. mpirun), with `environment` added to
    /// this process's.
    public static func run(executable: URL, _ args: [String], environment: [String: String] = [:]) throws -> (code: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Like `run`, with stderr going to a file (as under nohup or a batch scheduler) instead of a pipe; returns what
    /// the file holds.
    public static func runWithStderrInFile(_ name: String, _ args: [String]) throws -> (code: Int32, out: String, err: String) {
        let file = NSTemporaryDirectory() + "/gslora-stderr-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).txt"
        guard FileManager.default.createFile(atPath: file, contents: nil), let handle = FileHandle(forWritingAtPath: file) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file])
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        let p = Process()
        p.executableURL = try binary(name)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = handle
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        try handle.close()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), try String(contentsOfFile: file, encoding: .utf8))
    }
}
