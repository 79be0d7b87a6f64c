import Foundation
import GSLoRATraining
import XCTest

/// A run stopped (mid-epoch, at a task boundary, again in the next task) and resumed from its state file writes
/// the same adapter bytes as a run that was never interrupted.
final class ResumeTests: XCTestCase {
    func testStoppedAndResumedRunWritesTheSameAdapters() throws {
        let data = try TinyRun.data()
        let backbone = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(), source: "tiny")
        let straight = try temporaryDirectory("straight")
        let report = try Trainer(backbone: backbone, data: data, options: TinyRun.options, outputDirectory: straight).run()
        XCTAssertEqual(report.tasks.count, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: straight + "/state.gslr"), "a finished run leaves no state")
        let stepsPerTask = report.tasks[0].steps
        XCTAssertGreaterThan(stepsPerTask, 2, "the test needs several steps per epoch")

        let stopped = try temporaryDirectory("stopped")
        // Stop after 3 steps (mid-epoch of task 1), then at the last step of task 1, then 1 step into task 2.
        var stops = [3, stepsPerTask - 3, 1]
        var resumed = false, interrupts = 0
        while true {
            let trainer = try Trainer(backbone: backbone, data: data, options: TinyRun.options, outputDirectory: stopped)
            var steps = 0
            let limit = stops.isEmpty ? Int.max : stops.removeFirst()
            trainer.onEvent = { if case .step = $0 { steps += 1 } }
            trainer.shouldStop = { steps >= limit }
            do {
                let r = try trainer.run(resume: resumed)
                XCTAssertEqual(r.tasks.map(\.adapterFingerprint), report.tasks.map(\.adapterFingerprint))
                break
            } catch TrainingError.interrupted(let path) {
                XCTAssertEqual(path, stopped + "/state.gslr")
                XCTAssertTrue(FileManager.default.fileExists(atPath: path))
                resumed = true
                interrupts += 1
            }
        }
        XCTAssertEqual(interrupts, 3, "every planned stop must interrupt the run")
        for t in 1...2 {
            let a = try Data(contentsOf: URL(fileURLWithPath: straight + "/task-\(t).gslr"))
            let b = try Data(contentsOf: URL(fileURLWithPath: stopped + "/task-\(t).gslr"))
            XCTAssertEqual(a, b, "task-\(t).gslr differs after stop and resume")
        }
    }

    func testResumeRefusesAnotherBackboneOrOtherOptions() throws {
        let data = try TinyRun.data()
        let backbone = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(), source: "tiny")
        let dir = try temporaryDirectory("refuse")
        XCTAssertThrowsError(try Trainer(backbone: backbone, data: data, options: TinyRun.options, outputDirectory: dir).run(resume: true)) {
            guard case TrainingError.badState = $0 else { return XCTFail("\($0)") }
        }
        let trainer = try Trainer(backbone: backbone, data: data, options: TinyRun.options, outputDirectory: dir)
        trainer.shouldStop = { true }
        XCTAssertThrowsError(try trainer.run())

        let other = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(seed: 8), source: "other")
        XCTAssertThrowsError(try Trainer(backbone: other, data: data, options: TinyRun.options, outputDirectory: dir).run(resume: true)) {
            guard case TrainingError.badState(_, let why) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("fingerprint"), why)
        }
        var changed = TinyRun.options
        changed.lr = 0.5
        XCTAssertThrowsError(try Trainer(backbone: backbone, data: data, options: changed, outputDirectory: dir).run(resume: true)) {
            guard case TrainingError.badState(_, let why) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("lr"), why)
        }
    }
}
