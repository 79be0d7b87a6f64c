import GSLoRATraining

/// Everything a `gslora-demo` run measured, as `report.json` stores it and `report.md` / the plots render it.
/// Accuracies are percentages on the test set by `criterion`; nil where a set has no class (Acc_o of task 1).
public struct DemoReport: Codable, Sendable {
    public var data: String
    public var classNames: [String]
    public var seed: UInt64
    /// π: the seeded class order the tasks take their classes from (spec/TRAINING.md §5).
    public var classOrder: [Int]
    /// "cosine" (argmax of s·cos) or "margin" (the paper's face criterion).
    public var criterion: String
    public var quick: Bool
    public var pretrain: PretrainSummary
    public var runs: [RunSummary]
    /// The wall time of each stage, in order, and of the whole job (wall and process CPU time).
    public var stages: [StageTiming]
    public var seconds: Double
    public var cpuSeconds: Double = 0
    /// The acceptance checks, evaluated on these numbers.
    public var checks: [Check]

    public init(
        data: String, classNames: [String], seed: UInt64, classOrder: [Int], criterion: String, quick: Bool,
        pretrain: PretrainSummary, runs: [RunSummary], stages: [StageTiming], seconds: Double, checks: [Check]
    ) {
        self.data = data
        self.classNames = classNames
        self.seed = seed
        self.classOrder = classOrder
        self.criterion = criterion
        self.quick = quick
        self.pretrain = pretrain
        self.runs = runs
        self.stages = stages
        self.seconds = seconds
        self.checks = checks
    }

    enum CodingKeys: String, CodingKey {
        case data, classNames = "class_names", seed, classOrder = "class_order", criterion, quick, pretrain, runs, stages, seconds
        case cpuSeconds = "cpu_seconds", checks
    }
}

/// The pre-trained backbone: how it was made (or that it came from the cache) and what it scores.
public struct PretrainSummary: Codable, Sendable {
    public var path: String
    public var fingerprint: String
    /// True when the cached file's settings matched and training was skipped.
    public var cached: Bool
    public var options: PretrainOptions
    public var parameters: Int
    public var trainImages: Int
    /// Test accuracy over all classes, plain argmax of s·cos and with the margin criterion.
    public var accuracy: Double
    public var accuracyMargin: Double
    /// Test accuracy of each class by the report's criterion (the reference the retained classes are held to).
    public var perClass: [Double?]
    /// Per-epoch numbers when it was trained in this run (empty when cached).
    public var epochs: [PretrainEpoch]
    public var seconds: Double

    public init(
        path: String, fingerprint: String, cached: Bool, options: PretrainOptions, parameters: Int, trainImages: Int,
        accuracy: Double, accuracyMargin: Double, perClass: [Double?], epochs: [PretrainEpoch], seconds: Double
    ) {
        self.path = path
        self.fingerprint = fingerprint
        self.cached = cached
        self.options = options
        self.parameters = parameters
        self.trainImages = trainImages
        self.accuracy = accuracy
        self.accuracyMargin = accuracyMargin
        self.perClass = perClass
        self.epochs = epochs
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case path, fingerprint, cached, options, parameters, trainImages = "train_images", accuracy, accuracyMargin = "accuracy_margin"
        case perClass = "per_class", epochs, seconds
    }
}

/// One continual-forgetting run (GS-LoRA, or GS-LoRA++ few-shot) from training to export.
public struct RunSummary: Codable, Sendable {
    /// Short id used in file names ("gslora", "gslora-plus").
    public var name: String
    public var title: String
    public var options: TrainOptions
    public var folder: String
    public var tasks: [TaskRow]
    /// The chain merged into one backbone and evaluated again through the evaluation path.
    public var merged: MergedSummary
    public var exports: [ExportSummary]
    public var seconds: Double

    public init(
        name: String, title: String, options: TrainOptions, folder: String, tasks: [TaskRow], merged: MergedSummary,
        exports: [ExportSummary], seconds: Double
    ) {
        self.name = name
        self.title = title
        self.options = options
        self.folder = folder
        self.tasks = tasks
        self.merged = merged
        self.exports = exports
        self.seconds = seconds
    }
}

