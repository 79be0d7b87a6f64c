import Foundation
import GSLoRAConvert
import GSLoRAData
import GSLoRAFormat
import GSLoRAModel
import TestSupport
import XCTest

/// Heads and channels are read from options, config files or the architecture table, never guessed; a .pth with
/// LoRA factors runs as PyTorch runs it. Reference numbers: Tests/Fixtures/config (tools/make_config_fixtures.py)
/// and the shared face_vit_tiny fixture.
final class ModelConfigSourceTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    static var configFixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/config")
    }

    /// `got` against PyTorch's `want` elementwise within `rel`·max(1, |want|).
    func assertClose(_ got: [Float], _ want: FixtureArray, rel: Double, _ what: String) {
        XCTAssertEqual(got.count, want.values.count, what)
        var worst = 0.0
        for (g, w) in zip(got, want.values) { worst = max(worst, abs(Double(g) - w) / max(1, abs(w))) }
        XCTAssertLessThanOrEqual(worst, rel, "\(what): worst relative difference \(worst)")
    }

    func writeInput(_ a: FixtureArray, _ name: String) throws -> String {
        let floats = a.values.map(Float.init)
        try floats.withUnsafeBufferPointer { try NPY.write($0, shape: a.shape, to: path(name)) }
        return path(name)
    }

    /// The 4 × 80-head timm and torchvision ViTs: refused without --heads (naming it and the 4×80 candidate), equal
    /// to PyTorch with --heads 4, and with timm's config.json beside the file, equal to PyTorch without options.
    func testFourHeadsOfEightyAreNeverRunAsFiveOfSixtyFour() throws {
        let names = (try FileManager.default.contentsOfDirectory(atPath: Self.configFixtures.path)).filter { $0.hasSuffix(".parity.json") }.sorted()
        XCTAssertFalse(names.isEmpty, "no *.parity.json in \(Self.configFixtures.path)")
        for name in names {
            let stem = String(name.dropLast(".parity.json".count))
            print("checking \(Self.configFixtures.appendingPathComponent(name).path)")
            let json = try Fixtures.json(Self.configFixtures.appendingPathComponent(name))
            let heads = try XCTUnwrap((json["config"] as? [String: Any])?["heads"] as? Int)
            let headDim = try XCTUnwrap((json["config"] as? [String: Any])?["head_dim"] as? Int)
            let want = try FixtureArray(json["logits"], "\(name) logits")
            let input = try writeInput(try FixtureArray(json["input"], "\(name) input"), stem + ".npy")
            let sub = dir.appendingPathComponent(stem)
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            let pth = sub.appendingPathComponent("model.pth").path
            try FileManager.default.copyItem(atPath: Self.configFixtures.appendingPathComponent(stem + ".pth").path, toPath: pth)

            var r = try CommandRunner.run("gslora-infer", [pth, input, "-o", path(stem + ".refused.npy")])
            XCTAssertEqual(r.code, 1, "\(stem): \(r.err)")
            XCTAssertTrue(r.err.contains("--heads") && r.err.contains("\(heads)×\(headDim)"), "\(stem): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path(stem + ".refused.npy")), "nothing written on refusal")

            r = try CommandRunner.run("gslora-infer", [pth, input, "-o", path(stem + ".given.npy"), "--heads", String(heads)])
            XCTAssertEqual(r.code, 0, "\(stem): \(r.err)")
            assertClose(try NPY.read(path: path(stem + ".given.npy")).floats(), want, rel: 1e-4, "\(stem) --heads \(heads)")

            let configJSON = Self.configFixtures.appendingPathComponent(stem + ".config.json")
            guard FileManager.default.fileExists(atPath: configJSON.path) else { continue }
            let beside = sub.appendingPathComponent("config.json").path
            try FileManager.default.copyItem(atPath: configJSON.path, toPath: beside)
            r = try CommandRunner.run("gslora-infer", [pth, input, "-o", path(stem + ".file.npy")])
            XCTAssertEqual(r.code, 0, "\(stem) with config.json: \(r.err)")
            assertClose(try NPY.read(path: path(stem + ".file.npy")).floats(), want, rel: 1e-4, "\(stem) config.json")
            r = try CommandRunner.run("gslora-inspect", [pth, "--json"])
            XCTAssertEqual(r.code, 0, r.err)
            let summary = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]])?.first)
            let model = try XCTUnwrap(summary["model"] as? [String: Any], r.out)
            XCTAssertEqual(model["heads"] as? Int, heads)
            XCTAssertEqual((model["provenance"] as? [String: String])?["heads"], "file:\(beside)", r.out)

            r = try CommandRunner.run("gslora-infer", [pth, input, "--heads", String(heads * 2)])
            XCTAssertEqual(r.code, 1, r.err)
            XCTAssertTrue(r.err.contains("model_args.num_heads \(heads)") && r.err.contains("--heads \(heads * 2)"), r.err)

            // A config file that contradicts the tensors is refused, naming both values; nothing is written.
            var text = try String(contentsOfFile: beside, encoding: .utf8)
            text = text.replacingOccurrences(of: "\"embed_dim\": 320", with: "\"embed_dim\": 384")
            XCTAssertTrue(text.contains("384"), "the fixture's config.json states embed_dim 320")
            try text.write(toFile: beside, atomically: true, encoding: .utf8)
            r = try CommandRunner.run("gslora-infer", [pth, input, "-o", path(stem + ".bad.npy")])
            XCTAssertEqual(r.code, 1, r.err)
            XCTAssertTrue(r.err.contains("384") && r.err.contains("320") && r.err.contains(beside), r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path(stem + ".bad.npy")))
            r = try CommandRunner.run("gslora-convert", [pth, "-o", path(stem + ".gslr")])
            XCTAssertEqual(r.code, 1, r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path(stem + ".gslr")))
        }
    }

    /// face_vit_tiny.pth (4 heads of 16, rank-4 LoRA saved in train mode) runs as PyTorch with its LoRA; without
    /// --heads it is refused; the official config.txt (512 wide) beside it contradicts its width 64.
    func testFaceCheckpointWithLoRAIsTheModelPyTorchRuns() throws {
        let parity = Fixtures.repoFile("face_vit_tiny.parity.json")
        let source = Fixtures.repoFile("face_vit_tiny.pth")
        XCTAssertTrue(FileManager.default.fileExists(atPath: parity.path), "missing \(parity.path)")
        print("checking \(source.path) against \(parity.path)")
        let json = try Fixtures.json(parity)
        let inputs = try XCTUnwrap(json["inputs"] as? [String: Any])
        let forward = try XCTUnwrap(json["forward"] as? [String: Any])
        let sub = dir.appendingPathComponent("face")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let pth = sub.appendingPathComponent("face_vit_tiny.pth").path
        try FileManager.default.copyItem(atPath: source.path, toPath: pth)

        for group in ["forget", "retain"] {
            let input = try writeInput(try FixtureArray(inputs["\(group)_images"]), "\(group).npy")
            let g = try XCTUnwrap(forward[group] as? [String: Any])
            let r = try CommandRunner.run("gslora-infer", [pth, input, "-o", path("\(group).logits.npy"), "--heads", "4"])
            XCTAssertEqual(r.code, 0, r.err)
            assertClose(try NPY.read(path: path("\(group).logits.npy")).floats(), try FixtureArray(g["logits_plain"]), rel: 1e-5, "\(group) logits with LoRA")
            let e = try CommandRunner.run("gslora-infer", [pth, input, "-o", path("\(group).emb.npy"), "--heads", "4", "--embeddings"])
            XCTAssertEqual(e.code, 0, e.err)
            assertClose(try NPY.read(path: path("\(group).emb.npy")).floats(), try FixtureArray(g["embedding"]), rel: 1e-5, "\(group) embeddings with LoRA")
        }
        let input = path("forget.npy")
        var r = try CommandRunner.run("gslora-infer", [pth, input])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains("--heads") && r.err.contains("4×16"), r.err)

        r = try CommandRunner.run("gslora-inspect", [pth, "--heads", "4"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("backbone with an embedded adapter") && r.out.contains("rank 4"), r.out)
        XCTAssertTrue(r.out.contains("heads given") && r.out.contains("channels shapes") && r.out.contains("head default"), r.out)

        // Training starts from the model PyTorch runs: the adapter's base is W + s·B·A, not the bare backbone.
        let n = 20
        let images = (0..<(n * 3 * 40 * 40)).map { Float((sin(Double($0) * 0.37) + 1) / 2) }
        try images.withUnsafeBufferPointer { try NPY.write($0, shape: [n, 3, 40, 40], to: path("train.npy")) }
        try (0..<n).map { Float($0 % 10) }.withUnsafeBufferPointer { try NPY.write($0, shape: [n], to: path("labels.npy")) }
        r = try CommandRunner.run(
            "gslora-train",
            [
                "forget", pth, "--heads", "4", "--data", path("train.npy"), "--labels", path("labels.npy"),
                "--test-data", path("train.npy"), "--test-labels", path("labels.npy"), "--forget", "0",
                "--epochs", "1", "--shots", "2", "--batch-size", "2", "--rank", "2", "-o", path("run")
            ])
        XCTAssertEqual(r.code, 0, r.err)
        let imported = try ModelImport.load(pth, options: ImportOptions(heads: 4))
        let base = try XCTUnwrap(try GSLRFile.open(path("run/task-1.gslr")).header.adapter?.baseFingerprint)
        XCTAssertEqual(base, Fingerprint.of(try imported.runnableWeights(), binding: .model(try XCTUnwrap(imported.config))))
        XCTAssertNotEqual(base, Fingerprint.of(imported.weights, binding: .model(try XCTUnwrap(imported.config))))

        // The official results folder's config.txt (str(cfg) of its scripts) says EMBEDDING_SIZE 512.
        let txt = sub.appendingPathComponent("config.txt").path
        try
            "{'SEED': 1337, 'INPUT_SIZE': [112, 112], 'EMBEDDING_SIZE': 512, 'GPU_ID': [0], 'DEVICE': device(type='cuda', index=0), 'MULTI_GPU': False, 'NUM_EPOCH': 1200, 'BATCH_SIZE': 480, 'WORKERS': 8, 'DATA_ROOT': './data/faces_webface_112x112_sub100_train_test/', 'EVAL_PATH': './eval/', 'BACKBONE_NAME': 'VIT', 'HEAD_NAME': 'CosFace', 'BACKBONE_RESUME_ROOT': '', 'WORK_PATH': './results/ViT-P8S8_casia100_cosface_s1-1200-150de-depth6new'}"
            .write(toFile: txt, atomically: true, encoding: .utf8)
        r = try CommandRunner.run("gslora-infer", [pth, input, "-o", path("txt.npy")])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains(txt) && r.err.contains("512") && r.err.contains("width 64"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("txt.npy")))
    }
}
