import GSLoRAFormat

/// How to read a checkpoint.
public struct ImportOptions: Sendable {
    /// Skip family detection and unwrapping: every tensor under its full dotted path, optimizer state included.
    public var raw: Bool
    /// Attention heads; without it a config file or the architecture table must decide (spec/MODELS.md).
    public var heads: Int?
    /// Image channels of a face model; without it a config file, the table or the shapes decide.
    public var channels: Int?
    /// Read config.json / config.txt beside a .pth or .safetensors (spec/MODELS.md §Config files).
    public var configFiles: Bool
    /// Keep optimizer tensors (under their dotted path) instead of skipping them.
    public var keepOptimizer: Bool
    /// loralib's `lora_alpha`; scaling = alpha / rank. Default 1 (loralib's default).
    public var loraAlpha: Double?
    /// The model the LoRA was trained on, to tell merged from unmerged weights.
    public var base: String?
    /// On a layout problem (shape mismatch, heads not inferable, bad LoRA), keep the tensors under their own names
    /// with a notice instead of failing: for showing a file rather than converting it.
    public var lenient: Bool

    public init(
        raw: Bool = false, heads: Int? = nil, channels: Int? = nil, keepOptimizer: Bool = false,
        loraAlpha: Double? = nil, base: String? = nil, lenient: Bool = false, configFiles: Bool = true
    ) {
        self.raw = raw
        self.heads = heads
        self.channels = channels
        self.configFiles = configFiles
        self.keepOptimizer = keepOptimizer
        self.loraAlpha = loraAlpha
        self.base = base
        self.lenient = lenient
    }
}

/// A checkpoint read into gslora's terms: canonical weights and config when the family is known.
public struct ImportedModel {
    public enum Source: String, Codable, Sendable { case pytorch, safetensors, gslr, peft }

    public var path: String
    public var source: Source
    public var config: ModelConfig?
    public var family: ModelConfig.Family?
    /// Canonical names in the file's order when the family is known; otherwise the file's own names.
    public var weights: [Tensor]
    /// LoRA factors under canonical names (canonical order); empty when there are none or the family is unknown.
    public var lora: [Tensor]
    public var loraRank: Int?
    public var loraAlpha: Double?
    public var loraTargets: [String]
    /// Whether the weights held s·B·A (then `weights` already had it removed).
    public var mergeState: LoRAImport.MergeState?
    /// Optimizer tensors kept with `keepOptimizer`, under their dotted path.
    public var extra: [Tensor]
    /// Non-tensor checkpoint leaves (dotted keys), or a .gslr's metadata.
    public var metadata: [String: JSONValue]
    /// From a .gslr backbone: class names and the adapters merged into it.
    public var classes: [String]?
    public var merged: [MergedTask]?
    /// From a .gslr adapter: its record (the factors are in `lora`).
    public var adapter: AdapterInfo?
    public var notices: [String]
    /// The image pipeline: a .gslr backbone's record, or a timm config.json's beside a checkpoint (`PreprocessConfig`).
    public var preprocess: PreprocessRecord? = nil

    /// Weights and LoRA in one list, each LoRA pair right after its linear's last tensor (as loralib's state_dict
    /// orders them), for writers of single-file formats.
    public var interleaved: [Tensor] {
        guard !lora.isEmpty else { return weights }
        var byModule: [String: [Tensor]] = [:]
        for t in lora { byModule[Self.module(of: t.name), default: []].append(t) }
        var lastIndex: [String: Int] = [:]
        for (i, t) in weights.enumerated() { lastIndex[Self.module(of: t.name)] = i }
        var out: [Tensor] = []
        var placed = Set<String>()
        for (i, t) in weights.enumerated() {
            out.append(t)
            let m = Self.module(of: t.name)
            if lastIndex[m] == i, let l = byModule[m] { out += l; placed.insert(m) }
        }
        for t in lora where !placed.contains(Self.module(of: t.name)) { out.append(t) }
        return out
    }

    static func module(of name: String) -> String {
        guard let dot = name.lastIndex(of: ".") else { return name }
        return String(name[..<dot])
    }

    /// Elements in weights, LoRA and extra tensors.
    public var parameterCount: Int { (weights + lora + extra).reduce(0) { $0 + $1.count } }
}

/// Reads .pth (zip or legacy), .safetensors and .gslr files, and PEFT LoRA folders, into an `ImportedModel`.
public enum ModelImport {
    public static func load(_ path: String, options: ImportOptions = ImportOptions()) throws -> ImportedModel {
        if PeftFolder.isFolder(path) { return try loadPeft(path, options: options) }
        // A .safetensors name goes straight to its validating reader, so a damaged header gets a precise error.
        var model: ImportedModel
        if path.lowercased().hasSuffix(".safetensors") {
            model = try loadSafetensors(path, options: options)
        } else {
            switch try detectFormat(path: path) {
            case .gslr: return try loadGSLR(path, options: options)
            case .safetensors: model = try loadSafetensors(path, options: options)
            case .torchZip, .torchLegacy, .torchTar: model = try load(checkpoint: TorchCheckpoint.load(path), path: path, options: options)
            }
        }
        try readPipeline(&model, options: options)
        return model
    }

