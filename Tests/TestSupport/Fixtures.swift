import Foundation

/// Where the PyTorch-written fixtures live: `$GSLORA_FIXTURES`, else `../shared/fixtures` beside the package root.
public enum Fixtures {
    public static var directory: URL {
        if let env = ProcessInfo.processInfo.environment["GSLORA_FIXTURES"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true)
        }
        // This file is <root>/Tests/TestSupport/Fixtures.swift.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/fixtures", isDirectory: true)
    }

    /// Every file in the fixtures folder whose name satisfies `match`, sorted by name.
    public static func files(_ match: (String) -> Bool) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter(match).sorted().map { directory.appendingPathComponent($0) }
    }

    /// Files ending in `suffix`, e.g. ".parity.json".
    public static func files(endingWith suffix: String) -> [URL] { files { $0.hasSuffix(suffix) } }

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
        switch self { case let .malformed(f, why): return "fixture \(f): \(why)" }
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
