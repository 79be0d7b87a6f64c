import GSLoRAModel

/// The class order π (spec/TRAINING.md §A.6).
public enum ClassOrder {
    /// CPython `random.seed(1337); random.shuffle(list(range(100)))`, as the official scripts draw it.
    public static let casia100Seed1337: [Int] = [
        83, 17, 10, 9, 89, 52, 7, 32, 37, 77, 61, 34, 78, 55, 56, 63, 69, 22, 75, 66, 35, 72, 71, 23, 86, 38, 24, 5, 29, 30,
        16, 11, 82, 19, 57, 14, 91, 27, 98, 53, 0, 20, 59, 28, 47, 18, 6, 48, 12, 62, 1, 43, 3, 60, 41, 85, 4, 95, 97, 36,
        94, 65, 67, 99, 25, 33, 70, 40, 92, 31, 58, 15, 45, 2, 87, 76, 80, 44, 64, 8, 51, 54, 13, 88, 84, 26, 50, 39, 96, 81,
        49, 42, 21, 93, 74, 73, 46, 90, 68, 79
    ]

    /// π for `classes` classes and `seed`: the official table for 100 classes with seed 1337; otherwise our own
    /// SplitMix64 Fisher–Yates shuffle of 0..<classes (CPython's Mersenne Twister is not reproduced).
    public static func make(classes: Int, seed: UInt64) throws -> [Int] {
        try checkClassCount(classes, "class order")
        if classes == 100 && seed == 1337 { return casia100Seed1337 }
        var rng = SplitMix64(seed: seed)
        var order = Array(0..<classes)
        rng.fisherYates(&order)
        return order
    }
}

/// The classes of one forgetting task: retained, forgotten now, forgotten earlier, and missing (never trained on).
public struct TaskClasses: Sendable, Equatable {
    public var retain: [Int]
    public var forget: [Int]
    public var old: [Int]
    public var missing: [Int]

    public init(retain: [Int], forget: [Int], old: [Int] = [], missing: [Int] = []) {
        self.retain = retain
        self.forget = forget
        self.old = old
        self.missing = missing
    }
}

public enum ForgettingSplit {
    /// Single step: retain π[0:F], forget π[F:F+P]. With `missing` k > 0 (the single-step open-set layout) the
    /// last k retain classes π[F−k:F] become missing and retain is π[0:F−k].
    public static func singleStep(order: [Int], retain f: Int, forget p: Int, missing k: Int = 0) throws -> TaskClasses {
        try checkOrder(order)
        guard p >= 1, f >= 1, k >= 0, k < f, f + p <= order.count else {
            throw TrainingError.invalidArgument("single-step split needs 1 ≤ P, 0 ≤ k < F and F + P ≤ \(order.count) (got F \(f), P \(p), k \(k))")
        }
        return TaskClasses(
            retain: Array(order[0..<(f - k)]), forget: Array(order[f..<(f + p)]),
            missing: Array(order[(f - k)..<f]))
    }

    /// Continual task t (0-based): retain R_t = π[k : F−tP], forget F_t = π[F−tP : F−tP+P],
    /// old O_t = π[F−tP+P : end] for t ≥ 1, missing M = π[0:k].
    public static func continual(order: [Int], firstRetain f: Int, perTask p: Int, task t: Int, missing k: Int = 0) throws -> TaskClasses {
        try checkOrder(order)
        guard p >= 1, t >= 0, k >= 0, f + p <= order.count else {
            throw TrainingError.invalidArgument("continual split needs P ≥ 1, t ≥ 0, k ≥ 0 and F + P ≤ \(order.count) (got F \(f), P \(p), t \(t), k \(k))")
        }
        let (tp, o) = t.multipliedReportingOverflow(by: p)
        let end = f - tp
        guard !o, end - k >= 1 else {
            throw TrainingError.emptySet("continual task \(t) with F \(f), P \(p), k \(k) leaves no retain class; use fewer tasks")
        }
        return TaskClasses(
            retain: Array(order[k..<end]), forget: Array(order[end..<(end + p)]),
            old: t >= 1 ? Array(order[(end + p)...]) : [], missing: Array(order[0..<k]))
    }

    private static func checkOrder(_ order: [Int]) throws {
        guard !order.isEmpty, Set(order) == Set(0..<order.count) else {
            throw TrainingError.invalidArgument("class order must be a permutation of 0..<\(order.count)")
        }
    }
}