    /// The image pipeline of a checkpoint's `config.json` (timm's pretrained_cfg), for recognised backbones whose
    /// file stores none itself.
    static func readPipeline(_ model: inout ImportedModel, options: ImportOptions) throws {
        guard model.config != nil, model.source != .gslr, model.preprocess == nil else { return }
        do {
            model.preprocess = try PreprocessConfig.beside(model.path)
        } catch let e as ConvertError where options.lenient {
            model.notices.append("image pipeline not read: \(e)")
        }
        if let p = model.preprocess { model.notices.append("image pipeline from \(p.source ?? "config.json")") }
    }

    /// Imports an already-unpickled checkpoint tree (the .pth path, and tests with synthetic trees).
    public static func load(checkpoint root: CheckpointValue, path: String, options: ImportOptions) throws -> ImportedModel {
        var model = ImportedModel(
            path: path, source: .pytorch, config: nil, family: nil, weights: [], lora: [], loraRank: nil,
            loraAlpha: nil, loraTargets: [], mergeState: nil, extra: [], metadata: [:], classes: nil,
            merged: nil, adapter: nil, notices: [])
        let u = options.raw ? CheckpointShape.flattenAll(root) : CheckpointShape.unwrap(root, keepOptimizer: options.keepOptimizer)
        model.metadata = u.metadata
        model.extra = u.extra
        model.notices = u.notices
        if options.raw {
            model.weights = u.stateDict
            model.notices.append("\(Setting("raw")): kept all \(u.stateDict.count) tensors under their full keys; no model layout applied")
            return model
        }
        if case let .string(record)? = u.metadata[SafetensorsMetadata.adapter] {
            try adoptPthAdapter(&model, record: record, tensors: u.stateDict)
            return model
        }
        try applyFamilyOrKeep(&model, tensors: u.stateDict, stored: nil, options: options)
        return model
    }

    /// `applyFamily`, or with `lenient`, the tensors as they are plus a notice when the layout does not check out.
    static func applyFamilyOrKeep(_ model: inout ImportedModel, tensors: [Tensor], stored: ModelConfig?, options: ImportOptions) throws {
        let before = model
        do {
            try applyFamily(&model, tensors: tensors, stored: stored, options: options)
        } catch let e as ConvertError where options.lenient {
            model = before
            model.weights = tensors
            model.notices.append("kept as plain tensors: \(e)")
        }
    }

    /// Detects the family of `tensors` (original or canonical names), renames to canonical, infers or checks the
    /// config, splits and checks LoRA, and reconciles merged weights against `base`.
    static func applyFamily(_ model: inout ImportedModel, tensors: [Tensor], stored: ModelConfig?, options: ImportOptions) throws {
        let path = model.path
        let keys = tensors.map(\.name)
        var canonical: [Tensor]
        var family: ModelConfig.Family
        switch ModelFamilies.detect(originalKeys: keys) {
        case let .family(f, names):
            family = f
            canonical = zip(tensors, names).map { t, n in
                var c = t; c.name = n; return c
            }
        case let .partial(f, unmapped):
            model.weights = tensors
            model.notices.append(
                "looks like a \(f.rawValue) checkpoint, but \(unmapped.count) keys are not part of that layout "
                    + "(first: '\(unmapped[0])'); converted as plain tensors")
            return
        case .unknown:
            guard ModelFamilies.looksCanonical(keys) else {
                model.weights = tensors
                model.notices.append("unknown model layout (not a face, torchvision or timm ViT); converted as plain tensors under their own names")
                return
            }
            canonical = tensors
            if let s = stored {
                family = s.family
            } else {
                let pe = tensors.first { $0.name == "patch_embed.weight" }!
                family = pe.shape.count == 2 ? .faceViT : .timmViT
                model.notices.append("canonical names without a stored config: taken as \(family.rawValue) from the patch embedding's shape")
            }
        }

        let (weights, lora) = LoRAImport.split(canonical)
        // Shapes decide the config; a stored config (safetensors metadata) supplies heads, channels and the head
        // kind, which shapes cannot tell apart (CosFace or ArcFace), unless an option overrides them.
        let files = options.configFiles && model.source != .gslr ? try ConfigFile.beside(path) : []
        let storedHeads = options.heads == nil ? stored?.heads : nil
        let storedChannels = options.channels == nil && family == .faceViT ? stored?.channels : nil
        let r = try ModelFamilies.inferConfig(
            family: family, weights: weights,
            hints: .init(
                heads: options.heads ?? storedHeads, channels: options.channels ?? storedChannels,
                files: storedHeads == nil ? files : []), file: path)
        var config = r.config
        let storedSource = "file:\(path)"
        if storedHeads != nil { config.provenance?["heads"] = stored?.provenance?["heads"] ?? storedSource }
        if storedChannels != nil { config.provenance?["channels"] = stored?.provenance?["channels"] ?? storedSource }
        if let s = stored, s.family == family, s.head.kind != .linear, config.head.kind != .linear {
            config.head = s.head
            config.provenance?["head"] = s.provenance?["head"] ?? storedSource
        }
        model.notices += r.notices
        model.family = family
        model.config = config
        model.weights = weights
        guard !lora.isEmpty else {
            if options.base != nil { model.notices.append("\(Setting("base")) ignored: the checkpoint holds no LoRA factors") }
            return
        }

        let factors = try LoRAImport.check(lora, config: config, file: path)
        let alpha = options.loraAlpha ?? 1
        if options.loraAlpha == nil {
            model.notices.append(
                "LoRA rank \(factors.rank): alpha 1 and scaling 1/\(factors.rank) assumed (loralib's default); pass \(Setting("loraAlpha")) if training used another"
            )
        }
        model.lora = factors.tensors
        model.loraRank = factors.rank
        model.loraAlpha = alpha
        model.loraTargets = factors.targets
        if let basePath = options.base {
            let base = try load(basePath, options: ImportOptions(heads: config.heads, channels: config.channels, configFiles: false))
            let state = try LoRAImport.reconcile(
                weights: &model.weights, factors: factors, scaling: alpha / Double(factors.rank),
                base: base.weights, file: path, basePath: basePath)
            model.mergeState = state
            model.notices.append(
                state == .merged
                    ? "the weights already held s·B·A (saved after eval()); wrote the backbone as W − s·B·A so the adapter is not applied twice"
                    : "the weights match the base \(basePath): LoRA is not merged into them")
        } else {
            model.mergeState = .assumedUnmerged
            model.notices.append(
                "LoRA taken as NOT merged into the weights (a train-mode save); if the file was saved after eval(), pass \(Setting("base")) with the model it was trained from"
            )
        }
    }

