import GSLoRATraining
import TestSupport
import XCTest

/// Two `torch.optim.AdamW` steps on the LoRA tensors of every face parity fixture.
final class AdamWParityTests: XCTestCase {
    func testTwoStepsMatchTorch() throws {
        let all = try ParityFixture.all()
        XCTAssertFalse(all.isEmpty, "no face_vit_*.parity.json in \(Fixtures.searched)")
        for f in all {
            var opt = try AdamW(
                parameters: f.lora.map { ($0.name, $0.shape) }, beta1: f.beta1, beta2: f.beta2,
                eps: f.eps, weightDecay: f.weightDecay)
            // The fixture's optimiser holds only LoRA tensors, all 2-D: every one is in the decayed group.
            XCTAssertTrue(opt.parameters.allSatisfy(\.decays), f.name)
            var values = f.lora.map(\.before.floats)
            try opt.step(parameters: &values, gradients: f.lora.map(\.grad.floats), lr: f.lr)
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(values[i], p.after.values), Tolerance.forward, "\(f.name) \(p.name) after")
                XCTAssertLessThan(Tolerance.maxRelative(opt.expAvg[i], p.expAvg.values), Tolerance.forward, "\(f.name) \(p.name) exp_avg")
                XCTAssertLessThan(Tolerance.maxRelative(opt.expAvgSq[i], p.expAvgSq.values), Tolerance.forward, "\(f.name) \(p.name) exp_avg_sq")
            }
            try opt.step(parameters: &values, gradients: f.lora.map(\.grad2.floats), lr: f.lr)
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(values[i], p.after2.values), Tolerance.forward, "\(f.name) \(p.name) after2")
            }
            XCTAssertEqual(opt.steps, [Int](repeating: 2, count: f.lora.count), f.name)
        }
    }

    func testParamGroupRule() {
        XCTAssertTrue(AdamW.decays(name: "transformer.layers.0.1.fn.fn.net.0.lora_A", shape: [8, 512]))
        XCTAssertTrue(AdamW.decays(name: "pos_embedding", shape: [1, 197, 512]))
        XCTAssertFalse(AdamW.decays(name: "mlp_head.0.weight", shape: [512]))
        XCTAssertFalse(AdamW.decays(name: "patch_to_embedding.bias", shape: [512]))
        XCTAssertFalse(AdamW.decays(name: "odd.bias", shape: [4, 4]))
    }

    func testSkippedParameterKeepsState() throws {
        var opt = try AdamW(parameters: [("a.weight", [2]), ("b.weight", [1, 2])])
        var v: [[Float]] = [[1, 2], [3, 4]]
        try opt.step(parameters: &v, gradients: [nil, [0.5, -0.5]], lr: 0.1)
        XCTAssertEqual(v[0], [1, 2])
        XCTAssertEqual(opt.steps, [0, 1])
        XCTAssertThrowsError(try opt.step(parameters: &v, gradients: [[1], nil], lr: 0.1))
    }
}

extension AdamWParityTests {
    func testRestoredStateContinuesIdentically() throws {
        let params: [(name: String, shape: [Int])] = [("l.lora_A", [2, 3]), ("l.lora_B", [3, 2])]
        var a = try AdamW(parameters: params)
        var va: [[Float]] = [[0.1, -0.2, 0.3, 0.05, 0, -0.4], [0.01, 0.02, -0.03, 0, 0.5, 0.2]]
        let g1: [[Float]?] = [[1, -2, 0.5, 0, 3, -1], [0.1, 0.2, -0.3, 0.4, 0, 1]]
        let g2: [[Float]?] = [[-1, 2, 0.25, 1, -3, 1], [0.3, -0.2, 0.1, 0.4, 2, -1]]
        try a.step(parameters: &va, gradients: g1, lr: 1e-2)
        var b = try AdamW(parameters: params)
        try b.restore(steps: a.steps, expAvg: a.expAvg, expAvgSq: a.expAvgSq)
        var vb = va
        try a.step(parameters: &va, gradients: g2, lr: 5e-3)
        try b.step(parameters: &vb, gradients: g2, lr: 5e-3)
        XCTAssertEqual(va, vb)
        XCTAssertThrowsError(try b.restore(steps: [1], expAvg: a.expAvg, expAvgSq: a.expAvgSq))
        XCTAssertThrowsError(try b.restore(steps: [1, 1], expAvg: [[0], [0]], expAvgSq: a.expAvgSq))
    }
}
