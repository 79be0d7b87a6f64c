import Foundation

/// Per-class mean embeddings, computed once per task from the task-start model (spec/TRAINING.md §A.5). Constant in training.
public struct PrototypeTable: Sendable {
    public let classes: Int
    public let dim: Int
    /// classes×dim, row c = mean embedding of class c (zeros where the class had no sample).
    public let values: [Float]
    /// Number of embeddings averaged per class; 0 means the class has no prototype.
    public let counts: [Int]

    public init(classes: Int, dim: Int, values: [Float], counts: [Int]) throws {
        guard classes > 0, dim > 0 else { throw TrainingError.invalidArgument("prototype table needs classes > 0 and dim > 0") }
        try checkMatrix(values.count, rows: classes, cols: dim, "prototype table")
        guard counts.count == classes, counts.allSatisfy({ $0 >= 0 }) else {
            throw TrainingError.invalidShape("prototype table: \(counts.count) counts for \(classes) classes")
        }
        self.classes = classes
        self.dim = dim
        self.values = values
        self.counts = counts
    }

    /// p_c = mean of the embeddings labelled c (B×dim row-major), accumulated in Double.
    public static func mean(embeddings: [Float], labels: [Int], dim: Int, classes: Int) throws -> PrototypeTable {
        let s = try sums(embeddings: embeddings, labels: labels, dim: dim, classes: classes)
        return try mean(sums: s.sums, counts: s.counts, dim: dim, classes: classes)
    }

    /// Per-class sums of the embeddings (Double) and counts (exact in a Double): the part a data-parallel run computes
    /// on each rank's share of the samples and sums over ranks before `mean(sums:counts:…)`.
    public static func sums(embeddings: [Float], labels: [Int], dim: Int, classes: Int) throws -> (sums: [Double], counts: [Double]) {
        try checkClassCount(classes, "prototype table")
        guard dim > 0, !classes.multipliedReportingOverflow(by: dim).overflow, classes * dim <= 1 << 30 else {
            throw TrainingError.invalidArgument("prototype table of \(classes)×\(dim) is not a sensible size")
        }
        try checkMatrix(embeddings.count, rows: labels.count, cols: dim, "prototype embeddings")
        try checkLabels(labels, classes: classes, "prototype labels")
        var sums = [Double](repeating: 0, count: classes * dim)
        var counts = [Double](repeating: 0, count: classes)
        for (r, y) in labels.enumerated() {
            counts[y] += 1
            for j in 0..<dim { sums[y * dim + j] += Double(embeddings[r * dim + j]) }
        }
        return (sums, counts)
    }

    /// The table from per-class sums and counts (`sums(…)`, possibly summed over ranks).
    public static func mean(sums: [Double], counts: [Double], dim: Int, classes: Int) throws -> PrototypeTable {
        guard sums.count == classes * dim, counts.count == classes, counts.allSatisfy({ $0 >= 0 && $0 == $0.rounded() }) else {
            throw TrainingError.invalidShape("prototype sums: \(sums.count) values and \(counts.count) counts for \(classes)×\(dim)")
        }
        var values = [Float](repeating: 0, count: classes * dim)
        for c in 0..<classes where counts[c] > 0 {
            for j in 0..<dim { values[c * dim + j] = Float(sums[c * dim + j] / counts[c]) }
        }
        return try PrototypeTable(classes: classes, dim: dim, values: values, counts: counts.map { Int($0) })
    }
}

/// K(E, Y) = (1/B) Σ_b Σ_d P_bd (log P_bd − log Q_bd), P = softmax(p_{y_b}), Q = softmax(e_b) over the feature
/// dimension: KL(prototype ‖ embedding), averaged over the batch (spec/TRAINING.md §A.5).
public enum PrototypeDivergence {
    public struct Result<T: TrainScalar> {
        public let value: Double
        /// ∂K/∂e_b = (Q_b − P_b)/B, B×dim.
        public let gradEmbeddings: [T]
    }

    public static func kl<T: TrainScalar>(embeddings: [T], labels: [Int], prototypes: PrototypeTable) throws -> Result<T> {
        let d = prototypes.dim, b = labels.count
        guard b > 0 else { throw TrainingError.emptySet("prototype divergence of an empty batch") }
        try checkMatrix(embeddings.count, rows: b, cols: d, "embeddings for the prototype divergence")
        try checkLabels(labels, classes: prototypes.classes, "prototype labels")
        for y in labels where prototypes.counts[y] == 0 {
            throw TrainingError.unknownClass(y, "it has no prototype (no sample of it was in the task's prototype data)")
        }
        var grad = [T](repeating: 0, count: b * d)
        var total = 0.0
        let invB = 1.0 / Double(b)
        var logP = [Double](repeating: 0, count: d), logQ = [Double](repeating: 0, count: d)
        for r in 0..<b {
            logSoftmax(d, { Double(prototypes.values[labels[r] * d + $0]) }, into: &logP)
            logSoftmax(d, { Double(embeddings[r * d + $0]) }, into: &logQ)
            var kl = 0.0
            for j in 0..<d {
                let p = Foundation.exp(logP[j])
                kl += p * (logP[j] - logQ[j])
                grad[r * d + j] = T((Foundation.exp(logQ[j]) - p) * invB)
            }
            total += kl
        }
        return Result(value: total * invB, gradEmbeddings: grad)
    }

    static func logSoftmax(_ n: Int, _ x: (Int) -> Double, into out: inout [Double]) {
        var mx = -Double.infinity
        for j in 0..<n { mx = max(mx, x(j)) }
        var s = 0.0
        for j in 0..<n { s += Foundation.exp(x(j) - mx) }
        let lse = mx + Foundation.log(s)
        for j in 0..<n { out[j] = x(j) - lse }
    }
}
