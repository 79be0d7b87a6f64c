import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

/// Loads every PyTorch fixture that has an `.expected.json` sidecar (except malicious_*/bad_*) and checks every
/// tensor (dtype, shape, SHA-256 of its row-major bytes, first values) and every plain leaf the sidecar lists.
final class FixtureLoadTests: XCTestCase {
    static func loadable() -> [URL] {
        Fixtures.files { $0.hasSuffix(".pth") && !$0.hasPrefix("malicious_") && !$0.hasPrefix("bad_") }
            .filter { FileManager.default.fileExists(atPath: sidecar($0).path) }
    }

    static func sidecar(_ pth: URL) -> URL {
        pth.deletingPathExtension().appendingPathExtension("expected.json")
    }

    static func key(_ path: [Any]) -> String {
        path.map { "\($0)" }.joined(separator: ".")
    }

    func testEveryFixtureLoadsAsItsSidecarSays() throws {
        let files = Self.loadable()
        XCTAssertFalse(files.isEmpty, "no fixtures with sidecars in \(Fixtures.searched)")
        for url in files {
            let name = url.lastPathComponent
            let expected = try Fixtures.json(Self.sidecar(url))
            let value = try TorchCheckpoint.load(url.path)
            let tensors = TorchFlat.tensors(value)
            let sidecar = try JSONDecoder().decode(Sidecar.self, from: Data(contentsOf: Self.sidecar(url)))
            XCTAssertEqual(tensors.count, sidecar.tensors.count, "\(name): tensor count")
            if let n = expected["tensor_count"] as? Int { XCTAssertEqual(tensors.count, n, "\(name): tensor_count") }
            for spec in sidecar.tensors {
                let key = spec.path.map(\.text).joined(separator: ".")
                guard let t = tensors[key] else {
                    XCTFail("\(name): tensor '\(key)' missing")
                    continue
                }
                XCTAssertEqual(t.dtype.torchName, spec.dtype, "\(name) \(key): dtype")
                XCTAssertEqual(t.shape, spec.shape, "\(name) \(key): shape")
                XCTAssertEqual(t.data.count, t.count * t.dtype.size, "\(name) \(key): byte count")
                XCTAssertEqual(TorchFlat.sha256(t), spec.sha256, "\(name) \(key): sha256")
                XCTAssertEqual(spec.first_values.count, min(8, t.count), "\(name) \(key): first_values count")
                for (i, want) in spec.first_values.enumerated() where i < t.count {
                    let got = TorchFlat.element(t, i)
                    switch want {
                    case let .text(s):
                        let ok = (s == "nan" && got.isNaN) || (s == "inf" && got == .infinity) || (s == "-inf" && got == -.infinity)
                        XCTAssertTrue(ok, "\(name) \(key)[\(i)]: \(got) vs \(s)")
                    case let .number(d):
                        XCTAssertEqual(got.bitPattern, d.bitPattern, "\(name) \(key)[\(i)]: \(got) vs \(d)")
                    }
                }
                for (i, want) in (spec.first_values_int ?? []).enumerated() {
                    XCTAssertEqual(TorchFlat.integer(t, i), want, "\(name) \(key)[\(i)]: integer value")
                }
            }
            try checkLeaves(value, sidecar, name)
            try checkContainers(value, expected, name)
        }
    }

