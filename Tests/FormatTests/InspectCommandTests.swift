import Foundation
import GSLoRAFormat
import TestSupport
import XCTest

/// gslora-inspect run as a process, as users and scripts run it.
final class InspectCommandTests: XCTestCase {
    func run(_ args: [String]) throws -> (code: Int32, out: String, err: String) { try CommandRunner.run("gslora-inspect", args) }

    func testSummaryJSONVerifyAndExitCodes() throws {
        let dir = TempDir()
        let backbone = dir.file("b.gslr"), adapter = dir.file("a.gslr")
        let tensors = [sampleTensor("w", .f32, [8, 8]), sampleTensor("h", .bf16, [3, 8])]
        try GSLRWriter.write(backbone, header: GSLRHeader(kind: .backbone, model: tinyConfig, classes: ["x", "y", "z"]), tensors: tensors)
        let fp = try GSLRFile.open(backbone).fingerprint
        let group = GroupRecord(name: "block0", members: ["l.lora_A"], norm: 0.25, state: .pruned)
        let info = AdapterInfo(
            rank: 2, alpha: 1, scaling: 0.5, targets: ["mlp.fc1"], grouping: "block", groups: [group],
            task: TaskRecord(index: 1, forget: [0], retain: [1, 2]), baseFingerprint: fp)
        try GSLRWriter.write(adapter, header: GSLRHeader(kind: .adapter, adapter: info), tensors: [])

        let text = try run([backbone, adapter])
        XCTAssertEqual(text.code, 0, text.err)
        for w in ["backbone", "face_vit", "F32", "BF16", fp, "adapter", "block0", "pruned", "norm 0.25"] {
            XCTAssertTrue(text.out.contains(w), "summary lacks \(w):\n\(text.out)")
        }

        let json = try run(["--json", "--tensors", backbone, adapter])
        XCTAssertEqual(json.code, 0, json.err)
        let arr = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(arr.count, 2)
        XCTAssertEqual(arr[0]["fingerprint"] as? String, fp)
        XCTAssertEqual(arr[0]["parameters"] as? Int, 64 + 24)
        XCTAssertEqual((arr[0]["tensors"] as? [Any])?.count, 2)
        XCTAssertEqual((arr[1]["adapter"] as? [String: Any])?["base_fingerprint"] as? String, fp)

        // A flipped data byte: open succeeds, --verify names the tensor and exits 1.
        var bytes = readFile(backbone)
        let f = try GSLRFile.open(backbone)
        bytes[f.dataStart + (try f.info("h").offset)] ^= 0x80
        let damaged = dir.file("damaged.gslr")
        writeFile(damaged, bytes)
        XCTAssertEqual(try run([damaged]).code, 0)
        let v = try run(["--verify", damaged])
        XCTAssertEqual(v.code, 1)
        XCTAssertTrue(v.err.contains("damaged.gslr: tensor 'h': data CRC32 mismatch"), v.err)
        XCTAssertEqual(try run(["--verify", backbone]).code, 0)

        let missing = try run([dir.file("missing.gslr")])
        XCTAssertEqual(missing.code, 1)
        XCTAssertTrue(missing.err.contains("missing.gslr"))
        XCTAssertEqual(try run([]).code, 2)
        XCTAssertEqual(try run(["--frobnicate", backbone]).code, 2)
        XCTAssertEqual(try run(["--help"]).code, 0)
    }
}
