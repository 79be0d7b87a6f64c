import Foundation
import GSLoRAConvert
import GSLoRATraining
import TestSupport
import XCTest

/// The CosFace path from the file's embeddings and the head weight stored in the sibling `.pth` (`loss.weight`):
/// logits with and without margin, the CEs and the whole objective through the head, against PyTorch.
final class HeadWeightParityTests: XCTestCase {
    private func headWeight(for f: ParityFixture) throws -> [Float] {
        let pth = Fixtures.sibling(f.url, replacing: ".parity.json", with: ".pth")
        guard case let .dict(entries) = try TorchCheckpoint.load(pth.path) else {
            throw FixtureError.malformed(pth.lastPathComponent, "not a state dict")
        }
        guard case let .tensor(t)? = entries.first(where: { $0.key == "loss.weight" })?.value else {
            throw FixtureError.malformed(pth.lastPathComponent, "no loss.weight tensor")
        }
        XCTAssertEqual(t.shape, [f.classes, f.dim], f.name)
        let w = DTypeCast.cast(t, to: .f32)
        return (0..<w.count).map { w.data.buffer.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
    }

    func testCosFaceFromEmbeddingsAndWeight() throws {
        let all = try ParityFixture.all()
        XCTAssertFalse(all.isEmpty, "no face_vit_*.parity.json in \(Fixtures.searched)")
        for f in all {
            let w = try headWeight(for: f)
            let head = try ClassifierHead(kind: .cosface(s: f.s, m: f.m), classes: f.classes, dim: f.dim)
            for (batch, what) in [(f.forget, "forget"), (f.retain, "retain")] {
                let margin = try head.forward(embeddings: batch.embeddings, weight: w, labels: batch.labels)
                let plain = try head.forward(embeddings: batch.embeddings, weight: w, labels: nil)
                XCTAssertLessThan(
                    Tolerance.maxRelative(margin.logits, batch.logitsMargin.map(Double.init)), Tolerance.forward, "\(f.name) \(what) margin logits")
                XCTAssertLessThan(Tolerance.maxRelative(plain.logits, batch.logitsPlain.map(Double.init)), Tolerance.forward, "\(f.name) \(what) plain logits")
            }
            let protos = try PrototypeTable(
                classes: f.classes, dim: f.dim, values: f.prototypeTable.floats,
                counts: [Int](repeating: 1, count: f.classes))
            let names = f.lora.map(\.name)
            let lasso = try GroupLasso(slots: try LoRASlot.parse(names), grouping: .block)
            let settings = try ObjectiveSettings(
                beta: f.beta, bound: f.bound, alpha: f.alpha, prototypeForgetWeight: f.protoForget,
                prototypeMargin: f.protoMargin, prototypeRetainWeight: f.protoRetain)
            let r = try GSLoRAObjective.evaluate(
                head: head, headWeight: w, retainEmbeddings: f.retain.embeddings, retainLabels: f.retain.labels,
                forgetEmbeddings: f.forget.embeddings, forgetLabels: f.forget.labels,
                prototypes: protos, lora: f.lora.map(\.before.floats), lasso: lasso, settings: settings)
            XCTAssertLessThan(Tolerance.relative(r.terms.ceForget, try f.loss("ce_forget_raw")), Tolerance.forward, f.name)
            XCTAssertLessThan(Tolerance.relative(r.terms.ceRetain, try f.loss("loss_remain")), Tolerance.forward, f.name)
            XCTAssertLessThan(Tolerance.relative(r.terms.boundedForget, try f.loss("bounded_forget")), Tolerance.forward, f.name)
            XCTAssertLessThan(Tolerance.relative(r.terms.total, try f.loss("total")), Tolerance.forward, f.name)
            XCTAssertEqual(r.forget.gradEmbeddings.count, f.forget.embeddings.count, f.name)
            XCTAssertFalse(r.forget.gradEmbeddings.contains { !$0.isFinite }, f.name)
        }
    }
}
