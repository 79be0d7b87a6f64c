import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

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
            XCTAssertEqual(lines.count, 1, "one result line on stdout: \(r.out)")
            XCTAssertTrue(r.out.hasPrefix(want?.family.rawValue ?? "tensors"), r.out)
            XCTAssertTrue(r.out.contains("tensors") && r.out.contains("params") && r.out.contains("bytes"), r.out)
            XCTAssertTrue(r.err.split(separator: "\n").allSatisfy { $0.hasPrefix("note: ") }, "only notes on stderr: \(r.err)")
        }
    }

    /// Notices reach stderr whatever it is: here a file, as under nohup (they were printed only on a terminal).
    func testNoticesReachStderrInAFile() throws {
        guard let url = ModelFixtures.checkpoints().first(where: { (try? ModelFixtures.expectedConfig($0)) != nil }),
            let want = try ModelFixtures.expectedConfig(url)
        else { return XCTFail("no model fixture") }
        print("checked \(url.lastPathComponent)")
        let r = try CommandRunner.runWithStderrInFile("gslora-convert", [url.path, "-o", path("n.gslr"), "--heads", String(want.heads), "--dtype", "f16"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("note: float tensors cast to f16"), "stderr file: \(r.err)")
        XCTAssertEqual(r.out.split(separator: "\n").count, 1, r.out)
    }

    /// `gslora-convert model.pth` writes model.gslr beside it; a second run needs --force; a .gslr input needs -o.
    func testDefaultOutputAndOverwritePolicy() throws {
        guard let url = ModelFixtures.checkpoints().first(where: { (try? ModelFixtures.expectedConfig($0)) != nil }),
            let want = try ModelFixtures.expectedConfig(url)
        else { return XCTFail("no model fixture") }
        let copy = path("model.pth"), heads = ["--heads", String(want.heads)]
        try FileManager.default.copyItem(atPath: url.path, toPath: copy)
        var r = try run([copy] + heads)
        XCTAssertEqual(r.code, 0, r.err)
        let first = try Data(contentsOf: URL(fileURLWithPath: path("model.gslr")))
        XCTAssertEqual(try GSLRFile.open(path("model.gslr")).header.model, want)

        r = try run([copy] + heads + ["--dtype", "f16"])
        XCTAssertEqual(r.code, 2, "an existing output without --force: \(r.err)")
        XCTAssertTrue(r.err.contains(path("model.gslr")) && r.err.contains("--force"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("model.gslr"))), first, "the existing output is untouched")
        r = try run([copy] + heads + ["--dtype", "f16", "--force"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: path("model.gslr"))), first)

        // The input is never replaced, with --force or not, under its own name or another (a hard link).
        try FileManager.default.linkItem(atPath: copy, toPath: path("link.gslr"))
        r = try run([copy, "-o", path("link.gslr"), "--force"] + heads)
        XCTAssertEqual(r.code, 2, r.err)
        r = try run([path("model.gslr")])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("-o"), r.err)
        // A folder that is not there: refused before any work, exit 1.
        r = try run([copy, "-o", path("no-such-folder/x.gslr")] + heads)
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains("does not exist"), r.err)
    }

    func testJSONReport() throws {
        guard let url = ModelFixtures.checkpoints().first(where: { (try? ModelFixtures.expectedConfig($0)) != nil }),
            let want = try ModelFixtures.expectedConfig(url)
        else { return XCTFail("no model fixture") }
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
            ("no input", [], 2, "Usage:"),
            ("unknown option", [copy, "--frobnicate"], 2, "unknown option '--frobnicate'"),
            ("unknown option, no input", ["--frobnicate"], 2, "unknown option '--frobnicate'"),
            ("adapter-out with a .pth output", [copy, "-o", path("o.pth"), "--adapter-out", path("a.gslr"), "--raw"], 1, "--adapter-out")
        ]
        for (what, args, code, mention) in cases {
            let r = try run(args)
            XCTAssertEqual(r.code, code, "\(what): \(r.err)")
            XCTAssertTrue(r.err.lowercased().contains(mention.lowercased()), "\(what): stderr should mention '\(mention)': \(r.err)")
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
