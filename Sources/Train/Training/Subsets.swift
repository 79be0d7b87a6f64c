import GSLoRAFormat
import GSLoRAModel

/// Sample indices of a labelled training set, grouped by class (dataset order within a class).
public struct LabelIndex: Sendable {
    public let classes: Int
    public let labels: [Int]
    /// byClass[c] = indices of the samples labelled c, ascending.
    public let byClass: [[Int]]

    public init(labels: [Int], classes: Int) throws {
        try checkClassCount(classes, "dataset")
        try checkLabels(labels, classes: classes, "dataset labels")
        var by = [[Int]](repeating: [], count: classes)
        for (i, y) in labels.enumerated() { by[y].append(i) }
        self.classes = classes
        self.labels = labels
        self.byClass = by
    }

    /// All samples of the given classes, ascending (the dataset order a torch `Subset` keeps).
    public func samples(of classSet: [Int]) throws -> [Int] {
        try checkClasses(classSet)
        return classSet.flatMap { byClass[$0] }.sorted()
    }

    func checkClasses(_ classSet: [Int]) throws {
        var seen = Set<Int>()
        for c in classSet {
            guard c >= 0, c < classes else { throw TrainingError.unknownClass(c, "the dataset has classes 0..<\(classes)") }
            guard seen.insert(c).inserted else { throw TrainingError.invalidArgument("class \(c) is listed twice") }
        }
    }
}

/// The per-task training subsets (spec/TRAINING.md §A.6), drawn with our own SplitMix64 (the official code's torch/CPython
/// global RNG state is not reproducible).
public enum TrainingSubset {
    /// Full-data mode: ⌊ratio·N⌋ samples drawn uniformly without replacement from the whole set (per set, not per
    /// class, so class counts vary), returned ascending; the loader shuffles.
    public static func ratio(_ samples: [Int], ratio: Double, rng: inout SplitMix64) throws -> [Int] {
        guard ratio.isFinite, ratio > 0, ratio <= 1 else { throw TrainingError.invalidArgument("data ratio must lie in (0, 1] (got \(ratio))") }
        let k = Int((ratio * Double(samples.count)).rounded(.down))
        return rng.draw(samples, count: k).sorted()
    }

    /// Few-shot mode: exactly `shots` samples of each listed class, without replacement, then one shuffle of the union.
    public static func fewShot(_ index: LabelIndex, classes classSet: [Int], shots: Int, rng: inout SplitMix64) throws -> [Int] {
        guard shots >= 1 else { throw TrainingError.invalidArgument("few-shot needs at least one shot per class (got \(shots))") }
        try index.checkClasses(classSet)
        var picked: [Int] = []
        for c in classSet {
            let pool = index.byClass[c]
            guard pool.count >= shots else { throw TrainingError.notEnoughImages(classIndex: c, available: pool.count, requested: shots) }
            picked += rng.draw(pool, count: shots)
        }
        rng.fisherYates(&picked)
        return picked
    }

    /// The forget and retain training subsets of task t (0-based) under `options` (few-shot or data ratio), from the
    /// task's own stream 16 + t: the GS-LoRA trainer and the baselines draw the same images for the same task.
    static func task(_ t: Int, classes: TaskClasses, options o: TrainOptions, index: LabelIndex) throws -> (forget: [Int], retain: [Int]) {
        var rng = SplitMix64(seed: o.seed, stream: 16 + UInt64(t))
        let forgetSet: [Int], retainSet: [Int]
        if let shots = o.shots {
            forgetSet = try fewShot(index, classes: classes.forget, shots: shots, rng: &rng)
            retainSet = try fewShot(index, classes: classes.retain, shots: shots, rng: &rng)
        } else {
            forgetSet = try ratio(try index.samples(of: classes.forget), ratio: o.dataRatio, rng: &rng)
            retainSet = try ratio(try index.samples(of: classes.retain), ratio: o.dataRatio, rng: &rng)
        }
        for (set, name) in [(forgetSet, "forget"), (retainSet, "retain")] where set.isEmpty {
            throw TrainingError.badOption(
                option: o.shots == nil ? Setting("dataRatio") : Setting("shots"),
                problem: "task \(t + 1) draws no \(name) training image; raise it or use more data")
        }
        return (forgetSet, retainSet)
    }
}
