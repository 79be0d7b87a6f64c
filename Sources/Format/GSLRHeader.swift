/// What a .gslr holds (spec/FORMAT.md §4.1).
public enum FileKind: String, Codable, Sendable {
    /// A model: config, weights and (when known) class names.
    case backbone
    /// One GS-LoRA task's LoRA factors, bound by fingerprint to the base it was trained on.
    case adapter
    /// Named tensors of no particular layout.
    case tensors
}

/// One tensor table entry. `offset` is relative to the start of the data section.
public struct TensorInfo: Codable, Equatable, Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var offset: Int
    public var length: Int
    public var crc32: UInt32

    public init(name: String, dtype: DType, shape: [Int], offset: Int, length: Int, crc32: UInt32) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.length = length
        self.crc32 = crc32
    }

    /// Elements (1 for a 0-d tensor). Entries from a file were validated, so this cannot overflow.
    public var count: Int { shape.reduce(1, *) }

    enum CodingKeys: String, CodingKey { case name, dtype, shape, offset, length, crc32 }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        dtype = try c.decode(DType.self, forKey: .dtype)
        shape = try c.decode([Int].self, forKey: .shape)
        offset = try c.decode(Int.self, forKey: .offset)
        length = try c.decode(Int.self, forKey: .length)
        let hex = try c.decode(String.self, forKey: .crc32)
        guard let crc = CRC32.parse(hex) else {
            throw DecodingError.dataCorruptedError(forKey: .crc32, in: c, debugDescription: "crc32 must be 8 lowercase hex digits, got \"\(hex.prefix(20))\"")
        }
        crc32 = crc
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(dtype, forKey: .dtype)
        try c.encode(shape, forKey: .shape)
        try c.encode(offset, forKey: .offset)
        try c.encode(length, forKey: .length)
        try c.encode(CRC32.hex(crc32), forKey: .crc32)
    }
}

public enum GroupState: String, Codable, Sendable {
    case kept
    /// Zeroed by pruning: its members are absent from the data but the record stays with the norm it had.
    case pruned
}

/// One GS-LoRA group: the tensors the group-lasso term ties together (spec/TRAINING.md §A.3).
public struct GroupRecord: Codable, Equatable, Sendable {
    public var name: String
    public var members: [String]
    /// Σ of the members' Frobenius norms (the form the official scripts log, spec/TRAINING.md §A.3), when the file was written.
    public var norm: Double
    public var state: GroupState

    public init(name: String, members: [String], norm: Double, state: GroupState) {
        self.name = name
        self.members = members
        self.norm = norm
        self.state = state
    }
}

/// The continual-learning task an adapter was trained for.
public struct TaskRecord: Codable, Equatable, Sendable {
    /// 1-based task number in the chain.
    public var index: Int
    /// Classes forgotten by this task, retained, and forgotten by earlier tasks.
    public var forget: [Int]
    public var retain: [Int]
    public var old: [Int]
    /// Training settings (lr, epochs, alpha, beta, BND, seed...) as given.
    public var settings: [String: JSONValue]
    /// Final metrics (acc_r, acc_f, acc_o, h...).
    public var metrics: [String: Double]

    public init(index: Int, forget: [Int], retain: [Int], old: [Int] = [], settings: [String: JSONValue] = [:], metrics: [String: Double] = [:]) {
        self.index = index
        self.forget = forget
        self.retain = retain
        self.old = old
        self.settings = settings
        self.metrics = metrics
    }
}

/// The LoRA adapter of one task (spec/FORMAT.md §4.3).
public struct AdapterInfo: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Double
    /// The factor applied to B·A; `scalingRule` says how it follows from rank and alpha.
    public var scaling: Double
    public var scalingRule: String
    /// Module paths inside each block that carry LoRA, e.g. ["mlp.fc1", "mlp.fc2"].
    public var targets: [String]
    /// "block", "lora" or "matrix" (spec/TRAINING.md §A.3).
    public var grouping: String
    public var groups: [GroupRecord]
    public var task: TaskRecord
    /// `Fingerprint.of` the exact base weights this adapter was trained on.
    public var baseFingerprint: String

    public init(
        rank: Int, alpha: Double, scaling: Double, scalingRule: String = "alpha/rank", targets: [String],
        grouping: String, groups: [GroupRecord], task: TaskRecord, baseFingerprint: String
    ) {
        self.rank = rank
        self.alpha = alpha
        self.scaling = scaling
        self.scalingRule = scalingRule
        self.targets = targets
        self.grouping = grouping
        self.groups = groups
        self.task = task
        self.baseFingerprint = baseFingerprint
    }

    enum CodingKeys: String, CodingKey {
        case rank, alpha, scaling, scalingRule = "scaling_rule", targets, grouping, groups, task
        case baseFingerprint = "base_fingerprint"
    }
}

