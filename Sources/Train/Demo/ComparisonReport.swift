import GSLoRAFormat

/// Everything the method comparison (`MethodComparison`) measured, as compare.json stores it and compare.md / the plots render it.
/// Accuracies are percentages on the test set by `criterion`; nil where a set has no class (Acc_o of task 1).
public struct ComparisonReport: Codable, Sendable {
    public var data: String
    public var classNames: [String]
    public var seed: UInt64
    public var classOrder: [Int]
    public var criterion: String
    public var quick: Bool
    public var options: ComparisonOptions
    /// Images per class of the few-shot setting.
    public var shots: Int?
    public var pretrain: PretrainSummary
    public var rows: [ComparisonRow]
    /// Wall and process CPU time of the whole comparison in this invocation (cached rows cost nothing here).
    public var seconds: Double
    public var cpuSeconds: Double

    enum CodingKeys: String, CodingKey {
        case data, classNames = "class_names", seed, classOrder = "class_order", criterion, quick, options, shots, pretrain, rows
        case seconds, cpuSeconds = "cpu_seconds"
    }
}

/// One method in one data setting: its numbers after every task, their means, and what it cost.
public struct ComparisonRow: Codable, Sendable {
    public var setting: ComparisonOptions.Setting
    public var method: String
    public var title: String
    /// The recipe in one line (epochs, batch, lr, the method's own settings).
    public var recipe: String
    public var tasks: [ComparisonTask]
    public var mean: ComparisonMean
    /// Parameters the method trains: the LoRA factors, or the backbone's parameters the baseline updates.
    public var trainableParameters: Int
    public var backboneParameters: Int
    /// Wall and process CPU time of the run (training and its evaluations), measured when it ran.
    public var seconds: Double
    public var cpuSeconds: Double
    /// The folder holding the run's files.
    public var folder: String
    /// True when this invocation took the row from the folder's cached result instead of running it.
    public var cached = false

    enum CodingKeys: String, CodingKey {
        case setting, method, title, recipe, tasks, mean, trainableParameters = "trainable_parameters"
        case backboneParameters = "backbone_parameters", seconds, cpuSeconds = "cpu_seconds", folder, cached
    }
}

/// One task of a row: test accuracies after the task, H, and what the task changed and wrote.
public struct ComparisonTask: Codable, Sendable {
    public var task: Int
    public var accRetain: Double?
    public var accForget: Double?
    public var accOld: Double?
    public var h: Double?
    /// Backbone parameters whose value differs after the task (GS-LoRA: the entries of the merged weights of the
    /// groups kept; a baseline: counted against the model the task started from).
    public var parametersChanged: Int
    /// GS-LoRA: groups kept / all groups (nil for a baseline, which has no groups).
    public var groupsKept: Int?
    public var groups: Int?
    /// Bytes of the file the task wrote (GS-LoRA's adapter, a baseline's whole backbone).
    public var bytes: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case task, accRetain = "acc_r", accForget = "acc_f", accOld = "acc_o", h, parametersChanged = "parameters_changed"
        case groupsKept = "groups_kept", groups, bytes, seconds
    }
}

/// The mean of each metric over the tasks that have it.
public struct ComparisonMean: Codable, Sendable {
    public var accRetain: Double?
    public var accForget: Double?
    public var accOld: Double?
    public var h: Double?
    public var parametersChanged: Double
    public var bytes: Double

    init(_ tasks: [ComparisonTask]) {
        func mean(_ v: [Double?]) -> Double? {
            let x = v.compactMap { $0 }
            return x.isEmpty ? nil : x.reduce(0, +) / Double(x.count)
        }
        accRetain = mean(tasks.map(\.accRetain))
        accForget = mean(tasks.map(\.accForget))
        accOld = mean(tasks.map(\.accOld))
        h = mean(tasks.map(\.h))
        parametersChanged = mean(tasks.map { Double($0.parametersChanged) }) ?? 0
        bytes = mean(tasks.map { Double($0.bytes) }) ?? 0
    }

    enum CodingKeys: String, CodingKey {
        case accRetain = "acc_r", accForget = "acc_f", accOld = "acc_o", h, parametersChanged = "parameters_changed", bytes
    }
}

/// A finished row as its run folder caches it: the row and the settings that made it.
struct CachedComparisonRow: Codable {
    var key: JSONValue
    var row: ComparisonRow
}
