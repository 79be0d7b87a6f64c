/// The name of an exact set of weights, computed from the tensor table alone (spec/FORMAT.md §5): SHA-256 over one
/// line `name TAB DTYPE TAB dims-joined-by-commas TAB crc32-hex LF` per tensor, lines sorted by the names' UTF-8
/// bytes, written as "sha256:" + 64 lowercase hex digits.
public enum Fingerprint {
    public static let prefix = "sha256:"

    public static func of(_ infos: [TensorInfo]) -> String {
        let sorted = infos.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var sha = SHA256()
        for t in sorted {
            sha.update(line(name: t.name, dtype: t.dtype, shape: t.shape, crc: t.crc32))
        }
        return prefix + SHA256.hex(sha.finalize())
    }

    /// The fingerprint the same tensors would have once written, computing each CRC from the bytes.
    public static func of(_ tensors: [Tensor]) -> String {
        of(tensors.map { t in
            TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, offset: 0, length: t.data.count, crc32: CRC32.of(t.data.buffer))
        })
    }

    /// Whether `s` is spelled like a fingerprint.
    public static func isWellFormed(_ s: String) -> Bool {
        guard s.hasPrefix(prefix) else { return false }
        let hex = s.utf8.dropFirst(prefix.utf8.count)
        return hex.count == 64 && hex.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    static func line(name: String, dtype: DType, shape: [Int], crc: UInt32) -> String {
        name + "\t" + dtype.rawValue + "\t" + shape.map(String.init).joined(separator: ",") + "\t" + CRC32.hex(crc) + "\n"
    }
}
