import Foundation
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel
import TestSupport
import XCTest

final class EvalCommandTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    func testBeforeAfterReportsAndH() throws {
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(path("base.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 3), classes: ["cat", "dog", "owl", "yak"])
        try AdapterTestKit.writeAdapter(
            path("t1.gslr"), config: c, tensors: AdapterTestKit.adapterTensors(c, rank: 2, seed: 4, magnitude: 2),
            base: try GSLRFile.open(path("base.gslr")).fingerprint, rank: 2)
        let n = 24
        let images = (0..<(n * 3 * 8 * 8)).map { Float(sin(Double($0) * 0.173) * 2) }
        try images.withUnsafeBufferPointer { try NPY.write($0, shape: [n, 3, 8, 8], to: path("x.npy")) }
        // Labels = the base model's own predictions, so the base is 100 % right before forgetting.
        let base = try ViT(config: c, weights: GSLRFile.open(path("base.gslr")).allTensors())
        let preds = try images.withUnsafeBufferPointer { try BatchedForward.predict(base, images: $0, labels: [Int](repeating: 0, count: n), margin: false) }
        try preds.map(Float.init).withUnsafeBufferPointer { try NPY.write($0, shape: [n], to: path("y.npy")) }
        let forget = ["cat", "dog", "owl", "yak"][preds[0]]

        var r = try CommandRunner.run(
            "gslora-eval",
            [
                path("base.gslr"), "--data", path("x.npy"), "--labels", path("y.npy"), "--forget", forget,
                "--json", "-o", path("before.json")
            ])
        XCTAssertEqual(r.code, 0, r.err)
        let before = try ForgettingScore.readReport(path("before.json"))
        XCTAssertEqual(before.accForget, 100)
        let written = try Data(contentsOf: URL(fileURLWithPath: path("before.json")))
        r = try CommandRunner.run(
            "gslora-eval",
            [
                path("base.gslr"), "--data", path("x.npy"), "--labels", path("y.npy"), "--forget", forget,
                "--margin-eval", "-o", path("before.json")
            ])
        XCTAssertEqual(r.code, 2, "an existing -o file is replaced only with --force: \(r.err)")
        XCTAssertTrue(r.err.contains("--force"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("before.json"))), written)
        XCTAssertEqual(before.forget, [preds[0]])

        r = try CommandRunner.run(
            "gslora-eval",
            [
                path("base.gslr"), "--adapter", path("t1.gslr"), "--data", path("x.npy"), "--labels", path("y.npy"),
                "--forget", String(preds[0]), "--before", path("before.json"), "--json", "-o", path("after.json")
            ])
        XCTAssertEqual(r.code, 0, r.err)
        let after = try ForgettingScore.readReport(path("after.json"))
        let af = after.accForget!, ar = after.accRetain!
        XCTAssertEqual(after.delta!, 100 - af, accuracy: 1e-9)
        XCTAssertEqual(after.h!, 2 * (100 - af) * ar / ((100 - af) + ar + 1e-8), accuracy: 1e-9)
        XCTAssertEqual(after.adapters, [path("t1.gslr")])

        r = try CommandRunner.run("gslora-eval", [path("base.gslr"), "--data", path("x.npy"), "--labels", path("y.npy"), "--forget", "0", "--margin-eval"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("accuracy by margin logits") && r.out.contains("per class:"), r.out)

        r = try CommandRunner.run("gslora-eval", [path("base.gslr"), "--data", path("x.npy"), "--labels", path("y.npy"), "--forget", "zebra"])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("unknown class 'zebra'") && r.err.contains("'cat'"), r.err)
        // A malformed class list is the caller's usage, whatever the model: exit 2 with the usage line.
        r = try CommandRunner.run("gslora-eval", [path("base.gslr"), "--data", path("x.npy"), "--labels", path("y.npy"), "--forget", "3-1"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("--forget: range '3-1' runs backwards") && r.err.contains("Usage: gslora-eval"), r.err)
        r = try CommandRunner.run("gslora-eval", [path("base.gslr"), "--data", path("x.npy"), "--forget", "0"])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("--labels"), r.err)
        r = try CommandRunner.run(
            "gslora-eval",
            [
                path("base.gslr"), "--data", path("x.npy"), "--labels", path("y.npy"), "--forget", "0",
                "--before", path("y.npy")
            ])
        XCTAssertEqual(r.code, 1)
        XCTAssertTrue(r.err.contains("--before"), r.err)
        r = try CommandRunner.run("gslora-eval", [path("base.gslr"), "--data", path("x.npy")])
        XCTAssertEqual(r.code, 2, "--forget is required")
    }
}
