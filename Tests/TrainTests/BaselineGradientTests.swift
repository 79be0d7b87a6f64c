import Foundation
import GSLoRAModel
import GSLoRATraining
import XCTest

/// The baselines' own loss gradients against central finite differences, and Apply's stream-gradient injection that
/// LIRF's attention transfer uses (the parity fixture cannot see that gradient: the term is 1e-6 there).
final class BaselineGradientTests: XCTestCase {
    /// The functions take float32 inputs and reduce in Double: a float32-representable step of 2⁻⁷ leaves O(h²) errors
    /// near 1e-5 of the gradient scale; 1e-3 still catches any wrong factor, sign or mask.
    private let tolerance = 1e-3

    private func random(_ n: Int, _ rng: inout SplitMix64, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in (rng.nextUnitFloat() * 2 - 1) * scale }
    }

    private func check(_ x: [Float], _ analytic: [Float], _ what: String, _ f: ([Float]) throws -> Double) rethrows {
        let h: Float = 0x1p-7
        var y = x, num = 0.0, den = 0.0
        for i in x.indices {
            y[i] = x[i] + h
            let up = try f(y)
            y[i] = x[i] - h
            let down = try f(y)
            y[i] = x[i]
            let g = (up - down) / Double(2 * h)
            num = max(num, abs(g - Double(analytic[i])))
            den = max(den, abs(g))
        }
        XCTAssertGreaterThan(den, 1e-6, "\(what): vacuous check (zero gradient)")
        XCTAssertLessThan(num / den, tolerance, "\(what): analytic vs numeric")
    }

    func testDistillationGradients() throws {
        var rng = SplitMix64(seed: 3)
        let b = 3, c = 5
        let zs = random(b * c, &rng, scale: 4), zt = random(b * c, &rng, scale: 4)
        try check(zs, try Distillation.fdr(student: zs, teacher: zt, classes: c).gradient, "FDR") {
            try Distillation.fdr(student: $0, teacher: zt, classes: c).value
        }
        try check(zs, try Distillation.der(student: zs, teacher: zt).gradient, "DER") { try Distillation.der(student: $0, teacher: zt).value }
        try check(zs, try Distillation.scrubKD(student: zs, teacher: zt, classes: c, temperature: 2).gradient, "SCRUB KD") {
            try Distillation.scrubKD(student: $0, teacher: zt, classes: c, temperature: 2).value
        }
        try check(zs, try Distillation.klBatchMean(student: zs, teacher: zt, classes: c, columns: 2..<5, temperature: 3).gradient, "LIRF KL") {
            try Distillation.klBatchMean(student: $0, teacher: zt, classes: c, columns: 2..<5, temperature: 3).value
        }
        try check(zs, try Distillation.lwfIntended(student: zs, teacher: zt, classes: c, temperature: 2).gradient, "LwF KD") {
            try Distillation.lwfIntended(student: $0, teacher: zt, classes: c, temperature: 2).value
        }
    }

    func testAttentionTransferGradient() throws {
        var rng = SplitMix64(seed: 5)
        let b = 2, t = 3, d = 8
        // Token values around ±1 with one small channel per image, so the 0.005 cut is crossed by neither FD side.
        var ms = random(b * t * d, &rng), mt = random(b * t * d, &rng)
        for i in 0..<b { for k in 0..<t { ms[(i * t + k) * d] = 0.01; mt[(i * t + k) * d + 1] = 0.01 } }
        let r = try Distillation.attentionTransfer(student: ms, teacher: mt, batch: b, tokens: t, width: d)
        XCTAssertGreaterThan(r.value, 0)
        try check(ms, r.gradient, "attention transfer") {
            try Distillation.attentionTransfer(student: $0, teacher: mt, batch: b, tokens: t, width: d).value
        }
    }

    /// ∂(Σ G ⊙ m)/∂θ through `backward(…, stream:)` for the stream m entering block 1, against finite differences of
    /// a few lower-half parameters (float32 forward, step 2⁻⁷ on values near 0.1–1, tolerance 1e-2 for float32's
    /// rounding of the sum).
    func testStreamGradientInjection() throws {
        let model = try ViT(config: TinyRun.config, weights: try TinyRun.weights())
        let m = try FullParameterModel(model: model) { _ in true }
        let c = TinyRun.config, batch = 2
        var rng = SplitMix64(seed: 11)
        let images = random(batch * c.channels * c.imageSize * c.imageSize, &rng)
        let labels = [1, 4]
        let n = batch * c.numTokens * c.width
        let g = random(n, &rng)
        func functional() throws -> Double {
            _ = try m.forward(images: images, labels: labels, dropout: 0)
            return zip(m.streamEntering(1, batch: batch), g).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        m.zeroGradients()
        let pass = try m.forward(images: images, labels: labels, dropout: 0)
        try m.backward(pass, gradLogits: nil, gradEmbeddings: nil, stream: (1, g))
        for name in ["patch_embed.bias", "blocks.0.mlp.fc1.weight", "blocks.0.norm1.weight", "pos_embed"] {
            let i = try XCTUnwrap(m.index(of: name))
            for j in [0, 3] {
                let v = m.values[i].pointer[j], h: Float = 0x1p-7
                m.values[i].pointer[j] = v + h
                let up = try functional()
                m.values[i].pointer[j] = v - h
                let down = try functional()
                m.values[i].pointer[j] = v
                let numeric = (up - down) / Double(2 * h), analytic = Double(m.gradients[i].pointer[j])
                XCTAssertGreaterThan(abs(numeric), 1e-3, "\(name)[\(j)]: vacuous")
                XCTAssertLessThan(abs(numeric - analytic) / abs(numeric), 1e-2, "\(name)[\(j)]: \(analytic) vs \(numeric)")
            }
        }
        // Blocks at and above the injection point get nothing from it.
        let upper = try XCTUnwrap(m.index(of: "blocks.1.mlp.fc1.weight"))
        XCTAssertTrue(m.gradients[upper].array.allSatisfy { $0 == 0 })
    }
}
