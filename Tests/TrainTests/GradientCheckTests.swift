import Foundation
import GSLoRAModel
import GSLoRATraining
import XCTest

/// Analytic gradients against central finite differences, everything in Double.
final class GradientCheckTests: XCTestCase {
    /// Central differences in Double with this step leave errors near 1e-9 of the gradient scale; 1e-6 still
    /// catches any wrong factor or sign.
    private let fdTolerance = 1e-6
    private let h = 1e-6

    private func random(_ n: Int, _ rng: inout SplitMix64, scale: Double = 1) -> [Double] {
        (0..<n).map { _ in (Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) * scale }
    }

    private func numeric(_ x: [Double], step: Double? = nil, _ f: ([Double]) throws -> Double) rethrows -> [Double] {
        let h = step ?? self.h
        var g = [Double](repeating: 0, count: x.count)
        var y = x
        for i in x.indices {
            y[i] = x[i] + h
            let up = try f(y)
            y[i] = x[i] - h
            let down = try f(y)
            y[i] = x[i]
            g[i] = (up - down) / (2 * h)
        }
        return g
    }

    private func assertClose(_ a: [Double], _ b: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        guard a.count == b.count else { return }
        let num = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        let den = max(b.map(abs).max() ?? 0, 1e-12)
        XCTAssertFalse(a.contains { $0.isNaN }, "\(what): NaN", file: file, line: line)
        XCTAssertLessThan(num / den, fdTolerance, "\(what): analytic vs numeric", file: file, line: line)
        XCTAssertGreaterThan(den, 1e-9, "\(what): the check is vacuous (zero gradient)", file: file, line: line)
    }

    func testCrossEntropyLogits() throws {
        var rng = SplitMix64(seed: 1)
        let labels = [2, 0, 4]
        let z = random(15, &rng, scale: 3)
        let g = try CrossEntropy.mean(logits: z, labels: labels, classes: 5).gradLogits
        assertClose(g, try numeric(z) { try CrossEntropy.mean(logits: $0, labels: labels, classes: 5).mean }, "CE")
    }

    private func checkHead(_ kind: ClassifierHead.Kind, seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let b = 3, d = 6, c = 5
        let labels = [1, 4, 0]
        let head = try ClassifierHead(kind: kind, classes: c, dim: d)
        let e = random(b * d, &rng, scale: 2), w = random(c * d, &rng), bias = random(c, &rng)
        let useBias: [Double]? = kind == .linear ? bias : nil
        func loss(_ e: [Double], _ w: [Double], _ bias: [Double]?) throws -> Double {
            let fw = try head.forward(embeddings: e, weight: w, bias: bias, labels: labels)
            return try CrossEntropy.mean(logits: fw.logits, labels: labels, classes: c).mean
        }
        let fw = try head.forward(embeddings: e, weight: w, bias: useBias, labels: labels)
        let ce = try CrossEntropy.mean(logits: fw.logits, labels: labels, classes: c)
        let g = try fw.backward(gradLogits: ce.gradLogits)
        assertClose(g.embeddings, try numeric(e) { try loss($0, w, useBias) }, "\(kind) embeddings")
        assertClose(g.weight, try numeric(w) { try loss(e, $0, useBias) }, "\(kind) weight")
        if let useBias {
            assertClose(try XCTUnwrap(g.bias), try numeric(useBias) { try loss(e, w, $0) }, "\(kind) bias")
        }
    }

    func testCosFaceHead() throws { try checkHead(.cosface(s: 64, m: 0.35), seed: 2) }
    func testArcFaceHead() throws { try checkHead(.arcface(s: 64, m: 0.5), seed: 3) }
    func testLinearHead() throws { try checkHead(.linear, seed: 4) }

    func testCosFaceMarginOnlyOnLabelColumn() throws {
        var rng = SplitMix64(seed: 5)
        let head = try ClassifierHead(kind: .cosface(s: 64, m: 0.35), classes: 4, dim: 3)
        let e = random(6, &rng), w = random(12, &rng)
        let plain = try head.forward(embeddings: e, weight: w, labels: nil)
        let margin = try head.forward(embeddings: e, weight: w, labels: [3, 1])
        for r in 0..<2 {
            for k in 0..<4 {
                let expected = 64 * (plain.cosines[r * 4 + k] - (k == [3, 1][r] ? 0.35 : 0))
                XCTAssertEqual(margin.logits[r * 4 + k], expected, accuracy: 1e-12)
            }
        }
        // A zero embedding is clamped, not divided by zero.
        let zero = try head.forward(embeddings: [0, 0, 0], weight: w, labels: [0])
        XCTAssertFalse(zero.logits.contains { $0.isNaN })
    }

