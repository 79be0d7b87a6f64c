import GSLoRAModel
import GSLoRATraining
import XCTest

/// Class order, splits, subsets and batch pairing (spec/TRAINING.md §A.4, §A.6).
final class ProtocolTests: XCTestCase {
    /// The forget classes of the four CASIA-100 continual tasks, as spec/TRAINING.md §A.6 tabulates them.
    private let continualForget: [[Int]] = [
        [51, 54, 13, 88, 84, 26, 50, 39, 96, 81, 49, 42, 21, 93, 74, 73, 46, 90, 68, 79],
        [94, 65, 67, 99, 25, 33, 70, 40, 92, 31, 58, 15, 45, 2, 87, 76, 80, 44, 64, 8],
        [0, 20, 59, 28, 47, 18, 6, 48, 12, 62, 1, 43, 3, 60, 41, 85, 4, 95, 97, 36],
        [35, 72, 71, 23, 86, 38, 24, 5, 29, 30, 16, 11, 82, 19, 57, 14, 91, 27, 98, 53]
    ]

    func testContinualSplitsMatchTable() throws {
        let pi = try ClassOrder.make(classes: 100, seed: 1337)
        XCTAssertEqual(Set(pi), Set(0..<100))
        var forgotten: [Int] = []
        for t in 0..<4 {
            let s = try ForgettingSplit.continual(order: pi, firstRetain: 80, perTask: 20, task: t)
            XCTAssertEqual(s.forget, continualForget[t], "task \(t + 1)")
            XCTAssertEqual(s.retain.count, 80 - 20 * t)
            XCTAssertEqual(Set(s.old), Set(forgotten), "task \(t + 1) old classes")
            XCTAssertTrue(Set(s.retain).isDisjoint(with: s.forget + s.old))
            forgotten += s.forget
        }
        XCTAssertThrowsError(try ForgettingSplit.continual(order: pi, firstRetain: 80, perTask: 20, task: 4))
    }

    func testMissingAndSingleStepSplits() throws {
        let pi = ClassOrder.casia100Seed1337
        let m = try ForgettingSplit.continual(order: pi, firstRetain: 80, perTask: 20, task: 1, missing: 5)
        XCTAssertEqual(m.missing, Array(pi[0..<5]))
        XCTAssertEqual(m.retain, Array(pi[5..<60]))
        XCTAssertEqual(m.forget, continualForget[1])
        let s = try ForgettingSplit.singleStep(order: pi, retain: 90, forget: 10)
        XCTAssertEqual(s.retain, Array(pi[0..<90]))
        XCTAssertEqual(s.forget, Array(pi[90..<100]))
        XCTAssertEqual(s.old, [])
        XCTAssertThrowsError(try ForgettingSplit.singleStep(order: pi, retain: 95, forget: 10))
        XCTAssertThrowsError(try ForgettingSplit.singleStep(order: [0, 0, 1], retain: 1, forget: 1))
    }

    func testExplicitForgetListsMakeContinualTasks() throws {
        var o = TrainOptions()
        o.tasks = 2
        o.forget = [[5, 2], [8]]
        o.missing = 1
        try o.validate(classes: 10)
        let order = [3, 2, 5, 8, 0, 1, 4, 6, 7, 9]
        let t0 = try o.taskClasses(order: order, task: 0), t1 = try o.taskClasses(order: order, task: 1)
        // The missing class is the first of the order that no task forgets, in both tasks.
        XCTAssertEqual(t0, TaskClasses(retain: [8, 0, 1, 4, 6, 7, 9], forget: [2, 5], old: [], missing: [3]))
        XCTAssertEqual(t1, TaskClasses(retain: [0, 1, 4, 6, 7, 9], forget: [8], old: [2, 5], missing: [3]))
    }

    func testOwnClassOrderIsSeededPermutation() throws {
        let a = try ClassOrder.make(classes: 100, seed: 7)
        XCTAssertEqual(Set(a), Set(0..<100))
        XCTAssertEqual(a, try ClassOrder.make(classes: 100, seed: 7))
        XCTAssertNotEqual(a, try ClassOrder.make(classes: 100, seed: 8))
        XCTAssertNotEqual(a, ClassOrder.casia100Seed1337)
        XCTAssertEqual(Set(try ClassOrder.make(classes: 10, seed: 1337)), Set(0..<10))
        XCTAssertThrowsError(try ClassOrder.make(classes: 0, seed: 1))
    }

    /// 10 classes, class c has 3 + c images, interleaved.
    private func dataset() throws -> LabelIndex {
        var labels: [Int] = []
        for i in 0..<12 { for c in 0..<10 where i < 3 + c { labels.append(c) } }
        return try LabelIndex(labels: labels, classes: 10)
    }

