import Foundation

/// SCRUB's `AveragedModel` (spec/TRAINING.md §B.3): an average of the student's parameters, created from the starting
/// model and updated at the end of every super-epoch — the first update copies the student, later ones
/// θ^swa ← (1−β)·θ^swa + β·θ. It persists across tasks and enters the loss only through `distance`.
public struct AveragedModel: Sendable {
    public let beta: Double
    public private(set) var values: [[Float]]
    public private(set) var averaged = 0

    public init(values: [[Float]], beta: Double) throws {
        guard beta.isFinite, beta > 0, beta <= 1 else { throw TrainingError.invalidArgument("SWA β must lie in (0, 1] (got \(beta))") }
        self.values = values
        self.beta = beta
    }

    public mutating func update(with m: FullParameterModel) throws {
        guard m.values.count == values.count else { throw TrainingError.invalidShape("averaged model of \(values.count) tensors, model has \(m.values.count)") }
        for i in values.indices {
            let v = m.values[i]
            guard v.count == values[i].count else { throw TrainingError.invalidShape("\(m.names[i]): averaged copy size differs") }
            if averaged == 0 {
                values[i] = v.array
            } else {
                let b = Float(beta), keep = Float(1 - beta)
                for j in 0..<v.count { values[i][j] = keep * values[i][j] + b * v.pointer[j] }
            }
        }
        averaged += 1
    }

    /// D = Σ over all tensors of ‖θ_n − θ^swa_n‖_F (a sum of per-tensor norms); σ·∇D is ADDED to the gradients of
    /// the trainable tensors (a tensor at distance 0 gets a zero subgradient). Returns the unscaled D.
    public func distance(to m: FullParameterModel, addingGradientTimes sigma: Double) throws -> Double {
        guard m.values.count == values.count else { throw TrainingError.invalidShape("averaged model of \(values.count) tensors, model has \(m.values.count)") }
        var total = 0.0
        for i in values.indices {
            let v = m.values[i]
            var ss = 0.0
            for j in 0..<v.count { let d = Double(v.pointer[j] - values[i][j]); ss += d * d }
            let n = ss.squareRoot()
            total += n
            guard sigma != 0, n > 0, m.trainable[i] else { continue }
            let g = m.gradients[i]
            for j in 0..<v.count { g.pointer[j] += Float(sigma * Double(v.pointer[j] - values[i][j]) / n) }
        }
        return total
    }
}
