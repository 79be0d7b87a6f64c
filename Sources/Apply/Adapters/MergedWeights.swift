import GSLoRAFormat
import GSLoRAModel

/// What one adapter did to the weights in a merge chain.
public struct MergeStep: Codable, Equatable, Sendable {
    public var adapter: String
    public var task: Int
    public var adapterFingerprint: String
    /// The base the adapter says it was trained on, and the fingerprint of the weights it was applied to.
    public var expectedBase: String
    public var actualBase: String
    /// True when the two differ and `force` let the merge go on.
    public var forced: Bool
    /// The multiplier given on top of the adapter's scaling, and the factor actually applied to B·A.
    public var scale: Double
    public var scaling: Double
    /// Layers updated, and LoRA layers left out because a factor was pruned.
    public var layers: Int
    public var prunedLayers: Int
    /// Fingerprint of the weights after this adapter, as a backbone file would store them.
    public var fingerprintAfter: String
}

/// Backbone weights with adapters folded in one after another (a continual chain), W ← W + scale·s·B·A.
///
/// The arithmetic is float32 whatever the stored dtype (GEMM through cblas_sgemm) and the result is written back
/// in the weight's own dtype (round to nearest even for F16/BF16). Each step starts from the stored values of the
/// step before, so merging A then B in memory equals merging A into a file and then B into that file, and the
/// fingerprint after every step is the one that file would have (spec/FORMAT.md §4.4 "Which base").
public struct MergedWeights: Sendable {
    /// In the base's order; changed tensors are fresh allocations, the others stay views.
    public private(set) var tensors: [Tensor]
    /// The adapters folded in so far, as a backbone header's `merged` list records them (after any the base had).
    public private(set) var merged: [MergedTask]
    public private(set) var steps: [MergeStep] = []
    /// Names the base by in error messages.
    public let source: String
    /// The config a backbone file of these weights records; it is part of their fingerprint (nil: a `tensors` file).
    public let model: ModelConfig?
    private var crcs: [UInt32]
    private let index: [String: Int]

    /// Weights from anywhere (e.g. a converted .pth) with the config a backbone file of them would record; their
    /// CRCs are computed now.
    public init(tensors: [Tensor], model: ModelConfig?, merged: [MergedTask] = [], source: String) throws {
        self.init(tensors: tensors, crcs: CRC32.ofEach(tensors.map { $0.data.buffer }), model: model, merged: merged, source: source)
    }

    /// A backbone file's weights; the fingerprint comes from its table, nothing is read until a tensor changes.
    public init(file: GSLRFile) throws {
        guard file.kind == .backbone || file.kind == .tensors else {
            throw AdapterError.wrongKind(file: file.path, expected: "backbone", actual: file.kind.rawValue)
        }
        self.init(
            tensors: file.allTensors(), crcs: file.tensors.map(\.crc32), model: file.kind == .backbone ? file.header.model : nil,
            merged: file.header.merged ?? [], source: file.path)
    }

    private init(tensors: [Tensor], crcs: [UInt32], model: ModelConfig?, merged: [MergedTask], source: String) {
        self.tensors = tensors
        self.crcs = crcs
        self.model = model
        self.merged = merged
        self.source = source
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    /// The table these weights would have in a file (offsets and lengths are not laid out).
    public var infos: [TensorInfo] {
        zip(tensors, crcs).map { t, crc in TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, offset: 0, length: t.data.count, crc32: crc) }
    }

    /// `Fingerprint` of the weights (and their config) as a backbone file would store them now.
    public var fingerprint: String { Fingerprint.of(infos, binding: binding) }

    private var binding: Fingerprint.Binding { model.map { .model($0) } ?? .none }

    public func tensor(_ name: String) -> Tensor? { index[name].map { tensors[$0] } }

