import Foundation
import GSLoRAConvert
import GSLoRAFormat
import XCTest

/// Builds small zip files byte by byte, so tests can make both valid and hostile archives.
struct TestZip {
    struct Record {
        var name: String
        var data: [UInt8]
        var method: UInt16 = 0
        /// What the central directory declares; defaults to `data.count` (stored) or must be given (deflated).
        var declaredSize: Int? = nil
        var crc: UInt32? = nil
    }

    var records: [Record] = []
    /// Write sizes and offsets only in ZIP64 fields (and a ZIP64 end record), as huge archives do.
    var zip64 = false

    static func le<T: FixedWidthInteger>(_ v: T, _ b: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }

    func bytes() -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for r in records {
            let offset = out.count
            let name = Array(r.name.utf8)
            let crc = r.crc ?? CRC32.of(r.method == 0 ? r.data : [])
            let usize = r.declaredSize ?? r.data.count
            // Local header with zero sizes, like torch's streaming writer.
            Self.le(UInt32(0x0403_4b50), &out)
            for v: UInt16 in [20, 0, r.method, 0, 0] { Self.le(v, &out) }
            Self.le(UInt32(0), &out); Self.le(UInt32(0), &out); Self.le(UInt32(0), &out)
            Self.le(UInt16(name.count), &out); Self.le(UInt16(0), &out)
            out += name
            out += r.data
            Self.le(UInt32(0x0201_4b50), &central)
            for v: UInt16 in [20, 20, 0, r.method, 0, 0] { Self.le(v, &central) }
            Self.le(crc, &central)
            var extra: [UInt8] = []
            if zip64 {
                Self.le(UInt32.max, &central); Self.le(UInt32.max, &central)
                Self.le(UInt16(1), &extra); Self.le(UInt16(24), &extra)
                Self.le(UInt64(usize), &extra); Self.le(UInt64(r.data.count), &extra); Self.le(UInt64(offset), &extra)
            } else {
                Self.le(UInt32(r.data.count), &central); Self.le(UInt32(usize), &central)
            }
            Self.le(UInt16(name.count), &central); Self.le(UInt16(extra.count), &central)
            for v: UInt16 in [0, 0, 0] { Self.le(v, &central) }
            Self.le(UInt32(0), &central)
            Self.le(zip64 ? UInt32.max : UInt32(offset), &central)
            central += name + extra
        }
        let cdOffset = out.count
        out += central
        if zip64 {
            let rec = out.count
            Self.le(UInt32(0x0606_4b50), &out); Self.le(UInt64(44), &out)
            Self.le(UInt16(45), &out); Self.le(UInt16(45), &out); Self.le(UInt32(0), &out); Self.le(UInt32(0), &out)
            Self.le(UInt64(records.count), &out); Self.le(UInt64(records.count), &out)
            Self.le(UInt64(central.count), &out); Self.le(UInt64(cdOffset), &out)
            Self.le(UInt32(0x0706_4b50), &out); Self.le(UInt32(0), &out); Self.le(UInt64(rec), &out); Self.le(UInt32(1), &out)
        }
        Self.le(UInt32(0x0605_4b50), &out)
        Self.le(UInt16(0), &out); Self.le(UInt16(0), &out)
        Self.le(zip64 ? UInt16.max : UInt16(records.count), &out); Self.le(zip64 ? UInt16.max : UInt16(records.count), &out)
        Self.le(zip64 ? UInt32.max : UInt32(central.count), &out)
        Self.le(zip64 ? UInt32.max : UInt32(cdOffset), &out)
        Self.le(UInt16(0), &out)
        return out
    }
}

/// A fresh folder per test case for files the tests write.
class TempFolderCase: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("gslora-convert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    /// The error `body` throws, as text; fails the test when it does not throw.
    func errorText(_ what: String, _ body: () throws -> Void) -> String {
        do {
            try body()
            XCTFail("\(what): expected an error, got none")
            return ""
        } catch {
            return "\(error)"
        }
    }
}

