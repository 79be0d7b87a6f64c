import GSLoRAFormat
import GSLoRAModel
import XCTest

/// A forward call checks its sizes before it allocates: the activation footprint (including attention's
/// probabilities and their per-head and bf16 copies) is capped, and wrong input counts are refused.
final class ForwardLimitsTests: XCTestCase {
    /// 255 px at patch 1: 65,026 tokens (the config's limit is 65,536), so one image's attention probabilities alone
    /// would take 34 GB, in training (kept per block) and in eval (the probability scratch) alike.
    func testActivationsBeyondTheCapAreRefusedBeforeAllocation() throws {
        let c = ModelConfig(
            family: .faceViT, imageSize: 255, patchSize: 1, width: 8, depth: 1, heads: 2, headDim: 4, mlpWidth: 16,
            numClasses: 3, head: .cosface, attentionScale: 0.35, layerNormEps: 1e-5, qkvBias: false)
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 1))
        let images = [Float](repeating: 0.5, count: c.channels * c.imageSize * c.imageSize)
        for mode in [ForwardMode.eval, .train(dropout: 0)] {
            XCTAssertThrowsError(try model.forward(images: images, batch: 1, mode: mode)) { error in
                guard case ModelError.tooLarge(let why) = error else { return XCTFail("expected tooLarge, got \(error)") }
                XCTAssertTrue(why.contains("GiB of activations"), why)
            }
        }
    }

    func testWrongImageCountIsRefused() throws {
        let c = BackwardTests.tinyConfig(.faceViT)
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 1))
        let perImage = c.channels * c.imageSize * c.imageSize
        XCTAssertThrowsError(try model.forward(images: [Float](repeating: 0, count: 2 * perImage - 1), batch: 2)) { error in
            guard case ModelError.badInput = error else { return XCTFail("expected badInput, got \(error)") }
        }
    }
}
