import Foundation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining
import XCTest

/// Pre-training from scratch on a tiny face-style model: the loss falls, every parameter (the CosFace weight too)
/// moves, and the written backbone opens with its config and class names and runs.
final class PretrainTests: XCTestCase {
    func testPretrainLearnsAndWritesABackbone() throws {
        let dir = try temporaryDirectory("pretrain")
        var o = PretrainOptions()
        o.imageSize = 8
        o.patchSize = 4
        o.channels = 1
        o.width = 16
        o.depth = 2
        o.heads = 2
        o.mlpWidth = 32
        o.s = 16
        o.m = 0.2
        o.epochs = 6
        o.batchSize = 8
        o.lr = 3e-3
        o.warmupEpochs = 1
        o.dropout = 0
        let data = try TinyRun.data()
        let pre = try Pretrainer(options: o, data: data)
        let out = dir + "/tiny.gslr"
        let report = try pre.run(output: out)
        XCTAssertEqual(report.epochs.count, 6)
        XCTAssertLessThan(report.epochs.last!.loss, report.epochs.first!.loss, "loss should fall")

        let file = try GSLRFile.open(out)
        XCTAssertEqual(file.kind, .backbone)
        XCTAssertEqual(file.header.classes, data.train.classNames)
        XCTAssertEqual(file.header.model, try o.config(classes: TinyRun.classes))
        XCTAssertEqual(file.fingerprint, report.fingerprint)
        let random = try TinyRun.weights(seed: o.seed)
        let trained = file.allTensors()
        XCTAssertEqual(trained.map(\.name), random.map(\.name))
        for (a, b) in zip(trained, random) {
            XCTAssertNotEqual(try a.floats(), try b.floats(), "\(a.name) did not train")
        }
        // The written model is a forgetting backbone.
        let backbone = try TrainBackbone.open(out)
        XCTAssertEqual(backbone.classes, data.train.classNames)
        let model = try ViT(config: backbone.config, weights: trained)
        XCTAssertEqual(try model.forward(images: data.test.subset(indices: [0]).withPixels { Array($0) }, batch: 1).logits.count, TinyRun.classes)
    }

    func testBadPretrainOptionsAreRefused() throws {
        var o = PretrainOptions()
        o.imageSize = 30
        o.patchSize = 8
        XCTAssertThrowsError(try o.config(classes: 10)) {
            guard case TrainingError.badOption(let option, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(option, Setting("patchSize"))
        }
    }
}
