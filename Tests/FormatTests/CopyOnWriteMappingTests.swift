import Foundation
import GSLoRAFormat
import XCTest

/// `ByteOwner.makeWritable`: which memory may be written, and a mapped file made copy-on-write keeps writes in this
/// process (the file is unchanged, and releasing pages never drops them).
final class CopyOnWriteMappingTests: XCTestCase {
    func testAMappingBecomesCopyOnWriteAndTheFileStaysUnchanged() throws {
        let dir = TempDir()
        let bytes = bytesOf(sampleTensor("p", .u8, [8 * 4096 + 100], seed: 9))
        let path = dir.file("cow.bin")
        writeFile(path, bytes)
        let m = try MappedFile(path)
        let owner = m.bytes.owner
        XCTAssertFalse(owner.isWritable, "a mapping starts read-only")
        XCTAssertTrue(owner.makeWritable())
        XCTAssertTrue(owner.isWritable)
        XCTAssertTrue(owner.makeWritable(), "asking again is harmless")

        let p = UnsafeMutableRawPointer(mutating: m.bytes.buffer.baseAddress!)
        for i in stride(from: 0, to: bytes.count, by: 1000) { p.storeBytes(of: ~bytes[i], toByteOffset: i, as: UInt8.self) }
        var expected = bytes
        for i in stride(from: 0, to: bytes.count, by: 1000) { expected[i] = ~bytes[i] }
        XCTAssertTrue(Array(m.bytes.buffer) == expected, "the writes are not in the mapping")
        // Dropping the pages of a copy-on-write mapping would lose the writes, so releasing does nothing.
        MappedFile.releasePages(of: m.bytes)
        XCTAssertTrue(Array(m.bytes.buffer) == expected, "released pages lost the writes")
        XCTAssertTrue([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == bytes, "a write reached the file")
        let again = try MappedFile(path)
        withExtendedLifetime(again) { XCTAssertTrue(Array(again.bytes.buffer) == bytes, "another mapping of the file sees the writes") }
        withExtendedLifetime(m) {}
    }

    func testAllocationsAreWritableAndHandedInMemoryIsNot() {
        XCTAssertTrue(ByteOwner.allocate(16).isWritable)
        XCTAssertTrue(Bytes(floats: [1, 2]).owner.isWritable)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
        let handed = ByteOwner(base: UnsafeRawBufferPointer(start: raw, count: 16)) { raw.deallocate() }
        XCTAssertFalse(handed.isWritable)
        XCTAssertFalse(handed.makeWritable())
        XCTAssertFalse(handed.isWritable)
    }
}
