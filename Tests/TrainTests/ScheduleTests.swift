import GSLoRATraining
import XCTest

/// Learning-rate, α and EMA schedules at chosen epochs (values worked out by hand from spec/TRAINING.md §A.3, §A.5, §A.7).
final class ScheduleTests: XCTestCase {
    func testCosineWithoutWarmup() throws {
        let s = try CosineSchedule(baseLR: 1e-2, minLR: 1e-5, epochs: 100)
        XCTAssertEqual(s.lr(epoch: 0), 1e-2, accuracy: 1e-15)
        XCTAssertEqual(s.lr(epoch: 25), 0.008536998372026804, accuracy: 1e-15)
        XCTAssertEqual(s.lr(epoch: 50), 0.005005, accuracy: 1e-15)
        XCTAssertEqual(s.lr(epoch: 99), 1.246473097317066e-05, accuracy: 1e-15)
        XCTAssertEqual(s.lr(epoch: 100), 1e-5)
        XCTAssertEqual(s.lr(epoch: 150), 1e-5)
    }

    func testWarmupThenUnshiftedCosine() throws {
        let s = try CosineSchedule(baseLR: 6e-4, minLR: 1e-5, epochs: 1200, warmupEpochs: 10, warmupStartLR: 1e-6)
        XCTAssertEqual(s.lr(epoch: 0), 1e-6, accuracy: 1e-18)
        XCTAssertEqual(s.lr(epoch: 5), 0.0003005, accuracy: 1e-15)
        // After warm-up the cosine uses e itself, not e − W.
        XCTAssertEqual(s.lr(epoch: 10), 0.0005998989108677893, accuracy: 1e-15)
    }

    func testBadScheduleArguments() {
        XCTAssertThrowsError(try CosineSchedule(baseLR: 1e-2, minLR: 1e-5, epochs: 0))
        XCTAssertThrowsError(try CosineSchedule(baseLR: .nan, minLR: 1e-5, epochs: 10))
        XCTAssertThrowsError(try CosineSchedule(baseLR: 1e-2, minLR: 1e-5, epochs: 10, warmupEpochs: -1))
    }

    func testAlphaWarmup() {
        let a = AlphaSchedule.warmup(startEpoch: 20, alpha: 0.01)
        XCTAssertEqual(a.alpha(epoch: 0), 0)
        XCTAssertEqual(a.alpha(epoch: 19), 0)
        XCTAssertEqual(a.alpha(epoch: 20), 0.01)
        XCTAssertEqual(a.alpha(epoch: 99), 0.01)
        XCTAssertEqual(AlphaSchedule.constant(1e-4).alpha(epoch: 0), 1e-4)
    }

    func testDeltaEMA() throws {
        var ema = try DeltaEMA(startEpoch: 2, decay: 0.9)
        XCTAssertFalse(try ema.endOfEpoch(0, deltas: [[1, 1]]))
        XCTAssertFalse(try ema.endOfEpoch(1, deltas: [[1, 1]]))
        XCTAssertNil(ema.deltas)
        XCTAssertTrue(try ema.endOfEpoch(2, deltas: [[10, -10]]))
        XCTAssertEqual(ema.deltas, [[10, -10]])
        try ema.endOfEpoch(3, deltas: [[0, 10]])
        XCTAssertEqual(ema.deltas?[0][0] ?? .nan, 9, accuracy: 1e-6)
        XCTAssertEqual(ema.deltas?[0][1] ?? .nan, -8, accuracy: 1e-6)
        XCTAssertThrowsError(try ema.endOfEpoch(4, deltas: [[0, 1, 2]]))
        var late = try DeltaEMA(startEpoch: 2, decay: 0.9)
        XCTAssertThrowsError(try late.endOfEpoch(5, deltas: [[1]]))
    }

    func testLoRADelta() throws {
        // B (3×2) · A (2×2) · s.
        let d = try loraDelta(a: [1, 2, 3, 4], b: [1, 0, 0, 1, 1, 1], rank: 2, inFeatures: 2, outFeatures: 3, scale: 0.5)
        XCTAssertEqual(d, [0.5, 1, 1.5, 2, 2, 3])
        XCTAssertThrowsError(try loraDelta(a: [1, 2, 3], b: [1, 0, 0, 1, 1, 1], rank: 2, inFeatures: 2, outFeatures: 3, scale: 1))
    }
}
