import Foundation

/// `torch.optim.AdamW` (amsgrad off, maximize off), single-tensor CPU path, in float32 like PyTorch:
/// θ ← θ(1 − lr·λ); m ← m + (1−β1)(g − m); v ← β2·v + (1−β2)g²; θ ← θ − (lr/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε).
/// Each parameter keeps its own step count, so a parameter that receives no gradient is skipped, as in PyTorch.
public struct AdamW: Sendable {
    public struct Parameter: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let count: Int
        /// Whether this parameter is in the decayed group.
        public let decays: Bool
    }

    public let beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    public let parameters: [Parameter]
    public private(set) var steps: [Int]
    /// First and second moments per parameter (PyTorch's `exp_avg`, `exp_avg_sq`).
    public private(set) var expAvg: [[Float]]
    public private(set) var expAvgSq: [[Float]]

    /// timm's grouping: no decay for tensors with ndim ≤ 1 or names ending in ".bias"; all others decay
    /// (LoRA A and B are 2-D, so they decay).
    public static func decays(name: String, shape: [Int]) -> Bool {
        !(shape.count <= 1 || name.hasSuffix(".bias"))
    }

    public init(
        parameters: [(name: String, shape: [Int])], beta1: Double = 0.9, beta2: Double = 0.999,
        eps: Double = 1e-8, weightDecay: Double = 0.05
    ) throws {
        guard (0..<1).contains(beta1), (0..<1).contains(beta2) else {
            throw TrainingError.invalidArgument("AdamW betas must lie in [0, 1) (got \(beta1), \(beta2))")
        }
        guard eps.isFinite, eps >= 0, weightDecay.isFinite, weightDecay >= 0 else {
            throw TrainingError.invalidArgument("AdamW eps and weight decay must be finite and ≥ 0 (got \(eps), \(weightDecay))")
        }
        var params: [Parameter] = []
        for (name, shape) in parameters {
            var n = 1
            for s in shape {
                guard s >= 0 else { throw TrainingError.invalidShape("\(name): negative dimension in \(shape)") }
                let (m, o) = n.multipliedReportingOverflow(by: s)
                guard !o else { throw TrainingError.invalidShape("\(name): \(shape) overflows") }
                n = m
            }
            params.append(Parameter(name: name, shape: shape, count: n, decays: AdamW.decays(name: name, shape: shape)))
        }
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.parameters = params
        self.steps = [Int](repeating: 0, count: params.count)
        self.expAvg = params.map { [Float](repeating: 0, count: $0.count) }
        self.expAvgSq = params.map { [Float](repeating: 0, count: $0.count) }
    }

    /// Puts back saved state (a resumed run, or a PyTorch optimizer state dict): per-parameter step counts and moments,
    /// in the order of `parameters`.
    public mutating func restore(steps: [Int], expAvg: [[Float]], expAvgSq: [[Float]]) throws {
        guard steps.count == parameters.count, expAvg.count == parameters.count, expAvgSq.count == parameters.count else {
            throw TrainingError.invalidShape("AdamW state for \(steps.count)/\(expAvg.count)/\(expAvgSq.count) parameters, optimiser has \(parameters.count)")
        }
        for (i, p) in parameters.enumerated() {
            guard steps[i] >= 0 else { throw TrainingError.invalidArgument("\(p.name): negative step count \(steps[i])") }
            guard expAvg[i].count == p.count, expAvgSq[i].count == p.count else {
                throw TrainingError.invalidShape("\(p.name): saved moments hold \(expAvg[i].count)/\(expAvgSq[i].count) values, the parameter \(p.count)")
            }
        }
        self.steps = steps
        self.expAvg = expAvg
        self.expAvgSq = expAvgSq
    }

    /// One optimiser step over all parameters; a nil gradient leaves that parameter and its state untouched.
    public mutating func step(parameters values: inout [[Float]], gradients: [[Float]?], lr: Double) throws {
        guard values.count == parameters.count, gradients.count == parameters.count else {
            throw TrainingError.invalidShape("AdamW built for \(parameters.count) parameters, given \(values.count) values and \(gradients.count) gradients")
        }
        for i in parameters.indices {
            guard let g = gradients[i] else { continue }
            try g.withUnsafeBufferPointer { gp in
                try values[i].withUnsafeMutableBufferPointer { vp in try step(index: i, parameter: vp, gradient: gp, lr: lr) }
            }
        }
    }

    /// One step of parameter `index` on caller-owned buffers (e.g. a model's LoRA storage).
    public mutating func step(index: Int, parameter: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>, lr: Double) throws {
        guard parameters.indices.contains(index) else { throw TrainingError.invalidArgument("AdamW has no parameter \(index)") }
        let p = parameters[index]
        guard parameter.count == p.count, gradient.count == p.count else {
            throw TrainingError.invalidShape("\(p.name): \(p.count) values expected, given \(parameter.count) values and \(gradient.count) gradients")
        }
        guard lr.isFinite, lr >= 0 else { throw TrainingError.invalidArgument("learning rate must be finite and ≥ 0 (got \(lr))") }
        steps[index] += 1
        let t = Double(steps[index])
        let decay = Float(1 - lr * (p.decays ? weightDecay : 0))
        let w1 = Float(1 - beta1), b2 = Float(beta2), w2 = Float(1 - beta2)
        let stepSize = Float(lr / (1 - Foundation.pow(beta1, t)))
        let bc2Sqrt = Float((1 - Foundation.pow(beta2, t)).squareRoot())
        let epsF = Float(eps)
        expAvg[index].withUnsafeMutableBufferPointer { m in
            expAvgSq[index].withUnsafeMutableBufferPointer { v in
                for j in 0..<p.count {
                    let g = gradient[j]
                    var theta = parameter[j] * decay
                    m[j] += w1 * (g - m[j]) // torch lerp_ with weight < 0.5
                    v[j] = v[j] * b2 + w2 * g * g
                    let denom = v[j].squareRoot() / bc2Sqrt + epsF
                    theta += -stepSize * (m[j] / denom)
                    parameter[j] = theta
                }
            }
        }
    }
}
