import Foundation

/// Mean cross-entropy over a batch, as `nn.CrossEntropyLoss()` (reduction "mean", no label smoothing).
public struct CrossEntropyResult<T: TrainScalar> {
    /// (1/B) Σ_b (logsumexp(z_b) − z_b[y_b]).
    public let mean: Double
    /// The per-sample terms, in batch order.
    public let perSample: [Double]
    /// ∂mean/∂logits = (softmax(z_b) − onehot(y_b)) / B, row-major B×C.
    public let gradLogits: [T]
}

public enum CrossEntropy {
    /// `logits` is row-major `labels.count × classes`.
    public static func mean<T: TrainScalar>(logits: [T], labels: [Int], classes: Int) throws -> CrossEntropyResult<T> {
        let b = labels.count
        guard b > 0 else { throw TrainingError.emptySet("cross-entropy of an empty batch") }
        guard classes > 0 else { throw TrainingError.invalidArgument("cross-entropy needs at least one class") }
        try checkMatrix(logits.count, rows: b, cols: classes, "logits")
        try checkLabels(labels, classes: classes, "cross-entropy labels")
        var per = [Double](repeating: 0, count: b)
        var grad = [T](repeating: 0, count: logits.count)
        let invB = 1.0 / Double(b)
        logits.withUnsafeBufferPointer { z in
            grad.withUnsafeMutableBufferPointer { g in
                for r in 0..<b {
                    let row = r * classes
                    var mx = -Double.infinity
                    for k in 0..<classes { mx = max(mx, Double(z[row + k])) }
                    var sum = 0.0
                    for k in 0..<classes { sum += Foundation.exp(Double(z[row + k]) - mx) }
                    let lse = mx + Foundation.log(sum)
                    per[r] = lse - Double(z[row + labels[r]])
                    for k in 0..<classes {
                        let p = Foundation.exp(Double(z[row + k]) - lse)
                        g[row + k] = T((p - (k == labels[r] ? 1 : 0)) * invB)
                    }
                }
            }
        }
        return CrossEntropyResult(mean: per.reduce(0, +) * invB, perSample: per, gradLogits: grad)
    }
}