    private func checkLeaves(_ value: CheckpointValue, _ sidecar: Sidecar, _ name: String) throws {
        let leaves = sidecar.leaves ?? []
        let ours = Dictionary(
            TorchFlat.leaves(value).filter {
                if case .tensor = $0.value { return false } else { return true }
            }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(ours.count, leaves.count, "\(name): non-tensor leaf count")
        for leaf in leaves {
            let key = leaf.path.map(\.text).joined(separator: ".")
            guard let got = ours[key] else {
                XCTFail("\(name): leaf '\(key)' missing")
                continue
            }
            switch (leaf.type, leaf.value, got) {
            case let ("int", .int(w), .int(v)): XCTAssertEqual(v, w, "\(name) \(key)")
            case let ("float", .double(w), .float(v)): XCTAssertEqual(v.bitPattern, w.bitPattern, "\(name) \(key)")
            case let ("float", .int(w), .float(v)): XCTAssertEqual(v, Double(w), "\(name) \(key)")
            case let ("str", .string(w), .string(v)): XCTAssertEqual(v, w, "\(name) \(key)")
            case let ("bool", .bool(w), .bool(v)): XCTAssertEqual(v, w, "\(name) \(key)")
            case ("NoneType", .null, .none): break
            default: XCTFail("\(name) \(key): expected \(leaf.type) \(leaf.value), got \(got)")
            }
        }
    }

    private func checkContainers(_ value: CheckpointValue, _ expected: [String: Any], _ name: String) throws {
        for spec in expected["containers"] as? [[String: Any]] ?? [] {
            let path = (spec["path"] as? [Any] ?? []).map { "\($0)" }
            let key = path.joined(separator: ".")
            guard let c = TorchFlat.container(value, path: path) else {
                XCTFail("\(name): container '\(key)' missing")
                continue
            }
            let type = spec["type"] as? String ?? ""
            switch c {
            case let .dict(items):
                XCTAssertTrue(type == "dict" || type == "OrderedDict", "\(name) '\(key)': \(type) loaded as a dict")
                if let keys = spec["keys"] as? [Any] {
                    XCTAssertEqual(items.map(\.key), keys.map { "\($0)" }, "\(name) '\(key)': key order")
                }
            case let .list(items):
                XCTAssertEqual(type, "list", "\(name) '\(key)'")
                XCTAssertEqual(items.count, spec["len"] as? Int, "\(name) '\(key)': length")
            case let .tuple(items):
                XCTAssertEqual(type, "tuple", "\(name) '\(key)'")
                XCTAssertEqual(items.count, spec["len"] as? Int, "\(name) '\(key)': length")
            default:
                XCTFail("\(name) '\(key)': \(type) loaded as \(c)")
            }
        }
    }

    func testDetectionOfEveryFixture() throws {
        for url in Fixtures.files(endingWith: ".pth") {
            let expected = try? Fixtures.json(Self.sidecar(url))
            let format = try detectFormat(path: url.path)
            switch expected?["format"] as? String {
            case "zip": XCTAssertEqual(format, .torchZip, url.lastPathComponent)
            case "legacy": XCTAssertEqual(format, .torchLegacy, url.lastPathComponent)
            default: XCTAssertTrue(format == .torchZip || format == .torchLegacy, url.lastPathComponent)
            }
        }
    }

    /// Every zip record the sidecar lists is there, with its size and data offset.
    func testZipRecordsMatchSidecars() throws {
        var checked = 0
        for url in Self.loadable() {
            guard let layout = try Fixtures.json(Self.sidecar(url))["zip"] as? [String: Any] else { continue }
            checked += 1
            let archive = try ZipArchive(path: url.path)
            XCTAssertEqual(archive.prefix, layout["archive_prefix"] as? String, url.lastPathComponent)
            let entries = layout["entries"] as? [[String: Any]] ?? []
            XCTAssertEqual(archive.records.map(\.name), entries.map { $0["name"] as? String ?? "" }, url.lastPathComponent)
            for (r, e) in zip(archive.records, entries) {
                XCTAssertEqual(r.uncompressedSize, e["size"] as? Int, r.name)
                XCTAssertEqual(r.dataOffset, e["data_offset"] as? Int, r.name)
                XCTAssertEqual(r.method, e["compress_type"] as? Int, r.name)
                XCTAssertEqual(try archive.read(String(r.name.dropFirst(archive.prefix.count + 1))).count, r.uncompressedSize, r.name)
            }
        }
        XCTAssertGreaterThan(checked, 0, "no zip fixture with a record list in \(Fixtures.searched)")
    }
}

/// Test helpers shared by the Convert tests: flatten a checkpoint with the sidecars' key convention and read
/// tensor elements as float64 the way the sidecars write `first_values`.
/// The parts of an `.expected.json` sidecar these tests read, decoded with JSONDecoder (exact float parsing).
struct Sidecar: Decodable {
    enum PathPart: Decodable {
        case key(String), index(Int)
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if let i = try? c.decode(Int.self) { self = .index(i) } else { self = .key(try c.decode(String.self)) }
        }
        var text: String {
            switch self {
            case let .key(s): return s
            case let .index(i): return String(i)
            }
        }
    }
    enum Number: Decodable {
        case number(Double), text(String)
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if let x = try? c.decode(Double.self) { self = .number(x) } else { self = .text(try c.decode(String.self)) }
        }
    }
    enum Scalar: Decodable {
        case null, bool(Bool), int(Int), double(Double), string(String)
        init(from d: Decoder) throws {
            let c = try d.singleValueContainer()
            if c.decodeNil() {
                self = .null
            } else if let b = try? c.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? c.decode(Int.self) {
                self = .int(i)
            } else if let x = try? c.decode(Double.self) {
                self = .double(x)
            } else {
                self = .string(try c.decode(String.self))
            }
        }
    }
    struct TensorSpec: Decodable {
        let path: [PathPart]
        let dtype: String
        let shape: [Int]
        let sha256: String
        let first_values: [Number]
        let first_values_int: [Int64]?
    }
    struct Leaf: Decodable {
        let path: [PathPart]
        let type: String
        let value: Scalar
    }
    let tensors: [TensorSpec]
    let leaves: [Leaf]?
}

