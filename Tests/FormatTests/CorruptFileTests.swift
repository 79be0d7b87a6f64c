import Foundation
import GSLoRAFormat
import XCTest

/// Every way a file can be broken, made here from a valid file: each must be refused with an error that names the
/// file and the problem, never a crash.
final class CorruptFileTests: XCTestCase {
    /// A valid three-tensor file's bytes.
    func validFile(_ dir: TempDir) throws -> [UInt8] {
        let path = dir.file("valid.gslr")
        try GSLRWriter.write(
            path, header: GSLRHeader(kind: .tensors),
            tensors: [
                sampleTensor("a", .f32, [10]), sampleTensor("b", .i16, [3, 7]), sampleTensor("c", .u8, [100])
            ])
        return readFile(path)
    }

    /// The valid file with its header object changed by `edit` (the header CRC is recomputed, data kept).
    func edited(_ bytes: [UInt8], alignment: Int = 64, _ edit: (inout [String: Any]) -> Void) -> [UInt8] {
        var (h, data) = splitFile(bytes)
        edit(&h)
        return handMadeFile(headerJSON: jsonBytes(h), data: data, alignment: alignment)
    }

    func editTensor(_ i: Int, _ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
        return { h in
            var table = h["tensors"] as! [[String: Any]]
            edit(&table[i])
            h["tensors"] = table
        }
    }