    func testFewShotExactCountsWithoutReplacement() throws {
        let data = try dataset()
        var rng = SplitMix64(seed: 1337)
        let picked = try TrainingSubset.fewShot(data, classes: [9, 2, 5], shots: 3, rng: &rng)
        XCTAssertEqual(picked.count, 9)
        XCTAssertEqual(Set(picked).count, 9, "drawn with replacement")
        for c in [9, 2, 5] { XCTAssertEqual(picked.filter { data.labels[$0] == c }.count, 3, "class \(c)") }
        var again = SplitMix64(seed: 1337)
        XCTAssertEqual(picked, try TrainingSubset.fewShot(data, classes: [9, 2, 5], shots: 3, rng: &again))
        // Class 0 has exactly 3 images: all of them for 3 shots, an error for 4.
        var r2 = SplitMix64(seed: 1)
        XCTAssertEqual(Set(try TrainingSubset.fewShot(data, classes: [0], shots: 3, rng: &r2)), Set(data.byClass[0]))
        XCTAssertThrowsError(try TrainingSubset.fewShot(data, classes: [0], shots: 4, rng: &r2)) { error in
            XCTAssertEqual(error as? TrainingError, .notEnoughImages(classIndex: 0, available: 3, requested: 4))
        }
        XCTAssertThrowsError(try TrainingSubset.fewShot(data, classes: [10], shots: 1, rng: &r2)) { error in
            guard case .unknownClass(10, _)? = error as? TrainingError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try TrainingSubset.fewShot(data, classes: [1], shots: 0, rng: &r2))
    }

    func testRatioSubset() throws {
        let data = try dataset()
        let set = try data.samples(of: [3, 4, 7])
        XCTAssertEqual(set.count, 6 + 7 + 10)
        var rng = SplitMix64(seed: 3)
        let sub = try TrainingSubset.ratio(set, ratio: 0.5, rng: &rng)
        XCTAssertEqual(sub.count, 11)
        XCTAssertEqual(Set(sub).count, 11)
        XCTAssertTrue(Set(sub).isSubset(of: Set(set)))
        XCTAssertThrowsError(try TrainingSubset.ratio(set, ratio: 0, rng: &rng))
        XCTAssertThrowsError(try TrainingSubset.ratio(set, ratio: 1.5, rng: &rng))
        XCTAssertThrowsError(try data.samples(of: [3, 3]))
        XCTAssertThrowsError(try LabelIndex(labels: [0, 1, 5], classes: 5))
    }

    func testRetainDrivesAndForgetCycles() throws {
        let retain = Array(0..<100), forget = Array(100..<130)
        var p = try BatchPairing(retain: retain, forget: forget, batchSize: 8, seed: 1337)
        XCTAssertEqual(p.driver, .retain)
        XCTAssertEqual(p.stepsPerEpoch, 13)
        var firstEpoch: [BatchPair] = []
        for epoch in 0..<3 {
            let steps = p.nextEpoch()
            if epoch == 0 { firstEpoch = steps }
            XCTAssertEqual(steps.count, 13)
            XCTAssertEqual(steps.flatMap(\.retain).sorted(), retain, "each retain sample once per epoch")
            XCTAssertEqual(steps.last?.retain.count, 4, "last partial batch kept")
            // Forget: a fresh pass at the epoch start covers the set in ⌈30/8⌉ = 4 batches, then a reshuffled pass.
            XCTAssertEqual(steps[0..<4].flatMap(\.forget).sorted(), forget)
            XCTAssertEqual(steps[3].forget.count, 6)
            XCTAssertEqual(steps[4..<8].flatMap(\.forget).sorted(), forget)
            XCTAssertEqual(steps[12].forget.count, 8)
        }
        var q = try BatchPairing(retain: retain, forget: forget, batchSize: 8, seed: 1337)
        XCTAssertEqual(q.nextEpoch(), firstEpoch, "same seed, same batches")
        var other = try BatchPairing(retain: retain, forget: forget, batchSize: 8, seed: 1338)
        XCTAssertNotEqual(other.nextEpoch(), firstEpoch)
    }

    func testFewShotSingleStepForgetDrives() throws {
        let retain = Array(0..<8), forget = Array(8..<48)
        var p = try BatchPairing(retain: retain, forget: forget, batchSize: 4, seed: 1, fewShotSingleStep: true)
        XCTAssertEqual(p.driver, .forget)
        XCTAssertEqual(p.stepsPerEpoch, 10)
        let steps = p.nextEpoch()
        XCTAssertEqual(steps.flatMap(\.forget).sorted(), forget)
        XCTAssertEqual(steps[0..<2].flatMap(\.retain).sorted(), retain)
        XCTAssertEqual(steps[2..<4].flatMap(\.retain).sorted(), retain)
        let plain = try BatchPairing(retain: retain, forget: forget, batchSize: 4, seed: 1)
        XCTAssertEqual(plain.driver, .retain)
        XCTAssertEqual(plain.stepsPerEpoch, 2)
        XCTAssertThrowsError(try BatchPairing(retain: [], forget: forget, batchSize: 4, seed: 1))
        XCTAssertThrowsError(try BatchPairing(retain: retain, forget: forget, batchSize: 0, seed: 1))
    }
}