    func testPrototypeDivergence() throws {
        var rng = SplitMix64(seed: 6)
        let d = 7, labels = [0, 2, 2, 1]
        let protos = try PrototypeTable.mean(embeddings: random(5 * d, &rng).map(Float.init), labels: [0, 1, 2, 2, 1], dim: d, classes: 3)
        let e = random(labels.count * d, &rng, scale: 2)
        let r = try PrototypeDivergence.kl(embeddings: e, labels: labels, prototypes: protos)
        XCTAssertGreaterThan(r.value, 0)
        assertClose(r.gradEmbeddings, try numeric(e) { try PrototypeDivergence.kl(embeddings: $0, labels: labels, prototypes: protos).value }, "KL")
        XCTAssertThrowsError(try PrototypeDivergence.kl(embeddings: e, labels: [0, 2, 2, 3], prototypes: protos))
    }

    /// KL(P‖Q), not KL(Q‖P): P = softmax([0, 0]) = (½, ½), Q = softmax([log 3, 0]) = (¾, ¼) gives ½·log(4/3);
    /// the reverse direction would give ¾·log(3/2) + ¼·log(½).
    func testPrototypeDivergenceDirection() throws {
        let protos = try PrototypeTable(classes: 1, dim: 2, values: [0, 0], counts: [1])
        let r = try PrototypeDivergence.kl(embeddings: [Foundation.log(3.0), 0], labels: [0], prototypes: protos)
        XCTAssertEqual(r.value, 0.5 * Foundation.log(4.0 / 3.0), accuracy: 1e-15)
    }

    func testGroupLassoEveryGrouping() throws {
        var rng = SplitMix64(seed: 7)
        let names = (0..<2).flatMap { b in
            ["layers.\(b).1.net.0.lora_A", "layers.\(b).1.net.0.lora_B", "layers.\(b).1.net.3.lora_A", "layers.\(b).1.net.3.lora_B"]
        }
        let sizes = [8, 12, 12, 8, 8, 12, 12, 8]
        let tensors = sizes.map { random($0, &rng) }
        for grouping in LoRAGrouping.allCases {
            let lasso = try GroupLasso(slots: try LoRASlot.parse(names), grouping: grouping)
            let g = try lasso.gradient(tensors, scale: 0.3)
            for i in tensors.indices {
                let num = try numeric(tensors[i]) { t in
                    var all = tensors
                    all[i] = t
                    return 0.3 * (try lasso.value(all).loss)
                }
                assertClose(g[i], num, "\(grouping) tensor \(i)")
            }
        }
    }

