import Foundation
import GSLoRAFormat
import GSLoRAModel

/// Everything a forgetting run is configured by (defaults: the CASIA continual GS-LoRA recipe, spec/TRAINING.md §A.7).
/// Stored in the training state, so resuming (`Trainer.run(resume:)`) can refuse a run configured differently, and in every adapter's
/// task record (`settings`).
public struct TrainOptions: Codable, Equatable, Sendable {
    /// Seeds the class order, subsets, LoRA initialisation, batch order and dropout (spec/TRAINING.md §5).
    public var seed: UInt64 = 1337
    /// Continual tasks T; 1 is single-step forgetting.
    public var tasks = 1
    /// Classes forgotten per task (P), taken from the class order: task t forgets π[F−tP : F−tP+P], F = classes − P.
    public var classesPerTask = 1
    /// Explicit forget classes, one list per task (their count is the number of tasks); every class not forgotten
    /// yet (minus missing ones) is retained, and earlier tasks' classes are old.
    public var forget: [[Int]]?
    /// k: the first k classes of the order are never trained on (missing-class setting).
    public var missing = 0
    /// Full-data mode: the fraction of each set (forget, retain) drawn per task.
    public var dataRatio = 0.1
    /// Few-shot mode: exactly this many images per forget and retain class (overrides `dataRatio`).
    public var shots: Int?
    public var batchSize = 48
    /// Epochs per task (the last value repeats): a task whose retain set is small has few steps per epoch.
    public var epochs = [100]
    public var lr = 1e-2
    public var minLR = 1e-5
    public var weightDecay = 0.05
    /// Dropout in training (face ViT: 0.1); evaluation and prototypes never drop.
    public var dropout = 0.1
    public var rank = 8
    /// loralib's lora_alpha; scaling = loraAlpha / rank.
    public var loraAlpha = 1.0
    /// "block", "lora" or "matrix".
    public var grouping = "block"
    /// BND.
    public var bound = 105.0
    /// β per task (the last value repeats for later tasks).
    public var beta: [Double] = [0.2]
    /// α, and the epoch from which it applies (0: constant; > 0: the warm-up form, structure term off before).
    public var alpha = 1e-4
    public var alphaStartEpoch = 0
    /// GS-LoRA++: prototype hinge (and w_r) and the EMA report.
    public var plus = false
    /// w_f per task (last value repeats), M, w_r.
    public var prototypeForget: [Double] = [0.01]
    public var prototypeMargin = 18.0
    public var prototypeRetain = 0.0
    /// EMA of ΔW from the end of this 0-based epoch (GS-LoRA++ only; nil: none), and its decay.
    public var emaStart: Int? = 30
    public var emaDecay = 0.9
    /// Count accuracy with the CosFace/ArcFace margin on the true class (the paper's face numbers) instead of plain argmax.
    public var marginEval = false
    /// Evaluate on the test set every this many steps (0: only before and after each task).
    public var evalEvery = 0
    /// Prune groups whose norm (Σ‖T‖_F) is below this before writing each adapter.
    public var pruneThreshold: Double?
    /// Images per evaluation / prototype forward call.
    public var evalBatch = 64
    /// Arithmetic of the frozen layers in the training steps (forward products and input gradients); evaluation
    /// and prototypes always run in float32, so before/after numbers compare across precisions.
    public var precision: MatmulPrecision = .float32

    public init() {}

    func perTask<N: Numeric>(_ list: [N], _ t: Int) -> N { list.isEmpty ? 0 : list[min(t, list.count - 1)] }

    /// Epochs of task t (0-based).
    public func epochs(task t: Int) -> Int { perTask(epochs, t) }

