import GSLoRAAdapters
import GSLoRAConvert
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel

/// A model file read for running: config, weights with their fingerprint, class names.
public struct LoadedModel {
    public let config: ModelConfig
    public let weights: MergedWeights
    /// The tensors the ViT uses (a backbone may carry others that still count in its fingerprint).
    public let modelTensors: Set<String>
    public let classes: [String]?
    /// The stored image pipeline (a .gslr's record, or a timm config.json's beside a checkpoint).
    public let preprocess: PreprocessRecord?
    public let notices: [String]

    /// A .gslr backbone keeps its table's fingerprint; .pth/.safetensors go through Convert's import. A checkpoint
    /// holding LoRA factors runs as PyTorch runs it, W + s·B·A, and its fingerprint is that of those weights; without
    /// factors it is the fingerprint the converted .gslr would have.
    public static func load(_ path: String, options: ModelOptions) throws -> LoadedModel {
        try load(path, importing: options.importOptions)
    }

    static func load(_ path: String, importing: ImportOptions) throws -> LoadedModel {
        let imported = try ModelImport.load(path, options: importing)
        guard let config = imported.config else {
            let what = imported.adapter != nil ? "it is an adapter, not a backbone (pass it with --adapter)" : "no ViT model layout was recognised in it"
            throw EvaluationError.notAModel(path: path, problem: what)
        }
        var notices = imported.notices
        let runnable = try imported.runnableWeights()
        if !imported.lora.isEmpty, let r = imported.loraRank {
            let s = (imported.loraAlpha ?? 1) / Double(r)
            notices.append(
                "the file's LoRA factors (rank \(r), scaling \(s)) are applied as PyTorch applies them: W + s·B·A on \(imported.loraTargets.joined(separator: ", "))"
            )
        }
        let weights =
            imported.source == .gslr
            ? try MergedWeights(file: GSLRFile.open(path))
            : try MergedWeights(tensors: runnable, model: config, merged: imported.merged ?? [], source: path)
        return LoadedModel(
            config: config, weights: weights, modelTensors: Set(imported.weights.map(\.name)), classes: imported.classes,
            preprocess: imported.preprocess, notices: notices)
    }

    /// The model with `adapters` applied (live, or merged).
    public func adapted(adapters: [String], scales: [Double], merged: Bool, force: Bool) throws -> AdaptedModel {
        try AdaptedModel.build(
            config: config, weights: weights, modelTensors: modelTensors, adapters: openAdapters(adapters),
            scales: scales, merged: merged, force: force)
    }
}
