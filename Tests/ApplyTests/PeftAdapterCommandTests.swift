import Foundation
import GSLoRAConvert
import GSLoRAData
import GSLoRAFormat
import TestSupport
import XCTest

/// `--adapter FOLDER/` reads a Hugging Face PEFT LoRA folder (CommandSupport), and gslora-convert writes one.
/// (scripts/peft_check.py checks the numbers against the peft library itself.)
final class PeftAdapterCommandTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    func makeFiles() throws {
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(path("base.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 3), classes: ["cat", "dog", "owl", "yak"])
        try AdapterTestKit.writeAdapter(
            path("t1.gslr"), config: c, tensors: AdapterTestKit.adapterTensors(c, rank: 2, seed: 4),
            base: try GSLRFile.open(path("base.gslr")).fingerprint, rank: 2)
        let images = (0..<(5 * 3 * 8 * 8)).map { Float(cos(Double($0) * 0.41)) }
        try images.withUnsafeBufferPointer { try NPY.write($0, shape: [5, 3, 8, 8], to: path("x.npy")) }
    }

    func infer(_ adapters: [String], _ out: String) throws -> (code: Int32, err: String, logits: [Float]) {
        let r = try CommandRunner.run("gslora-infer", [path("base.gslr")] + adapters.flatMap { ["--adapter", $0] } + [path("x.npy"), "-o", path(out)])
        return (r.code, r.err, r.code == 0 ? try NPY.read(path: path(out)).floats() : [])
    }

    /// The exported folder (and .safetensors / .pth exports) apply exactly as the .gslr adapter does; a folder PEFT
    /// saved (no gslora record) is bound to the model with a note on stderr, and only as the first adapter.
    func testAdapterFolderGivesTheAdapterFilesLogits() throws {
        try makeFiles()
        let folder = (path("t1_peft") + "/")
        let c = try CommandRunner.run("gslora-convert", [path("t1.gslr"), "-o", folder, "--base", path("base.gslr")])
        XCTAssertEqual(c.code, 0, c.err)
        let want = try infer([path("t1.gslr")], "a.npy")
        XCTAssertEqual(want.code, 0, want.err)
        let got = try infer([folder], "b.npy")
        XCTAssertEqual(got.code, 0, got.err)
        XCTAssertEqual(got.logits, want.logits)
        for ext in ["safetensors", "pth"] {
            let exported = path("t1.\(ext)")
            XCTAssertEqual(try CommandRunner.run("gslora-convert", [path("t1.gslr"), "-o", exported]).code, 0, ext)
            let r = try infer([exported], "\(ext).npy")
            XCTAssertEqual(r.code, 0, r.err)
            XCTAssertEqual(r.logits, want.logits, "--adapter t1.\(ext)")
            let shown = try CommandRunner.run("gslora-inspect", [exported])
            let fingerprint = try GSLRFile.open(path("t1.gslr")).fingerprint
            XCTAssertTrue(shown.out.contains("kind         adapter") && shown.out.contains(fingerprint), shown.out)
        }
        let none = try infer([], "n.npy")
        XCTAssertNotEqual(none.logits, want.logits, "the adapter must change the logits for this test to mean anything")

        let st = try SafetensorsFile.open(folder + PeftFolder.weightsName)
        let plain = (path("plain") + "/")
        try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: folder + PeftFolder.configName, toPath: plain + PeftFolder.configName)
        try SafetensorsWriter.write(plain + PeftFolder.weightsName, tensors: st.tensors, metadata: ["format": "pt"])
        let foreign = try infer([plain], "c.npy")
        XCTAssertEqual(foreign.code, 0, foreign.err)
        XCTAssertEqual(foreign.logits, want.logits)
        XCTAssertTrue(foreign.err.contains("records no base fingerprint"), foreign.err)
        let second = try infer([path("t1.gslr"), plain], "d.npy")
        XCTAssertEqual(second.code, 1, second.err)
        XCTAssertTrue(second.err.contains("only be the first --adapter"), second.err)

        // A folder that is not a PEFT adapter is refused naming the missing file.
        try FileManager.default.createDirectory(atPath: (path("empty") + "/"), withIntermediateDirectories: true)
        let empty = try infer([(path("empty") + "/")], "e.npy")
        XCTAssertEqual(empty.code, 1, empty.err)
        XCTAssertTrue(empty.err.contains(PeftFolder.configName), empty.err)
    }

    /// --help tells how the PEFT folders and merged face .pth files are used from PyTorch.
    func testConvertHelpExplainsPeftAndViTFace() throws {
        let r = try CommandRunner.run("gslora-convert", ["--help"])
        XCTAssertEqual(r.code, 0)
        for needle in ["PeftModel.from_pretrained", "lora_rank=0", "strict=False", "PEFT"] {
            XCTAssertTrue(r.out.contains(needle), "--help lacks \(needle):\n\(r.out)")
        }
    }
}
