import GSLoRAModel

/// The official `CLDatasetWrapper` (spec/TRAINING.md §B.1, §7 decision 1): each time a forget sample is fetched its label y
/// becomes y' = (y + r) mod K with r uniform in 1…100, and y' = (y + 1) mod K when that gives y back. K is the number
/// of forget classes in the official code (so y' is a global class index below K), or `BaselineSettings.relabelModulus`.
public struct ForgetRelabel: Sendable {
    public let modulus: Int
    private var rng: SplitMix64

    public init(modulus: Int, rng: SplitMix64) throws {
        guard modulus >= 1 else { throw TrainingError.invalidArgument("the forget-label modulus must be ≥ 1 (got \(modulus))") }
        self.modulus = modulus
        self.rng = rng
    }

    public mutating func rewrite(_ y: Int) -> Int {
        let r = 1 + rng.index(below: 100)
        var out = (y + r) % modulus
        if out == y { out = (y + 1) % modulus }
        return out
    }
}