    /// Refuses settings that cannot work, naming the option.
    public func validate(classes: Int) throws {
        func need(_ ok: Bool, _ option: Setting, _ why: String) throws {
            if !ok { throw TrainingError.badOption(option: option, problem: why) }
        }
        try need(tasks >= 1, Setting("tasks"), "must be ≥ 1 (got \(tasks))")
        try need(classesPerTask >= 1, Setting("classesPerTask"), "must be ≥ 1 (got \(classesPerTask))")
        try need(missing >= 0, Setting("missing"), "must be ≥ 0 (got \(missing))")
        try need(dataRatio.isFinite && dataRatio > 0 && dataRatio <= 1, Setting("dataRatio"), "must lie in (0, 1] (got \(dataRatio))")
        if let shots { try need(shots >= 1, Setting("shots"), "must be ≥ 1 (got \(shots))") }
        try need(batchSize >= 1, Setting("batchSize"), "must be ≥ 1 (got \(batchSize))")
        try need(!epochs.isEmpty && epochs.allSatisfy { $0 >= 1 }, Setting("epochs"), "must be ≥ 1 (got \(epochs))")
        try need(lr.isFinite && lr >= 0, Setting("lr"), "must be finite and ≥ 0")
        try need(minLR.isFinite && minLR >= 0, Setting("minLR"), "must be finite and ≥ 0")
        try need(weightDecay.isFinite && weightDecay >= 0, Setting("weightDecay"), "must be finite and ≥ 0")
        try need(dropout >= 0 && dropout < 1, Setting("dropout"), "must lie in [0, 1) (got \(dropout))")
        try need(rank >= 1 && rank <= 4096, Setting("rank"), "must lie in 1…4096 (got \(rank))")
        try need(loraAlpha.isFinite && loraAlpha > 0, Setting("loraAlpha"), "must be finite and > 0")
        try need(LoRAGrouping(rawValue: grouping) != nil, Setting("grouping"), "must be block, lora or matrix (got \(grouping))")
        try need(!beta.isEmpty, Setting("beta"), "needs at least one value")
        try need(!prototypeForget.isEmpty, Setting("prototypeForget"), "needs at least one value")
        try need(alphaStartEpoch >= 0, Setting("alphaStartEpoch"), "must be ≥ 0")
        try need(emaDecay.isFinite && (0...1).contains(emaDecay), Setting("emaDecay"), "must lie in [0, 1]")
        if let emaStart { try need(emaStart >= 0, Setting("emaStart"), "must be ≥ 0") }
        try need(evalEvery >= 0, Setting("evalEvery"), "must be ≥ 0")
        try need(evalBatch >= 1, Setting("evalBatch"), "must be ≥ 1")
        if let p = pruneThreshold { try need(p.isFinite && p >= 0, Setting("pruneThreshold"), "must be finite and ≥ 0") }
        if let forget {
            try need(tasks == forget.count, Setting("forget"), "gives \(forget.count) task(s) but \(Setting("tasks")) is \(tasks); each task has its own list")
            try need(forget.allSatisfy { !$0.isEmpty }, Setting("forget"), "a task lists no class")
            let all = forget.flatMap { $0 }
            for c in all { try need(c >= 0 && c < classes, Setting("forget"), "class \(c) is not one of the model's classes 0…\(classes - 1)") }
            try need(Set(all).count == all.count, Setting("forget"), "lists a class twice (a class is forgotten once)")
            try need(all.count + missing < classes, Setting("forget"), "leaves no class to retain")
        } else {
            let (tp, o) = tasks.multipliedReportingOverflow(by: classesPerTask)
            try need(
                !o && tp + missing < classes, Setting("tasks"),
                "\(tasks) tasks × \(classesPerTask) classes (\(Setting("classesPerTask"))) + \(missing) missing leave no class to retain among \(classes)")
        }
        _ = try objective(task: 0, epoch: 0)
    }

    /// The classes of task t (0-based) for class order `order`.
    public func taskClasses(order: [Int], task t: Int) throws -> TaskClasses {
        if let forget {
            // Missing classes come first in the order among those no task forgets, so they are the same in every task.
            let all = Set(forget.flatMap { $0 }), done = Set(forget[0...t].flatMap { $0 })
            let missingClasses = Array(order.filter { !all.contains($0) }.prefix(missing)), m = Set(missingClasses)
            return TaskClasses(
                retain: order.filter { !done.contains($0) && !m.contains($0) }, forget: forget[t].sorted(),
                old: forget[0..<t].flatMap { $0 }.sorted(), missing: missingClasses)
        }
        return try ForgettingSplit.continual(
            order: order, firstRetain: order.count - classesPerTask, perTask: classesPerTask,
            task: t, missing: missing)
    }

    /// The loss weights of task t at epoch e.
    public func objective(task t: Int, epoch e: Int) throws -> ObjectiveSettings {
        try ObjectiveSettings(
            beta: perTask(beta, t), bound: bound, alpha: alphaSchedule.alpha(epoch: e),
            prototypeForgetWeight: plus ? perTask(prototypeForget, t) : 0, prototypeMargin: prototypeMargin,
            prototypeRetainWeight: plus ? prototypeRetain : 0)
    }

    public var alphaSchedule: AlphaSchedule {
        alphaStartEpoch > 0 ? .warmup(startEpoch: alphaStartEpoch, alpha: alpha) : .constant(alpha)
    }

    /// Whether the structure term is computed at epoch e (the warm-up form leaves it out before its start epoch).
    public func structureOn(epoch e: Int) -> Bool { alphaStartEpoch == 0 || e >= alphaStartEpoch }

    /// The options as free-form JSON (the adapter task record's `settings`).
    public var settings: [String: JSONValue] {
        guard case .object(let o)? = try? JSONValue.from(self) else { return [:] }
        return o
    }
}

extension JSONValue {
    /// Any Encodable as a JSON value tree.
    package static func from<T: Encodable>(_ value: T) throws -> JSONValue {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try JSONDecoder().decode(JSONValue.self, from: enc.encode(value))
    }

    /// Decodes a JSON value tree as T.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(self))
    }
}
