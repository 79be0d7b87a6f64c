import Foundation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining
import XCTest

/// The trainers that update every parameter (pre-training, the all-parameter baselines) start from a model whose
/// weights are views of its .gslr: they give the parameters memory of their own first, so training changes neither the
/// file nor the tensors still read from its mapping.
final class ParameterWriterTests: XCTestCase {
    func fileHash(_ p: String) throws -> String { SHA256.hex(SHA256.hash([UInt8](try Data(contentsOf: URL(fileURLWithPath: p))))) }

    func testAllParameterTrainingOwnsItsParameters() throws {
        let path = try TinyRun.backboneFile(in: try temporaryDirectory("writers"))
        let before = try fileHash(path)
        let file = try GSLRFile.open(path)
        let tensors = file.allTensors(), stored = try tensors.map { try $0.floats() }
        let images = try TinyRun.images(perClass: 2, seed: 5)

        let model = try ViT(config: TinyRun.config, weights: tensors)
        XCTAssertTrue(model.parameters.allBuffers.allSatisfy(\.isView), "a .gslr's float32 weights load as views")
        let step = try PretrainStep(model: model)
        XCTAssertFalse(model.parameters.allBuffers.contains(where: \.isView))
        _ = try images.withPixels { try step.step(images: $0, labels: images.labels, lr: 1e-2, dropout: 0) }
        let trained = model.parameters.allBuffers.map(\.array)
        XCTAssertEqual(trained.count, stored.count)
        XCTAssertTrue(zip(trained, stored).contains { $0 != $1 }, "the step changed nothing")
        for (t, s) in zip(tensors, stored) { XCTAssertEqual(try t.floats(), s, "\(t.name) changed in the mapping") }

        let baseline = try ViT(config: TinyRun.config, weights: tensors)
        let full = try FullParameterModel(model: baseline) { _ in true }
        XCTAssertFalse(full.values.contains(where: \.isView))
        XCTAssertFalse(baseline.parameters.allBuffers.contains(where: \.isView))

        XCTAssertEqual(try fileHash(path), before)
        print("ParameterWriterTests: checked \(path)")
    }

    /// An optimiser step straight into view parameters (no detach) works and stays in this process's memory.
    func testAnOptimizerStepIntoViewsLeavesTheFileUnchanged() throws {
        let path = try TinyRun.backboneFile(in: try temporaryDirectory("views-step"))
        let before = try fileHash(path)
        let file = try GSLRFile.open(path)
        let model = try ViT(config: TinyRun.config, weights: file.allTensors())
        let values = model.parameters.allBuffers, stored = values.map(\.array)
        XCTAssertTrue(values.allSatisfy(\.isView))
        var adam = try AdamW(parameters: file.tensors.map { ($0.name, $0.shape) }, weightDecay: 0.05)
        for (i, v) in values.enumerated() {
            let g = [Float](repeating: 0.5, count: v.count)
            try g.withUnsafeBufferPointer { try adam.step(index: i, parameter: v.buffer, gradient: $0, lr: 1e-2) }
        }
        for (v, s) in zip(values, stored) { XCTAssertNotEqual(v.array, s) }
        XCTAssertEqual(try fileHash(path), before, "an optimiser step reached the file")
        XCTAssertEqual(try GSLRFile.open(path).verify(), [])
    }
}
