import Foundation
import GSLoRAFormat
import XCTest

/// Releasing a mapped input's pages, and checksums a reader verified being reused by the writer.
final class MappedPagesTests: XCTestCase {
    /// Resident bytes of the mapping that starts at `base`, from /proc/self/smaps (nil where there is none).
    func residentBytes(of base: UnsafeRawPointer) -> Int? {
        // Read to the end: procfs reports a size of 0, which whole-file readers take at its word.
        guard let data = FileHandle(forReadingAtPath: "/proc/self/smaps")?.readDataToEndOfFile() else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        let start = String(UInt(bitPattern: Int(bitPattern: base)), radix: 16)
        var inside = false
        for line in text.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), line[..<dash].allSatisfy(\.isHexDigit) {
                inside = line[..<dash] == start
            } else if inside, line.hasPrefix("Rss:") {
                return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
            }
        }
        return nil
    }

    func patternFile(_ dir: TempDir, pages: Int) -> (String, [UInt8]) {
        let bytes = bytesOf(sampleTensor("p", .u8, [pages * 4096 + 100], seed: 7))
        let path = dir.file("pattern.bin")
        writeFile(path, bytes)
        return (path, bytes)
    }

    func testReleasedPagesLeaveTheResidentSetAndKeepTheirContents() throws {
        let dir = TempDir()
        let (path, bytes) = patternFile(dir, pages: 64)
        let m = try MappedFile(path)
        let base = m.bytes.buffer.baseAddress!
        XCTAssertEqual(Array(m.bytes.buffer), bytes)
        guard let touched = residentBytes(of: base) else { throw XCTSkip("no /proc/self/smaps") }
        XCTAssertGreaterThanOrEqual(touched, 64 * 4096)

        // A slice in the middle: only its pages go.
        MappedFile.releasePages(of: Bytes(owner: m.bytes.owner, buffer: UnsafeRawBufferPointer(rebasing: m.bytes.buffer[8192..<(8192 + 16 * 4096)])))
        XCTAssertEqual(residentBytes(of: base), touched - 16 * 4096)
        MappedFile.releasePages(of: m.bytes)
        XCTAssertEqual(residentBytes(of: base), 0)
        XCTAssertEqual(Array(m.bytes.buffer), bytes, "released pages read back from the file")
    }

    func testReleasingMemoryThatIsNotAMappingDoesNothing() {
        let t = sampleTensor("a", .f32, [3 * 4096], seed: 3)
        let before = bytesOf(t)
        MappedFile.releasePages(of: t.data)
        XCTAssertEqual(bytesOf(t), before)
    }

    func testKnownChecksumsAreForExactRangesOfLiveMappings() throws {
        let dir = TempDir()
        let (path, _) = patternFile(dir, pages: 2)
        func slice(_ b: Bytes, _ r: Range<Int>) -> Bytes { Bytes(owner: b.owner, buffer: UnsafeRawBufferPointer(rebasing: b.buffer[r])) }
        do {
            let m = try MappedFile(path)
            let s = slice(m.bytes, 100..<5000)
            XCTAssertNil(MappedFile.knownChecksum(of: s))
            MappedFile.noteChecksum(0x1234_5678, of: s)
            XCTAssertEqual(MappedFile.knownChecksum(of: slice(m.bytes, 100..<5000)), 0x1234_5678)
            XCTAssertNil(MappedFile.knownChecksum(of: slice(m.bytes, 100..<4999)))
            XCTAssertNil(MappedFile.knownChecksum(of: slice(m.bytes, 101..<5000)))
            XCTAssertNil(MappedFile.knownChecksum(of: m.bytes))
        }
        // A new mapping (perhaps at the same address) starts with none.
        let again = try MappedFile(path)
        XCTAssertNil(MappedFile.knownChecksum(of: slice(again.bytes, 100..<5000)))
        // Owned memory never has one.
        let owned = sampleTensor("o", .u8, [10]).data
        MappedFile.noteChecksum(1, of: owned)
        XCTAssertNil(MappedFile.knownChecksum(of: owned))
    }

    /// The writer takes a noted CRC as is (so a wrong note shows up as a failed verify, never as silently wrong data),
    /// hashes everything else, and leaves the mapped input out of the resident set.
    func testWriterReusesNotedChecksumsAndReleasesTheInput() throws {
        let dir = TempDir()
        let mb = 1 << 20
        let (path, bytes) = patternFile(dir, pages: 16 * mb / 4096)
        let m = try MappedFile(path)
        let base = m.bytes.buffer.baseAddress!
        func tensor(_ name: String, _ r: Range<Int>) -> Tensor {
            Tensor(name: name, dtype: .u8, shape: [r.count], data: Bytes(owner: m.bytes.owner, buffer: UnsafeRawBufferPointer(rebasing: m.bytes.buffer[r])))
        }
        let ranges = [0..<(4 * mb), (4 * mb)..<(12 * mb), (12 * mb)..<bytes.count]
        let crcs = ranges.map { CRC32.of(Array(bytes[$0])) }
        let ts = zip(["a", "b", "c"], ranges).map { tensor($0, $1) }

        // Every CRC known: the data is copied file to file and no input page is ever mapped in.
        for (t, c) in zip(ts, crcs) { MappedFile.noteChecksum(c, of: t.data) }
        try GSLRWriter.write(dir.file("known.gslr"), header: GSLRHeader(kind: .tensors), tensors: ts)
        XCTAssertEqual(residentBytes(of: base), 0)
        XCTAssertEqual(try GSLRFile.open(dir.file("known.gslr")).verify(), [])

        // b unknown: it is hashed, so its pages come in, and go again. Faulting maps whole page-cache folios (up to
        // 2 MB), which may reach into a and c; those may stay, b's 8 MB may not.
        // (One byte shorter than the noted range, so no CRC is known for it.)
        let unknown = tensor("b", (4 * mb)..<(12 * mb - 1))
        try GSLRWriter.write(dir.file("good.gslr"), header: GSLRHeader(kind: .tensors), tensors: [ts[0], unknown, ts[2]])
        XCTAssertLessThanOrEqual(try XCTUnwrap(residentBytes(of: base)), 4 * mb)
        let good = try GSLRFile.open(dir.file("good.gslr"))
        XCTAssertEqual(good.verify(), [])
        XCTAssertEqual(good.tensors.map(\.crc32), [crcs[0], CRC32.of(Array(bytes[(4 * mb)..<(12 * mb - 1)])), crcs[2]])

        MappedFile.noteChecksum(0xdead_beef, of: ts[0].data)
        try GSLRWriter.write(dir.file("bad.gslr"), header: GSLRHeader(kind: .tensors), tensors: ts)
        let bad = try GSLRFile.open(dir.file("bad.gslr"))
        XCTAssertEqual(bad.tensors.map(\.crc32), [0xdead_beef, crcs[1], crcs[2]])
        XCTAssertEqual(bad.verify().map(\.name), ["a"])
    }

    /// Mapped views go file to file (large) or through the buffer (small), interleaved with buffered writes, at
    /// offsets that are not page-aligned; the output holds exactly the bytes in order.
    func testSinkWritesMappedViewsInOrder() throws {
        let dir = TempDir()
        let (path, bytes) = patternFile(dir, pages: 100)
        let m = try MappedFile(path)
        func view(_ r: Range<Int>) -> Bytes { Bytes(owner: m.bytes.owner, buffer: UnsafeRawBufferPointer(rebasing: m.bytes.buffer[r])) }
        let owned = sampleTensor("o", .u8, [100_000], seed: 9).data
        let out = dir.file("sink.bin")
        try AtomicFile.write(out) { sink in
            try sink.write([1, 2, 3])
            try sink.write(view(12_345..<300_001))
            try sink.write(view(7..<1_000))
            try sink.write(owned)
            try sink.write(view(0..<bytes.count))
            XCTAssertEqual(sink.offset, 3 + 287_656 + 993 + 100_000 + bytes.count)
        }
        let expect = [1, 2, 3] + Array(bytes[12_345..<300_001]) + Array(bytes[7..<1_000]) + Array(owned.buffer) + bytes
        XCTAssertEqual(readFile(out), expect)
    }

    /// Tensors above the 32 MB hashing piece and the 64 MB round: CRCs recombine across pieces and rounds.
    func testLargeTensorsHashAcrossPiecesAndRounds() throws {
        let dir = TempDir()
        let tensors = [
            sampleTensor("big", .u8, [40 << 20], seed: 1), sampleTensor("mid", .u8, [30 << 20], seed: 2),
            sampleTensor("small", .u8, [1000], seed: 3), sampleTensor("empty", .f32, [0])
        ]
        try GSLRWriter.write(dir.file("big.gslr"), header: GSLRHeader(kind: .tensors), tensors: tensors)
        let f = try GSLRFile.open(dir.file("big.gslr"))
        XCTAssertEqual(f.tensors.map(\.crc32), tensors.map { CRC32.of($0.data.buffer) })
        XCTAssertEqual(f.verify(), [])
    }
}
