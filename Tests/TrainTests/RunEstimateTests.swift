import Foundation
import GSLoRAData
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining
import TestSupport
import XCTest

final class RunEstimateTests: XCTestCase {
    /// Data at the model's input size dominates a pre-training run on many small images; the refusal names every
    /// item with its size and what shrinks it.
    func testRefusalNamesTheItemsOfThePeak() throws {
        let c = ModelConfig(
            family: .faceViT, imageSize: 112, patchSize: 8, width: 64, depth: 2, heads: 2, headDim: 32, mlpWidth: 128,
            numClasses: 10, head: .cosface, attentionScale: 0.125, layerNormEps: 1e-5, qkvBias: false)
        let e = RunEstimate(
            config: c, trained: .pretraining, imagesPerStep: 64, evalBatch: 64, trainImages: 60_000, testImages: 10_000,
            gemmGFLOPs: 100)
        XCTAssertEqual(e.dataBytes, 70_000 * 3 * 112 * 112 * 4)
        XCTAssertEqual(e.peakBytes, e.dataBytes + e.weightBytes + e.activationBytes + e.evaluationBytes + e.optimizerBytes + e.overheadBytes)
        XCTAssertNoThrow(try e.check(available: e.peakBytes))
        XCTAssertThrowsError(try e.check(available: 8_000_000_000)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("data 10.54 GB"), text)
            XCTAssertTrue(text.contains("8.00 GB of memory is available"), text)
            XCTAssertTrue(text.contains("skipMemoryCheck"), text)
        }
        XCTAssertEqual(e.secondsPerStep, e.flopsPerStep / 100e9, accuracy: 1e-12)
    }

    /// Sizes from a hostile header or option (an .npy claiming 2⁶² images, an absurd batch) saturate instead of
    /// overflowing, and the run is refused.
    func testHostileSizesSaturateAndAreRefused() {
        let c = ModelCostTestsConfig.small
        for (images, batch) in [(Int.max, 8), (1 << 62, Int.max / 2), (10, 1 << 60)] {
            let e = RunEstimate(
                config: c, trained: .lora(rank: 4), imagesPerStep: batch, evalBatch: batch, trainImages: images, testImages: images,
                gemmGFLOPs: 1)
            XCTAssertGreaterThan(e.peakBytes, 1 << 40, "\(images) images, batch \(batch)")
            XCTAssertThrowsError(try e.check(available: 1 << 40))
        }
    }

    /// GS-LoRA keeps the base and its merged copy; a baseline also the trained copy, its anchors and AdamW's moments.
    func testWeightsByMethod() {
        let c = ModelCostTestsConfig.small
        let weights = ModelCost.parameters(c) * 4
        func estimate(_ t: RunEstimate.Trained) -> RunEstimate {
            RunEstimate(config: c, trained: t, imagesPerStep: 8, evalBatch: 8, trainImages: 0, testImages: 0, gemmGFLOPs: 1)
        }
        XCTAssertEqual(estimate(.lora(rank: 4)).weightBytes, 2 * weights)
        XCTAssertEqual(estimate(.lora(rank: 4)).optimizerBytes, 3 * ModelCost.loraParameters(c, rank: 4) * 4)
        XCTAssertEqual(estimate(.allParameters(extraCopies: 2)).weightBytes, 4 * weights)
        XCTAssertEqual(estimate(.allParameters(extraCopies: 2)).optimizerBytes, 3 * weights)
        XCTAssertEqual(estimate(.pretraining).weightBytes, weights)
    }

    /// The step floor counts the products the trainers' models make: the last block on the class token alone.
    func testStepFloorCountsTheClassOnlyLastBlock() throws {
        let c = ModelCostTestsConfig.small
        func flops(_ t: RunEstimate.Trained) -> Double {
            RunEstimate(config: c, trained: t, imagesPerStep: 8, evalBatch: 8, trainImages: 0, testImages: 0, gemmGFLOPs: 1).flopsPerStep
        }
        XCTAssertFalse(try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 1)).allTokensInLastBlock)
        XCTAssertEqual(flops(.lora(rank: 4)), 8 * ModelCost.trainingFLOPs(c, loraRank: 4, allParameters: false, classOnlyLastBlock: true))
        XCTAssertEqual(flops(.pretraining), 8 * ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true, classOnlyLastBlock: true))
        XCTAssertLessThan(flops(.pretraining), 8 * ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true))
    }

    /// The command prints its prediction, and refuses up front (exit 1, before loading any data) a run that cannot
    /// fit anywhere: 4096-pixel inputs make attention alone need terabytes.
    func testCommandPredictsAndRefusesRunsThatCannotFit() throws {
        let dir = NSTemporaryDirectory() + "/run-estimate-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let images = [Float](repeating: 0.5, count: 4 * 16 * 16), labels: [Float] = [0, 1, 0, 1]
        try images.withUnsafeBufferPointer { try NPY.write($0, shape: [4, 1, 16, 16], to: dir + "/x.npy") }
        try labels.withUnsafeBufferPointer { try NPY.write($0, shape: [4], to: dir + "/y.npy") }
        let data = ["--data", dir + "/x.npy", "--labels", dir + "/y.npy", "--test-data", dir + "/x.npy", "--test-labels", dir + "/y.npy"]
        let huge = try CommandRunner.run(
            "gslora-train", ["pretrain"] + data + ["--image-size", "4096", "--patch-size", "64", "--channels", "1", "-o", dir + "/big.gslr"])
        XCTAssertEqual(huge.code, 1, huge.err)
        XCTAssertTrue(huge.err.contains("predicted: peak memory"), huge.err)
        XCTAssertTrue(huge.err.contains("too large for this machine"), huge.err)
        XCTAssertTrue(huge.err.contains("--batch-size") && huge.err.contains("--skip-memory-check"), huge.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/big.gslr"))
        let small = try CommandRunner.run(
            "gslora-train",
            ["pretrain"] + data + [
                "--image-size", "16", "--patch-size", "8", "--channels", "1", "--width", "8", "--depth", "1", "--heads", "2",
                "--mlp-width", "16", "--epochs", "1", "--batch-size", "2", "-o", dir + "/small.gslr"
            ])
        XCTAssertEqual(small.code, 0, small.err)
        XCTAssertTrue(small.err.contains("predicted: peak memory ≈"), small.err)
        print("RunEstimateTests: refused 4096-px pretraining; predicted a tiny run: \(small.err.split(separator: "\n").first ?? "")")
    }
}

enum ModelCostTestsConfig {
    static let small = ModelConfig(
        family: .faceViT, imageSize: 16, patchSize: 4, width: 12, depth: 3, heads: 3, headDim: 4, mlpWidth: 20, numClasses: 5,
        head: .cosface, attentionScale: 0.5, layerNormEps: 1e-5, qkvBias: false)
}
