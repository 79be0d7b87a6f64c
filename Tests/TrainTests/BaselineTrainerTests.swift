import Foundation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining
import XCTest

/// Every baseline through the continual protocol on a tiny model: one backbone file per task with its lineage record,
/// the chain of starting fingerprints, the parameters each method may change, and resume keeping finished tasks.
final class BaselineTrainerTests: XCTestCase {
    private func options() -> TrainOptions {
        var o = TinyRun.options
        o.plus = false
        o.epochs = [1]
        return o
    }

    func testEveryBaselineWritesOneBackbonePerTask() throws {
        let dir = try temporaryDirectory("baselines")
        let backbonePath = try TinyRun.backboneFile(in: dir)
        let backbone = try TrainBackbone.open(backbonePath)
        let start = try GSLRFile.open(backbonePath).fingerprint
        let data = try TinyRun.data()
        for method in BaselineMethod.allCases {
            var s = BaselineSettings(method: method)
            s.scrubSuperEpochs = 1
            let out = dir + "/" + method.rawValue
            let trainer = try BaselineTrainer(backbone: backbone, data: data, options: options(), settings: s, outputDirectory: out)
            var steps = 0
            trainer.onEvent = { if case .step = $0 { steps += 1 } }
            let report = try trainer.run()
            XCTAssertEqual(report.tasks.count, 2, method.rawValue)
            XCTAssertGreaterThan(steps, 0, method.rawValue)
            var previous = start
            for (t, r) in report.tasks.enumerated() {
                let file = try GSLRFile.open(out + "/task-\(t + 1).gslr")
                XCTAssertEqual(file.kind, .backbone, method.rawValue)
                XCTAssertEqual(file.fingerprint, r.adapterFingerprint, method.rawValue)
                XCTAssertEqual(r.baseFingerprint, previous, "\(method.rawValue): task \(t + 1) starts from the previous model")
                guard case .object(let rec)? = file.header.metadata["gslora_baseline"] else { return XCTFail("\(method.rawValue): no lineage") }
                XCTAssertEqual(rec["method"], .string(method.rawValue))
                XCTAssertEqual(rec["started_from"], .string(start))
                XCTAssertNotNil(rec["settings"])
                XCTAssertNotNil(rec["task"])
                XCTAssertGreaterThan(try XCTUnwrap(r.parametersChanged, method.rawValue), 0, method.rawValue)
                XCTAssertGreaterThan(try XCTUnwrap(r.bytes, method.rawValue), 0, method.rawValue)
                // The CosFace weight moves only in Retrain; LIRF's upper half never moves.
                let model = try ViT(config: TinyRun.config, weights: file.allTensors())
                let base = try ViT(config: TinyRun.config, weights: try GSLRFile.open(backbonePath).allTensors())
                let headMoved = model.parameters.head.weight.array != base.parameters.head.weight.array
                XCTAssertEqual(headMoved, method == .retrain, "\(method.rawValue): head weight")
                if method == .lirf {
                    XCTAssertEqual(model.parameters.blocks[1].fc1.weight.array, base.parameters.blocks[1].fc1.weight.array, "LIRF upper half")
                    XCTAssertNotEqual(model.parameters.blocks[0].fc1.weight.array, base.parameters.blocks[0].fc1.weight.array, "LIRF lower half")
                }
                previous = file.fingerprint
            }
        }
    }

    /// A run stopped in task 2 resumes: task 1's file is kept (same bytes), task 2 is trained again and equals the
    /// uninterrupted run's.
    func testResumeKeepsFinishedTasks() throws {
        let dir = try temporaryDirectory("baseline-resume")
        let backbone = try TrainBackbone.open(try TinyRun.backboneFile(in: dir))
        let data = try TinyRun.data()
        let s = BaselineSettings(method: .ewc)
        let full = try BaselineTrainer(backbone: backbone, data: data, options: options(), settings: s, outputDirectory: dir + "/full").run()

        let stopped = try BaselineTrainer(backbone: backbone, data: data, options: options(), settings: s, outputDirectory: dir + "/cut")
        var task = 0
        stopped.onEvent = { if case .taskStarted(let t, _, _, _, _) = $0 { task = t } }
        stopped.shouldStop = { task == 2 }
        XCTAssertThrowsError(try stopped.run()) { XCTAssertTrue("\($0)".contains("interrupted"), "\($0)") }
        let resumed = try BaselineTrainer(backbone: backbone, data: data, options: options(), settings: s, outputDirectory: dir + "/cut").run(resume: true)
        XCTAssertEqual(resumed.tasks.map(\.adapterFingerprint), full.tasks.map(\.adapterFingerprint))

        // Other settings are refused on resume.
        var other = s
        other.lambda = 1
        XCTAssertThrowsError(
            try BaselineTrainer(backbone: backbone, data: data, options: options(), settings: other, outputDirectory: dir + "/cut").run(resume: true))
    }
}
