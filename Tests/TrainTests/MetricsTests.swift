import GSLoRAEvaluation
import GSLoRATraining
import XCTest

/// Accuracy and H (spec/TRAINING.md §A.8).
final class MetricsTests: XCTestCase {
    func testHarmonicMeanMatchesPaperCheck() {
        // 100-20 GS-LoRA: Acc_f before 74.65, after 0.00, Acc_r 74.16 → H 74.40.
        XCTAssertEqual(ForgettingScore.h(forgetBefore: 74.65, forget: 0, retain: 74.16), 74.40, accuracy: 0.005)
        XCTAssertEqual(ForgettingScore.h(forgetBefore: 0, forget: 0, retain: 0), 0)
    }

    func testAccuracyWithTiesAndMargin() throws {
        // Predictions: row 0 ties classes 1 and 2 and takes the first (1); row 1 → 1; row 2 → 0.
        let z: [Float] = [0, 5, 5, 1, 2, 0, 3, 0, 0]
        XCTAssertEqual(try ForgettingMetrics.accuracy(logits: z, labels: [2, 1, 1], classes: 3), 100.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(try ForgettingMetrics.accuracy(logits: z, labels: [1, 1, 0], classes: 3), 100, accuracy: 1e-12)
        XCTAssertThrowsError(try ForgettingMetrics.accuracy(logits: z, labels: [1, 0], classes: 3))
    }
}
