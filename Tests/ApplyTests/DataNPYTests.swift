import GSLoRAData
import GSLoRAFormat
import XCTest

final class DataNPYTests: XCTestCase {
    /// An .npy file made by hand: magic, version, little-endian header length, dict text padded to 64, data.
    private func npy(_ dict: String, _ data: [UInt8], major: UInt8 = 1) -> [UInt8] {
        let pre = major == 1 ? 10 : 12
        var text = Array(dict.utf8)
        let total = (pre + text.count + 1 + 63) / 64 * 64
        text += [UInt8](repeating: 0x20, count: total - pre - text.count - 1) + [0x0A]
        let n = text.count
        let len: [UInt8] = major == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8(n >> 8), 0, 0]
        return [0x93] + Array("NUMPY".utf8) + [major, 0] + len + text + data
    }

    private func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    /// The floats of a tensor, read while the tensor (and the mapping it views) is certainly alive.
    private func floats(_ t: Tensor) -> [Float] {
        withExtendedLifetime(t) { Array(t.data.buffer.bindMemory(to: Float.self)) }
    }

    func testFloat32RoundTripIsAtomicAndAligned() throws {
        let t = DataTemp()
        let values = (0..<120).map { Float($0) * 0.25 - 7 }
        let path = t.file("x.npy")
        try values.withUnsafeBufferPointer { try NPY.write($0, shape: [2, 3, 4, 5], to: path) }
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = Int(raw[8]) | Int(raw[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0, "data starts on a 64-byte boundary")
        XCTAssertEqual(raw.count, 10 + headerLength + 480)
        XCTAssertTrue(
            String(decoding: raw[10..<(10 + headerLength)], as: UTF8.self)
                .hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4, 5), }"))
        let back = try NPY.read(path: path)
        XCTAssertEqual(back.shape, [2, 3, 4, 5])
        XCTAssertEqual(back.dtype, .f32)
        XCTAssertEqual(floats(back), values)
        XCTAssertEqual(try NPY.readImages(path: path, channels: 3, height: 4, width: 5).shape, [2, 3, 4, 5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: t.path), ["x.npy"], "no temporary file left")

        // 1-D and 0-D shapes use Python's tuple spelling.
        try [Float(3)].withUnsafeBufferPointer { try NPY.write($0, shape: [1], to: t.file("one.npy")) }
        XCTAssertEqual(try NPY.read(path: t.file("one.npy")).shape, [1])
        try [Float(4)].withUnsafeBufferPointer { try NPY.write($0, shape: [], to: t.file("scalar.npy")) }
        XCTAssertEqual(try NPY.read(path: t.file("scalar.npy")).shape, [])
        let tensor = Tensor(name: "logits", shape: [2, 2], floats: [1, 2, 3, 4])
        try NPY.write(tensor, to: t.file("logits.npy"))
        XCTAssertEqual(floats(try NPY.read(path: t.file("logits.npy"))), [1, 2, 3, 4])
        XCTAssertThrowsError(try [Float(1), 2].withUnsafeBufferPointer { try NPY.write($0, shape: [3], to: t.file("bad.npy")) })
    }

    /// Other element types convert by value; versions 2 and 3 headers read too.
    func testConvertedTypesAndVersions() throws {
        let t = DataTemp()
        let cases: [(String, [UInt8], UInt8)] = [
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", bytes([1.5, -2.0, 3.25, 0.0] as [Double]), 1),
            ("{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", [1, 255, 0, 3], 1),
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", bytes([7, -1, 0, 1 << 20] as [Int64]), 2),
            ("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 2L)}", bytes([1, 2, 3, 4] as [Float]), 3)
        ]
        let expected: [[Float]] = [[1.5, -2, 3.25, 0], [1, 255, 0, 3], [7, -1, 0, 1_048_576], [1, 2, 3, 4]]
        for (k, (dict, data, major)) in cases.enumerated() {
            let path = t.write("c\(k).npy", npy(dict, data, major: major))
            let x = try NPY.read(path: path)
            XCTAssertEqual(floats(x), expected[k], dict)
        }
        // A header whose length leaves the data misaligned for float32 is copied, not viewed.
        var odd = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let text = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n".utf8)
        odd += [UInt8(text.count), 0] + text + bytes([Float(5), 6])
        XCTAssertEqual(floats(try NPY.read(path: t.write("odd.npy", odd))), [5, 6])
    }

    func testBadFilesAreRefusedClearly() throws {
        let t = DataTemp()
        let f4 = bytes([Float](repeating: 1, count: 6))
        let cases: [(String, [UInt8], String)] = [
            ("fortran", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4), "Fortran"),
            ("short", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", f4), "truncated"),
            ("long", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", f4), "holds 24"),
            ("overflow", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", f4), "overflow"),
            ("bigendian", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", f4), "big-endian"),
            ("complex", npy("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f4), "not supported"),
            ("structured", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", f4), "structured"),
            ("keys", npy("{'descr': '<f4', 'shape': (6,), }", f4), "keys"),
            ("garbage", npy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (6,), }", f4), "malformed"),
            ("negative", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", f4), "malformed"),
            ("magic", Array("PK\u{03}\u{04} not numpy".utf8), "magic"),
            ("version", [0x93] + Array("NUMPY".utf8) + [9, 0, 0, 0], "version"),
            ("header-past-end", [0x93] + Array("NUMPY".utf8) + [1, 0, 0xFF, 0x00, 0x7B], "past the end"),
            ("huge-header", [0x93] + Array("NUMPY".utf8) + [2, 0, 0xFF, 0xFF, 0xFF, 0x7F], "limit")
        ]
        for (name, data, words) in cases {
            let path = t.write(name + ".npy", data)
            XCTAssertThrowsError(try NPY.read(path: path), name) { e in
                guard case DataError.badNPY(let p, _)? = e as? DataError else { return XCTFail("\(name): \(e)") }
                XCTAssertEqual(p, path)
                XCTAssertTrue("\(e)".contains(words), "\(name): \(e)")
            }
        }
        XCTAssertThrowsError(try NPY.read(path: t.file("missing.npy"))) {
            guard case DataError.io? = $0 as? DataError else { return XCTFail("\($0)") }
        }
    }

    /// Model input batches must be (N, C, H, W); (C, H, W) is one image; channels-last gets a hint.
    func testImageBatchShapes() throws {
        let t = DataTemp()
        let one = t.write("one.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }", bytes([Float](repeating: 0.5, count: 12))))
        XCTAssertEqual(try NPY.readImages(path: one, channels: 3, height: 2, width: 2).shape, [1, 3, 2, 2])
        let nhwc = t.write("nhwc.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 2, 3), }", bytes([Float](repeating: 0, count: 48))))
        XCTAssertThrowsError(try NPY.readImages(path: nhwc, channels: 3, height: 2, width: 2)) { e in
            XCTAssertTrue("\(e)".contains("(4, 2, 2, 3)"), "\(e)")
            XCTAssertTrue("\(e)".contains("transpose(0, 3, 1, 2)"), "\(e)")
        }
        XCTAssertThrowsError(try NPY.readImages(path: one, channels: 1, height: 2, width: 2))
    }
}
