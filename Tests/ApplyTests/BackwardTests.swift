import GSLoRAFormat
import GSLoRAModel
import XCTest

/// The hand-written backward pass against central finite differences of a fixed linear functional of the
/// embeddings, L = Σ e·R, on tiny random models (face and conv layouts, with dropout and two adapters).
final class BackwardTests: XCTestCase {
    static func tinyConfig(_ family: ModelConfig.Family, pooling: String = "cls") -> ModelConfig {
        ModelConfig(
            family: family, imageSize: 8, patchSize: 4, width: 8, depth: 2, heads: 2, headDim: 4, mlpWidth: 16,
            numClasses: 3, head: family == .faceViT ? .cosface : .linear, attentionScale: family == .faceViT ? 0.35 : 0.5,
            layerNormEps: 1e-5, qkvBias: family != .faceViT, pooling: pooling)
    }

    /// Adapters with non-zero B so that gradients reach A.
    static func adapter(_ c: ModelConfig, rank: Int, seed: UInt64) throws -> LoRAAdapter {
        let a = try LoRAAdapter(config: c, rank: rank, scaling: 0.5, seed: seed)
        var rng = SplitMix64(seed: seed ^ 99)
        for f in a.fc1 + a.fc2 { for i in 0..<f.b.count { f.b.pointer[i] = (rng.nextUnitFloat() - 0.5) * 0.6 } }
        return a
    }

    struct Setup {
        let model: ViT
        let images: [Float]
        let batch: Int
        let weights: [Float] // R
        let mode: ForwardMode