    func testGroupLassoGroupOrder() throws {
        let names = (0..<3).flatMap { b in
            ["blocks.\(b).mlp.fc1.lora_A", "blocks.\(b).mlp.fc1.lora_B", "blocks.\(b).mlp.fc2.lora_A", "blocks.\(b).mlp.fc2.lora_B"]
        }
        let slots = try LoRASlot.parse(names)
        XCTAssertEqual(try GroupLasso(slots: slots, grouping: .block).groups, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
        XCTAssertEqual(try GroupLasso(slots: slots, grouping: .lora).groups, [[0, 1], [4, 5], [8, 9], [2, 3], [6, 7], [10, 11]])
        XCTAssertEqual(try GroupLasso(slots: slots, grouping: .matrix).groups, (0..<12).map { [$0] })
        let tv = try LoRASlot.parse(["encoder.layers.encoder_layer_11.mlp.0.lora_A"])
        XCTAssertEqual(tv.first?.block, 11)
        XCTAssertThrowsError(try LoRASlot.parse(["head.weight"]))
    }

    func testGroupLassoZeroGroupIsSafe() throws {
        // matrix grouping at LoRA init: every B is exactly zero, so its group norm is 0.
        let names = ["layers.0.net.0.lora_A", "layers.0.net.0.lora_B"]
        let lasso = try GroupLasso(slots: try LoRASlot.parse(names), grouping: .matrix)
        let tensors: [[Float]] = [[0.5, -0.25, 0, 1], [0, 0, 0, 0]]
        let v = try lasso.value(tensors)
        XCTAssertEqual(v.groupNorms[1], 0)
        let g = try lasso.gradient(tensors)
        XCTAssertEqual(g[1], [0, 0, 0, 0])
        XCTAssertFalse(g[0].contains { $0.isNaN })
        XCTAssertEqual(Double(g[0][3]), 1 / 1.3125.squareRoot(), accuracy: 1e-6)
    }

    func testReportedNormsDifferFromLossNorms() throws {
        let lasso = try GroupLasso(groups: [[0, 1]], tensorCount: 2)
        let v = try lasso.value([[3.0, 4.0], [0.0, 12.0]] as [[Double]])
        XCTAssertEqual(v.loss, 13, accuracy: 1e-12)
        XCTAssertEqual(v.reportedNorms, [17])
        XCTAssertEqual(v.reportedL1, [19])
    }

    func testObjectiveThroughHead() throws {
        var rng = SplitMix64(seed: 8)
        let d = 6, c = 5
        let head = try ClassifierHead(kind: .cosface(s: 64, m: 0.35), classes: c, dim: d)
        let w = random(c * d, &rng)
        let protos = try PrototypeTable.mean(
            embeddings: random(c * 2 * d, &rng).map(Float.init), labels: (0..<(2 * c)).map { $0 % c },
            dim: d, classes: c)
        let rLabels = [2, 3, 4], fLabels = [0, 1]
        let eR = random(3 * d, &rng, scale: 2), eF = random(2 * d, &rng, scale: 2)
        let lora = [random(6, &rng), random(4, &rng)]
        let lasso = try GroupLasso(groups: [[0, 1]], tensorCount: 2)
        // BND and M above the current values, so both hinges are active; w_r > 0 so the retain pull is checked too.
        let settings = try ObjectiveSettings(
            beta: 0.2, bound: 1000, alpha: 0.01, prototypeForgetWeight: 0.5,
            prototypeMargin: 50, prototypeRetainWeight: 0.3)
        func total(_ eR: [Double], _ eF: [Double], _ lora: [[Double]], _ w: [Double], _ s: ObjectiveSettings) throws -> Double {
            try GSLoRAObjective.evaluate(
                head: head, headWeight: w, retainEmbeddings: eR, retainLabels: rLabels,
                forgetEmbeddings: eF, forgetLabels: fLabels, prototypes: protos,
                lora: lora, lasso: lasso, settings: s
            ).terms.total
        }
        let r = try GSLoRAObjective.evaluate(
            head: head, headWeight: w, retainEmbeddings: eR, retainLabels: rLabels,
            forgetEmbeddings: eF, forgetLabels: fLabels, prototypes: protos,
            lora: lora, lasso: lasso, settings: settings)
        XCTAssertTrue(r.terms.boundedForgetActive)
        assertClose(r.retain.gradEmbeddings, try numeric(eR) { try total($0, eF, lora, w, settings) }, "dL/de retain")
        assertClose(r.forget.gradEmbeddings, try numeric(eF) { try total(eR, $0, lora, w, settings) }, "dL/de forget")
        assertClose(
            zip(try XCTUnwrap(r.retain.gradHeadWeight), try XCTUnwrap(r.forget.gradHeadWeight)).map { $0 + $1 },
            try numeric(w) { try total(eR, eF, lora, $0, settings) }, "dL/dW")
        // α·L_struct is ~1e-4 of a total near 50: a wider step keeps the difference above the total's rounding.
        assertClose(r.gradLoRA[0], try numeric(lora[0], step: 1e-4) { try total(eR, eF, [$0, lora[1]], w, settings) }, "dL/dA")

        // Once the mean forget CE passes BND, the forget data term has no gradient left.
        var low = settings
        low.bound = 0
        low.prototypeForgetWeight = 0
        low.prototypeRetainWeight = 0
        let off = try GSLoRAObjective.evaluate(
            head: head, headWeight: w, retainEmbeddings: eR, retainLabels: rLabels,
            forgetEmbeddings: eF, forgetLabels: fLabels, prototypes: protos,
            lora: lora, lasso: lasso, settings: low)
        XCTAssertFalse(off.terms.boundedForgetActive)
        XCTAssertEqual(off.terms.boundedForget, 0)
        XCTAssertTrue(off.forget.gradEmbeddings.allSatisfy { $0 == 0 })
    }
}
