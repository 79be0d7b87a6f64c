import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

/// The converter reads a .pth's stored records with their CRCs only claimed and checks each as a writer copies it:
/// a damaged data byte in any record must still refuse every output format, name the file and the record, and leave
/// nothing behind; readers other than the converter keep checking up front.
final class ClaimedCRCTests: TempFolderCase {
    /// The stored storage records of a torch zip, from its central directory (none for other layouts).
    private func dataRecords(_ path: String) throws -> [ZipRecord] {
        guard try detectFormat(path: path) == .torchZip else { return [] }
        return try ZipArchive(path: path).records.filter { $0.method == 0 && $0.compressedSize > 0 && $0.name.contains("/data/") }
    }

    /// A copy of `source` with one byte in the middle of `record`'s data flipped.
    private func damaged(_ source: URL, _ record: ZipRecord, as name: String) throws -> String {
        let path = try file(name, [UInt8](try Data(contentsOf: source)))
        try flip(path, record)
        return path
    }

    /// Flips one byte in the middle of `record`'s data in place (flipping twice restores the file).
    private func flip(_ path: String, _ record: ZipRecord) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? h.close() }
        let at = UInt64(record.dataOffset + record.compressedSize / 2)
        try h.seek(toOffset: at)
        let b = try h.read(upToCount: 1) ?? Data()
        try h.seek(toOffset: at)
        try h.write(contentsOf: Data([b[b.startIndex] ^ 0x5a]))
    }

    private func refuses(_ input: String, _ record: ZipRecord, to format: String, _ what: String) {
        let out = folder.appendingPathComponent("out.\(format)").path
        let text = errorText(what) {
            _ = try Converter.convert(input: input, output: out, options: ConvertOptions(importing: ImportOptions(raw: true)))
        }
        XCTAssertTrue(text.contains("fails its CRC-32 check"), "\(what): \(text)")
        XCTAssertTrue(text.contains(input), "\(what): the error names the input file: \(text)")
        XCTAssertTrue(text.contains(record.name), "\(what): the error names the record: \(text)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        XCTAssertEqual(left, [(input as NSString).lastPathComponent], "\(what): nothing but the input is left")
    }

    /// Every stored data record of every fixture checkpoint, damaged in turn: the largest (a whole tensor, checked by
    /// the writer as it copies) into all three formats, the others (views, shared and transposed storages included)
    /// into one format each, in rotation.
    func testDamagedRecordIsRefusedByEveryWriter() throws {
        var checked = 0
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            let records = try dataRecords(url.path)
            guard let largest = records.max(by: { $0.compressedSize < $1.compressedSize }) else { continue }
            let input = try file("\(stem).pth", [UInt8](try Data(contentsOf: url)))
            for (k, r) in records.enumerated() {
                let formats = r.name == largest.name ? ["gslr", "safetensors", "pth"] : [["gslr", "safetensors", "pth"][k % 3]]
                try flip(input, r)
                for f in formats {
                    refuses(input, r, to: f, "\(stem) \(r.name) → .\(f)")
                    checked += 1
                }
                try flip(input, r)
            }
            try FileManager.default.removeItem(atPath: input)
        }
        XCTAssertGreaterThan(checked, 0, "no fixture checkpoints with stored records in \(Fixtures.searched)")
    }

    /// Loading for anything but conversion still checks every record up front.
    func testReadersStillCheckUpFront() throws {
        var checked = 0
        for url in ModelFixtures.checkpoints() {
            guard let r = try dataRecords(url.path).max(by: { $0.compressedSize < $1.compressedSize }) else { continue }
            let input = try damaged(url, r, as: "read.pth")
            for (what, load) in [
                ("TorchCheckpoint.load", { _ = try TorchCheckpoint.load(input) }),
                ("ModelImport.load", { _ = try ModelImport.load(input, options: ImportOptions(raw: true)) })
            ] as [(String, () throws -> Void)] {
                let text = errorText(what, load)
                XCTAssertTrue(text.contains("fails its CRC-32 check") && text.contains(r.name), "\(what): \(text)")
                checked += 1
            }
            try FileManager.default.removeItem(atPath: input)
        }
        XCTAssertGreaterThan(checked, 0)
    }

    /// The claim itself: `read` returns a claimed record unchecked, its view carries the stated CRC, a sink that
    /// copies it refuses to keep its file on a mismatch, and `verify` settles a claim into a known CRC.
    func testClaimIsCheckedByTheSinkBeforeRename() throws {
        let data = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let z = TestZip(records: [.init(name: "top/good", data: data), .init(name: "top/bad", data: data, crc: 1234)])
        let path = try file("c.zip", z.bytes())
        let archive = try ZipArchive(path: path)
        try archive.claim(["good", "bad"])
        let good = try archive.read("good"), bad = try archive.read("bad")
        XCTAssertEqual(MappedFile.claimedChecksum(of: bad), 1234)
        XCTAssertNil(MappedFile.knownChecksum(of: bad), "a claim is not a verified CRC")

        let out = folder.appendingPathComponent("out.bin").path
        let text = errorText("sink") {
            try AtomicFile.write(out) {
                try $0.write(good); try $0.write(bad)
            }
        }
        XCTAssertTrue(text.contains(path) && text.contains("top/bad"), text)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["c.zip"])

        try AtomicFile.write(out) { try $0.write(good) }
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), data)
        XCTAssertEqual(MappedFile.knownChecksum(of: good), CRC32.of(data), "a claim that held becomes a known CRC")
        XCTAssertNil(MappedFile.claimedChecksum(of: good))

        XCTAssertTrue(errorText("verify") { try archive.verify(["bad"]) }.contains("fails its CRC-32 check"))
        XCTAssertTrue(errorText("settle") { try MappedFile.verifyClaimedChecksums(in: bad) }.contains("top/bad"))
    }
}
