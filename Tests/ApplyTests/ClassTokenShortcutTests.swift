import GSLoRAFormat
import GSLoRAModel
import TestSupport
import XCTest

/// The last block runs on the class token only (K and V still over every token). Its outputs and gradients must
/// equal the all-token path's within 1e-5 relative, in eval and in training with dropout (both paths draw the
/// same masks), for the face layout and a layout with a qkv bias.
final class ClassTokenShortcutTests: XCTestCase {
    static let bound = 1e-5

    /// Big enough that the SIMD paths of the vector kernels run (head_dim 16, 17 tokens).
    static func config(_ family: ModelConfig.Family) -> ModelConfig {
        ModelConfig(
            family: family, imageSize: 16, patchSize: 4, width: 32, depth: 2, heads: 2, headDim: 16, mlpWidth: 64,
            numClasses: 5, head: family == .faceViT ? .cosface : .linear, attentionScale: 0.25,
            layerNormEps: 1e-5, qkvBias: family != .faceViT)
    }

    struct Run {
        let output: ViTOutput
        let gradients: ViTGradients?
    }

    /// One forward (and, in training, a backward of L = Σ e·R) on a fresh model with the given last-block path.
    func run(_ family: ModelConfig.Family, allTokens: Bool, mode: ForwardMode, parameters: Bool) throws -> Run {
        let c = Self.config(family)
        let adapter = try LoRAAdapter(config: c, rank: 3, scaling: 0.5, seed: 21)
        var rng = SplitMix64(seed: 22)
        for f in adapter.fc1 + adapter.fc2 { for i in 0..<f.b.count { f.b.pointer[i] = rng.nextUnitFloat() - 0.5 } }
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 23), adapters: [adapter])
        model.allTokensInLastBlock = allTokens
        model.dropoutSeed = 24
        let batch = 3
        let images = (0..<(batch * c.channels * c.imageSize * c.imageSize)).map { _ in rng.nextUnitFloat() }
        let labels = (0..<batch).map { $0 % c.numClasses }
        let out = try model.forward(images: images, batch: batch, labels: labels, mode: mode)
        XCTAssertEqual(model.activations.classOnlyLastBlock, !allTokens)
        guard mode != .eval else { return Run(output: out, gradients: nil) }
        let g = ViTGradients(model: model, parameters: parameters)
        try model.backward(gradEmbeddings: (0..<(batch * c.width)).map { _ in rng.nextUnitFloat() * 2 - 1 }, into: g)
        return Run(output: out, gradients: g)
    }

    func assertSame(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        guard a.count == b.count else { return }
        XCTAssertGreaterThan(b.map { abs($0) }.max() ?? 0, 0, "\(what): all zero, the comparison proves nothing", file: file, line: line)
        let err = Tolerance.maxRelative(a, b.map(Double.init))
        XCTAssertLessThanOrEqual(err, Self.bound, "\(what): class-only vs all-token relative error \(err)", file: file, line: line)
    }

    func compareOutputs(_ short: ViTOutput, _ full: ViTOutput, _ tag: String) {
        assertSame(short.embeddings, full.embeddings, "\(tag) embeddings")
        assertSame(short.preNormCLS, full.preNormCLS, "\(tag) pre-norm cls")
        assertSame(short.logits, full.logits, "\(tag) logits")
        assertSame(short.trainingLogits, full.trainingLogits, "\(tag) training logits")
    }

    func testEvalOutputsMatchAllTokenPath() throws {
        for family in [ModelConfig.Family.faceViT, .timmViT] {
            let short = try run(family, allTokens: false, mode: .eval, parameters: false)
            let full = try run(family, allTokens: true, mode: .eval, parameters: false)
            compareOutputs(short.output, full.output, "\(family) eval")
        }
    }

    func testTrainingOutputsAndGradientsMatchAllTokenPath() throws {
        for family in [ModelConfig.Family.faceViT, .torchvisionViT] {
            for (p, parameters) in [(Float(0), false), (0.2, false), (0.2, true)] {
                let tag = "\(family) dropout \(p)\(parameters ? " all parameters" : " LoRA")"
                let short = try run(family, allTokens: false, mode: .train(dropout: p), parameters: parameters)
                let full = try run(family, allTokens: true, mode: .train(dropout: p), parameters: parameters)
                compareOutputs(short.output, full.output, tag)
                let gs = try XCTUnwrap(short.gradients), gf = try XCTUnwrap(full.gradients)
                for (l, (a, b)) in zip(gs.lora[0].fc1 + gs.lora[0].fc2, gf.lora[0].fc1 + gf.lora[0].fc2).enumerated() {
                    assertSame(a.a.array, b.a.array, "\(tag) LoRA factor \(l) A")
                    assertSame(a.b.array, b.b.array, "\(tag) LoRA factor \(l) B")
                }
                if parameters {
                    let ps = try XCTUnwrap(gs.parameters).allBuffers, pf = try XCTUnwrap(gf.parameters).allBuffers
                    // The head's gradient comes from the loss side; backward leaves it zero in both paths.
                    let headCount = Self.config(family).head.kind == .linear ? 2 : 1
                    for (i, (a, b)) in zip(ps, pf).enumerated().dropLast(headCount) {
                        assertSame(a.array, b.array, "\(tag) parameter gradient \(i)")
                    }
                }
            }
        }
    }
}
