import GSLoRAFormat
import GSLoRAModel
import XCTest

final class ModelCostTests: XCTestCase {
    static let vitB16 = ModelConfig(
        family: .timmViT, imageSize: 224, patchSize: 16, width: 768, depth: 12, heads: 12, headDim: 64, mlpWidth: 3072,
        numClasses: 1000, head: .linear, attentionScale: 0.125, layerNormEps: 1e-6, qkvBias: true)

    /// The published sizes of ViT-B/16: 86,567,656 parameters (timm's vit_base_patch16_224) and 17.6 G multiply-adds
    /// per image (DeiT's table; 2 FLOPs each).
    func testViTB16MatchesPublishedSizes() {
        XCTAssertEqual(ModelCost.parameters(Self.vitB16), 86_567_656)
        XCTAssertEqual(ModelCost.forwardFLOPs(Self.vitB16) / 2e9, 17.6, accuracy: 0.05)
    }

    /// The parameter count is the model's own: every buffer of randomly made weights, for each head kind and qkv bias.
    func testParameterCountEqualsTheModelsBuffers() throws {
        for (family, head, bias) in [(ModelConfig.Family.faceViT, ModelConfig.Head.cosface, false), (.timmViT, .linear, true)] {
            let c = ModelConfig(
                family: family, imageSize: 16, patchSize: 4, width: 12, depth: 3, heads: 3, headDim: 4, mlpWidth: 20,
                numClasses: 5, head: head, attentionScale: 0.5, layerNormEps: 1e-5, qkvBias: bias)
            let p = try ViTParameters.random(config: c, seed: 1)
            XCTAssertEqual(ModelCost.parameters(c), p.allBuffers.reduce(0) { $0 + $1.count }, "\(family)")
        }
    }

