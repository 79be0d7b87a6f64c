/// The name of an exact set of weights together with what decides the numbers they produce (spec/FORMAT.md §7).
/// SHA-256 over a binding line (a backbone's model config, an adapter's scaling and base; none for `tensors`), then
/// one line `name TAB DTYPE TAB dims-joined-by-commas TAB crc32-hex LF` per tensor, sorted by the names' UTF-8 bytes;
/// written as "gslr1.1-sha256:" + 64 lowercase hex digits. Files of version 1.0 stored table-only fingerprints
/// ("sha256:" + hex, no binding line); `matches` compares a stored value in whichever scheme it is spelled.
public enum Fingerprint {
    public static let prefix = "gslr1.1-sha256:"
    /// The 1.0 scheme: the table lines only.
    public static let tableOnlyPrefix = "sha256:"

    /// What besides the table a fingerprint covers.
    public enum Binding: Equatable, Sendable {
        /// A `tensors` file: the table alone.
        case none
        /// A backbone: the config the forward pass reads.
        case model(ModelConfig)
        /// An adapter: the factor applied to B·A and the base it changes.
        case adapter(scaling: Double, base: String)

        /// The binding of a header's kind.
        public init(_ h: GSLRHeader) {
            switch h.kind {
            case .backbone: self = h.model.map { .model($0) } ?? .none
            case .adapter: self = h.adapter.map { .adapter(scaling: $0.scaling, base: $0.baseFingerprint) } ?? .none
            case .tensors: self = .none
            }
        }

        /// The line that opens the hashed text (empty for `.none`). Its field count differs from a tensor line's
        /// (4), so it cannot be read as one.
        var line: String {
            switch self {
            case .none:
                return ""
            case let .model(m):
                let fields = [
                    "#model", m.family.rawValue, String(m.imageSize), String(m.patchSize), String(m.channels),
                    String(m.width), String(m.depth), String(m.heads), String(m.headDim), String(m.mlpWidth),
                    String(m.numClasses), m.head.kind.rawValue, m.head.s.map(bits) ?? "-", m.head.m.map(bits) ?? "-",
                    bits(m.attentionScale), bits(m.layerNormEps), m.qkvBias ? "1" : "0", m.pooling
                ]
                return fields.joined(separator: "\t") + "\n"
            case let .adapter(scaling, base):
                return "#adapter\t" + bits(scaling) + "\t" + base + "\n"
            }
        }
    }

    public static func of(_ infos: [TensorInfo], binding: Binding) -> String {
        prefix + digest(binding.line, infos)
    }

    /// The 1.0 fingerprint: the table alone.
    public static func tableOnly(_ infos: [TensorInfo]) -> String {
        tableOnlyPrefix + digest("", infos)
    }

    /// The fingerprint the same tensors would have once written, computing each CRC from the bytes.
    public static func of(_ tensors: [Tensor], binding: Binding) -> String {
        of(
            tensors.map { t in
                TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, offset: 0, length: t.data.count, crc32: CRC32.of(t.data.buffer))
            }, binding: binding)
    }

    /// The fingerprint of `infos` in the scheme `stored` is spelled in, so a value a 1.0 file recorded can be
    /// compared with weights read now.
    public static func of(_ infos: [TensorInfo], binding: Binding, schemeOf stored: String) -> String {
        stored.hasPrefix(tableOnlyPrefix) ? tableOnly(infos) : of(infos, binding: binding)
    }

    /// Whether `stored` names these weights (in its own scheme).
    public static func matches(_ stored: String, _ infos: [TensorInfo], binding: Binding) -> Bool {
        stored == of(infos, binding: binding, schemeOf: stored)
    }

    /// Whether `s` is spelled like a fingerprint of either scheme.
    public static func isWellFormed(_ s: String) -> Bool {
        guard let p = [prefix, tableOnlyPrefix].first(where: s.hasPrefix) else { return false }
        let hex = s.utf8.dropFirst(p.utf8.count)
        return hex.count == 64 && hex.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    static func digest(_ first: String, _ infos: [TensorInfo]) -> String {
        let sorted = infos.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var sha = SHA256()
        sha.update(first)
        for t in sorted {
            sha.update(line(name: t.name, dtype: t.dtype, shape: t.shape, crc: t.crc32))
        }
        return SHA256.hex(sha.finalize())
    }

    static func line(name: String, dtype: DType, shape: [Int], crc: UInt32) -> String {
        name + "\t" + dtype.rawValue + "\t" + shape.map(String.init).joined(separator: ",") + "\t" + CRC32.hex(crc) + "\n"
    }

    /// A binary64 as the 16 lowercase hex digits of its bit pattern: exact, and the same in every language.
    static func bits(_ x: Double) -> String {
        let h = String(x.bitPattern, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h
    }
}