/// One task's row of the report table.
public struct TaskRow: Codable, Sendable {
    public var task: Int
    public var forget: [Int]
    public var retain: [Int]
    public var old: [Int]
    public var accRetain: Double?
    public var accForget: Double?
    public var accOld: Double?
    public var h: Double?
    /// Accuracy on this task's forget classes at the start of the task (Δ's reference).
    public var accForgetBefore: Double?
    /// The pre-trained model's accuracy on this task's retained classes: what Acc_r is held to.
    public var accRetainPretrained: Double?
    public var trainableParameters: Int
    public var backboneParameters: Int
    /// trainable / backbone parameters, percent.
    public var trainableRatio: Double
    public var groups: [GroupRow]
    public var groupsKept: Int
    public var adapter: String
    public var adapterBytes: Int
    public var trainImages: Int
    public var steps: Int
    public var seconds: Double

    public init(
        task: Int, forget: [Int], retain: [Int], old: [Int], accRetain: Double?, accForget: Double?, accOld: Double?, h: Double?,
        accForgetBefore: Double?, accRetainPretrained: Double?, trainableParameters: Int, backboneParameters: Int,
        groups: [GroupRow], adapter: String, adapterBytes: Int, trainImages: Int, steps: Int, seconds: Double
    ) {
        self.task = task
        self.forget = forget
        self.retain = retain
        self.old = old
        self.accRetain = accRetain
        self.accForget = accForget
        self.accOld = accOld
        self.h = h
        self.accForgetBefore = accForgetBefore
        self.accRetainPretrained = accRetainPretrained
        self.trainableParameters = trainableParameters
        self.backboneParameters = backboneParameters
        self.trainableRatio = backboneParameters > 0 ? 100 * Double(trainableParameters) / Double(backboneParameters) : 0
        self.groups = groups
        self.groupsKept = groups.filter(\.kept).count
        self.adapter = adapter
        self.adapterBytes = adapterBytes
        self.trainImages = trainImages
        self.steps = steps
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case task, forget, retain, old, accRetain = "acc_r", accForget = "acc_f", accOld = "acc_o", h
        case accForgetBefore = "acc_f_before", accRetainPretrained = "acc_r_pretrained"
        case trainableParameters = "trainable_parameters", backboneParameters = "backbone_parameters", trainableRatio = "trainable_ratio"
        case groups, groupsKept = "groups_kept", adapter, adapterBytes = "adapter_bytes", trainImages = "train_images", steps, seconds
    }
}

/// A group-lasso group of one task's adapter: its recorded norm Σ‖T‖_F and whether pruning kept it.
public struct GroupRow: Codable, Equatable, Sendable {
    public var name: String
    public var norm: Double
    public var kept: Bool

    public init(name: String, norm: Double, kept: Bool) {
        self.name = name
        self.norm = norm
        self.kept = kept
    }
}

/// The merged chain (backbone + every task's adapter) re-evaluated from its file.
public struct MergedSummary: Codable, Sendable {
    public var path: String
    public var fingerprint: String
    public var bytes: Int
    /// Retained: never-forgotten classes; forget: the last task's; old: every earlier task's.
    public var accRetain: Double?
    public var accForget: Double?
    public var accOld: Double?

    public init(path: String, fingerprint: String, bytes: Int, accRetain: Double?, accForget: Double?, accOld: Double?) {
        self.path = path
        self.fingerprint = fingerprint
        self.bytes = bytes
        self.accRetain = accRetain
        self.accForget = accForget
        self.accOld = accOld
    }

    enum CodingKeys: String, CodingKey {
        case path, fingerprint, bytes, accRetain = "acc_r", accForget = "acc_f", accOld = "acc_o"
    }
}

/// A file the final model was exported to.
public struct ExportSummary: Codable, Sendable {
    public var path: String
    public var format: String
    public var tensors: Int
    public var bytes: Int

    public init(path: String, format: String, tensors: Int, bytes: Int) {
        self.path = path
        self.format = format
        self.tensors = tensors
        self.bytes = bytes
    }
}

/// Wall time of a stage, and the process CPU time it took (on a loaded machine the CPU time is the honest measure of
/// the work: wall time ≈ CPU time / cores when nothing else runs).
public struct StageTiming: Codable, Sendable {
    public var stage: String
    public var seconds: Double
    public var cpuSeconds: Double

    public init(stage: String, seconds: Double, cpuSeconds: Double = 0) {
        self.stage = stage
        self.seconds = seconds
        self.cpuSeconds = cpuSeconds
    }

    enum CodingKeys: String, CodingKey { case stage, seconds, cpuSeconds = "cpu_seconds" }
}

/// An acceptance check: what is required, what was measured, and whether it holds.
public struct Check: Codable, Sendable {
    public var name: String
    public var requirement: String
    public var measured: String
    public var passed: Bool

    public init(name: String, requirement: String, measured: String, passed: Bool) {
        self.name = name
        self.requirement = requirement
        self.measured = measured
        self.passed = passed
    }
}
