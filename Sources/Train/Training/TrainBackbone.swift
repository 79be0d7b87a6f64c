import GSLoRAAdapters
import GSLoRAFormat
import GSLoRAModel

/// The model a forgetting run starts from: config, weights (with the fingerprint a backbone file of them has) and
/// class names.
public struct TrainBackbone {
    public let config: ModelConfig
    public let weights: MergedWeights
    /// The tensors the ViT takes (a backbone may carry others that still count in its fingerprint).
    public let modelTensors: Set<String>
    public let classes: [String]?
    public let path: String

    /// In-memory weights (canonical names), e.g. from `ModelImport` or a test.
    public init(config: ModelConfig, tensors: [Tensor], classes: [String]? = nil, source: String) throws {
        try self.init(
            config: config, weights: try MergedWeights(tensors: tensors, model: config, source: source),
            modelTensors: Set(tensors.map(\.name)), classes: classes, path: source)
    }

    public init(config: ModelConfig, weights: MergedWeights, modelTensors: Set<String>, classes: [String]?, path: String) throws {
        if let classes, classes.count != config.numClasses {
            throw TrainingError.badModel(path: path, problem: "\(classes.count) class names for \(config.numClasses) classes")
        }
        self.config = config
        self.weights = weights
        self.modelTensors = modelTensors
        self.classes = classes
        self.path = path
    }

    /// A backbone `.gslr` (its table's fingerprint is kept, nothing is read until needed).
    public static func open(_ path: String) throws -> TrainBackbone {
        let file: GSLRFile
        do { file = try GSLRFile.open(path) } catch { throw TrainingError.badModel(path: path, problem: "\(error)") }
        guard file.kind == .backbone, let config = file.header.model else {
            let what =
                file.kind == .adapter
                ? "it is an adapter, not a backbone; give the backbone it was trained on"
                : "it is a .gslr of kind \(file.kind.rawValue) without a model config; convert the checkpoint with gslora-convert"
            throw TrainingError.badModel(path: path, problem: what)
        }
        let names = Set(file.tensors.map(\.name).filter { !$0.contains(".lora_") })
        return try TrainBackbone(
            config: config, weights: try MergedWeights(file: file), modelTensors: names,
            classes: file.header.classes, path: path)
    }

    /// The ViT over `weights` (no adapter).
    func model(_ weights: MergedWeights) throws -> ViT {
        try ViT(config: config, weights: weights.tensors.filter { modelTensors.contains($0.name) })
    }
}
