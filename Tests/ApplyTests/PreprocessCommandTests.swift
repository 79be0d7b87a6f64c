import Foundation
import GSLoRAData
import GSLoRAFormat
import TestSupport
import XCTest

/// The pipeline end to end through the commands: gslora-convert stores timm's config.json pipeline in the .gslr,
/// gslora-inspect shows it, gslora-infer uses it (or the options) and prints it on stderr, and the logits are
/// timm's (Tests/Fixtures/preprocess). Without any source for a timm pipeline, infer refuses and names the options.
final class PreprocessCommandTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
    func fixture(_ n: String) -> String { PreprocessFixtures.directory.appendingPathComponent(n).path }

    func checkLogits(_ npy: String, _ c: [String: Any], _ what: String) throws {
        let got = try NPY.read(path: npy).floats()
        let refs = try XCTUnwrap(c["images"] as? [[String: Any]]).map { try XCTUnwrap($0["logits"] as? [Double]) }
        XCTAssertEqual(got.count, refs.count * refs[0].count, what)
        for (i, ref) in refs.enumerated() {
            let scale = ref.map(abs).max()!
            for (k, r) in ref.enumerated() {
                XCTAssertEqual(Double(got[i * ref.count + k]), r, accuracy: 1e-3 * scale, "\(what): image \(i) logit \(k)")
            }
        }
    }

    /// The images of a case, copied into a folder in the case's order (infer sorts a folder by path).
    func imageFolder(_ c: [String: Any]) throws -> String {
        let files = try XCTUnwrap(c["images"] as? [[String: Any]]).map { try XCTUnwrap($0["file"] as? String) }
        try FileManager.default.createDirectory(atPath: path("images"), withIntermediateDirectories: true)
        for (i, f) in files.enumerated() {
            let to = path("images/\(i)-" + (f as NSString).lastPathComponent)
            if !FileManager.default.fileExists(atPath: to) { try FileManager.default.copyItem(atPath: fixture(f), toPath: to) }
        }
        return path("images")
    }

    func testConvertStoresTimmConfigAndInferUsesIt() throws {
        let cases = try PreprocessFixtures.cases()
        let c = try XCTUnwrap(cases.first { $0.name == "timm_deit.case.json" }?.json, "timm_deit.case.json missing")
        let images = try imageFolder(c)
        var r = try CommandRunner.run("gslora-convert", [fixture("timm_deit/model.safetensors"), "-o", path("deit.gslr")])
        XCTAssertEqual(r.code, 0, r.err)
        let header = try XCTUnwrap(GSLRFile.open(path("deit.gslr")).header.preprocess, "no preprocess record written")
        XCTAssertEqual(header.resize, 248)
        XCTAssertEqual(header.crop, 224)
        XCTAssertEqual(header.interpolation, .bicubic)
        XCTAssertEqual(header.mean, [0.485, 0.456, 0.406])
        XCTAssertEqual(header.std, [0.229, 0.224, 0.225])
        XCTAssertTrue(header.source?.contains("deit_tiny_patch16_224.fb_in1k") == true, "\(header.source ?? "nil")")

        r = try CommandRunner.run("gslora-inspect", [path("deit.gslr")])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.out.contains("preprocess") && r.out.contains("resize short side 248 (bicubic), centre crop 224"), r.out)

        r = try CommandRunner.run("gslora-infer", [path("deit.gslr"), images, "-o", path("l.npy")])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(r.err.components(separatedBy: "preprocess: ").count - 1, 1, "printed once: \(r.err)")
        XCTAssertTrue(r.err.contains("resize short side to 248 (bicubic, antialiased)") && r.err.contains("deit.gslr's preprocess record"), r.err)
        try checkLogits(path("l.npy"), c, "deit.gslr with its stored pipeline")

        // A .safetensors output carries the pipeline in its metadata, without the config.json.
        r = try CommandRunner.run("gslora-convert", [path("deit.gslr"), "-o", path("deit.safetensors")])
        XCTAssertEqual(r.code, 0, r.err)
        r = try CommandRunner.run("gslora-infer", [path("deit.safetensors"), images, "-o", path("s.npy")])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("pipeline read with deit.safetensors: config.json pretrained_cfg of deit_tiny_patch16_224.fb_in1k, crop_pct 0.9"), r.err)
        try checkLogits(path("s.npy"), c, "deit.safetensors with the pipeline in its metadata")

        // gslora-eval reads the same record and says so once.
        for (k, cls) in ["a", "b"].enumerated() {
            try FileManager.default.createDirectory(atPath: path("data/\(cls)"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                atPath: fixture(k == 0 ? "images/small_96x80.png" : "images/photo_400x300.jpg"), toPath: path("data/\(cls)/x" + (k == 0 ? ".png" : ".jpg")))
        }
        r = try CommandRunner.run("gslora-eval", [path("deit.gslr"), "--data", path("data"), "--forget", "0"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(r.err.components(separatedBy: "preprocess: ").count - 1, 1, "printed once: \(r.err)")
        XCTAssertTrue(r.err.contains("deit.gslr's preprocess record"), r.err)

        // Options override the stored record: the flags case on the same model.
        let f = try XCTUnwrap(cases.first { $0.name == "timm_deit_flags.case.json" }?.json)
        r = try CommandRunner.run("gslora-infer", [path("deit.gslr"), images, "-o", path("f.npy"), "--interpolation", "bilinear", "--crop-pct", "0.875"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("--interpolation bilinear --crop-pct 0.875 from the command line"), r.err)
        try checkLogits(path("f.npy"), f, "deit.gslr with --interpolation bilinear --crop-pct 0.875")
    }

    func testTimmWithoutPipelineIsRefusedUntilOptionsGiveIt() throws {
        let c = try XCTUnwrap(try PreprocessFixtures.cases().first { $0.name == "timm_vit_base.case.json" }?.json)
        let images = try imageFolder(c)
        // The checkpoint alone, without its config.json (so the heads are given too).
        try FileManager.default.copyItem(atPath: fixture("timm_vit_base/model.safetensors"), toPath: path("vit.safetensors"))
        var r = try CommandRunner.run("gslora-infer", [path("vit.safetensors"), "--heads", "1", images])
        XCTAssertEqual(r.code, 1, r.err)
        for option in ["--mean", "--std", "--interpolation", "--crop-pct", "config.json"] { XCTAssertTrue(r.err.contains(option), "\(option): \(r.err)") }
        r = try CommandRunner.run("gslora-infer", [path("vit.safetensors"), "--heads", "1", images, "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains("missing: --interpolation, --crop-pct (or --resize)"), r.err)
        r = try CommandRunner.run(
            "gslora-infer",
            [
                path("vit.safetensors"), "--heads", "1", images, "-o", path("l.npy"), "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5",
                "--interpolation", "bicubic", "--crop-pct", "0.9"
            ])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("preprocess: resize short side to 248 (bicubic, antialiased) → centre crop 224"), r.err)
        try checkLogits(path("l.npy"), c, "vit.safetensors with the options")
        // gslora-convert stores the options; the .gslr then needs none.
        r = try CommandRunner.run(
            "gslora-convert",
            [
                path("vit.safetensors"), "--heads", "1", "-o", path("vit.gslr"), "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5",
                "--interpolation", "bicubic", "--crop-pct", "0.9"
            ])
        XCTAssertEqual(r.code, 0, r.err)
        r = try CommandRunner.run("gslora-infer", [path("vit.gslr"), images, "-o", path("g.npy")])
        XCTAssertEqual(r.code, 0, r.err)
        try checkLogits(path("g.npy"), c, "vit.gslr converted with the options")
        // A crop that is not the model's input size is refused.
        r = try CommandRunner.run("gslora-infer", [path("vit.gslr"), images, "--crop", "200"])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains("--crop 200 differs from the model's input size 224"), r.err)
    }
}
