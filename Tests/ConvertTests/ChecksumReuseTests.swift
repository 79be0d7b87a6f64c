import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

/// The zip reader's verified record CRCs reach the .gslr writer only for tensors that are exactly a stored record,
/// and the reader's up-front verify refuses what `read` refuses.
final class ChecksumReuseTests: TempFolderCase {
    func testVerifyChecksStoredRecordsAndOffersTheirCRCs() throws {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let z = TestZip(records: [
            .init(name: "top/a", data: data), .init(name: "top/b", data: Array(data.prefix(5))),
            .init(name: "top/bad", data: [1, 2, 3], crc: 1234)
        ])
        let archive = try ZipArchive(path: try file("v.zip", z.bytes()))
        try archive.verify(["a", "b", "a", "missing"])
        let a = try archive.read("a")
        withExtendedLifetime(a) { XCTAssertEqual(Array(a.buffer), data) }
        XCTAssertEqual(MappedFile.knownChecksum(of: a), CRC32.of(data))
        let part = Bytes(owner: a.owner, buffer: UnsafeRawBufferPointer(rebasing: a.buffer[0..<100]))
        XCTAssertNil(MappedFile.knownChecksum(of: part), "a part of a record has no known CRC")
        let text = errorText("bad") { try archive.verify(["bad"]) }
        XCTAssertTrue(text.contains("record 'top/bad' fails its CRC-32 check"), text)
        XCTAssertTrue(text.contains(folder.path), text)
        XCTAssertTrue(errorText("bad read") { _ = try archive.read("bad") }.contains("CRC-32"))
    }

    /// Every fixture checkpoint converted to .gslr as is and cast to f16 (views, transposed and shared storages
    /// included): each tensor's table CRC is the CRC of its bytes.
    func testConvertedFilesVerify() throws {
        var converted = 0
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            for dtype in [DTypeCast.Target.keep, .f16] {
                let out = folder.appendingPathComponent("\(stem).\(dtype.rawValue).gslr").path
                _ = try Converter.convert(
                    input: url.path, output: out,
                    options: ConvertOptions(importing: ImportOptions(raw: true), dtype: dtype))
                let f = try GSLRFile.open(out)
                XCTAssertEqual(f.verify(), [], "\(stem) \(dtype)")
                for t in f.allTensors() {
                    XCTAssertEqual(f.tensors.first { $0.name == t.name }?.crc32, CRC32.of(t.data.buffer), "\(stem) \(dtype) \(t.name)")
                }
                converted += 1
            }
        }
        XCTAssertGreaterThan(converted, 0, "no fixture checkpoints found in \(Fixtures.searched)")
    }
}
