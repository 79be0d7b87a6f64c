import Foundation
import GSLoRAConvert
import GSLoRAModel
import GSLoRATraining
import TestSupport
import XCTest

/// `GSLoRAStep` — the exact step training runs — against PyTorch on every face parity fixture: from the `.pth`
/// through our importer, with the file's hyper-parameters, batches and prototype table, two AdamW steps on the same
/// batch. Every loss term, every LoRA gradient, and the factors after each step must match.
final class StepParityTests: XCTestCase {
    func testTwoStepsMatchTorch() throws {
        let all = try ParityFixture.all()
        XCTAssertFalse(all.isEmpty, "no face_vit_*.parity.json in \(Fixtures.searched)")
        for f in all {
            let url = f.url
            let json = try Fixtures.json(url)
            let heads = (json["model_config"] as? [String: Any])?["heads"] as? Int
            let imported = try ModelImport.load(
                url.path.replacingOccurrences(of: ".parity.json", with: ".pth"),
                options: ImportOptions(heads: heads))
            let config = try XCTUnwrap(imported.config, f.name)
            let rank = try XCTUnwrap(imported.loraRank), alpha = try XCTUnwrap(imported.loraAlpha)
            let adapter = try LoRAAdapter(config: config, tensors: imported.lora, scaling: Float(alpha / Double(rank)))
            let model = try ViT(config: config, weights: imported.weights, adapters: [adapter])
            let step = try GSLoRAStep(model: model, grouping: .block, beta1: f.beta1, beta2: f.beta2, eps: f.eps, weightDecay: f.weightDecay)

            // Same factors in the same order, and our name-parsed block groups are the file's groups.
            XCTAssertEqual(step.factors.values.count, f.lora.count, f.name)
            guard step.factors.values.count == f.lora.count else { continue }
            for (buf, p) in zip(step.factors.values, f.lora) {
                XCTAssertEqual(buf.array, p.before.floats, "\(f.name): factor order differs at \(p.name)")
            }
            let names = f.lora.map(\.name)
            XCTAssertEqual(step.lasso.groups.map { $0.map { names[$0] } }, f.structureGroups, f.name)

            let protos = try PrototypeTable(
                classes: f.classes, dim: f.dim, values: f.prototypeTable.floats,
                counts: [Int](repeating: 1, count: f.classes))
            let settings = try ObjectiveSettings(
                beta: f.beta, bound: f.bound, alpha: f.alpha, prototypeForgetWeight: f.protoForget,
                prototypeMargin: f.protoMargin, prototypeRetainWeight: f.protoRetain)
            let retainImages = f.retainImages.floats, forgetImages = f.forgetImages.floats
            func run() throws -> StepResult {
                try retainImages.withUnsafeBufferPointer { r in
                    try forgetImages.withUnsafeBufferPointer { fg in
                        try step.computeGradients(
                            retainImages: r, retainLabels: f.retain.labels, forgetImages: fg,
                            forgetLabels: f.forget.labels, prototypes: protos, settings: settings,
                            dropout: Float(f.dropout))
                    }
                }
            }

            // Step 1: every term, every gradient, then the factors after AdamW.
            let first = try run()
            let t = first.terms
            func check(_ ours: Double?, _ ref: Double, _ what: String) {
                guard let ours else { return XCTFail("\(f.name): \(what) not computed") }
                XCTAssertLessThan(Tolerance.relative(ours, ref), Tolerance.forward, "\(f.name): \(what) \(ours) vs \(ref)")
            }
            check(t.ceForget, try f.loss("ce_forget_raw"), "ce_forget_raw")
            check(t.ceRetain, try f.loss("loss_remain"), "loss_remain")
            check(t.boundedForget, try f.loss("bounded_forget"), "bounded_forget")
            XCTAssertEqual(t.boundedForgetActive, f.losses["bounded_forget_active"] as? Bool, f.name)
            check(t.structure, try f.loss("structure"), "structure")
            try checkKL(t.klForget, try f.loss("kl_forget"), f, f.forget.labels, model, forgetImages, "kl_forget")
            try checkKL(t.klRetain, try f.loss("kl_retain"), f, f.retain.labels, model, retainImages, "kl_retain")
            check(t.prototypeTerm, try f.loss("prototype_term"), "prototype_term")
            check(t.total, try f.loss("total"), "total")
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(step.gradient(i), p.grad.values), Tolerance.gradient, "\(f.name) \(p.name) grad")
            }
            try step.applyUpdate(lr: f.lr)
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(step.factors.values[i].array, p.after.values), Tolerance.forward, "\(f.name) \(p.name) after")
                XCTAssertEqual(step.optimizer.steps[i], 1, f.name)
            }

            // Step 2 on the same batch, from our own step-1 factors and optimiser state.
            let second = try run()
            check(second.terms.total, f.step2Total, "step-2 total")
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(step.gradient(i), p.grad2.values), Tolerance.gradient, "\(f.name) \(p.name) grad2")
            }
            try step.applyUpdate(lr: f.lr)
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(step.factors.values[i].array, p.after2.values), Tolerance.forward, "\(f.name) \(p.name) after2")
            }
        }
    }

    /// K against PyTorch at float32 resolution. The fixture's K (≈1e-4) is a float32 sum of P·(log P − log Q) with
    /// log P ≈ log Q, whose own rounding is ≈1e-3 of K (spec/TRAINING.md §6), so it is compared within the float32
    /// rounding budget 2⁻²⁴·mean_b Σ_d P(|log P| + |log Q|) of our embeddings; the budget must stay below 5 % of K for the
    /// check to mean anything. The prototype term and the total, where K enters, are checked at Tolerance.forward.
    private func checkKL(
        _ ours: Double?, _ ref: Double, _ f: ParityFixture, _ labels: [Int], _ model: ViT, _ images: [Float],
        _ key: String
    ) throws {
        let ours = try XCTUnwrap(ours, "\(f.name): \(key) not computed")
        let emb = try model.forward(images: images, batch: labels.count).embeddings
        let d = f.dim
        var budget = 0.0
        for (r, y) in labels.enumerated() {
            let p = logSoftmax(Array(f.prototypeTable.values[(y * d)..<((y + 1) * d)]))
            let q = logSoftmax(emb[(r * d)..<((r + 1) * d)].map(Double.init))
            for j in 0..<d { budget += Foundation.exp(p[j]) * (abs(p[j]) + abs(q[j])) }
        }
        budget *= 0x1p-24 / Double(labels.count)
        XCTAssertLessThan(abs(ours - ref), budget, "\(f.name): \(key) \(ours) vs \(ref)")
        XCTAssertLessThan(budget, 0.05 * abs(ref), "\(f.name): \(key) float32 budget too coarse to mean anything")
    }

    private func logSoftmax(_ x: [Double]) -> [Double] {
        let m = x.max() ?? 0
        let lse = m + Foundation.log(x.reduce(0) { $0 + Foundation.exp($1 - m) })
        return x.map { $0 - lse }
    }
}
