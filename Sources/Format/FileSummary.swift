/// What `gslora-inspect` reports about one file, whatever format it came from: built from the header and table only,
/// so it costs the same for a 1 MB and a 1 GB file. Other readers (Convert) fill one from their own tables.
public struct FileSummary: Codable, Sendable {
    /// Totals for one dtype.
    public struct DTypeTotal: Codable, Equatable, Sendable {
        public var dtype: DType
        public var tensors: Int
        public var parameters: Int
        public var bytes: Int
    }

    /// The result of checking every tensor's CRC.
    public struct Verification: Codable, Sendable {
        public var checkedBytes: Int
        public var seconds: Double
        public var mismatches: [CRCMismatch]

        public init(checkedBytes: Int, seconds: Double, mismatches: [CRCMismatch]) {
            self.checkedBytes = checkedBytes
            self.seconds = seconds
            self.mismatches = mismatches
        }

        enum CodingKeys: String, CodingKey { case checkedBytes = "checked_bytes", seconds, mismatches }
    }

    public var path: String
    /// e.g. "gslr 1.0".
    public var format: String
    public var fileBytes: Int
    public var kind: FileKind
    public var model: ModelConfig?
    public var classes: [String]?
    public var tensorCount: Int
    public var parameters: Int
    public var tensorBytes: Int
    public var byDType: [DTypeTotal]
    public var adapter: AdapterInfo?
    public var merged: [MergedTask]?
    /// The stored image pipeline, when the file has one.
    public var preprocess: PreprocessRecord?
    /// `Fingerprint.of` the table and the kind's binding (what an adapter trained on this file records as its base).
    public var fingerprint: String
    public var metadata: [String: JSONValue]
    /// The full table, when asked for.
    public var tensors: [TensorInfo]?
    public var verification: Verification?

    public init(
        path: String, format: String, fileBytes: Int, kind: FileKind, model: ModelConfig? = nil, classes: [String]? = nil,
        adapter: AdapterInfo? = nil, merged: [MergedTask]? = nil, metadata: [String: JSONValue] = [:],
        table: [TensorInfo], includeTable: Bool
    ) {
        self.path = path
        self.format = format
        self.fileBytes = fileBytes
        self.kind = kind
        self.model = model
        self.classes = classes
        self.adapter = adapter
        self.merged = merged
        self.metadata = metadata
        tensorCount = table.count
        var totals: [DType: DTypeTotal] = [:]
        var params = 0, bytes = 0
        for t in table {
            totals[t.dtype, default: DTypeTotal(dtype: t.dtype, tensors: 0, parameters: 0, bytes: 0)].tensors += 1
            totals[t.dtype]!.parameters += t.count
            totals[t.dtype]!.bytes += t.length
            params += t.count
            bytes += t.length
        }
        parameters = params
        tensorBytes = bytes
        byDType = DType.allCases.compactMap { totals[$0] }
        let binding: Fingerprint.Binding
        switch kind {
        case .backbone: binding = model.map { .model($0) } ?? .none
        case .adapter: binding = adapter.map { .adapter(scaling: $0.scaling, base: $0.baseFingerprint) } ?? .none
        case .tensors: binding = .none
        }
        fingerprint = Fingerprint.of(table, binding: binding)
        tensors = includeTable ? table : nil
    }

    /// The summary of an open .gslr.
    public init(_ f: GSLRFile, includeTable: Bool) {
        let h = f.header
        self.init(
            path: f.path, format: "gslr \(f.majorVersion).\(f.minorVersion)", fileBytes: f.fileSize, kind: h.kind,
            model: h.model, classes: h.classes, adapter: h.adapter, merged: h.merged, metadata: h.metadata,
            table: h.tensors, includeTable: includeTable)
        preprocess = h.preprocess
    }

    enum CodingKeys: String, CodingKey {
        case path, format, fileBytes = "file_bytes", kind, model, classes, tensorCount = "tensor_count", parameters
        case tensorBytes = "tensor_bytes", byDType = "by_dtype", adapter, merged, preprocess, fingerprint, metadata, tensors, verification
    }
}

extension CRCMismatch: Codable {
    enum CodingKeys: String, CodingKey { case name, expected, actual }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let e = try c.decode(String.self, forKey: .expected), a = try c.decode(String.self, forKey: .actual)
        guard let ev = CRC32.parse(e), let av = CRC32.parse(a) else {
            throw DecodingError.dataCorruptedError(forKey: .expected, in: c, debugDescription: "CRCs must be 8 lowercase hex digits")
        }
        self.init(name: try c.decode(String.self, forKey: .name), expected: ev, actual: av)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(CRC32.hex(expected), forKey: .expected)
        try c.encode(CRC32.hex(actual), forKey: .actual)
    }
}
