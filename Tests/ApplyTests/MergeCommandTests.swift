import Foundation
import GSLoRAFormat
import TestSupport
import XCTest

final class MergeCommandTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    func testMergeAndPruneCommands() throws {
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(path("base.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 3))
        try AdapterTestKit.writeAdapter(
            path("t1.gslr"), config: c, tensors: AdapterTestKit.adapterTensors(c, rank: 2, seed: 4),
            base: try GSLRFile.open(path("base.gslr")).fingerprint, rank: 2)
        var r = try CommandRunner.run("gslora-prune", [path("t1.gslr"), "--keep", "1", "-o", path("p.gslr"), "--json"])
        XCTAssertEqual(r.code, 0, r.err)
        let report = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        XCTAssertEqual(report?["kept"] as? Int, 1)
        r = try CommandRunner.run("gslora-prune", [path("t1.gslr"), "--threshold", "0", "-o", path("p0.gslr")])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("kept 2 of 2 groups"), r.out)
        r = try CommandRunner.run("gslora-prune", [path("t1.gslr"), "--threshold", "0", "--keep", "1", "-o", path("q.gslr")])
        XCTAssertEqual(r.code, 2)

        r = try CommandRunner.run("gslora-merge", [path("base.gslr"), path("p.gslr"), "-o", path("m.gslr")])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("base fingerprint ok") && r.out.contains("2 pruned"), r.out)
        r = try CommandRunner.run("gslora-merge", [path("m.gslr"), path("t1.gslr"), "-o", path("mm.gslr")])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("already merged") || r.err.contains("fingerprint"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("mm.gslr")))
        r = try CommandRunner.run("gslora-merge", [path("m.gslr"), path("t1.gslr"), "-o", path("mm.gslr"), "--force"])
        XCTAssertEqual(r.code, 1, "--force replaces outputs; it does not let a mismatch through: \(r.err)")
        XCTAssertTrue(r.err.contains("--allow-base-mismatch"), r.err)
        r = try CommandRunner.run("gslora-merge", [path("m.gslr"), path("t1.gslr"), "-o", path("mm.gslr"), "--allow-base-mismatch"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.hasPrefix("warning:"), r.err)
        r = try CommandRunner.run("gslora-merge", [path("base.gslr"), path("t1.gslr"), "-o", path("t1.gslr")])
        XCTAssertEqual(r.code, 2, "never overwrite an input")
        r = try CommandRunner.run("gslora-merge", [path("base.gslr"), path("t1.gslr"), "--scale", "1", "--scale", "2", "-o", path("z.gslr")])
        XCTAssertEqual(r.code, 2)
        r = try CommandRunner.run("gslora-merge", [path("missing.gslr"), path("t1.gslr"), "-o", path("z.gslr")])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains(path("missing.gslr")), r.err)
    }

    /// gslora-merge and gslora-prune: a named default output beside the input, no overwriting without --force, never
    /// an input (not even with --force), unknown options reported as unknown.
    func testOutputPolicyAndDefaults() throws {
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(path("base.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 3))
        try AdapterTestKit.writeAdapter(
            path("t1.gslr"), config: c, tensors: AdapterTestKit.adapterTensors(c, rank: 2, seed: 4),
            base: try GSLRFile.open(path("base.gslr")).fingerprint, rank: 2)
        func bytes(_ n: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path(n))) }

        // The design card's form: no -o.
        var r = try CommandRunner.run("gslora-merge", [path("base.gslr"), path("t1.gslr")])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains(path("base.merged.gslr")), r.out)
        let merged = try bytes("base.merged.gslr")
        r = try CommandRunner.run("gslora-merge", [path("base.gslr"), path("t1.gslr"), "--scale", "0.5"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("exists") && r.err.contains("--force"), r.err)
        XCTAssertEqual(try bytes("base.merged.gslr"), merged, "untouched without --force")
        r = try CommandRunner.run("gslora-merge", [path("base.gslr"), path("t1.gslr"), "--scale", "0.5", "--force"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertNotEqual(try bytes("base.merged.gslr"), merged)
        let base = try bytes("base.gslr")
        r = try CommandRunner.run("gslora-merge", [path("base.gslr"), path("t1.gslr"), "-o", path("base.gslr"), "--force"])
        XCTAssertEqual(r.code, 2, "never an input, even with --force: \(r.err)")
        XCTAssertEqual(try bytes("base.gslr"), base)

        r = try CommandRunner.run("gslora-prune", [path("t1.gslr"), "--keep", "1"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains(path("t1.pruned.gslr")), r.out)
        let pruned = try bytes("t1.pruned.gslr")
        r = try CommandRunner.run("gslora-prune", [path("t1.gslr"), "--keep", "2"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("exists") && r.err.contains("--force"), r.err)
        XCTAssertEqual(try bytes("t1.pruned.gslr"), pruned)
        r = try CommandRunner.run("gslora-prune", [path("t1.gslr"), "--keep", "2", "--force"])
        XCTAssertEqual(r.code, 0, r.err)
        r = try CommandRunner.run("gslora-prune", [path("t1.gslr"), "--keep", "2", "-o", path("t1.gslr"), "--force"])
        XCTAssertEqual(r.code, 2, r.err)

        for (cmd, args) in [
            ("gslora-merge", [path("base.gslr"), path("t1.gslr"), "--frobnicate"]), ("gslora-merge", ["--frobnicate"]),
            ("gslora-prune", [path("t1.gslr"), "--frobnicate"]), ("gslora-prune", ["--frobnicate", "--keep", "1"])
        ] {
            r = try CommandRunner.run(cmd, args)
            XCTAssertEqual(r.code, 2, "\(cmd) \(args): \(r.err)")
            XCTAssertTrue(r.err.lowercased().contains("unknown option '--frobnicate'"), "\(cmd) \(args): \(r.err)")
        }
    }
}
