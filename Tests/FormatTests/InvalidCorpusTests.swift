import Foundation
import GSLoRAFormat
import TestSupport
import XCTest

/// The conformance corpus (Tests/Fixtures/gslr-invalid, written by tools/gslr_corpus.py): every file is refused by
/// the library reader and by `gslora-inspect --verify` with the error its expected.json entry names, and every valid
/// file is accepted by both. The Python reader (python/tests) runs over the same table.
final class InvalidCorpusTests: XCTestCase {
    struct Entry: Decodable {
        let file: String
        let rule: String
        let error: String?
        let contains: String
        let verify_only: Bool
    }

    struct Table: Decodable { let files: [Entry] }

    static var folder: URL {
        // This file is <root>/Tests/FormatTests/InvalidCorpusTests.swift.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/gslr-invalid", isDirectory: true)
    }

    func entries() throws -> [Entry] {
        let url = Self.folder.appendingPathComponent("expected.json")
        let table = try JSONDecoder().decode(Table.self, from: try Data(contentsOf: url))
        XCTAssertFalse(table.files.isEmpty, "\(url.path) lists no files")
        // Every .gslr in the folder is in the table, so a file added without an expectation fails.
        let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".gslr") })
        XCTAssertEqual(onDisk, Set(table.files.map(\.file)), "the folder and expected.json disagree; run tools/gslr_corpus.py")
        return table.files
    }

    /// The FormatError case name, e.g. "badHeader".
    static func caseName(_ e: FormatError) -> String {
        Mirror(reflecting: e).children.first?.label ?? "\(e)"
    }

    func testLibraryReaderRefusesEachFileWithItsError() throws {
        let all = try entries()
        var checked = 0
        for e in all {
            let path = Self.folder.appendingPathComponent(e.file).path
            var got: String?, message = "", opened = false
            do {
                let f = try GSLRFile.open(path)
                opened = true
                if let m = f.verify().first {
                    let err = FormatError.crcMismatch(file: path, tensor: m.name, expected: m.expected, actual: m.actual)
                    got = Self.caseName(err)
                    message = err.description
                }
            } catch let err as FormatError {
                got = Self.caseName(err)
                message = err.description
            }
            XCTAssertEqual(got, e.error, "\(e.file) (\(e.rule)): \(message)")
            if e.error != nil {
                XCTAssertTrue(message.contains(e.contains), "\(e.file) (\(e.rule)): message lacks \"\(e.contains)\": \(message)")
                XCTAssertEqual(opened, e.verify_only, "\(e.file): refused \(opened ? "only by verify" : "on open"), table says verify_only=\(e.verify_only)")
            }
            checked += 1
        }
        print("InvalidCorpusTests (library): checked \(checked) files in \(Self.folder.path), \(all.filter { $0.error == nil }.count) valid")
        XCTAssertGreaterThan(checked, 0)
    }

    func testInspectVerifyRefusesEachFileWithItsError() throws {
        let all = try entries()
        var checked = 0
        for e in all {
            let path = Self.folder.appendingPathComponent(e.file).path
            let r = try CommandRunner.run("gslora-inspect", ["--verify", path])
            if e.error == nil {
                XCTAssertEqual(r.code, 0, "\(e.file) (\(e.rule)) is valid but was refused: \(r.err)")
            } else {
                XCTAssertEqual(r.code, 1, "\(e.file) (\(e.rule)) was not refused: \(r.out)")
                XCTAssertTrue(r.err.contains(e.contains), "\(e.file) (\(e.rule)): stderr lacks \"\(e.contains)\": \(r.err)")
                XCTAssertTrue(r.err.contains(e.file), "\(e.file): the message does not name the file: \(r.err)")
            }
            checked += 1
        }
        print("InvalidCorpusTests (gslora-inspect --verify): checked \(checked) files")
        XCTAssertGreaterThan(checked, 0)
    }
}
