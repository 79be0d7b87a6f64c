import Apply
import Convert
import Format

/// A model file read for running: config, weights with their fingerprint, class names.
public struct LoadedModel {
    public let config: ModelConfig
    public let weights: MergedWeights
    /// The tensors the ViT uses (a backbone may carry others that still count in its fingerprint).
    public let modelTensors: Set<String>
    public let classes: [String]?
    public let notices: [String]

    /// A .gslr backbone keeps its table's fingerprint; .pth/.safetensors go through Convert's import and get the
    /// fingerprint the converted .gslr would have.
    public static func load(_ path: String, heads: Int?) throws -> LoadedModel {
        let imported = try ModelImport.load(path, options: ImportOptions(heads: heads))
        guard let config = imported.config else {
            let what = imported.adapter != nil ? "it is an adapter, not a backbone (pass it with --adapter)" : "no ViT model layout was recognised in it"
            throw EvalError.notAModel(path: path, problem: what)
        }
        var notices = imported.notices
        if !imported.lora.isEmpty {
            notices.append("the file's LoRA factors are not applied; split them off with gslora-convert and pass the adapter with --adapter")
        }
        let weights = imported.source == .gslr ? try MergedWeights(file: GSLRFile.open(path))
                                               : try MergedWeights(tensors: imported.weights, model: config, merged: imported.merged ?? [], source: path)
        return LoadedModel(config: config, weights: weights, modelTensors: Set(imported.weights.map(\.name)), classes: imported.classes,
                           notices: notices)
    }

    /// The model with `adapters` applied (live, or merged).
    public func adapted(adapters: [String], scales: [Double], merged: Bool, force: Bool) throws -> AdaptedModel {
        try AdaptedModel.build(config: config, weights: weights, modelTensors: modelTensors, adapters: adapters.map(AdapterFile.open),
                               scales: scales, merged: merged, force: force)
    }
}