    /// Folds `adapter` in with `scale` × its own scaling. Refuses an adapter trained on other weights unless
    /// `force` (the step then records `forced`). Nothing changes when this throws.
    @discardableResult
    public mutating func fold(_ adapter: AdapterFile, scale: Double = 1, force: Bool = false) throws -> MergeStep {
        let s = adapter.info.scaling * scale
        guard scale.isFinite, s.isFinite else {
            throw AdapterError.invalidArgument("\(adapter.path): scale \(scale) × the adapter's scaling \(adapter.info.scaling) is not a finite number")
        }
        let expected = adapter.info.baseFingerprint
        // In the scheme the adapter recorded (a 1.0 adapter holds a table-only fingerprint).
        let before = Fingerprint.of(infos, binding: binding, schemeOf: expected)
        if expected != before && !force {
            throw AdapterError.fingerprintMismatch(adapter: adapter.path, expected: expected, actual: before, hint: mismatchHint(adapter))
        }
        let pairs = try adapter.pairs()
        var updated: [(Int, Tensor, UInt32)] = []
        for p in pairs {
            guard let i = index[p.weightName] else {
                throw AdapterError.missingTarget(adapter: adapter.path, tensor: p.weightName, base: source)
            }
            let w = tensors[i]
            guard w.dtype.isFloatingPoint, w.shape == [p.outFeatures, p.inFeatures] else {
                throw AdapterError.badFactor(
                    file: adapter.path, tensor: p.layer + ".lora_B",
                    problem: "updates \(p.weightName), which is \(w.dtype.rawValue) \(w.shape), but B·A is [\(p.outFeatures), \(p.inFeatures)]")
            }
            let t = try Self.add(pair: p, scaling: Float(s), to: w, adapter: adapter.path)
            updated.append((i, t, CRC32.of(t.data.buffer)))
        }
        for (i, t, crc) in updated {
            tensors[i] = t
            crcs[i] = crc
        }
        let pruned = Set(adapter.info.groups.filter { $0.state == .pruned }.flatMap(\.members).compactMap(LoRAPair.prefix(of:)))
        let step = MergeStep(
            adapter: adapter.path, task: adapter.info.task.index, adapterFingerprint: adapter.fingerprint,
            expectedBase: expected, actualBase: before, forced: expected != before, scale: scale, scaling: s,
            layers: pairs.count, prunedLayers: pruned.subtracting(pairs.map(\.layer)).count,
            fingerprintAfter: fingerprint)
        merged.append(MergedTask(task: adapter.info.task.index, adapterFingerprint: adapter.fingerprint, scale: scale))
        steps.append(step)
        return step
    }

    /// Why the fingerprints may differ, from what the base's own record says.
    private func mismatchHint(_ adapter: AdapterFile) -> String {
        let legacy = Fingerprint.tableOnly(adapter.header.tensors)
        if merged.contains(where: { $0.adapterFingerprint == adapter.fingerprint || $0.adapterFingerprint == legacy }) {
            return "This adapter is already merged into \(source); merging it again would apply it twice."
        }
        if let i = steps.firstIndex(where: { $0.actualBase == adapter.info.baseFingerprint }) {
            return "It fits the weights before \(steps[i].adapter) was merged: give the adapters in training order."
        }
        return "Give the backbone (plus the earlier tasks' adapters, in order) it was trained on, or pass \(Setting("allowBaseMismatch")) to merge anyway."
    }

    /// W + s·B·A in float32, stored back in W's dtype, checked for values that are not finite once stored.
    static func add(pair p: LoRAPair, scaling s: Float, to w: Tensor, adapter: String) throws -> Tensor {
        let a: [Float], b: [Float]
        var acc: [Float]
        do {
            a = try p.a.floats()
            b = try p.b.floats()
            acc = try w.floats()
        } catch {
            throw AdapterError.badFactor(file: adapter, tensor: p.layer, problem: "\(error)")
        }
        a.withUnsafeBufferPointer { A in
            b.withUnsafeBufferPointer { B in
                acc.withUnsafeMutableBufferPointer { W in
                    BLAS.gemm(
                        m: p.outFeatures, n: p.inFeatures, k: p.rank, alpha: s, a: B.baseAddress!, lda: p.rank,
                        b: A.baseAddress!, ldb: p.inFeatures, beta: 1, c: W.baseAddress!, ldc: p.inFeatures)
                }
            }
        }
        let bad = acc.reduce(0) { $1.isFinite ? $0 : $0 + 1 }
        if bad > 0 { throw AdapterError.nonFinite(tensor: w.name, adapter: adapter, count: bad, problem: "NaN or infinity in float32") }
        let out = Tensor(name: w.name, shape: w.shape, floats: acc, dtype: w.dtype)
        let overflow = StoredFloats.nonFiniteCount(out)
        if overflow > 0 {
            throw AdapterError.nonFinite(
                tensor: w.name, adapter: adapter, count: overflow,
                problem: "beyond the range of \(w.dtype.rawValue), the weight's stored dtype")
        }
        return out
    }
}

/// Finiteness of stored float values without converting the tensor.
enum StoredFloats {
    static func nonFiniteCount(_ t: Tensor) -> Int {
        let n = t.count
        guard n > 0, let base = t.data.buffer.baseAddress else { return 0 }
        var bad = 0
        switch t.dtype {
        case .f32:
            let p = base.assumingMemoryBound(to: Float.self)
            for i in 0..<n where !p[i].isFinite { bad += 1 }
        case .f16:
            let p = base.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n where p[i] & 0x7C00 == 0x7C00 { bad += 1 }
        case .bf16:
            let p = base.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n where p[i] & 0x7F80 == 0x7F80 { bad += 1 }
        case .f64:
            let p = base.assumingMemoryBound(to: Double.self)
            for i in 0..<n where !p[i].isFinite { bad += 1 }
        default:
            break
        }
        return bad
    }
}
