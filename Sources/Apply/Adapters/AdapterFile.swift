import GSLoRAFormat

/// An adapter .gslr opened for merging, pruning or live application: its record, factor tensors (views into the
/// mapping) and fingerprint.
public struct AdapterFile: Sendable {
    public let path: String
    public let info: AdapterInfo
    /// The factors in file order; members of pruned groups are absent.
    public let tensors: [Tensor]
    /// `Fingerprint` of this file's tensors: what a backbone's `merged` list records.
    public let fingerprint: String
    public let fileSize: Int
    public let header: GSLRHeader

    public init(file: GSLRFile) throws {
        guard file.kind == .adapter, let info = file.header.adapter else {
            throw AdapterError.wrongKind(file: file.path, expected: "adapter", actual: file.kind.rawValue)
        }
        path = file.path
        self.info = info
        tensors = file.allTensors()
        fingerprint = file.fingerprint
        fileSize = file.fileSize
        header = file.header
    }

    public static func open(_ path: String) throws -> AdapterFile { try AdapterFile(file: try GSLRFile.open(path)) }

    /// An adapter built in memory (e.g. read from a PEFT folder), checked as the writer checks a file's header and
    /// table; its fingerprint is the one the file written from it would have.
    public init(path: String, header: GSLRHeader, tensors: [Tensor]) throws {
        let h = try GSLRWriter.plan(header, tensors: tensors, file: path)
        guard h.kind == .adapter, let info = h.adapter else {
            throw AdapterError.wrongKind(file: path, expected: "adapter", actual: h.kind.rawValue)
        }
        self.path = path
        self.info = info
        self.tensors = tensors
        fingerprint = Fingerprint.of(tensors, binding: .adapter(scaling: info.scaling, base: info.baseFingerprint))
        fileSize = tensors.reduce(0) { $0 + $1.data.count }
        self.header = h
    }

    /// Names of the members of pruned groups: their factors are absent on purpose.
    public var prunedMembers: Set<String> {
        Set(info.groups.filter { $0.state == .pruned }.flatMap(\.members))
    }

    /// The LoRA pairs by layer prefix (`X` for `X.lora_A` / `X.lora_B`), in file order. A pair with a factor that
    /// was pruned has no update (ΔW = s·B·A is 0 without either factor) and is left out; a factor whose partner is
    /// missing without having been pruned is an error, as is a tensor that is not a LoRA factor.
    public func pairs() throws -> [LoRAPair] {
        var byName: [String: Tensor] = [:]
        var order: [String] = []
        for t in tensors {
            guard let prefix = LoRAPair.prefix(of: t.name) else {
                throw AdapterError.badFactor(file: path, tensor: t.name, problem: "the name does not end in .lora_A or .lora_B")
            }
            guard t.dtype.isFloatingPoint, t.shape.count == 2 else {
                throw AdapterError.badFactor(file: path, tensor: t.name, problem: "is \(t.dtype.rawValue) \(t.shape); factors are float matrices")
            }
            byName[t.name] = t
            if !order.contains(prefix) { order.append(prefix) }
        }
        let pruned = prunedMembers
        var out: [LoRAPair] = []
        for p in order {
            let an = p + ".lora_A", bn = p + ".lora_B"
            switch (byName[an], byName[bn]) {
            case let (a?, b?):
                guard a.shape[0] == b.shape[1] else {
                    throw AdapterError.badFactor(
                        file: path, tensor: an, problem: "rank \(a.shape[0]) does not match \(bn)'s \(b.shape[1]) (A is [r, in], B is [out, r])")
                }
                // A rank above min(in, out) is no low-rank factorisation; refusing it also bounds the r×r work of
                // pruning by the file's own size.
                let (r, nIn, nOut) = (a.shape[0], a.shape[1], b.shape[0])
                guard r >= 1, nIn >= 1, nOut >= 1, r <= min(nIn, nOut) else {
                    throw AdapterError.badFactor(
                        file: path, tensor: an, problem: "rank \(r) with \(nIn) inputs and \(nOut) outputs; LoRA needs 1 ≤ rank ≤ min(in, out)")
                }
                out.append(LoRAPair(layer: p, a: a, b: b))
            case (nil, _?) where pruned.contains(an), (_?, nil) where pruned.contains(bn):
                continue
            case (nil, _):
                throw AdapterError.badFactor(file: path, tensor: bn, problem: "its partner \(an) is missing and was not pruned")
            case (_, nil):
                throw AdapterError.badFactor(file: path, tensor: an, problem: "its partner \(bn) is missing and was not pruned")
            }
        }
        return out
    }
}

/// One LoRA-carrying linear: ΔW = s·B·A with A [r, in], B [out, r], updating `layer + ".weight"` [out, in].
public struct LoRAPair: Sendable {
    public let layer: String
    public let a: Tensor
    public let b: Tensor

    public var rank: Int { a.shape[0] }
    public var inFeatures: Int { a.shape[1] }
    public var outFeatures: Int { b.shape[0] }
    public var weightName: String { layer + ".weight" }

    /// `X` for `X.lora_A` or `X.lora_B`, nil for other names.
    public static func prefix(of name: String) -> String? {
        for suffix in [".lora_A", ".lora_B"] where name.hasSuffix(suffix) && name.count > suffix.count {
            return String(name.dropLast(suffix.count))
        }
        return nil
    }
}
