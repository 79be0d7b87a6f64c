/// One optimiser step's numbers, for progress lines and the JSONL log.
public struct StepReport: Codable, Sendable {
    /// 1-based task; 0-based epoch; 1-based step within the task and the task's total.
    public var task: Int
    public var epoch: Int
    public var epochs: Int
    public var step: Int
    public var steps: Int
    public var lr: Double
    public var ceRetain: Double
    public var ceForget: Double
    public var boundedForget: Double
    public var structure: Double?
    public var klForget: Double?
    public var prototypeTerm: Double
    public var total: Double
    /// Train-batch accuracy (percent) of the retain and forget batches.
    public var accRetain: Double
    public var accForget: Double
    public var imagesPerSecond: Double
    /// Seconds left in the whole run, from this task's pace.
    public var eta: Double
    public var seconds: Double
    /// Baselines: every loss term of the step by its name in the official code (nil for GS-LoRA).
    public var terms: [String: Double]? = nil

    enum CodingKeys: String, CodingKey {
        case task, epoch, epochs, step, steps, lr, ceRetain = "ce_r", ceForget = "ce_f", boundedForget = "bounded_f", structure
        case klForget = "kl_f", prototypeTerm = "prototype", total, accRetain = "train_acc_r", accForget = "train_acc_f"
        case imagesPerSecond = "images_per_s", eta, seconds, terms
    }
}

/// A forgetting task's result.
public struct TaskReport: Codable, Sendable {
    public var index: Int
    public var forget: [Int]
    public var retain: [Int]
    public var old: [Int]
    public var missing: [Int]
    public var forgetSamples: Int
    public var retainSamples: Int
    public var steps: Int
    public var adapter: String
    public var adapterFingerprint: String
    public var baseFingerprint: String
    public var before: TaskMetrics
    public var after: TaskMetrics
    /// H = 2Δ·Acc_r/(Δ + Acc_r + 1e-8), Δ = Acc_f(before) − Acc_f (nil without forget or retain test images).
    public var h: Double?
    /// The EMA model's metrics (GS-LoRA++ with an EMA that started).
    public var ema: TaskMetrics?
    /// Σ_T ‖T‖_F per group, as written in the adapter.
    public var groupNorms: [Double]
    public var prunedGroups: Int
    public var seconds: Double
    /// Baselines: the parameters the task changed and the bytes of the file it wrote (nil for GS-LoRA's adapters).
    public var parametersChanged: Int? = nil
    public var bytes: Int? = nil

    enum CodingKeys: String, CodingKey {
        case index, forget, retain, old, missing, forgetSamples = "forget_samples", retainSamples = "retain_samples", steps, adapter
        case adapterFingerprint = "adapter_fingerprint", baseFingerprint = "base_fingerprint", before, after, h, ema
        case groupNorms = "group_norms", prunedGroups = "pruned_groups", seconds, parametersChanged = "parameters_changed", bytes
    }
}

/// A whole run's result (Codable: the commands' JSON report).
public struct TrainReport: Codable, Sendable {
    public var backbone: String
    public var backboneFingerprint: String
    public var output: String
    public var classOrder: [Int]
    public var criterion: String
    public var resumed: Bool
    public var tasks: [TaskReport]
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case backbone, backboneFingerprint = "backbone_fingerprint", output, classOrder = "class_order", criterion, resumed, tasks, seconds
    }
}

/// What a run reports as it goes (the command prints, the library never does).
public enum TrainEvent {
    case taskStarted(task: Int, classes: TaskClasses, forgetSamples: Int, retainSamples: Int, steps: Int)
    /// `phase`: "before", "after", "ema" or "step N".
    case evaluated(task: Int, phase: String, metrics: TaskMetrics, h: Double?)
    case step(StepReport)
    case stateSaved(path: String)
    case taskFinished(TaskReport)
}
