import Foundation
import GSLoRAAdapters
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel
import TestSupport
import XCTest

final class InferCommandTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    func makeFiles() throws -> (ModelConfig, [Float]) {
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(path("base.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 3), classes: ["cat", "dog", "owl", "yak"])
        try AdapterTestKit.writeAdapter(
            path("t1.gslr"), config: c, tensors: AdapterTestKit.adapterTensors(c, rank: 2, seed: 4),
            base: try GSLRFile.open(path("base.gslr")).fingerprint, rank: 2)
        let images = (0..<(5 * 3 * 8 * 8)).map { Float(cos(Double($0) * 0.41)) }
        try images.withUnsafeBufferPointer { try NPY.write($0, shape: [5, 3, 8, 8], to: path("x.npy")) }
        return (c, images)
    }

    func testLogitsMatchTheLibraryLiveAndMerged() throws {
        let (c, images) = try makeFiles()
        let file = try GSLRFile.open(path("base.gslr"))
        let model = try ViT(config: c, weights: file.allTensors(), adapters: [AdapterFile.open(path("t1.gslr")).liveAdapter(config: c)])
        let want = try model.forward(images: images, batch: 5)
        for extra in [[], ["--merged"]] {
            let r = try CommandRunner.run(
                "gslora-infer", [path("base.gslr"), "--adapter", path("t1.gslr"), path("x.npy"), "-o", path("l.npy"), "--top", "2", "--force"] + extra)
            XCTAssertEqual(r.code, 0, r.err)
            let got = try NPY.read(path: path("l.npy"))
            XCTAssertEqual(got.shape, [5, 4])
            for (a, b) in zip(try got.floats(), want.logits) { XCTAssertEqual(a, b, accuracy: 1e-3, "\(extra)") }
            let lines = r.out.split(separator: "\n")
            XCTAssertEqual(lines.count, 5)
            XCTAssertTrue(lines[0].hasPrefix(path("x.npy") + "[0]: "), String(lines[0]))
            let best = BatchedForward.argmax(want.logits, row: 0, width: 4)
            XCTAssertTrue(lines[0].contains(["cat", "dog", "owl", "yak"][best]), String(lines[0]))
        }
        let e = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("x.npy"), "-o", path("e.npy"), "--embeddings", "--json", "--top", "1"])
        XCTAssertEqual(e.code, 0, e.err)
        XCTAssertEqual(try NPY.read(path: path("e.npy")).shape, [5, c.width])
        let json = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as? [[String: Any]]
        XCTAssertEqual(json?.count, 5)
        XCTAssertEqual((json?[0]["top"] as? [Any])?.count, 1)
    }

    func testNonFiniteInputIsRefusedNotPrintedAsProbabilities() throws {
        _ = try makeFiles()
        for bad in [Float.nan, .infinity, -.infinity] {
            var images = (0..<(2 * 3 * 8 * 8)).map { Float(sin(Double($0))) }
            images[3 * 8 * 8 + 5] = bad // image 1
            try images.withUnsafeBufferPointer { try NPY.write($0, shape: [2, 3, 8, 8], to: path("bad.npy")) }
            let r = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("bad.npy"), "-o", path("bad-out.npy")])
            XCTAssertEqual(r.code, 1, "\(bad): \(r.out)")
            XCTAssertTrue(r.err.contains("bad.npy") && r.err.contains("image 1") && r.err.contains("NaN or infinite"), r.err)
            XCTAssertFalse(r.out.lowercased().contains("nan"), r.out)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad-out.npy")))
        }
    }

    func testErrorsAndExitCodes() throws {
        _ = try makeFiles()
        try [Float](repeating: 0, count: 2 * 8 * 8 * 3).withUnsafeBufferPointer { try NPY.write($0, shape: [2, 8, 8, 3], to: path("hwc.npy")) }
        var r = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("hwc.npy")])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains(path("hwc.npy")) && r.err.contains("(N, 3, 8, 8)"), r.err)
        try Data([0x93, 0x4E, 0x55]).write(to: dir.appendingPathComponent("bad.npy"))
        r = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("bad.npy")])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains(path("bad.npy")), r.err)
        r = try CommandRunner.run("gslora-infer", [path("t1.gslr"), path("x.npy")])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("adapter, not a backbone"), r.err)
        r = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("x.npy"), "-o", path("x.npy")])
        XCTAssertEqual(r.code, 2, "output is an input: usage error")
        r = try CommandRunner.run("gslora-infer", [path("base.gslr")])
        XCTAssertEqual(r.code, 2)
        r = try CommandRunner.run("gslora-infer", ["--help"])
        XCTAssertEqual(r.code, 0)
        XCTAssertTrue(r.out.contains("Examples:"), r.out)
        // An adapter trained on other weights.
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(path("other.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 8))
        r = try CommandRunner.run("gslora-infer", [path("other.gslr"), "--adapter", path("t1.gslr"), path("x.npy")])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("fingerprint"), r.err)
        r = try CommandRunner.run("gslora-infer", [path("other.gslr"), "--adapter", path("t1.gslr"), path("x.npy"), "--force"])
        XCTAssertEqual(r.code, 1, "--force replaces outputs; it does not let a mismatch through: \(r.err)")
        r = try CommandRunner.run("gslora-infer", [path("other.gslr"), "--adapter", path("t1.gslr"), path("x.npy"), "--allow-base-mismatch"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("warning") && r.err.contains("--allow-base-mismatch"), r.err)
        // An existing -o file is replaced only with --force.
        r = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("x.npy"), "-o", path("l.npy")])
        XCTAssertEqual(r.code, 0, r.err)
        let logits = try Data(contentsOf: URL(fileURLWithPath: path("l.npy")))
        r = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("x.npy"), "-o", path("l.npy"), "--embeddings"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("exists") && r.err.contains("--force"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("l.npy"))), logits)
        r = try CommandRunner.run("gslora-infer", [path("base.gslr"), path("x.npy"), "-o", path("l.npy"), "--embeddings", "--force"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: path("l.npy"))), logits)
    }

    /// A model file's notices reach stderr whatever it is: here a file, as under nohup (they were printed only on a
    /// terminal). face_vit_tiny.pth carries LoRA factors, which are applied as PyTorch applies them, and it says so.
    func testNoticeReachesStderrInAFile() throws {
        guard let pth = Fixtures.files(endingWith: "face_vit_tiny.pth").first else { return XCTFail("no face_vit_tiny.pth in \(Fixtures.searched)") }
        print("checked \(pth.lastPathComponent)")
        try [Float](repeating: 0.5, count: 3 * 40 * 40).withUnsafeBufferPointer { try NPY.write($0, shape: [1, 3, 40, 40], to: path("one.npy")) }
        let r = try CommandRunner.runWithStderrInFile("gslora-infer", [pth.path, path("one.npy"), "--heads", "4", "--top", "1"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("note: the file's LoRA factors (rank 4, scaling 0.25) are applied as PyTorch applies them"), "stderr file: \(r.err)")
        XCTAssertEqual(r.out.split(separator: "\n").count, 1, r.out)
    }
}
