import GSLoRAFormat
import XCTest

final class ChecksumTests: XCTestCase {
    func testSHA256Vectors() {
        let cases: [([UInt8], String)] = [
            ([], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (Array("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
            (
                Array("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8),
                "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
            )
        ]
        for (msg, want) in cases { XCTAssertEqual(SHA256.hex(SHA256.hash(msg)), want) }
    }

    func testSHA256MillionAInUnevenPieces() {
        var s = SHA256()
        let a = [UInt8](repeating: 0x61, count: 1_000_000)
        // Pieces of odd sizes exercise the partial-block path.
        var at = 0, step = 1
        while at < a.count {
            let n = min(step, a.count - at)
            a.withUnsafeBytes { s.update(UnsafeRawBufferPointer(rebasing: $0[at..<(at + n)])) }
            at += n
            step = step * 3 % 997 + 1
        }
        XCTAssertEqual(SHA256.hex(s.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testSHA256PaddingBoundaries() {
        // Lengths around the 55/56/64-byte padding edges, against values from Python's hashlib.
        let want = [
            55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
            56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
            63: "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34",
            64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"
        ]
        for (n, h) in want { XCTAssertEqual(SHA256.hex(SHA256.hash([UInt8](repeating: 0x61, count: n))), h, "length \(n)") }
    }

    func testCRC32MatchesZlibCheckValue() {
        XCTAssertEqual(CRC32.of(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.of([]), 0)
        let whole = CRC32.of(Array("hello world".utf8))
        XCTAssertEqual(CRC32.of(Array(" world".utf8), seed: CRC32.of(Array("hello".utf8))), whole)
        XCTAssertEqual(CRC32.hex(0xAB), "000000ab")
        XCTAssertEqual(CRC32.parse("000000ab"), 0xAB)
        XCTAssertNil(CRC32.parse("000000AB"))
        XCTAssertNil(CRC32.parse("abc"))
    }
}

final class ParallelCRCTests: XCTestCase {
    func testPiecesRecombineToTheWholeCRC() {
        let sizes = [0, 1, 999, 1000, 1001, 5000, 0, 12_345]
        let arrays = sizes.enumerated().map { i, n in bytesOf(sampleTensor("x", .u8, [n], seed: UInt64(i + 1))) }
        var seen = 0
        let got = withBuffers(arrays) { CRC32.ofEach($0, piece: 1000) { seen = $0 } }
        XCTAssertEqual(got, arrays.map { CRC32.of($0) })
        XCTAssertEqual(seen, sizes.reduce(0, +))
    }

    func withBuffers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        let copies = arrays.map { Bytes(copying: $0) }
        return withExtendedLifetime(copies) { body(copies.map(\.buffer)) }
    }
}
