import Foundation
import GSLoRAAdapters
import GSLoRAFormat

/// Writes one task's adapter `.gslr` (spec/FORMAT.md §4.4): the LoRA factors under canonical names
/// (`blocks.{i}.mlp.fc{1,2}.lora_{A,B}`), targets `mlp.fc1`/`mlp.fc2`, one group record per group-lasso group with
/// the norm the format defines (Σ of the members' Frobenius norms, spec/TRAINING.md §A.3's reported form, not the loss
/// form √Σ‖T‖²), the task record and the fingerprint of the exact weights the task trained on.
public enum AdapterOutput {
    public static let targets = ["mlp.fc1", "mlp.fc2"]

    /// Group names: `blocks.{i}` (block), `blocks.{i}.mlp.fc{1,2}` (lora), the factor's own name (matrix).
    static func groupName(_ members: [String], grouping: LoRAGrouping) -> String {
        guard let first = members.first else { return "" }
        switch grouping {
        case .block: return first.split(separator: ".").prefix(2).joined(separator: ".")
        case .lora: return LoRAPair.prefix(of: first) ?? first
        case .matrix: return first
        }
    }

    /// The adapter header and tensors for the step's current factors.
    public static func build(step: GSLoRAStep, options: TrainOptions, task: TaskRecord, baseFingerprint: String) throws -> (GSLRHeader, [Tensor]) {
        let values = step.factors.values.map(\.array)
        let norms = try step.lasso.value(values).reportedNorms
        let groups = step.lasso.groups.enumerated().map { g, idx -> GroupRecord in
            let members = idx.map { step.factors.names[$0] }
            return GroupRecord(name: groupName(members, grouping: step.grouping), members: members, norm: norms[g], state: .kept)
        }
        let info = AdapterInfo(
            rank: options.rank, alpha: options.loraAlpha, scaling: options.loraAlpha / Double(options.rank),
            targets: targets, grouping: step.grouping.rawValue, groups: groups, task: task,
            baseFingerprint: baseFingerprint)
        let tensors = zip(step.factors.names, zip(step.factors.shapes, values)).map { Tensor(name: $0, shape: $1.0, floats: $1.1) }
        return (GSLRHeader(kind: .adapter, adapter: info), tensors)
    }

    /// Writes the adapter atomically and, with a threshold, prunes its groups below it in the same file.
    public static func write(_ path: String, header: GSLRHeader, tensors: [Tensor], pruneThreshold: Double?) throws -> AdapterFile {
        try GSLRWriter.write(path, header: header, tensors: tensors)
        if let threshold = pruneThreshold {
            let (h, t, _) = try AdapterPrune.plan(try AdapterFile.open(path), rule: .threshold(threshold))
            try GSLRWriter.write(path, header: h, tensors: t)
        }
        return try AdapterFile.open(path)
    }
}
