import Foundation
import GSLoRACluster

/// L2 / EWC / MAS regulariser (spec/TRAINING.md §B.3): λ·Σ_j Σ_n Σ Ω_j,n ⊙ (θ_n − θ*_j,n)² over the stored terms j
/// (one per finished task, never merged), full sum, no ½. A nil importance is Ω = 1 (L2).
public struct ParameterPenalty: Sendable {
    public struct Term: Sendable {
        /// Anchor θ* and importance Ω per trainable parameter, index-aligned with the model's parameters (nil where the
        /// parameter does not train).
        public let anchor: [[Float]?]
        public let importance: [[Float]?]?
        public init(anchor: [[Float]?], importance: [[Float]?]?) { self.anchor = anchor; self.importance = importance }
    }

    public let lambda: Double
    public private(set) var terms: [Term] = []

    public init(lambda: Double) throws {
        guard lambda.isFinite, lambda >= 0 else { throw TrainingError.invalidArgument("regularisation λ must be finite and ≥ 0 (got \(lambda))") }
        self.lambda = lambda
    }

    public mutating func add(_ term: Term) { terms.append(term) }

    /// λ·penalty of the model's current values; its gradient is ADDED to the model's gradients.
    public func apply(to m: FullParameterModel) throws -> Double {
        var total = 0.0
        for term in terms {
            guard term.anchor.count == m.values.count, term.importance.map({ $0.count == m.values.count }) ?? true else {
                throw TrainingError.invalidShape("regularisation term for \(term.anchor.count) parameters, model has \(m.values.count)")
            }
            for (i, anchor) in term.anchor.enumerated() {
                guard let anchor else { continue }
                let omega = term.importance?[i]
                let v = m.values[i], g = m.gradients[i]
                guard anchor.count == v.count, omega.map({ $0.count == v.count }) ?? true else {
                    throw TrainingError.invalidShape("\(m.names[i]): anchor/importance size differs from the parameter's \(v.count)")
                }
                var s = 0.0
                for j in 0..<v.count {
                    let d = v.pointer[j] - anchor[j]
                    let w = omega?[j] ?? 1
                    s += Double(w * d * d)
                    g.pointer[j] += Float(2 * lambda) * w * d
                }
                total += s
            }
        }
        return lambda * total
    }
}

/// The importance estimates of EWC and MAS (spec/TRAINING.md §B.3), over the model's trainable parameters with
/// dropout off, from batches of (images, true labels). Each is a mean over batches of a per-batch quantity, so a
/// data-parallel run gives each rank a contiguous share of the batches (whole) and sums the estimates over the ranks.
public enum ImportanceEstimate {
    /// EWC's empirical Fisher: Ω = (1/N_batches) Σ_b n_b·g_b², g_b = ∇ of the batch-mean CE on the margin logits.
    public static func fisher(
        _ m: FullParameterModel, batches: [(images: [Float], labels: [Int])],
        communicator: Communicator = SingleProcess()
    ) throws -> [[Float]?] {
        try estimate(m, batches, communicator) { pass, labels in
            let ce = try CrossEntropy.mean(logits: pass.logits, labels: labels, classes: m.head.classes)
            return ce.gradLogits
        } accumulate: { g, n, count in
            Float(n) * g * g / Float(count)
        }
    }

    /// MAS: Ω = (1/N_batches) Σ_b |∇ mean_{i,k} z_ik²| on the margin logits (scale included).
    public static func mas(
        _ m: FullParameterModel, batches: [(images: [Float], labels: [Int])],
        communicator: Communicator = SingleProcess()
    ) throws -> [[Float]?] {
        try estimate(m, batches, communicator) { pass, _ in
            let n = Float(pass.logits.count)
            return pass.logits.map { 2 * $0 / n }
        } accumulate: { g, _, count in
            abs(g) / Float(count)
        }
    }

    private static func estimate(
        _ m: FullParameterModel, _ batches: [(images: [Float], labels: [Int])], _ communicator: Communicator,
        gradLogits: (FullParameterModel.Pass, [Int]) throws -> [Float],
        accumulate: (Float, Int, Int) -> Float
    ) throws -> [[Float]?] {
        guard !batches.isEmpty else { throw TrainingError.emptySet("importance estimate over no batches") }
        var omega: [[Float]?] = m.values.indices.map { m.trainable[$0] ? [Float](repeating: 0, count: m.values[$0].count) : nil }
        for b in batches[communicator.shard(batches.count)] {
            m.zeroGradients()
            let pass = try m.forward(images: b.images, labels: b.labels, dropout: 0)
            try m.backward(pass, gradLogits: try gradLogits(pass, b.labels))
            for i in omega.indices where omega[i] != nil {
                let g = m.gradients[i]
                for j in 0..<g.count { omega[i]![j] += accumulate(g.pointer[j], b.labels.count, batches.count) }
            }
        }
        m.zeroGradients()
        if communicator.size > 1 {
            var packed = omega.flatMap { $0 ?? [] }
            try communicator.allreduceSum(&packed)
            var at = 0
            for i in omega.indices where omega[i] != nil {
                let n = omega[i]!.count
                omega[i] = Array(packed[at..<(at + n)])
                at += n
            }
        }
        return omega
    }
}