enum TorchFlat {
    /// Every leaf by dotted path (dict keys and list/tuple indices joined with ".").
    static func leaves(_ v: CheckpointValue) -> [(key: String, value: CheckpointValue)] {
        var out: [(key: String, value: CheckpointValue)] = []
        var stack: [(String, CheckpointValue)] = [("", v)]
        func join(_ p: String, _ k: String) -> String { p.isEmpty ? k : p + "." + k }
        while let (path, value) = stack.popLast() {
            switch value {
            case let .dict(items):
                for (k, c) in items.reversed() { stack.append((join(path, k), c)) }
            case let .list(items), let .tuple(items):
                for (i, c) in items.enumerated().reversed() { stack.append((join(path, String(i)), c)) }
            default:
                out.append((path, value))
            }
        }
        return out
    }

    static func tensors(_ v: CheckpointValue) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, leaf) in leaves(v) { if case let .tensor(t) = leaf { out[k] = t } }
        return out
    }

    /// The containers by dotted path, for checking key order.
    static func container(_ v: CheckpointValue, path: [String]) -> CheckpointValue? {
        var cur = v
        for p in path {
            switch cur {
            case let .dict(items):
                guard let next = items.first(where: { $0.key == p }) else { return nil }
                cur = next.value
            case let .list(items), let .tuple(items):
                guard let i = Int(p), i >= 0, i < items.count else { return nil }
                cur = items[i]
            default: return nil
            }
        }
        return cur
    }

    /// Element `i` of a tensor as float64.
    static func element(_ t: Tensor, _ i: Int) -> Double {
        let p = t.data.buffer
        switch t.dtype {
        case .f32: return Double(p.loadUnaligned(fromByteOffset: i * 4, as: Float.self))
        case .f64: return p.loadUnaligned(fromByteOffset: i * 8, as: Double.self)
        case .f16: return Double(Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))))
        case .bf16: return Double(Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16))
        case .i64: return Double(p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
        case .i32: return Double(p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
        case .i16: return Double(p.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
        case .i8: return Double(p.load(fromByteOffset: i, as: Int8.self))
        case .u8, .bool: return Double(p.load(fromByteOffset: i, as: UInt8.self))
        }
    }

    static func integer(_ t: Tensor, _ i: Int) -> Int64? {
        let p = t.data.buffer
        switch t.dtype {
        case .i64: return p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)
        case .i32: return Int64(p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
        case .i16: return Int64(p.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
        case .i8: return Int64(p.load(fromByteOffset: i, as: Int8.self))
        case .u8, .bool: return Int64(p.load(fromByteOffset: i, as: UInt8.self))
        default: return nil
        }
    }

    static func sha256(_ t: Tensor) -> String { SHA256.hex(SHA256.hash(t.data.buffer)) }
}
