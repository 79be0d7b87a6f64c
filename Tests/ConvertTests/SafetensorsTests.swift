import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

final class SafetensorsTests: XCTestCase {
    /// A file from a header string and data bytes; `length` overrides the header-length field.
    static func file(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> Bytes {
        let h = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { out += $0 }
        return Bytes(copying: out + h + data)
    }

    static func entry(_ name: String, _ dtype: String, _ shape: [Int], _ b: Int, _ e: Int) -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(b),\(e)]}"
    }

    func testValidFileIsReadZeroCopyInOffsetOrder() throws {
        let header = "{\"__metadata__\":{\"format\":\"pt\"}," + Self.entry("b", "F32", [2], 8, 16) + "," + Self.entry("a", "I64", [1], 0, 8) + "}  "
        var data = [UInt8](repeating: 0, count: 16)
        data[0] = 7
        data.replaceSubrange(8..<16, with: [Float(1.5), Float(-2)].withUnsafeBytes { Array($0) })
        let bytes = Self.file(header, data: data)
        let f = try SafetensorsFile.parse(bytes, path: "ok.safetensors")
        XCTAssertEqual(f.tensors.map(\.name), ["a", "b"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(try f.tensors[1].floats(), [1.5, -2])
        XCTAssertEqual(f.tensors[0].data.buffer.loadUnaligned(as: Int64.self), 7)
        // Zero copy: the tensor points into the file's bytes.
        XCTAssertTrue(f.tensors[1].data.owner === bytes.owner)
    }

    /// Every way a header can lie is refused with an error that says what is wrong.
    func testCorruptFilesAreRefused() {
        let e = Self.entry
        let cases: [(String, Bytes, String)] = [
            ("short file", Bytes(copying: [1, 0, 0]), "fewer than the 8-byte"),
            ("header length > file", Self.file("{}", length: 1000), "runs past the end"),
            ("header length > 100 MB", Self.file("{}", length: 200_000_000), "100 MB"),
            ("bad JSON", Self.file("{\"a\":{\"dtype\":\"F32\",", data: []), "header JSON"),
            ("not an object", Self.file("[1,2]"), "does not start with '{'"),
            ("trailing garbage", Self.file("{} x"), "after the JSON value"),
            (
                "duplicate names", Self.file("{" + e("a", "F32", [1], 0, 4) + "," + e("a", "F32", [1], 4, 8) + "}", data: .init(repeating: 0, count: 8)),
                "duplicate key \"a\""
            ),
            (
                "overlapping offsets", Self.file("{" + e("a", "F32", [2], 0, 8) + "," + e("b", "F32", [1], 4, 8) + "}", data: .init(repeating: 0, count: 8)),
                "overlap"
            ),
            (
                "gap between tensors", Self.file("{" + e("a", "F32", [1], 0, 4) + "," + e("b", "F32", [1], 8, 12) + "}", data: .init(repeating: 0, count: 12)),
                "gap"
            ),
            ("dtype×shape ≠ length", Self.file("{" + e("a", "F32", [3], 0, 8) + "}", data: .init(repeating: 0, count: 8)), "needs 12 bytes"),
            ("offsets past the data", Self.file("{" + e("a", "F32", [4], 0, 16) + "}", data: .init(repeating: 0, count: 8)), "run past"),
            ("data left over", Self.file("{" + e("a", "F32", [1], 0, 4) + "}", data: .init(repeating: 0, count: 12)), "cover 4 bytes"),
            ("begin after end", Self.file("{" + e("a", "F32", [0], 8, 4) + "}", data: .init(repeating: 0, count: 8)), "end before they begin"),
            ("unknown dtype", Self.file("{" + e("a", "F8_E4M3", [1], 0, 1) + "}", data: [0]), "not supported"),
            ("negative dim", Self.file("{" + e("a", "F32", [-1], 0, 4) + "}", data: .init(repeating: 0, count: 4)), "not a non-negative integer"),
            ("shape overflow", Self.file("{" + e("a", "U8", [4_294_967_296, 4_294_967_296], 0, 4) + "}", data: .init(repeating: 0, count: 4)), "overflows"),
            (
                "missing field", Self.file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", data: .init(repeating: 0, count: 4)),
                "needs dtype, shape and data_offsets"
            ),
            (
                "unknown field", Self.file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", data: .init(repeating: 0, count: 4)),
                "unknown field"
            ),
            ("metadata not strings", Self.file("{\"__metadata__\":{\"k\":1}}"), "not a string"),
            ("deep nesting", Self.file("{\"__metadata__\":" + String(repeating: "[", count: 50) + String(repeating: "]", count: 50) + "}"), "nesting")
        ]
        for (what, bytes, expect) in cases {
            XCTAssertThrowsError(try SafetensorsFile.parse(bytes, path: "bad.safetensors"), what) { err in
                guard case let ConvertError.badSafetensors(file, reason) = err else { return XCTFail("\(what): \(err)") }
                XCTAssertEqual(file, "bad.safetensors", what)
                XCTAssertTrue(reason.contains(expect), "\(what): '\(reason)' should mention '\(expect)'")
                XCTAssertTrue("\(err)".hasPrefix("bad.safetensors: invalid safetensors file"), what)
            }
        }
    }

    /// Written files round-trip, keep order and metadata, and start their data 8-byte aligned.
    func testWriterRoundTrip() throws {
        let dir = try ModelFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.safetensors").path
        let ts = [
            Tensor(name: "z\"quoted\\", shape: [3], floats: [1, 2, 3]),
            Tensor(name: "ints", dtype: .i64, shape: [2], data: Bytes(copying: [Int64(5), -6].withUnsafeBytes { Array($0) })),
            Tensor(name: "empty", shape: [0, 3], floats: []),
            Tensor(name: "half", shape: [1], floats: [0.5], dtype: .f16)
        ]
        let size = try SafetensorsWriter.write(path, tensors: ts, metadata: ["k": "v\n"])
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(raw.count, size)
        let n = raw.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + Int(n)) % 8, 0, "data start is 8-byte aligned")
        let f = try SafetensorsFile.open(path)
        XCTAssertEqual(f.metadata, ["k": "v\n"])
        XCTAssertEqual(f.tensors.map(\.name), ts.map(\.name))
        for (a, b) in zip(f.tensors, ts) {
            XCTAssertEqual(a.dtype, b.dtype)
            XCTAssertEqual(a.shape, b.shape)
            XCTAssertEqual(Array(a.data.buffer), Array(b.data.buffer), a.name)
        }
        XCTAssertThrowsError(try SafetensorsWriter.write(path, tensors: [ts[0], ts[0]])) { e in
            guard case ConvertError.badOutput = e else { return XCTFail("\(e)") }
        }
    }

    /// float casts round to nearest even; ints are untouched.
    func testDTypeCasts() throws {
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0); 1 + 3·2^-8 rounds up.
        let x = Tensor(name: "x", shape: [4], floats: [1 + 0x1p-8, 1 + 3 * 0x1p-8, 65520, .nan])
        let b = DTypeCast.cast(x, to: .bf16)
        XCTAssertEqual(b.dtype, .bf16)
        let bv = try b.floats()
        XCTAssertEqual(Array(bv.prefix(3)), [1, 1 + 4 * 0x1p-8, 65536])
        XCTAssertTrue(bv[3].isNaN)
        let h = try DTypeCast.cast(x, to: .f16).floats()
        XCTAssertEqual(h[0], 1 + 0x1p-8) // exact in f16 (10 fraction bits)
        XCTAssertEqual(h[2], .infinity) // 65520 rounds up past f16's max
        let d = Tensor(name: "d", dtype: .f64, shape: [1], data: Bytes(copying: [Double(1 + 0x1p-8 + 0x1p-40)].withUnsafeBytes { Array($0) }))
        XCTAssertEqual(try DTypeCast.cast(d, to: .bf16).floats(), [1 + 0x1p-7], "f64 → bf16 rounds once, not twice")
        let i = Tensor(name: "i", dtype: .i32, shape: [1], data: Bytes(copying: [1, 0, 0, 0]))
        XCTAssertEqual(DTypeCast.cast(i, to: .f16).dtype, .i32)
        let back = try DTypeCast.cast(b, to: .f32).floats()
        XCTAssertEqual(Array(back.prefix(3)), Array(bv.prefix(3)), "bf16 → f32 is exact")
        XCTAssertTrue(back[3].isNaN)
    }
}
