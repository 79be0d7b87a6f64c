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

    /// Training costs more than the forward: LoRA-only is two forwards plus attention's second pair of products and
    /// the factor gradients; all parameters adds every weight's gradient.
    func testTrainingFLOPsOrdering() {
        let c = Self.vitB16, f = ModelCost.forwardFLOPs(c, loraRank: 8)
        let lora = ModelCost.trainingFLOPs(c, loraRank: 8, allParameters: false)
        let all = ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true)
        XCTAssertGreaterThan(lora, 2 * f)
        XCTAssertLessThan(lora, 2.1 * f)
        XCTAssertGreaterThan(all, 2.9 * ModelCost.forwardFLOPs(c))
        XCTAssertLessThan(all, 3.1 * ModelCost.forwardFLOPs(c))
        // Activations grow linearly with the batch.
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
}
