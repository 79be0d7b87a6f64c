/// Evaluation numbers of a forgetting run (spec/TRAINING.md §A.8).
public enum ForgettingMetrics {
    /// Top-1 accuracy in percent: 100·#{argmax_k z_bk = y_b}/B, the first maximal column winning ties (as torch.max).
    /// Pass margin logits (labels given to the head) for the paper's face criterion `cos_y − m > max_{k≠y} cos_k`.
    public static func accuracy<T: TrainScalar>(logits: [T], labels: [Int], classes: Int) throws -> Double {
        guard !labels.isEmpty else { throw TrainingError.emptySet("accuracy of an empty batch") }
        try checkMatrix(logits.count, rows: labels.count, cols: classes, "logits")
        try checkLabels(labels, classes: classes, "accuracy labels")
        var correct = 0
        for (r, y) in labels.enumerated() {
            var best = 0
            for k in 1..<classes where logits[r * classes + k] > logits[r * classes + best] { best = k }
            if best == y { correct += 1 }
        }
        return 100 * Double(correct) / Double(labels.count)
    }
}
