import GSLoRAFormat
import XCTest

/// CRCs an input only claims for ranges of a mapped file: the .gslr writer stores a claimed CRC, its sink checks the
/// claim before the rename (a mismatch leaves nothing behind), and `verifyClaimedChecksums` checks the rest.
final class ClaimedChecksumTests: XCTestCase {
    /// A mapped input holding two 100 kB ranges, `a` and `b`.
    private func input(_ dir: TempDir) throws -> (MappedFile, a: Bytes, b: Bytes, bytes: [UInt8]) {
        let bytes = bytesOf(sampleTensor("in", .u8, [200_000], seed: 7))
        writeFile(dir.file("in.bin"), bytes)
        let f = try MappedFile(dir.file("in.bin"))
        let a = Bytes(owner: f.bytes.owner, buffer: UnsafeRawBufferPointer(rebasing: f.bytes.buffer[0..<100_000]))
        let b = Bytes(owner: f.bytes.owner, buffer: UnsafeRawBufferPointer(rebasing: f.bytes.buffer[100_000..<200_000]))
        return (f, a, b, bytes)
    }

    func testTrueClaimIsStoredAndBecomesKnown() throws {
        let dir = TempDir()
        let (f, a, _, bytes) = try input(dir)
        let crc = CRC32.of(Array(bytes[0..<100_000]))
        MappedFile.noteClaimedChecksum(crc, of: a, file: f.path, record: "top/data/0")
        XCTAssertEqual(MappedFile.claimedChecksum(of: a), crc)
        XCTAssertNil(MappedFile.knownChecksum(of: a))
        let out = dir.file("out.gslr")
        try GSLRWriter.write(out, header: GSLRHeader(kind: .tensors), tensors: [Tensor(name: "a", dtype: .u8, shape: [100_000], data: a)])
        XCTAssertEqual(MappedFile.knownChecksum(of: a), crc)
        XCTAssertNil(MappedFile.claimedChecksum(of: a))
        let g = try GSLRFile.open(out)
        XCTAssertEqual(g.verify(), [])
        XCTAssertEqual(g.tensors.first?.crc32, crc)
    }

    func testFalseClaimFailsTheWriteBeforeRename() throws {
        let dir = TempDir()
        let (f, a, b, bytes) = try input(dir)
        MappedFile.noteClaimedChecksum(CRC32.of(Array(bytes[0..<100_000])) ^ 1, of: a, file: f.path, record: "top/data/0")
        let tensors = [Tensor(name: "b", dtype: .u8, shape: [100_000], data: b), Tensor(name: "a", dtype: .u8, shape: [100_000], data: a)]
        XCTAssertThrowsError(try GSLRWriter.write(dir.file("out.gslr"), header: GSLRHeader(kind: .tensors), tensors: tensors)) {
            guard case let FormatError.crcMismatch(file, record, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(file, f.path)
            XCTAssertEqual(record, "top/data/0")
        }
        XCTAssertEqual(dir.contents, ["in.bin"])
    }

    func testVerifySkipsOnlyTheExceptedRanges() throws {
        let dir = TempDir()
        let (f, a, b, bytes) = try input(dir)
        MappedFile.noteClaimedChecksum(0, of: a, file: f.path, record: "a")
        MappedFile.noteClaimedChecksum(CRC32.of(Array(bytes[100_000...])), of: b, file: f.path, record: "b")
        try MappedFile.verifyClaimedChecksums(in: f.bytes, except: [a])
        XCTAssertNotNil(MappedFile.knownChecksum(of: b))
        XCTAssertNotNil(MappedFile.claimedChecksum(of: a), "an excepted claim stays open for the writer")
        XCTAssertThrowsError(try MappedFile.verifyClaimedChecksums(in: f.bytes)) {
            XCTAssertTrue("\($0)".contains("tensor 'a'") && "\($0)".contains(f.path), "\($0)")
        }
    }
}