    func setU64(_ bytes: [UInt8], at: Int, _ v: UInt64) -> [UInt8] {
        var b = bytes
        for k in 0..<8 { b[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        return b
    }

    struct Case {
        let name: String
        let bytes: [UInt8]
        /// Words the message must contain (beside the file path).
        let expect: [String]
        let match: (FormatError) -> Bool
    }

    func cases(_ v: [UInt8]) -> [Case] {
        let hlen = Int(v[16]) | Int(v[17]) << 8
        var c: [Case] = []
        func add(_ name: String, _ bytes: [UInt8], _ expect: [String], _ match: @escaping (FormatError) -> Bool) {
            c.append(Case(name: name, bytes: bytes, expect: expect, match: match))
        }
        var b = v
        b[0] = 0x50
        add("wrong magic", b, ["not a .gslr"]) {
            if case .notGSLR = $0 { return true }; return false
        }
        add("empty file", [], ["not a .gslr"]) {
            if case .notGSLR = $0 { return true }; return false
        }
        b = v; b[8] = 2
        // The damaged copy claims 2.m (m: the writer's minor version); the spec (§2) wants "a newer reader is needed".
        let minor = GSLR.minorVersion
        add("future major version", b, ["version 2.\(minor)", "newer reader"]) {
            if case .unsupportedVersion(_, 2, minor) = $0 { return true }; return false
        }
        b = v; b[8] = 0
        add("major version 0", b, ["version 0.\(minor)", "damaged"]) {
            if case .unsupportedVersion(_, 0, minor) = $0 { return true }; return false
        }
        b = v; b[12] = 1; b[15] = 4
        add("byte order mark", b, ["byte-order"]) {
            if case .badPreamble = $0 { return true }; return false
        }
        b = v; b[28] = 1
        add("reserved word", b, ["reserved"]) {
            if case .badPreamble = $0 { return true }; return false
        }
        add("truncated preamble", Array(v[0..<20]), ["truncated", "preamble"]) {
            if case .truncated = $0 { return true }; return false
        }
        add("truncated header", Array(v[0..<(32 + hlen / 2)]), ["truncated", "header"]) {
            if case .truncated = $0 { return true }; return false
        }
        add("truncated data", Array(v.dropLast(7)), ["beyond the end"]) {
            if case .badLayout(_, "c", _) = $0 { return true }; return false
        }
        add("trailing bytes", v + [0, 0], ["after the end"]) {
            if case .badLayout = $0 { return true }; return false
        }
        add("header length larger than the file", setU64(v, at: 16, UInt64(v.count + 1000)), ["truncated", "header"]) {
            if case .truncated = $0 { return true }; return false
        }
        add("absurd header length", setU64(v, at: 16, UInt64(1) << 62), ["header length", "limit"]) {
            if case .limitExceeded = $0 { return true }; return false
        }
        add("header length with top bit set", setU64(v, at: 16, UInt64.max), ["header length", "limit"]) {
            if case .limitExceeded = $0 { return true }; return false
        }
        b = v; b[40] ^= 0x01
        add("header byte flipped", b, ["CRC32"]) {
            if case .headerChecksum = $0 { return true }; return false
        }
        add("header not JSON", handMadeFile(headerJSON: Array("{\"kind\": tensors".utf8), data: []), ["not valid JSON"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("header not UTF-8", handMadeFile(headerJSON: [0x7B, 0xFF, 0xFE, 0x7D], data: []), ["invalid header"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add(
            "deep nesting", handMadeFile(headerJSON: Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8), data: []),
            ["nesting"]
        ) {
            if case .limitExceeded = $0 { return true }; return false
        }
        add(
            "duplicate header key",
            Array(splitFileHeaderText(v).replacingOccurrences(of: "{\"alignment\":64,", with: "{\"alignment\":64,\"alignment\":128,").utf8)
                .withHeaderAndData(of: v), ["\"alignment\" appears twice"]
        ) {
            if case .badHeader = $0 { return true }; return false
        }
        add(
            "duplicate key spelled with an escape",
            Array(splitFileHeaderText(v).replacingOccurrences(of: "\"kind\":\"tensors\"", with: "\"kind\":\"tensors\",\"\\u006bind\":\"backbone\"").utf8)
                .withHeaderAndData(of: v), ["\"kind\" appears twice"]
        ) {
            if case .badHeader = $0 { return true }; return false
        }
        add(
            "duplicate key in a table entry",
            Array(splitFileHeaderText(v).replacingOccurrences(of: "\"name\":\"a\"", with: "\"name\":\"a\",\"name\":\"z\"").utf8)
                .withHeaderAndData(of: v), ["\"name\" appears twice"]
        ) {
            if case .badHeader = $0 { return true }; return false
        }
        add("missing table", edited(v) { $0["tensors"] = nil }, ["missing key 'tensors'"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("unknown kind", edited(v) { $0["kind"] = "movie" }, ["kind"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("alignment not a power of two", edited(v) { $0["alignment"] = 96 }, ["alignment 96"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("absurd alignment", edited(v) { $0["alignment"] = 1 << 40 }, ["alignment"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("overlapping offsets", edited(v, editTensor(1) { $0["offset"] = 0 }), ["overlaps"]) {
            if case .badLayout(_, "b", _) = $0 { return true }; return false
        }
        add("misaligned offset", edited(v, editTensor(1) { $0["offset"] = 68 }), ["not a multiple"]) {
            if case .badLayout(_, "b", _) = $0 { return true }; return false
        }
        add("gap between tensors", edited(v, editTensor(1) { $0["offset"] = 128 }), ["gap"]) {
            if case .badLayout(_, "b", _) = $0 { return true }; return false
        }
        add("negative offset", edited(v, editTensor(1) { $0["offset"] = -64 }), ["offset -64 is negative"]) {
            if case .badLayout(_, "b", _) = $0 { return true }; return false
        }
        add(
            "out of bounds",
            edited(
                v,
                editTensor(2) {
                    $0["shape"] = [1000]; $0["length"] = 1000
                }), ["beyond the end"]
        ) {
            if case .badLayout(_, "c", _) = $0 { return true }; return false
        }
        add("shape × dtype ≠ length", edited(v, editTensor(0) { $0["length"] = 44 }), ["byte length 44", "needs 40"]) {
            if case .badTensor(_, "a", _) = $0 { return true }; return false
        }
        add("dtype changed", edited(v, editTensor(1) { $0["dtype"] = "F64" }), ["needs 168"]) {
            if case .badTensor(_, "b", _) = $0 { return true }; return false
        }
        add("unknown dtype", edited(v, editTensor(1) { $0["dtype"] = "F8" }), ["dtype"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("duplicate names", edited(v, editTensor(2) { $0["name"] = "a" }), ["appears twice"]) {
            if case .duplicateName(_, "a") = $0 { return true }; return false
        }
        add("empty name", edited(v, editTensor(2) { $0["name"] = "" }), ["empty name"]) {
            if case .badTensor = $0 { return true }; return false
        }
        add("control character in name", edited(v, editTensor(2) { $0["name"] = "c\td" }), ["control character"]) {
            if case .badTensor = $0 { return true }; return false
        }
        add("name too long", edited(v, editTensor(2) { $0["name"] = String(repeating: "n", count: 1025) }), ["name length", "1024"]) {
            if case .limitExceeded = $0 { return true }; return false
        }
        add("absurd rank", edited(v, editTensor(2) { $0["shape"] = [Int](repeating: 1, count: 9) + [100] }), ["rank", "limit of 8"]) {
            if case .limitExceeded = $0 { return true }; return false
        }
        add("negative dimension", edited(v, editTensor(2) { $0["shape"] = [-100] }), ["negative"]) {
            if case .badTensor = $0 { return true }; return false
        }
        add(
            "overflowing shape",
            edited(
                v,
                editTensor(2) {
                    $0["shape"] = [1 << 40, 1 << 40]; $0["length"] = 0
                }), ["overflows"]
        ) {
            if case .badTensor = $0 { return true }; return false
        }
        add("absurd offset", edited(v, editTensor(2) { $0["offset"] = Int.max - 63 }), ["gap"]) {
            if case .badLayout = $0 { return true }; return false
        }
        add("crc not hex", edited(v, editTensor(0) { $0["crc32"] = "xyz" }), ["crc32"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("shape is a string", edited(v, editTensor(0) { $0["shape"] = "10" }), ["shape"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("backbone without model", edited(v) { $0["kind"] = "backbone" }, ["model"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("adapter without record", edited(v) { $0["kind"] = "adapter" }, ["adapter"]) {
            if case .badHeader = $0 { return true }; return false
        }
        let pipeline: [String: Any] = ["resize": 256, "crop": 224, "interpolation": "bicubic", "mean": [0.5], "std": [0.5]]
        func pre(_ change: [String: Any]) -> [UInt8] { edited(v) { $0["preprocess"] = pipeline.merging(change) { _, b in b } } }
        add("preprocess crop > resize", pre(["resize": 200]), ["preprocess", "crop ≤ resize"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("preprocess unknown filter", pre(["interpolation": "lanczos"]), ["preprocess", "interpolation"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add("preprocess zero std", pre(["std": [0.0]]), ["preprocess", "non-zero"]) {
            if case .badHeader = $0 { return true }; return false
        }
        add(
            "preprocess mean without std",
            edited(v) {
                var p = pipeline; p["std"] = nil; $0["preprocess"] = p
            }, ["preprocess", "both mean and std"]
        ) {
            if case .badHeader = $0 { return true }; return false
        }
        return c
    }

    func testEveryCorruptionIsRefusedByName() throws {
        let dir = TempDir()
        let valid = try validFile(dir)
        XCTAssertNoThrow(try GSLRFile.open(dir.file("valid.gslr")))
        for (i, c) in cases(valid).enumerated() {
            let path = dir.file("case\(i).gslr")
            writeFile(path, c.bytes)
            do {
                _ = try GSLRFile.open(path)
                XCTFail("\(c.name): opened without error")
            } catch let e as FormatError {
                let msg = "\(e)"
                XCTAssertTrue(c.match(e), "\(c.name): wrong error: \(msg)")
                XCTAssertTrue(msg.hasPrefix(path + ":"), "\(c.name): message does not name the file: \(msg)")
                for w in c.expect { XCTAssertTrue(msg.contains(w), "\(c.name): message lacks '\(w)': \(msg)") }
            }
        }
    }

    func testTooManyTensorsIsRefusedBeforeBuildingTheTable() throws {
        let dir = TempDir()
        // 1,000,001 empty objects: refused by count, before any entry is decoded.
        let table = "[" + String(repeating: "{},", count: GSLR.maxTensors) + "{}]"
        let json = Array(("{\"alignment\":64,\"kind\":\"tensors\",\"tensors\":" + table + "}").utf8)
        let path = dir.file("many.gslr")
        writeFile(path, handMadeFile(headerJSON: json, data: []))
        XCTAssertThrowsError(try GSLRFile.open(path)) {
            guard case .limitExceeded(_, "tensor count", 1_000_001, _)? = $0 as? FormatError else { return XCTFail("\($0)") }
        }
    }

    func testFlippedDataByteIsCaughtByVerifyOnly() throws {
        let dir = TempDir()
        var b = try validFile(dir)
        let f0 = try GSLRFile.open(dir.file("valid.gslr"))
        let at = f0.dataStart + (try f0.info("b").offset) + 5
        b[at] ^= 0x10
        let path = dir.file("flipped.gslr")
        writeFile(path, b)
        let f = try GSLRFile.open(path)
        let bad = f.verify()
        XCTAssertEqual(bad.map(\.name), ["b"])
        XCTAssertNotEqual(bad[0].expected, bad[0].actual)
    }

    func testForwardCompatibility() throws {
        let dir = TempDir()
        let v = try validFile(dir)
        // Unknown keys anywhere and a newer minor version are accepted.
        var (h, data) = splitFile(v)
        h["future_key"] = ["nested": [1, 2, 3]]
        var table = h["tensors"] as! [[String: Any]]
        table[0]["quantization"] = "none"
        h["tensors"] = table
        let path = dir.file("newer.gslr")
        writeFile(path, handMadeFile(headerJSON: jsonBytes(h), data: data, minor: 7))
        let f = try GSLRFile.open(path)
        XCTAssertEqual(f.minorVersion, 7)
        XCTAssertEqual(f.verify(), [])
    }

    /// Random damage: whatever happens, no crash, and any error names the file.
    func testRandomDamageNeverCrashes() throws {
        let dir = TempDir()
        let v = try validFile(dir)
        var x: UInt64 = 0x1234_5678
        func next() -> Int { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return Int(x % UInt64(Int32.max)) }
        let path = dir.file("fuzz.gslr")
        for _ in 0..<600 {
            var b = v
            switch next() % 4 {
            case 0: for _ in 0..<(1 + next() % 4) { b[next() % b.count] = UInt8(next() & 0xFF) }
            case 1: b = Array(b[0..<(next() % b.count)])
            case 2: b.insert(UInt8(next() & 0xFF), at: next() % b.count)
            default:
                // Damage inside the header JSON with a matching CRC, so the scanner and decoder see it.
                var json = Array(splitFileHeaderText(v).utf8)
                for _ in 0..<(1 + next() % 3) {
                    let at = next() % json.count
                    switch next() % 3 {
                    case 0:
                        let tokens = Array("{}[]\",:0-9e\\u".utf8)
                        json[at] = tokens[next() % tokens.count]
                    case 1: json.remove(at: at)
                    default: json.insert(UInt8(next() & 0xFF), at: at)
                    }
                }
                b = json.withHeaderAndData(of: v)
            }
            writeFile(path, b)
            do {
                let f = try GSLRFile.open(path)
                _ = f.verify()
                _ = f.allTensors()
            } catch {
                XCTAssertTrue("\(error)".hasPrefix(path), "\(error)")
            }
        }
    }
}

/// The header text of a file written by the reference writer (keys sorted, no whitespace).
func splitFileHeaderText(_ bytes: [UInt8]) -> String {
    let hlen = Int(bytes[16]) | Int(bytes[17]) << 8 | Int(bytes[18]) << 16
    return String(decoding: bytes[32..<(32 + hlen)], as: UTF8.self)
}

extension Array where Element == UInt8 {
    /// These bytes as the header of a new file whose data section is `file`'s.
    func withHeaderAndData(of file: [UInt8]) -> [UInt8] {
        handMadeFile(headerJSON: self, data: splitFile(file).data)
    }
}