    /// All-parameters training is three forwards (the input and the weight gradient of every product, attention's
    /// pair needing two each); the activations grow linearly with the batch.
    func testTrainingFLOPsOrdering() {
        let c = Self.vitB16
        let all = ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true)
        XCTAssertGreaterThan(all, 2.9 * ModelCost.forwardFLOPs(c))
        XCTAssertLessThan(all, 3.1 * ModelCost.forwardFLOPs(c))
        let one = ModelCost.activationBytes(c, batch: 1, loraRank: 8, training: true)
        XCTAssertEqual(ModelCost.activationBytes(c, batch: 8, loraRank: 8, training: true), 8 * one, accuracy: one / 10)
    }

    /// The activation count the memory estimate uses is what the model holds after a forward call: every buffer once,
    /// however many blocks share it, in training (with and without the blocks' own weight-gradient inputs, class-only
    /// or all-token last block) and in eval. Only the 64-byte minimum of scratch never grown is not counted.
    func testActivationCountIsWhatTheModelHolds() throws {
        let c = BackwardTests.tinyConfig(.timmViT), batch = 3
        let images = [Float](repeating: 0.25, count: batch * c.channels * c.imageSize * c.imageSize)
        for (training, keepInputs, allTokens) in [(true, true, false), (true, false, false), (true, false, true), (false, true, false)] {
            let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 2), adapters: [try BackwardTests.adapter(c, rank: 2, seed: 3)])
            model.keepsWeightGradientInputs = keepInputs
            model.allTokensInLastBlock = allTokens
            _ = try model.forward(images: images, batch: batch, mode: training ? .train(dropout: 0.1) : .eval)
            let predicted = ViTActivations.floats(
                config: c, batch: batch, ranks: [2], training: training, classOnlyLastBlock: !allTokens, keepWeightInputs: keepInputs)
            let held = model.activations.residentFloats, unused = 16 * model.activations.blocks.count + 16
            XCTAssertEqual(Double(held), predicted, accuracy: Double(unused), "training \(training) own inputs \(keepInputs) all tokens \(allTokens)")
        }
    }

    /// Mean pooling reads every patch row, so its last block runs on every token whatever `allTokensInLastBlock` says,
    /// and the counts follow: FLOPs as for the all-token block, activations what the model then holds.
    func testMeanPoolingCountsTheAllTokenLastBlock() throws {
        let c = BackwardTests.tinyConfig(.timmViT, pooling: "avg"), cls = BackwardTests.tinyConfig(.timmViT)
        for allParameters in [false, true] {
            XCTAssertEqual(
                ModelCost.trainingFLOPs(c, loraRank: 2, allParameters: allParameters, classOnlyLastBlock: true),
                ModelCost.trainingFLOPs(cls, loraRank: 2, allParameters: allParameters, classOnlyLastBlock: false))
        }
        XCTAssertEqual(ModelCost.forwardFLOPs(c, classOnlyLastBlock: true), ModelCost.forwardFLOPs(cls, classOnlyLastBlock: false))
        XCTAssertLessThan(ModelCost.forwardFLOPs(cls, classOnlyLastBlock: true), ModelCost.forwardFLOPs(cls, classOnlyLastBlock: false))

        let batch = 2
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 2))
        XCTAssertFalse(model.allTokensInLastBlock)
        _ = try model.forward(images: [Float](repeating: 0.25, count: batch * c.channels * c.imageSize * c.imageSize), batch: batch, mode: .train(dropout: 0))
        XCTAssertFalse(model.activations.classOnlyLastBlock)
        let allTokens = ViTActivations.floats(config: c, batch: batch, ranks: [], training: true, classOnlyLastBlock: false)
        let unused = 16 * model.activations.blocks.count + 16
        XCTAssertEqual(Double(model.activations.residentFloats), allTokens, accuracy: Double(unused))
        // The estimate is the class-token model's plus the all-token last block's extra activations.
        let classOnly = ViTActivations.floats(config: cls, batch: batch, ranks: [], training: true, classOnlyLastBlock: true)
        XCTAssertEqual(
            ModelCost.activationBytes(c, batch: batch, loraRank: 0, training: true) - ModelCost.activationBytes(cls, batch: batch, loraRank: 0, training: true),
            Int(4 * (allTokens - classOnly)))
    }

    /// The class-only last block (the model's default) is what `gslora-bench` counted for its forward and
    /// all-parameters cases: the values its own formula gave for P8S8 and ViT-B/16 per image; all parameters adds the
    /// head's input and weight gradients, which the bench left out (2 × 2·width·classes).
    func testClassOnlyLastBlockIsTheBenchsCount() {
        let p8s8 = ModelConfig(
            family: .faceViT, imageSize: 112, patchSize: 8, width: 512, depth: 6, heads: 8, headDim: 64, mlpWidth: 2048,
            numClasses: 100, head: .cosface, attentionScale: 1 / 512.0.squareRoot(), layerNormEps: 1e-5, qkvBias: false)
        for (name, c, forward, allParameters) in [
            ("p8s8", p8s8, 6_845_341_696.0, 20_497_285_120.0), ("vit-b16", Self.vitB16, 32_696_930_304, 97_856_507_904)
        ] {
            let head = 2.0 * Double(c.width * c.numClasses)
            XCTAssertEqual(ModelCost.forwardFLOPs(c, classOnlyLastBlock: true), forward, name)
            XCTAssertEqual(ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true, classOnlyLastBlock: true), allParameters + 2 * head, name)
        }
        // The bench's README: P8S8's forward of 32 images is 219.1 GFLOP class-only, 254.5 over every token.
        XCTAssertEqual(32 * ModelCost.forwardFLOPs(p8s8, classOnlyLastBlock: true) / 1e9, 219.1, accuracy: 0.05)
        XCTAssertEqual(32 * ModelCost.forwardFLOPs(p8s8) / 1e9, 254.5, accuracy: 0.05)
    }

    /// The counts are the sums of the matrix products `ViT.forward`, `ViT.backward` and the loss's head make, listed
    /// here call by call as (rows, columns, inner) on small models (depth 1 and 3) with LoRA, for every token or the
    /// class-only last block, LoRA only (stopping after block 0's FFN) and all parameters.
    func testTrainingFLOPsAreTheModelsProducts() {
        var checked: [String] = []
        for depth in [1, 3] {
            checkProducts(depth: depth, &checked)
        }
        print("ModelCostTests: checked \(checked.joined(separator: "; "))")
    }

    private func checkProducts(depth: Int, _ checked: inout [String]) {
        let c = ModelConfig(
            family: .faceViT, imageSize: 16, patchSize: 4, width: 12, depth: depth, heads: 3, headDim: 4, mlpWidth: 20, numClasses: 5,
            head: .cosface, attentionScale: 0.5, layerNormEps: 1e-5, qkvBias: false)
        let r = 2, t = c.numTokens, w = c.width, m = c.mlpWidth, hd = c.headDim, inner = c.heads * hd
        for classOnly in [false, true] {
            func rows(_ l: Int) -> Int { classOnly && l == c.depth - 1 ? 1 : t }
            var forward: [(Int, Int, Int)] = [(c.numPatches, w, c.patchDim)]
            for l in 0..<c.depth {
                let n = rows(l)
                forward += [(t, 2 * inner, w), (n, inner, w)] // K, V of every token; Q of the query rows
                forward += Array(repeating: [(n, t, hd), (n, hd, t)], count: c.heads).flatMap { $0 } // QKᵀ, PV per head
                forward += [(n, w, inner), (n, m, w), (n, w, m)] // proj, fc1, fc2
                forward += [(n, r, w), (n, m, r), (n, r, m), (n, w, r)] // LoRA fc1 (x·Aᵀ, ·Bᵀ) and fc2
            }
            forward.append((1, c.numClasses, w))
            XCTAssertEqual(ModelCost.forwardFLOPs(c, loraRank: r, classOnlyLastBlock: classOnly), flops(forward))

            for allParameters in [false, true] {
                var backward: [(Int, Int, Int)] = [(1, w, c.numClasses)] // the head's input gradient
                if allParameters { backward.append((c.numClasses, w, 1)) }
                for l in stride(from: c.depth - 1, through: 0, by: -1) {
                    let n = rows(l), stop = !allParameters && l == 0
                    // fc2: input gradient; LoRA: ∂(x·Aᵀ) = dy·B, ∂B, ∂A, and the input gradient through A.
                    backward += [(n, m, w), (n, r, w), (w, r, n), (r, m, n), (n, m, r)]
                    // fc1: its LoRA's ∂(x·Aᵀ), ∂B, ∂A; the input gradients only above the lowest LoRA block.
                    backward += [(n, r, m), (m, r, n), (r, w, n)]
                    if allParameters { backward += [(w, m, n), (m, w, n)] } // fc2, fc1 weight gradients
                    if stop { continue }
                    backward += [(n, w, m), (n, w, r)]
                    backward += [(n, inner, w)] // proj's input gradient
                    // Attention per head: dP = dO·Vᵀ, dV = Pᵀ·dO, dQ = dS·K, dK = dSᵀ·Q.
                    backward += Array(repeating: [(n, t, hd), (t, hd, n), (n, hd, t), (t, hd, n)], count: c.heads).flatMap { $0 }
                    backward += [(t, w, 2 * inner), (n, w, inner)] // qkv's input gradient: K, V rows and Q rows
                    if allParameters { backward += [(2 * inner, w, t), (inner, w, n), (w, inner, n)] } // qkv, proj weights
                }
                if allParameters { backward.append((w, c.patchDim, c.numPatches)) } // the patch embedding's weight
                XCTAssertEqual(
                    ModelCost.trainingFLOPs(c, loraRank: r, allParameters: allParameters, classOnlyLastBlock: classOnly),
                    flops(forward) + flops(backward), "depth \(depth), class-only \(classOnly), all parameters \(allParameters)")
                checked.append("depth \(depth) class-only \(classOnly) all-parameters \(allParameters)")
            }
        }
    }

    private func flops(_ products: [(Int, Int, Int)]) -> Double { products.reduce(0) { $0 + 2 * Double($1.0 * $1.1 * $1.2) } }
}
