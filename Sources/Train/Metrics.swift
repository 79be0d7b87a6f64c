/// Evaluation numbers of a forgetting run (GSLORA.md §8).
public enum ForgettingMetrics {
    /// Top-1 accuracy in percent: 100·#{argmax_k z_bk = y_b}/B, the first maximal column winning ties (as torch.max).
    /// Pass margin logits (labels given to the head) for the paper's face criterion `cos_y − m > max_{k≠y} cos_k`.
    public static func accuracy<T: TrainScalar>(logits: [T], labels: [Int], classes: Int) throws -> Double {
        guard !labels.isEmpty else { throw TrainError.emptySet("accuracy of an empty batch") }
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

    /// H = 2Δ·Acc_r/(Δ + Acc_r + 1e-8), Δ = Acc_f(before) − Acc_f: the continual engine's form, used for every engine
    /// so that Δ + Acc_r = 0 gives 0 instead of a division by zero (GSLORA.md §12.20).
    public static func harmonicMean(forgetBefore: Double, forget: Double, retain: Double) -> Double {
        let drop = forgetBefore - forget
        return 2 * drop * retain / (drop + retain + 1e-8)
    }
}