/// Raw deflate of 100 000 zero bytes (114 bytes, made with zlib level 9, wbits -15).
let deflatedZeros: [UInt8] =
    [237, 193, 49, 1, 0, 0, 0, 194, 160, 245, 79, 109, 13, 15, 160]
    + [UInt8](repeating: 0, count: 96) + [128, 87, 3]
/// Raw deflate of "hello hello hello hello, deflated world".
let deflatedHello: [UInt8] = [
    203, 72, 205, 201, 201, 87, 200, 64, 39, 117, 20, 82, 82, 211, 114, 18, 75, 82, 83, 20, 202, 243,
    139, 114, 82, 0
]

final class ZipTests: TempFolderCase {
    func testStoredAndDeflatedRecordsReadBack() throws {
        let hello = Array("hello hello hello hello, deflated world".utf8)
        for zip64 in [false, true] {
            var z = TestZip(zip64: zip64)
            z.records = [
                .init(name: "top/a.txt", data: Array("stored".utf8)),
                .init(name: "top/sub/b.bin", data: deflatedHello, method: 8, declaredSize: hello.count, crc: CRC32.of(hello)),
                .init(name: "top/empty", data: [])
            ]
            let path = try file("z\(zip64).zip", z.bytes())
            let archive = try ZipArchive(path: path)
            XCTAssertEqual(archive.prefix, "top")
            XCTAssertEqual(archive.records.map(\.name), ["top/a.txt", "top/sub/b.bin", "top/empty"])
            let stored = try archive.read("a.txt")
            let inflated = try archive.read("sub/b.bin")
            withExtendedLifetime((stored, inflated)) {
                XCTAssertEqual(Array(stored.buffer), Array("stored".utf8))
                XCTAssertEqual(Array(inflated.buffer), hello)
            }
            XCTAssertEqual(try archive.read("empty").count, 0)
            XCTAssertTrue(archive.contains("sub/b.bin"))
            XCTAssertFalse(archive.contains("missing"))
            XCTAssertTrue(errorText("missing record") { _ = try archive.read("missing") }.contains("missing"))
        }
    }

    func testFolderEntriesAreAllowed() throws {
        let z = TestZip(records: [.init(name: "top/", data: []), .init(name: "top/data/", data: []), .init(name: "top/data/0", data: [7])])
        let archive = try ZipArchive(path: try file("folders.zip", z.bytes()))
        XCTAssertEqual(archive.prefix, "top")
        XCTAssertEqual(try archive.read("data/0").count, 1)
        let bare = TestZip(records: [.init(name: "top/a", data: []), .init(name: "top", data: [])])
        let path = try file("bare.zip", bare.bytes())
        XCTAssertTrue(errorText("bare") { _ = try ZipArchive(path: path) }.contains("outside the archive's top folder"))
        let empty = TestZip(records: [.init(name: "top/a//b", data: [])])
        let emptyPath = try file("empty-part.zip", empty.bytes())
        XCTAssertTrue(errorText("empty part") { _ = try ZipArchive(path: emptyPath) }.contains("empty path component"))
    }

    func testDeflatedZerosWithinBudget() throws {
        var z = TestZip()
        z.records = [.init(name: "t/zeros", data: deflatedZeros, method: 8, declaredSize: 100_000, crc: CRC32.of([UInt8](repeating: 0, count: 100_000)))]
        let archive = try ZipArchive(path: try file("zeros.zip", z.bytes()))
        let b = try archive.read("zeros")
        XCTAssertEqual(b.count, 100_000)
        withExtendedLifetime(b) { XCTAssertTrue(b.buffer.allSatisfy { $0 == 0 }) }
    }

