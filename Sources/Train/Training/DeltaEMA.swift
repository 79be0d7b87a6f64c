/// ΔW = s·B·A of one LoRA linear: B is out×r, A is r×in, result out×in (row-major), accumulated in Double.
public func loraDelta(a: [Float], b: [Float], rank: Int, inFeatures: Int, outFeatures: Int, scale: Double) throws -> [Float] {
    try checkMatrix(a.count, rows: rank, cols: inFeatures, "lora_A")
    try checkMatrix(b.count, rows: outFeatures, cols: rank, "lora_B")
    var out = [Float](repeating: 0, count: outFeatures * inFeatures)
    var row = [Double](repeating: 0, count: inFeatures)
    for o in 0..<outFeatures {
        for j in 0..<inFeatures { row[j] = 0 }
        for k in 0..<rank {
            let bk = Double(b[o * rank + k])
            if bk == 0 { continue }
            for j in 0..<inFeatures { row[j] += bk * Double(a[k * inFeatures + j]) }
        }
        for j in 0..<inFeatures { out[o * inFeatures + j] = Float(scale * row[j]) }
    }
    return out
}

/// GS-LoRA++ weight averaging (spec/TRAINING.md §A.5) kept as an EMA of the merged updates ΔW = s·B·A per LoRA linear.
/// Base weights are frozen, so EMA(W + ΔW) = W + EMA(ΔW): only the deltas are stored, and the averaged model is
/// W + `deltas` computed out of place. It is an EMA of products, not a product of averaged factors.
public struct DeltaEMA: Sendable {
    /// E0: the first epoch (0-based) whose end initialises the average.
    public let startEpoch: Int
    public let decay: Double
    /// The averaged ΔW per LoRA linear; nil until the end of epoch `startEpoch`.
    public private(set) var deltas: [[Float]]?

    public init(startEpoch: Int, decay: Double) throws {
        guard startEpoch >= 0, decay.isFinite, (0...1).contains(decay) else {
            throw TrainingError.invalidArgument("EMA needs a start epoch ≥ 0 and a decay in [0, 1] (got \(startEpoch), \(decay))")
        }
        self.startEpoch = startEpoch
        self.decay = decay
    }

    /// Call at the end of each epoch with the current ΔW of every LoRA linear. Returns whether the average changed:
    /// epoch E0 copies, later epochs blend d·EMA + (1−d)·ΔW, earlier epochs do nothing.
    @discardableResult
    public mutating func endOfEpoch(_ epoch: Int, deltas current: [[Float]]) throws -> Bool {
        guard epoch >= startEpoch else { return false }
        guard let old = deltas else {
            guard epoch == startEpoch else {
                throw TrainingError.invalidArgument("EMA starts at the end of epoch \(startEpoch) but was first updated at epoch \(epoch)")
            }
            deltas = current
            return true
        }
        guard old.count == current.count, zip(old, current).allSatisfy({ $0.count == $1.count }) else {
            throw TrainingError.invalidShape("EMA holds \(old.count) deltas of other sizes than the \(current.count) given")
        }
        let d = decay
        deltas = zip(old, current).map { e, c in zip(e, c).map { Float(d * Double($0) + (1 - d) * Double($1)) } }
        return true
    }
}
