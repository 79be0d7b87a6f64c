import GSLoRAFormat
import GSLoRAModel
import TestSupport
import XCTest

/// The fused LoRA kernels at sizes the other tests do not reach: an FFN wider than two column tiles with a ragged
/// last tile (mlp 1100), an odd width (37), row counts that leave partial row blocks, and four adapters of ranks
/// 1, 3, 4 and 9 (every mix of the four-wide SIMD groups and their remainders). Outputs and gradients must equal the
/// merged model's (W + Σ scaling·B·A, plain GEMMs): float32 central differences reach ~1e-2 relative error at these
/// sizes, too close to any bound that would catch a wrong tile.
final class LoRAKernelTests: XCTestCase {
    static let config = ModelConfig(
        family: .faceViT, imageSize: 8, patchSize: 4, width: 37, depth: 2, heads: 2, headDim: 8,
        mlpWidth: 1100, numClasses: 3, head: .cosface, attentionScale: 0.35, layerNormEps: 1e-5,
        qkvBias: false)
    static let ranks = [1, 3, 4, 9]
    static let batch = 3

    /// A model with the four adapters (non-zero B, so every factor's gradient is non-zero) and the inputs.
    func makeModel() throws -> (ViT, images: [Float], weights: [Float]) {
        let c = Self.config
        var rng = SplitMix64(seed: 31)
        let adapters = try Self.ranks.enumerated().map { i, rank in
            let a = try LoRAAdapter(config: c, rank: rank, scaling: 0.5, seed: UInt64(40 + i))
            for f in a.fc1 + a.fc2 { for j in 0..<f.b.count { f.b.pointer[j] = (rng.nextUnitFloat() - 0.5) * 0.4 } }
            return a
        }
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 32), adapters: adapters)
        let images = (0..<(Self.batch * c.channels * c.imageSize * c.imageSize)).map { _ in rng.nextUnitFloat() }
        let weights = (0..<(Self.batch * c.width)).map { _ in rng.nextUnitFloat() * 2 - 1 }
        return (model, images, weights)
    }

    /// Live adapters against the merged weights, on every token of both blocks, in eval and in training with and
    /// without dropout (both models draw the same masks). The adapters must move the output by far more than the bound.
    func testForwardMatchesMergedWeights() throws {
        let (model, images, _) = try makeModel()
        let merged = try model.merged()
        let plain = try ViT(config: model.config, parameters: model.parameters)
        for m in [model, merged, plain] { m.allTokensInLastBlock = true }
        for mode in [ForwardMode.eval, .train(dropout: 0), .train(dropout: 0.25)] {
            for m in [model, merged, plain] { m.dropoutSeed = 7 }
            let live = try model.forward(images: images, batch: Self.batch, mode: mode).preNormCLS
            let liveStream = model.activations.stream.array
            let folded = try merged.forward(images: images, batch: Self.batch, mode: mode).preNormCLS
            let foldedStream = merged.activations.stream.array
            let without = try plain.forward(images: images, batch: Self.batch, mode: mode).preNormCLS
            let err = Tolerance.maxRelative(live, folded.map(Double.init))
            let streamErr = Tolerance.maxRelative(liveStream, foldedStream.map(Double.init))
            let effect = Tolerance.maxRelative(without, folded.map(Double.init))
            XCTAssertLessThanOrEqual(err, 1e-5, "\(mode): live vs merged class rows, relative error \(err)")
            XCTAssertLessThanOrEqual(streamErr, 1e-5, "\(mode): live vs merged token stream, relative error \(streamErr)")
            XCTAssertGreaterThan(effect, 1e-2, "\(mode): the adapters barely change the output, the comparison proves nothing")
        }
    }

    /// One training forward (dropout 0.25, the same masks for every model) and the backward pass of L = Σ e·R with
    /// every parameter's gradient.
    func gradients(_ m: ViT, images: [Float], weights: [Float]) throws -> ViTGradients {
        m.dropoutSeed = 5
        _ = try m.forward(images: images, batch: Self.batch, mode: .train(dropout: 0.25))
        let g = ViTGradients(model: m, parameters: true)
        try m.backward(gradEmbeddings: weights, into: g)
        return g
    }

    /// The live adapters' backward pass against the merged model's, whose gradients come from plain GEMMs: every
    /// frozen parameter's gradient must agree (the input-gradient paths through the adapters), and each factor's
    /// gradient must equal what the merged weight's gradient G implies, ∂B = s·G·Aᵀ and ∂A = s·Bᵀ·G (in Double).
    func testGradientsMatchMergedWeights() throws {
        let (model, images, weights) = try makeModel()
        let live = try gradients(model, images: images, weights: weights)
        let merged = try gradients(try model.merged(), images: images, weights: weights)
        let liveParameters = try XCTUnwrap(live.parameters), mergedParameters = try XCTUnwrap(merged.parameters)
        for (i, (a, b)) in zip(liveParameters.allBuffers, mergedParameters.allBuffers).enumerated() {
            let err = Tolerance.maxRelative(a.array, b.array.map(Double.init))
            XCTAssertLessThanOrEqual(err, Self.gradientBound, "parameter buffer \(i): live vs merged gradient, relative error \(err)")
        }
        for (adapter, g) in zip(model.adapters, live.lora) {
            for l in 0..<model.config.depth {
                let layers = [
                    ("fc1", adapter.fc1[l], g.fc1[l], mergedParameters.blocks[l].fc1.weight),
                    ("fc2", adapter.fc2[l], g.fc2[l], mergedParameters.blocks[l].fc2.weight)
                ]
                for (name, f, gf, gw) in layers {
                    let (refA, refB) = Self.factorGradients(gw.array, f, scaling: adapter.scaling)
                    let errA = Tolerance.maxRelative(gf.a.array, refA), errB = Tolerance.maxRelative(gf.b.array, refB)
                    let what = "rank \(adapter.rank) block \(l) \(name)"
                    XCTAssertGreaterThan(min(refA.map(abs).max() ?? 0, refB.map(abs).max() ?? 0), 1e-6, "\(what): zero reference proves nothing")
                    XCTAssertLessThanOrEqual(errA, Self.gradientBound, "\(what).A: relative error \(errA) against s·Bᵀ·G")
                    XCTAssertLessThanOrEqual(errB, Self.gradientBound, "\(what).B: relative error \(errB) against s·G·Aᵀ")
                }
            }
        }
    }

    /// Float32 gradients summed in different orders differ here by below 1e-6 of their largest entry.
    static let gradientBound = 1e-5

    /// ∂A = s·Bᵀ·G [rank, in] and ∂B = s·G·Aᵀ [out, rank] from a weight gradient G [out, in].
    static func factorGradients(_ g: [Float], _ f: LoRAFactors, scaling s: Float) -> (a: [Double], b: [Double]) {
        let r = f.rank, inF = f.inFeatures, outF = f.outFeatures, a = f.a.array, b = f.b.array
        var da = [Double](repeating: 0, count: r * inF), db = [Double](repeating: 0, count: outF * r)
        for o in 0..<outF {
            for j in 0..<inF {
                let gw = Double(s) * Double(g[o * inF + j])
                for k in 0..<r {
                    da[k * inF + j] += Double(b[o * r + k]) * gw
                    db[o * r + k] += gw * Double(a[k * inF + j])
                }
            }
        }
        return (da, db)
    }
}
