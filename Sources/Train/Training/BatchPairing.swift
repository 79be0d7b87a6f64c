import GSLoRAModel

/// A shuffled loader over sample indices: every pass draws a fresh permutation from its own generator and cuts it
/// into batches of `batchSize`, keeping the last partial batch (`drop_last = false`).
public struct ShuffledLoader: Sendable {
    public let samples: [Int]
    public let batchSize: Int
    private var rng: SplitMix64

    public init(samples: [Int], batchSize: Int, rng: SplitMix64) throws {
        guard batchSize >= 1 else { throw TrainingError.invalidArgument("batch size must be ≥ 1 (got \(batchSize))") }
        guard !samples.isEmpty else { throw TrainingError.emptySet("a loader over no samples") }
        self.samples = samples
        self.batchSize = batchSize
        self.rng = rng
    }

    /// ⌈N/B⌉.
    public var batchCount: Int { (samples.count + batchSize - 1) / batchSize }

    /// One pass over the data.
    public mutating func pass() -> [[Int]] {
        var order = samples
        rng.fisherYates(&order)
        return stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0..<min($0 + batchSize, order.count)]) }
    }
}

/// One optimiser step's pair of batches (sample indices).
public struct BatchPair: Sendable, Equatable {
    public var retain: [Int]
    public var forget: [Int]
}

/// How retain and forget batches are paired (spec/TRAINING.md §A.4). The driving loader makes one step per batch; the other
/// cycles: a fresh pass starts at the beginning of every epoch (discarding any remainder) and whenever it runs out.
public struct BatchPairing: Sendable {
    public enum Driver: Sendable, Equatable {
        /// Continual engine, and single-step outside few-shot: retain forward first.
        case retain
        /// Single-step few-shot when the forget loader has more batches: forget forward first.
        case forget
    }

    public let driver: Driver
    private var retainLoader: ShuffledLoader
    private var forgetLoader: ShuffledLoader

    /// Each loader shuffles with its own stream of `seed` (retain stream 1, forget stream 2).
    /// `fewShotSingleStep` enables the single-step rule that lets the forget loader drive when it is longer.
    public init(retain: [Int], forget: [Int], batchSize: Int, seed: UInt64, fewShotSingleStep: Bool = false) throws {
        guard !retain.isEmpty else { throw TrainingError.emptySet("the retain set has no samples") }
        guard !forget.isEmpty else { throw TrainingError.emptySet("the forget set has no samples") }
        retainLoader = try ShuffledLoader(samples: retain, batchSize: batchSize, rng: SplitMix64(seed: seed, stream: 1))
        forgetLoader = try ShuffledLoader(samples: forget, batchSize: batchSize, rng: SplitMix64(seed: seed, stream: 2))
        driver = fewShotSingleStep && forgetLoader.batchCount > retainLoader.batchCount ? .forget : .retain
    }

    /// ⌈N/B⌉ of the driving loader.
    public var stepsPerEpoch: Int { driver == .retain ? retainLoader.batchCount : forgetLoader.batchCount }

    /// The steps of the next epoch, in order.
    public mutating func nextEpoch() -> [BatchPair] {
        switch driver {
        case .retain:
            let driving = retainLoader.pass()
            let cycled = Self.cycle(&forgetLoader, count: driving.count)
            return zip(driving, cycled).map { BatchPair(retain: $0, forget: $1) }
        case .forget:
            let driving = forgetLoader.pass()
            let cycled = Self.cycle(&retainLoader, count: driving.count)
            return zip(driving, cycled).map { BatchPair(retain: $1, forget: $0) }
        }
    }

    private static func cycle(_ loader: inout ShuffledLoader, count: Int) -> [[Int]] {
        var out: [[Int]] = []
        out.reserveCapacity(count)
        var current = loader.pass()
        var i = 0
        while out.count < count {
            if i == current.count { current = loader.pass(); i = 0 }
            out.append(current[i])
            i += 1
        }
        return out
    }
}
