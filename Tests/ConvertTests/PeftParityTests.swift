import Foundation
import TestSupport
import XCTest

/// gslora against the real Hugging Face peft library, both ways (scripts/peft_check.py): PeftModel's logits and
/// gslora-infer's agree within 1e-5 (absolute) for timm and torchvision ViTs. Runs where
/// GSLORA_PEFT_PYTHON names a Python with torch, timm, torchvision and peft (scripts/peft-venv.sh makes one;
/// scripts/ci-peft.sh runs this test in CI); skipped, saying so, elsewhere.
final class PeftParityTests: XCTestCase {
    func testLogitsMatchPeft() throws {
        guard let python = ProcessInfo.processInfo.environment["GSLORA_PEFT_PYTHON"], !python.isEmpty else {
            throw XCTSkip("GSLORA_PEFT_PYTHON is not set; run scripts/ci-peft.sh to check gslora against the peft library")
        }
        let bin = try CommandRunner.binary("gslora-infer").deletingLastPathComponent()
        _ = try CommandRunner.binary("gslora-convert")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [root.appendingPathComponent("scripts/peft_check.py").path, "--bin", bin.path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print(o)
        XCTAssertEqual(p.terminationStatus, 0, "peft_check.py failed:\n\(o)\n\(e.suffix(4000))")
        let last = o.split(separator: "\n").last.map(String.init) ?? ""
        let summary = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        let checks = summary?["checks"] as? [[String: Any]] ?? []
        // 2 families × (1 + 2 exported-folder checks + 2 scalings × (1 + 3 PEFT-saved checks)); each "1" checks that
        // the adapter moves the logits.
        XCTAssertEqual(checks.count, 22, "checks run: \(checks.map { $0["check"] ?? "?" })")
        XCTAssertTrue(checks.allSatisfy { $0["ok"] as? Bool == true }, "\(checks)")
    }
}
