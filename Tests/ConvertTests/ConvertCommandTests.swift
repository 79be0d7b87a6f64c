import Foundation
import XCTest
import Convert
import Format
import TestSupport

/// Runs the built gslora-convert binary (it sits beside the test bundle; `swift test` builds it).
final class ConvertCommandTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try ModelFixtures.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func run(_ args: [String]) throws -> (code: Int32, out: String, err: String) { try CommandRunner.run("gslora-convert", args) }

    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    func testConvertsAndPrintsOneLine() throws {
        for url in ModelFixtures.checkpoints() {
            let want = try ModelFixtures.expectedConfig(url)
            var args = [url.path, "-o", path(ModelFixtures.stem(url) + ".gslr")]
            if let h = want?.heads { args += ["--heads", String(h)] }
            let r = try run(args)
            XCTAssertEqual(r.code, 0, "\(url.lastPathComponent): \(r.err)")
            let lines = r.out.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "one result line when stdout is not a terminal: \(r.out)")
            XCTAssertTrue(r.out.hasPrefix(want?.family.rawValue ?? "tensors"), r.out)
            XCTAssertTrue(r.out.contains("tensors") && r.out.contains("params") && r.out.contains("bytes"), r.out)
            XCTAssertEqual(r.err, "", "quiet when stdout is not a terminal")
        }
    }

    func testJSONReport() throws {
        guard let url = ModelFixtures.checkpoints().first(where: { (try? ModelFixtures.expectedConfig($0)) != nil }),
              let want = try ModelFixtures.expectedConfig(url) else { return XCTFail("no model fixture") }
        let r = try run([url.path, "-o", path("j.safetensors"), "--json", "--heads", String(want.heads), "--dtype", "f16"])
        XCTAssertEqual(r.code, 0, r.err)
        let report = try JSONDecoder().decode(ConvertReport.self, from: Data(r.out.utf8))
        XCTAssertEqual(report.config, want)
        XCTAssertEqual(report.outputs.first?.kind, "safetensors")
        XCTAssertTrue(report.notices.contains { $0.contains("f16") })
    }

    func testRefusals() throws {
        guard let url = ModelFixtures.checkpoints().first else { return XCTFail("no fixtures") }
        let copy = path("in.pth")
        try FileManager.default.copyItem(atPath: url.path, toPath: copy)
        let cases: [(String, [String], Int32, String)] = [
            ("missing input", [path("nope.pth"), "-o", path("o.gslr")], 1, "nope.pth"),
            ("unknown output extension", [copy, "-o", path("o.onnx")], 2, "unknown output extension"),
            ("output is the input", [copy, "-o", copy], 2, "the output is the input"),
            ("bad --dtype", [copy, "-o", path("o.gslr"), "--dtype", "f8"], 2, "--dtype"),
            ("bad --names", [copy, "-o", path("o.gslr"), "--names", "x"], 2, "--names"),
            ("no output", [copy], 2, "output"),
            ("adapter-out with a .pth output", [copy, "-o", path("o.pth"), "--adapter-out", path("a.gslr"), "--raw"], 1, "--adapter-out"),
        ]
        for (what, args, code, mention) in cases {
            let r = try run(args)
            XCTAssertEqual(r.code, code, "\(what): \(r.err)")
            XCTAssertTrue(r.err.contains(mention), "\(what): stderr should mention '\(mention)': \(r.err)")
        }
        // A file that is not a checkpoint: exit 1, named in the error, nothing written.
        try Data("hello".utf8).write(to: URL(fileURLWithPath: path("junk.pth")))
        let r = try run([path("junk.pth"), "-o", path("junk.gslr")])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("junk.pth"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("junk.gslr")))
    }

    func testHelp() throws {
        let r = try run(["--help"])
        XCTAssertEqual(r.code, 0)
        XCTAssertTrue(r.out.contains("Examples:") && r.out.contains("--raw") && r.out.contains("--base"), r.out)
    }
}
