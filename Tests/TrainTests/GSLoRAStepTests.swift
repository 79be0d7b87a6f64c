import GSLoRAConvert
import GSLoRAModel
import GSLoRATraining
import TestSupport
import XCTest

/// One whole GS-LoRA++ step on the face fixtures: Apply's train-mode forward and backward driven by Train's
/// objective (retain batch forward/backward, then forget, then the structure term) must give PyTorch's LoRA
/// gradients, at the starting weights and again at the weights after one AdamW step, and our AdamW on those
/// gradients must land on PyTorch's stepped weights.
final class GSLoRAStepTests: XCTestCase {
    /// Adapter factors in the fixture's named_parameters order: per block fc1 (net.0) A, B, then fc2 (net.3) A, B.
    private func factors(_ a: LoRAAdapter) -> [FloatBuffer] {
        zip(a.fc1, a.fc2).flatMap { [$0.a, $0.b, $1.a, $1.b] }
    }

    private func factors(_ g: LoRAGradients) -> [FloatBuffer] {
        zip(g.fc1, g.fc2).flatMap { [$0.a, $0.b, $1.a, $1.b] }
    }

    func testGradientsOfTwoStepsMatchTorch() throws {
        let all = try ParityFixture.all()
        XCTAssertFalse(all.isEmpty, "no face_vit_*.parity.json in \(Fixtures.searched)")
        for f in all {
            let pth = Fixtures.sibling(f.url, replacing: ".parity.json", with: ".pth")
            let json = try Fixtures.json(f.url)
            let heads = (json["model_config"] as? [String: Any])?["heads"] as? Int
            let imported = try ModelImport.load(pth.path, options: ImportOptions(heads: heads))
            let config = try XCTUnwrap(imported.config, f.name)
            let rank = try XCTUnwrap(imported.loraRank), alpha = try XCTUnwrap(imported.loraAlpha)
            let adapter = try LoRAAdapter(config: config, tensors: imported.lora, scaling: Float(alpha / Double(rank)))
            let model = try ViT(config: config, weights: imported.weights, adapters: [adapter])
            let lora = factors(adapter)
            XCTAssertEqual(lora.count, f.lora.count, f.name)
            guard lora.count == f.lora.count else { continue }
            for (buf, p) in zip(lora, f.lora) {
                XCTAssertEqual(buf.array, p.before.floats, "\(f.name): adapter order differs at \(p.name)")
            }

            let head = try ClassifierHead(config.head, classes: config.numClasses, dim: config.width)
            let headWeight = model.parameters.head.weight.array
            let protos = try PrototypeTable(
                classes: f.classes, dim: f.dim, values: f.prototypeTable.floats,
                counts: [Int](repeating: 1, count: f.classes))
            let lasso = try GroupLasso(slots: try LoRASlot.parse(f.lora.map(\.name)), grouping: .block)
            let settings = try ObjectiveSettings(
                beta: f.beta, bound: f.bound, alpha: f.alpha, prototypeForgetWeight: f.protoForget,
                prototypeMargin: f.protoMargin, prototypeRetainWeight: f.protoRetain)
            let mode = ForwardMode.train(dropout: Float(f.dropout))

            func step() throws -> (total: Double, grads: [[Float]]) {
                let grads = ViTGradients(model: model, parameters: false)
                let outR = try model.forward(images: f.retainImages.floats, batch: f.retain.labels.count, labels: f.retain.labels, mode: mode)
                let r = try GSLoRAObjective.retainPart(
                    head: head, headWeight: headWeight, embeddings: outR.embeddings,
                    labels: f.retain.labels, prototypes: protos, settings: settings)
                try model.backward(gradEmbeddings: r.gradEmbeddings, into: grads)
                let outF = try model.forward(images: f.forgetImages.floats, batch: f.forget.labels.count, labels: f.forget.labels, mode: mode)
                let fg = try GSLoRAObjective.forgetPart(
                    head: head, headWeight: headWeight, embeddings: outF.embeddings,
                    labels: f.forget.labels, prototypes: protos, settings: settings)
                try model.backward(gradEmbeddings: fg.gradEmbeddings, into: grads)
                let values = lora.map(\.array)
                let result = try GSLoRAObjective.combine(r, fg, lora: values, lasso: lasso, settings: settings)
                let data = factors(grads.lora[0]).map(\.array)
                return (result.terms.total, zip(data, result.gradLoRA).map { zip($0, $1).map { $0 + $1 } })
            }

            let first = try step()
            XCTAssertLessThan(Tolerance.relative(first.total, try f.loss("total")), Tolerance.forward, "\(f.name) total")
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(first.grads[i], p.grad.values), Tolerance.gradient, "\(f.name) \(p.name) grad")
            }
            // Our AdamW on our gradients lands on PyTorch's weights after the step.
            var opt = try AdamW(
                parameters: f.lora.map { ($0.name, $0.shape) }, beta1: f.beta1, beta2: f.beta2,
                eps: f.eps, weightDecay: f.weightDecay)
            var stepped = f.lora.map(\.before.floats)
            try opt.step(parameters: &stepped, gradients: first.grads, lr: f.lr)
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(stepped[i], p.after.values), Tolerance.forward, "\(f.name) \(p.name) after")
            }
            // Second point: PyTorch's weights after one AdamW step.
            for (buf, p) in zip(lora, f.lora) { for (j, v) in p.after.values.enumerated() { buf.pointer[j] = Float(v) } }
            let second = try step()
            XCTAssertLessThan(Tolerance.relative(second.total, f.step2Total), Tolerance.forward, "\(f.name) step-2 total")
            for (i, p) in f.lora.enumerated() {
                XCTAssertLessThan(Tolerance.maxRelative(second.grads[i], p.grad2.values), Tolerance.gradient, "\(f.name) \(p.name) grad2")
            }
        }
    }
}