    static func loadSafetensors(_ path: String, options: ImportOptions) throws -> ImportedModel {
        let f = try SafetensorsFile.open(path)
        var model = ImportedModel(
            path: path, source: .safetensors, config: nil, family: nil, weights: [], lora: [], loraRank: nil,
            loraAlpha: nil, loraTargets: [], mergeState: nil, extra: [], metadata: [:], classes: nil,
            merged: nil, adapter: nil, notices: [])
        var stored: ModelConfig?
        var pipeline: PreprocessRecord?
        var record: String?
        for (k, v) in f.metadata {
            switch k {
            case SafetensorsMetadata.config: stored = SafetensorsMetadata.decodeConfig(v)
            case SafetensorsMetadata.preprocess:
                do { pipeline = try SafetensorsMetadata.decodePipeline(v) } catch {
                    throw ConvertError.badSafetensors(file: path, reason: "__metadata__[\"\(k)\"] is not an image pipeline record (\(error))")
                }
            case SafetensorsMetadata.adapter: record = v
            case SafetensorsMetadata.classes: model.classes = try SafetensorsMetadata.decode([String].self, v, key: k, file: path)
            case SafetensorsMetadata.merged: model.merged = try SafetensorsMetadata.decode([MergedTask].self, v, key: k, file: path)
            case SafetensorsMetadata.metadata: model.metadata.merge(SafetensorsMetadata.decodeMetadata(v)) { a, _ in a }
            case SafetensorsMetadata.family, SafetensorsMetadata.names: break
            default: model.metadata[k] = .string(v)
            }
        }
        if options.raw {
            model.weights = f.tensors
            return model
        }
        if let record {
            try adoptAdapter(&model, record: record, tensors: f.tensors)
            return model
        }
        try applyFamilyOrKeep(&model, tensors: f.tensors, stored: stored, options: options)
        if let p = pipeline, let c = model.config {
            if let problem = p.problem(channels: c.channels, imageSize: c.imageSize) {
                throw ConvertError.badSafetensors(file: path, reason: "__metadata__[\"\(SafetensorsMetadata.preprocess)\"]: \(problem)")
            }
            model.preprocess = p
        }
        return model
    }

    static func loadGSLR(_ path: String, options: ImportOptions) throws -> ImportedModel {
        let f = try GSLRFile.open(path)
        let h = f.header
        var model = ImportedModel(
            path: path, source: .gslr, config: h.model, family: h.model?.family, weights: [], lora: [],
            loraRank: nil, loraAlpha: nil, loraTargets: [], mergeState: nil, extra: [], metadata: h.metadata,
            classes: h.classes, merged: h.merged, adapter: h.adapter, notices: [], preprocess: h.preprocess)
        let tensors = f.allTensors()
        switch h.kind {
        case .backbone:
            guard let c = h.model else { return model }
            // Tensors a backbone holds beyond its model (kept optimizer state) travel as extras.
            let known = Set(ModelFamilies.expectedShapes(c).map(\.name))
            model.weights = tensors.filter { known.contains($0.name) }
            model.extra = tensors.filter { !known.contains($0.name) }
            try ModelFamilies.checkShapes(model.weights, config: c, file: path)
        case .adapter:
            model.lora = tensors
            model.loraRank = h.adapter?.rank
            model.loraAlpha = h.adapter?.alpha
            model.loraTargets = h.adapter?.targets ?? []
        case .tensors:
            model.weights = tensors
        }
        return model
    }
}
