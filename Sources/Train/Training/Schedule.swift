import Foundation

/// timm's CosineLRScheduler as the scripts use it (spec/TRAINING.md §A.7): evaluated once at the start of each 0-based epoch,
/// constant within the epoch, period = the epoch count (decay-epochs and cooldown have no effect), one cycle.
/// Warm-up (pre-training only): linear from `warmupStartLR` for e < W, then the cosine at the unshifted e.
public struct CosineSchedule: Sendable, Equatable {
    public let baseLR: Double
    public let minLR: Double
    public let epochs: Int
    public let warmupEpochs: Int
    public let warmupStartLR: Double

    public init(baseLR: Double, minLR: Double, epochs: Int, warmupEpochs: Int = 0, warmupStartLR: Double = 1e-6) throws {
        guard baseLR.isFinite, minLR.isFinite, warmupStartLR.isFinite, baseLR >= 0, minLR >= 0, warmupStartLR >= 0 else {
            throw TrainingError.invalidArgument("learning rates must be finite and ≥ 0 (base \(baseLR), min \(minLR), warm-up start \(warmupStartLR))")
        }
        guard epochs > 0, warmupEpochs >= 0 else {
            throw TrainingError.invalidArgument("schedule needs epochs > 0 and warm-up ≥ 0 (got \(epochs), \(warmupEpochs))")
        }
        self.baseLR = baseLR
        self.minLR = minLR
        self.epochs = epochs
        self.warmupEpochs = warmupEpochs
        self.warmupStartLR = warmupStartLR
    }

    /// The learning rate of 0-based epoch `epoch`; epochs past the cycle stay at `minLR` (timm's cycle limit 1).
    public func lr(epoch: Int) -> Double {
        let e = max(0, epoch)
        if e < warmupEpochs {
            return warmupStartLR + Double(e) * (baseLR - warmupStartLR) / Double(warmupEpochs)
        }
        guard e < epochs else { return minLR }
        return minLR + 0.5 * (baseLR - minLR) * (1 + Foundation.cos(Double.pi * Double(e) / Double(epochs)))
    }
}

/// α per epoch (spec/TRAINING.md §A.3): constant, or 0 before a start epoch and a fixed value from it on ("warmup_alpha").
public enum AlphaSchedule: Sendable, Equatable {
    case constant(Double)
    case warmup(startEpoch: Int, alpha: Double)

    public func alpha(epoch: Int) -> Double {
        switch self {
        case let .constant(a): return a
        case let .warmup(start, a): return epoch < start ? 0 : a
        }
    }
}