/// An adapter folded into a backbone's weights.
public struct MergedTask: Codable, Equatable, Sendable {
    public var task: Int
    /// `Fingerprint` of the adapter file that was merged.
    public var adapterFingerprint: String
    /// Multiplier applied on top of the adapter's own scaling (1 for a plain merge).
    public var scale: Double

    public init(task: Int, adapterFingerprint: String, scale: Double = 1) {
        self.task = task
        self.adapterFingerprint = adapterFingerprint
        self.scale = scale
    }

    enum CodingKeys: String, CodingKey { case task, adapterFingerprint = "adapter_fingerprint", scale }
}

/// The JSON header of a .gslr (spec/FORMAT.md §4).
public struct GSLRHeader: Codable, Sendable {
    public var kind: FileKind
    /// Every tensor starts at a multiple of this (power of two, 64 ... 1 MiB).
    public var alignment: Int
    /// Required for backbones.
    public var model: ModelConfig?
    /// Class names by index, when known.
    public var classes: [String]?
    /// Required for adapters.
    public var adapter: AdapterInfo?
    /// Adapters already folded into these weights, in the order they were merged.
    public var merged: [MergedTask]?
    /// The image pipeline the backbone expects, when known (spec/FORMAT.md §4.7).
    public var preprocess: PreprocessRecord?
    /// Free-form data the format does not interpret (converter provenance, checkpoint leaves...).
    public var metadata: [String: JSONValue]
    /// The table, in data order. The writer fills offsets, lengths and CRCs.
    public var tensors: [TensorInfo]

    public init(
        kind: FileKind, alignment: Int = GSLR.defaultAlignment, model: ModelConfig? = nil, classes: [String]? = nil,
        adapter: AdapterInfo? = nil, merged: [MergedTask]? = nil, preprocess: PreprocessRecord? = nil,
        metadata: [String: JSONValue] = [:], tensors: [TensorInfo] = []
    ) {
        self.kind = kind
        self.alignment = alignment
        self.model = model
        self.classes = classes
        self.adapter = adapter
        self.merged = merged
        self.preprocess = preprocess
        self.metadata = metadata
        self.tensors = tensors
    }

    enum CodingKeys: String, CodingKey { case kind, alignment, model, classes, adapter, merged, preprocess, metadata, tensors }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // An optional key is left out, never `null` (spec/FORMAT.md §4.0); decodeIfPresent alone would take null as absent.
        for k in [CodingKeys.model, .classes, .adapter, .merged, .preprocess, .metadata] where c.contains(k) {
            guard try c.decodeNil(forKey: k) else { continue }
            throw DecodingError.typeMismatch(
                Never.self, .init(codingPath: c.codingPath + [k], debugDescription: "null is not a value; leave an optional key out"))
        }
        kind = try c.decode(FileKind.self, forKey: .kind)
        alignment = try c.decode(Int.self, forKey: .alignment)
        model = try c.decodeIfPresent(ModelConfig.self, forKey: .model)
        classes = try c.decodeIfPresent([String].self, forKey: .classes)
        adapter = try c.decodeIfPresent(AdapterInfo.self, forKey: .adapter)
        merged = try c.decodeIfPresent([MergedTask].self, forKey: .merged)
        preprocess = try c.decodeIfPresent(PreprocessRecord.self, forKey: .preprocess)
        metadata = try c.decodeIfPresent([String: JSONValue].self, forKey: .metadata) ?? [:]
        // Check the count before building the entries, so a hostile table cannot make us allocate for it.
        var table = try c.nestedUnkeyedContainer(forKey: .tensors)
        if let n = table.count, n > GSLR.maxTensors {
            throw GSLRHeader.TableTooLarge(count: n)
        }
        var infos: [TensorInfo] = []
        infos.reserveCapacity(table.count ?? 0)
        while !table.isAtEnd { infos.append(try table.decode(TensorInfo.self)) }
        tensors = infos
    }

    /// Thrown while decoding when the table has more than `GSLR.maxTensors` entries.
    struct TableTooLarge: Error { let count: Int }
}