    /// Each hostile archive is refused with an error that names the file and the problem.
    func testHostileArchivesAreRefused() throws {
        let zeroCRC = CRC32.of([UInt8](repeating: 0, count: 100_000))
        func zip(_ records: [TestZip.Record]) -> [UInt8] { TestZip(records: records).bytes() }
        let good = zip([.init(name: "top/a", data: Array("0123456789".utf8))])
        var cases: [(String, [UInt8], String, Bool)] = [] // name, bytes, expected text, fails at open (else at read)
        cases.append(("truncated", Array(good.prefix(good.count - 10)), "end-of-central-directory", true))
        cases.append(("tiny", [0x50, 0x4b, 0x05], "too short", true))
        var outside = good
        outside.replaceSubrange((outside.count - 6)..<(outside.count - 2), with: [0xff, 0xff, 0xff, 0x7f])
        cases.append(("eocd-outside", outside, "outside", true))
        var bigCD = good
        bigCD.replaceSubrange((bigCD.count - 10)..<(bigCD.count - 6), with: [0, 0, 0, 0x10])
        cases.append(("cd-too-big", bigCD, "outside", true))
        var badLocal = good
        let cdAt = good.count - 22 - (46 + 5)
        badLocal.replaceSubrange((cdAt + 42)..<(cdAt + 46), with: [0, 0, 0, 0x40])
        cases.append(("local-outside", badLocal, "local header", true))
        var sizeTooBig = good
        sizeTooBig.replaceSubrange((cdAt + 20)..<(cdAt + 28), with: [0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0])
        cases.append(("size-past-end", sizeTooBig, "runs past the end", true))
        cases.append(("dotdot", zip([.init(name: "top/a", data: []), .init(name: "top/../evil", data: [])]), "'..'", true))
        cases.append(("leading-dotdot", zip([.init(name: "../evil", data: [])]), "'..'", true))
        cases.append(("absolute", zip([.init(name: "/etc/passwd", data: [])]), "absolute", true))
        cases.append(("other-folder", zip([.init(name: "top/a", data: []), .init(name: "other/b", data: [])]), "outside the archive's top folder", true))
        cases.append(("no-folder", zip([.init(name: "flat", data: [])]), "top folder", true))
        cases.append(("duplicate", zip([.init(name: "top/a", data: []), .init(name: "top/a", data: [])]), "appears twice", true))
        cases.append(("bad-crc", zip([.init(name: "top/a", data: [1, 2, 3], crc: 1234)]), "CRC-32", false))
        let bomb = TestZip(records: [.init(name: "top/a", data: deflatedZeros, method: 8, declaredSize: 1 << 40, crc: zeroCRC)], zip64: true)
        cases.append(("bomb-huge", bomb.bytes(), "over the", false))
        cases.append(("bomb-1000x", zip([.init(name: "top/a", data: deflatedZeros, method: 8, declaredSize: 200_000, crc: zeroCRC)]), "more than 1000x", false))
        cases.append(
            ("lies-small", zip([.init(name: "top/a", data: deflatedZeros, method: 8, declaredSize: 1000, crc: zeroCRC)]), "more than its declared", false))
        cases.append(
            ("deflate-garbage", zip([.init(name: "top/a", data: [0xff, 0xff, 0xff, 0xff], method: 8, declaredSize: 10, crc: 0)]), "does not inflate", false))
        cases.append(("method-12", zip([.init(name: "top/a", data: [1], method: 12, declaredSize: 1)]), "compression method 12", false))
        for (name, bytes, expected, atOpen) in cases {
            let path = try file(name + ".zip", bytes)
            let text = errorText(name) {
                let archive = try ZipArchive(path: path)
                XCTAssertFalse(atOpen, "\(name): opened, expected a refusal at open")
                _ = try archive.read("a")
            }
            XCTAssertTrue(text.contains(path), "\(name): error does not name the file: \(text)")
            XCTAssertTrue(text.contains(expected), "\(name): expected '\(expected)' in: \(text)")
        }
    }

    func testInflateLimitFromOptions() throws {
        var z = TestZip()
        z.records = [.init(name: "t/zeros", data: deflatedZeros, method: 8, declaredSize: 100_000, crc: CRC32.of([UInt8](repeating: 0, count: 100_000)))]
        let path = try file("limit.zip", z.bytes())
        let text = errorText("limit") { _ = try ZipArchive(path: path, maxInflatedBytes: 50_000).read("zeros") }
        XCTAssertTrue(text.contains("50000-byte limit"), text)
    }
}
