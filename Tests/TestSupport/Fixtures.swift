import Foundation
import XCTest

/// The PyTorch-written fixtures: the repo's own `Tests/Fixtures/pytorch`, plus `../shared/fixtures` beside the
/// project when it exists and every folder named in `$GSLORA_FIXTURES` (colon-separated), whose files go through the
/// same data-driven tests.
public enum Fixtures {
    /// `Tests/Fixtures/pytorch` in this checkout (tools/make_fixtures.py writes it).
    public static var repoDirectory: URL {
        // This file is <root>/Tests/TestSupport/Fixtures.swift.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/pytorch", isDirectory: true)
    }

    /// `../shared/fixtures` beside the project root, where the project's CI puts fixtures of its own.
    public static var sharedDirectory: URL {
        repoDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/fixtures", isDirectory: true)
    }

    /// The repo's folder first, then `../shared/fixtures` when it exists, then the `$GSLORA_FIXTURES` folders in the
    /// order given.
    public static var directories: [URL] {
        let extra = (ProcessInfo.processInfo.environment["GSLORA_FIXTURES"] ?? "").split(separator: ":").map {
            URL(fileURLWithPath: String($0), isDirectory: true).standardizedFileURL
        }
        let shared = FileManager.default.fileExists(atPath: sharedDirectory.path) ? [sharedDirectory.standardizedFileURL] : []
        var seen = Set<String>()
        return ([repoDirectory.standardizedFileURL] + shared + extra).filter { seen.insert($0.path).inserted }
    }

    /// The searched folders, for messages.
    public static var searched: String { directories.map(\.path).joined(separator: ", ") }

    /// Every file in the fixture folders whose name satisfies `match`, each folder's sorted by name. The files are
    /// printed, so a test's log shows what it read; none at all fails the calling test, so it cannot pass unchecked.
    public static func files(_ match: (String) -> Bool, file: StaticString = #filePath, line: UInt = #line) -> [URL] {
        let found = directories.flatMap { dir -> [URL] in
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else {
                XCTFail("fixture folder \(dir.path) cannot be read (named by GSLORA_FIXTURES?)", file: file, line: line)
                return []
            }
            return names.filter(match).sorted().map { dir.appendingPathComponent($0) }
        }
        // A file identical to one of the same name in an earlier folder (the repo's copy of a shared fixture) is the
        // same check: once is enough.
        .filter { url in
            !directories.prefix { $0.path != url.deletingLastPathComponent().standardizedFileURL.path }.contains { dir in
                FileManager.default.contentsEqual(atPath: dir.appendingPathComponent(url.lastPathComponent).path, andPath: url.path)
            }
        }
        if found.isEmpty { XCTFail("no matching fixture file in \(searched)", file: file, line: line) }
        print("fixtures: \(found.map(\.path).joined(separator: ", "))")
        return found
    }

    /// Files ending in `suffix`, e.g. ".parity.json".
    public static func files(endingWith suffix: String, file: StaticString = #filePath, line: UInt = #line) -> [URL] {
        files({ $0.hasSuffix(suffix) }, file: file, line: line)
    }

    /// A file's sibling with another extension, e.g. the `.pth` of a `.parity.json`: always from the same folder.
    public static func sibling(_ url: URL, replacing suffix: String, with other: String) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(url.lastPathComponent.replacingOccurrences(of: suffix, with: other))
    }

    /// The file's name without extension, with the index of its folder appended for `$GSLORA_FIXTURES` folders, so
    /// outputs a test names after it do not collide when two folders hold files of the same name.
    public static func uniqueStem(_ url: URL) -> String {
        let stem = url.deletingPathExtension().lastPathComponent
        let folder = url.deletingLastPathComponent().standardizedFileURL.path
        guard let i = directories.firstIndex(where: { $0.path == folder }), i > 0 else { return stem }
        return "\(stem)-\(i)"
    }

    /// One named file of the repo's own fixtures, for tests about that file rather than every file of a kind.
    public static func repoFile(_ name: String) -> URL { repoDirectory.appendingPathComponent(name) }

    /// The parsed JSON object of a sidecar file.
    public static func json(_ url: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: url)
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FixtureError.malformed(url.lastPathComponent, "top level is not an object")
        }
        return obj
    }
}

public enum FixtureError: Error, CustomStringConvertible {
    case malformed(String, String)
    public var description: String {
        switch self {
        case let .malformed(f, why): return "fixture \(f): \(why)"
        }
    }
}

/// An array written as `{shape, dtype, data}` with `data` nested row-major (fixtures/README.md).
public struct FixtureArray {
    public let shape: [Int]
    public let values: [Double]

    public init(_ any: Any?, _ what: String = "array") throws {
        guard let obj = any as? [String: Any], let shape = obj["shape"] as? [Int], let data = obj["data"] else {
            throw FixtureError.malformed(what, "not a {shape, dtype, data} array")
        }
        var flat: [Double] = []
        flat.reserveCapacity(shape.reduce(1, *))
        func walk(_ x: Any) {
            if let a = x as? [Any] { a.forEach(walk) } else if let n = x as? NSNumber { flat.append(n.doubleValue) }
        }
        walk(data)
        guard flat.count == shape.reduce(1, *) else {
            throw FixtureError.malformed(what, "data holds \(flat.count) values, shape \(shape) needs \(shape.reduce(1, *))")
        }
        self.shape = shape
        self.values = flat
    }

    public var floats: [Float] { values.map { Float($0) } }
}

/// Comparison rules shared by every numeric test. The tolerances are the project's stated ones; never loosen them.
public enum Tolerance {
    /// Forward outputs in float32 against PyTorch.
    public static let forward = 1e-4
    /// LoRA gradients against PyTorch, as max-abs error relative to the reference's max-abs.
    public static let gradient = 1e-3

    /// max|a−b| / max(max|b|, tiny): the relative error of a whole array, robust to values near zero.
    public static func maxRelative(_ a: [Float], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "compared arrays differ in length: \(a.count) vs \(b.count)")
        var num = 0.0, den = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - b[i]
            if d.isNaN { return .infinity }
            num = max(num, abs(d))
            den = max(den, abs(b[i]))
        }
        return num / max(den, 1e-30)
    }

    /// |a−b| / max(|b|, tiny) for scalars.
    public static func relative(_ a: Double, _ b: Double) -> Double {
        abs(a - b) / max(abs(b), 1e-30)
    }
}