        /// L in Double, after reseeding dropout so every evaluation draws the same masks.
        func loss() throws -> Double {
            model.dropoutSeed = 5
            let e = try model.forward(images: images, batch: batch, mode: mode).embeddings
            return zip(e, weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
    }

    func makeSetup(_ family: ModelConfig.Family, dropout: Float, pooling: String = "cls") throws -> Setup {
        let c = Self.tinyConfig(family, pooling: pooling)
        let params = try ViTParameters.random(config: c, seed: 11)
        // Non-trivial LayerNorm affine parameters, so their gradients are exercised too.
        var rng = SplitMix64(seed: 12)
        for b in params.blocks {
            for n in [b.norm1, b.norm2] {
                for i in 0..<c.width { n.weight.pointer[i] = 0.5 + rng.nextUnitFloat(); n.bias.pointer[i] = rng.nextUnitFloat() - 0.5 }
            }
        }
        let model = try ViT(config: c, parameters: params, adapters: [try Self.adapter(c, rank: 2, seed: 3), try Self.adapter(c, rank: 3, seed: 4)])
        let batch = 3
        let images = (0..<(batch * c.channels * c.imageSize * c.imageSize)).map { _ in rng.nextUnitFloat() }
        let weights = (0..<(batch * c.width)).map { _ in rng.nextUnitFloat() * 2 - 1 }
        return Setup(model: model, images: images, batch: batch, weights: weights, mode: .train(dropout: dropout))
    }

    /// Compares analytic and numeric gradients of up to `samples` entries of each buffer: max |analytic − numeric|
    /// over the checked entries relative to the buffer's largest analytic gradient. Central differences in float32
    /// with h = 2e-3 carry up to ~1e-3 of rounding and truncation error (at h = 1e-2 the class-token entries,
    /// which feed a LayerNorm of small-variance rows, already show 3 % truncation error), hence the 1e-2 bound.
    func check(_ s: Setup, _ pairs: [(String, FloatBuffer, FloatBuffer)], samples: Int = 6) throws {
        for (name, value, grad) in pairs {
            let maxGrad = grad.array.map { abs(Double($0)) }.max() ?? 0
            XCTAssertGreaterThan(maxGrad, 1e-6, "\(name): gradient is all zero, the check would prove nothing")
            var worst = 0.0
            let step = max(1, value.count / samples)
            for i in stride(from: 0, to: value.count, by: step) {
                let keep = value.pointer[i], h: Float = 2e-3
                value.pointer[i] = keep + h
                let up = try s.loss()
                value.pointer[i] = keep - h
                let down = try s.loss()
                value.pointer[i] = keep
                let numeric = (up - down) / Double(2 * h)
                worst = max(worst, abs(numeric - Double(grad.pointer[i])))
            }
            XCTAssertLessThanOrEqual(worst / maxGrad, 1e-2, "\(name): finite-difference mismatch \(worst) vs max gradient \(maxGrad)")
        }
    }

    func gradients(_ s: Setup, parameters: Bool) throws -> ViTGradients {
        let g = ViTGradients(model: s.model, parameters: parameters)
        _ = try s.loss()
        try s.model.backward(gradEmbeddings: s.weights, into: g)
        return g
    }

    func loraPairs(_ s: Setup, _ g: ViTGradients) -> [(String, FloatBuffer, FloatBuffer)] {
        var out: [(String, FloatBuffer, FloatBuffer)] = []
        for (k, (a, ga)) in zip(s.model.adapters, g.lora).enumerated() {
            for l in 0..<a.fc1.count {
                out += [
                    ("adapter \(k) block \(l) fc1.A", a.fc1[l].a, ga.fc1[l].a), ("adapter \(k) block \(l) fc1.B", a.fc1[l].b, ga.fc1[l].b),
                    ("adapter \(k) block \(l) fc2.A", a.fc2[l].a, ga.fc2[l].a), ("adapter \(k) block \(l) fc2.B", a.fc2[l].b, ga.fc2[l].b)
                ]
            }
        }
        return out
    }

    func testLoRAGradientsMatchFiniteDifferences() throws {
        for (family, pooling) in [(ModelConfig.Family.faceViT, "cls"), (.timmViT, "cls"), (.timmViT, "avg")] {
            for p: Float in [0, 0.25] {
                let s = try makeSetup(family, dropout: p, pooling: pooling)
                try check(s, loraPairs(s, try gradients(s, parameters: false)))
            }
        }
    }

    func testAllParameterGradientsMatchFiniteDifferences() throws {
        for (family, pooling) in [(ModelConfig.Family.faceViT, "cls"), (.torchvisionViT, "cls"), (.timmViT, "avg")] {
            let s = try makeSetup(family, dropout: 0.25, pooling: pooling)
            let g = try gradients(s, parameters: true)
            let names =
                ["cls", "pos", "patch.W", "patch.b"]
                + (0..<s.model.config.depth).flatMap { l in
                    ["norm1.w", "norm1.b", "qkv.W"] + (s.model.config.qkvBias ? ["qkv.b"] : [])
                        + ["proj.W", "proj.b", "norm2.w", "norm2.b", "fc1.W", "fc1.b", "fc2.W", "fc2.b"].map { "\(l).\($0)" }
                } + ["norm.w", "norm.b"]
            let values = s.model.parameters.allBuffers, grads = try XCTUnwrap(g.parameters).allBuffers
            // The head's gradient comes from the loss side, not from backward(gradEmbeddings:).
            let checked = Array(zip(names, zip(values, grads)).map { ($0, $1.0, $1.1) })
            XCTAssertEqual(checked.count, values.count - (s.model.config.head.kind == .linear ? 2 : 1))
            try check(s, checked + loraPairs(s, g), samples: 4)
        }
    }

    /// Gradients add up over calls until zero(); backward before a training forward is refused.
    func testGradientsAccumulateAndNeedTrainingForward() throws {
        let s = try makeSetup(.faceViT, dropout: 0)
        let g = try gradients(s, parameters: false)
        let once = g.lora[0].fc2[1].b.array
        try s.model.backward(gradEmbeddings: s.weights, into: g)
        XCTAssertEqual(g.lora[0].fc2[1].b.array, once.map { $0 + $0 })
        g.zero()
        XCTAssertTrue(g.lora[0].fc2[1].b.array.allSatisfy { $0 == 0 })
        _ = try s.model.forward(images: s.images, batch: s.batch, mode: .eval)
        XCTAssertThrowsError(try s.model.backward(gradEmbeddings: s.weights, into: g))
    }

    /// A frozen model's blocks share the inputs of qkv and proj: the LoRA gradients are the same to the bit, and a
    /// backward pass asking for weight gradients after such a forward is refused.
    func testSharedWeightInputsGiveTheSameLoRAGradients() throws {
        for family in [ModelConfig.Family.faceViT, .timmViT] {
            let s = try makeSetup(family, dropout: 0.25)
            let kept = try gradients(s, parameters: false)
            s.model.keepsWeightGradientInputs = false
            let shared = try gradients(s, parameters: false)
            for ((name, _, a), (_, _, b)) in zip(loraPairs(s, kept), loraPairs(s, shared)) {
                XCTAssertEqual(a.array, b.array, "\(family) \(name)")
            }
            XCTAssertThrowsError(try gradients(s, parameters: true)) { e in
                XCTAssertTrue("\(e)".contains("keepsWeightGradientInputs"), "\(e)")
            }
            s.model.keepsWeightGradientInputs = true
            XCTAssertNoThrow(try gradients(s, parameters: true))
        }
    }

    /// The backward pass recomputes the softmax probabilities and the GELU output rather than keeping them; it must
    /// not disturb what it reads, so a second backward pass after one forward gives bit-identical gradients, with
    /// dropout, in both layouts and with and without a class-only last block.
    func testBackwardIsRepeatable() throws {
        for family in [ModelConfig.Family.faceViT, .timmViT] {
            for allTokens in [false, true] {
                let s = try makeSetup(family, dropout: 0.2)
                s.model.allTokensInLastBlock = allTokens
                let first = try gradients(s, parameters: true)
                let second = ViTGradients(model: s.model, parameters: true)
                try s.model.backward(gradEmbeddings: s.weights, into: second)
                let a = first.lora.flatMap { ($0.fc1 + $0.fc2).flatMap { [$0.a.array, $0.b.array] } }
                let b = second.lora.flatMap { ($0.fc1 + $0.fc2).flatMap { [$0.a.array, $0.b.array] } }
                XCTAssertEqual(a, b, "\(family) allTokens \(allTokens): LoRA gradients")
                XCTAssertEqual(
                    first.parameters!.allBuffers.map(\.array), second.parameters!.allBuffers.map(\.array),
                    "\(family) allTokens \(allTokens): weight gradients")
            }
        }
    }

    /// The FFN's hidden dropout is drawn inside the fused GELU kernel rather than stored: each (row, column) has its
    /// own draw at the configured rate, and each call draws afresh. (The gradient checks above cannot see a mask
    /// that repeats per row: the backward pass reuses whatever the forward drew.)
    func testHiddenDropoutDrawsEveryElement() throws {
        let t = Self.tinyConfig(.faceViT)
        let c = ModelConfig(
            family: t.family, imageSize: t.imageSize, patchSize: t.patchSize, width: t.width, depth: t.depth, heads: t.heads,
            headDim: t.headDim, mlpWidth: 512, numClasses: t.numClasses, head: t.head, attentionScale: t.attentionScale,
            layerNormEps: t.layerNormEps, qkvBias: t.qkvBias)
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 5))
        // The GELU output of the block just run stays in `activations.hidden`: the last block's, over every token.
        model.allTokensInLastBlock = true
        var rng = SplitMix64(seed: 6)
        let batch = 3, images = (0..<(batch * c.channels * c.imageSize * c.imageSize)).map { _ in rng.nextUnitFloat() }
        func droppedPattern() throws -> [[Bool]] {
            _ = try model.forward(images: images, batch: batch, mode: .train(dropout: 0.5))
            let h = model.activations.hidden.array
            return stride(from: 0, to: h.count, by: c.mlpWidth).map { h[$0..<($0 + c.mlpWidth)].map { $0 == 0 } }
        }
        let first = try droppedPattern()
        XCTAssertEqual(first.count, batch * c.numTokens)
        let rate = Double(first.joined().filter { $0 }.count) / Double(first.count * c.mlpWidth)
        XCTAssertEqual(rate, 0.5, accuracy: 0.03, "dropped fraction")
        XCTAssertEqual(Set(first).count, first.count, "every row must draw its own mask")
        XCTAssertNotEqual(try droppedPattern(), first, "a second call must draw a fresh mask")
    }
}
