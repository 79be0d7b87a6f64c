import GSLoRAFormat

/// Turns `_rebuild_tensor_v2` descriptions into contiguous row-major tensors. Each storage is fetched once (shared
/// storages are read once); a tensor that covers its storage bytes in order is a zero-copy view, anything else
/// (transposed, sliced, expanded) is copied. Every offset, shape and stride is checked against the storage first.
final class TensorBuilder {
    private let file: String
    private let fetch: (PStorage, String) throws -> Bytes
    /// Every storage the pickle named, for resolving legacy storage views to their roots.
    private let storages: StorageTable
    private var cache: [String: Bytes] = [:]
    private var copied = 0
    private let copyBudget: Int
    /// Keys of root storages that some tensor views whole, byte for byte (a writer copying that tensor copies the
    /// storage record exactly).
    private(set) var wholeViews = Set<String>()

    /// Most dimensions a tensor may have (torch's own limit is 64).
    static let maxRank = 64

    /// - Parameters:
    ///   - fetch: the bytes of a root storage, exactly `numel × element size` long (given the first tensor using it).
    ///   - copyBudget: most bytes all copied (non-view) tensors may take together; stops a stride-0 tensor from
    ///     expanding a tiny storage into terabytes.
    init(file: String, storages: StorageTable, copyBudget: Int, fetch: @escaping (PStorage, String) throws -> Bytes) {
        self.file = file
        self.storages = storages
        self.copyBudget = copyBudget
        self.fetch = fetch
    }

    private func storageBytes(_ s: PStorage, _ name: String) throws -> Bytes {
        if let b = cache[s.key] { return b }
        let es = s.dtype.size
        let b: Bytes
        if let view = s.viewOf {
            guard let root = storages.lookup(view.key), root.viewOf == nil else {
                throw ConvertError.badTensor(file: file, tensor: name, reason: "storage view '\(s.key)' names unknown storage '\(view.key)'")
            }
            let rootBytes = try storageBytes(root, name)
            let (end, o1) = view.offset.addingReportingOverflow(s.numel)
            let (endBytes, o2) = end.multipliedReportingOverflow(by: es)
            guard !o1, !o2, endBytes <= rootBytes.count else {
                throw ConvertError.badTensor(
                    file: file, tensor: name, reason: "storage view '\(s.key)' (offset \(view.offset), \(s.numel) elements) exceeds storage '\(view.key)'")
            }
            b = Bytes(owner: rootBytes.owner, buffer: UnsafeRawBufferPointer(rebasing: rootBytes.buffer[(view.offset * es)..<endBytes]))
        } else {
            b = try fetch(s, name)
        }
        cache[s.key] = b
        return b
    }

    func tensor(_ t: PTensor, name: String) throws -> Tensor {
        func bad(_ why: String) -> ConvertError { .badTensor(file: file, tensor: name, reason: why) }
        let dtype = t.storage.dtype
        let es = dtype.size
        guard t.shape.count == t.stride.count else { throw bad("size has \(t.shape.count) dimensions but stride has \(t.stride.count)") }
        guard t.shape.count <= Self.maxRank else { throw bad("\(t.shape.count) dimensions (limit \(Self.maxRank))") }
        guard t.shape.allSatisfy({ $0 >= 0 }) else { throw bad("negative size \(t.shape)") }
        guard t.stride.allSatisfy({ $0 >= 0 }) else { throw bad("negative stride \(t.stride)") }
        guard t.offset >= 0 else { throw bad("negative storage offset \(t.offset)") }
        var numel = 1
        for d in t.shape {
            let (m, o) = numel.multipliedReportingOverflow(by: d)
            guard !o else { throw bad("size \(t.shape) overflows") }
            numel = m
        }
        let (outBytes, o0) = numel.multipliedReportingOverflow(by: es)
        guard !o0 else { throw bad("size \(t.shape) overflows") }
        let storage = try storageBytes(t.storage, name)
        let storageNumel = storage.count / es
        if numel == 0 {
            guard t.offset <= storageNumel else { throw bad("storage offset \(t.offset) is beyond the \(storageNumel)-element storage") }
            return Tensor(name: name, dtype: dtype, shape: t.shape, data: Bytes(owner: ByteOwner.allocate(0)))
        }
        // Highest element touched: offset + Σ (size−1)·stride, all overflow-checked.
        var last = t.offset
        for (d, s) in zip(t.shape, t.stride) {
            let (span, o1) = (d - 1).multipliedReportingOverflow(by: s)
            let (sum, o2) = last.addingReportingOverflow(span)
            guard !o1, !o2 else { throw bad("strides \(t.stride) with size \(t.shape) overflow") }
            last = sum
        }
        guard last < storageNumel else {
            throw bad(
                "reaches element \(last) but its \(dtype.torchName) storage '\(t.storage.key)' holds \(storageNumel) (offset \(t.offset), size \(t.shape), stride \(t.stride))"
            )
        }
        let start = t.offset * es
        if isRowMajor(t.shape, t.stride), Int(bitPattern: storage.buffer.baseAddress! + start) % es == 0 {
            if start == 0, outBytes == storage.count, t.storage.viewOf == nil { wholeViews.insert(t.storage.key) }
            return Tensor(
                name: name, dtype: dtype, shape: t.shape,
                data: Bytes(owner: storage.owner, buffer: UnsafeRawBufferPointer(rebasing: storage.buffer[start..<(start + outBytes)])))
        }
        let (total, o3) = copied.addingReportingOverflow(outBytes)
        guard !o3, total <= copyBudget else {
            throw bad("materializing it would copy \(outBytes) bytes, over the \(copyBudget)-byte budget for strided tensors")
        }
        copied = total
        let out = ByteOwner.allocate(outBytes)
        Self.gather(
            from: storage.buffer.baseAddress! + start, shape: t.shape, stride: t.stride, elementSize: es,
            to: UnsafeMutableRawPointer(mutating: out.base.baseAddress!))
        return Tensor(name: name, dtype: dtype, shape: t.shape, data: Bytes(owner: out))
    }

    private func isRowMajor(_ shape: [Int], _ stride: [Int]) -> Bool {
        var expected = 1
        for d in stride.indices.reversed() where shape[d] != 1 {
            if stride[d] != expected { return false }
            expected *= shape[d]
        }
        return true
    }

    /// Copies a strided view into row-major order: an odometer over the outer dimensions, a tight inner loop.
    private static func gather(from src: UnsafeRawPointer, shape: [Int], stride: [Int], elementSize es: Int, to dst: UnsafeMutableRawPointer) {
        let nd = shape.count
        guard nd > 0 else {
            dst.copyMemory(from: src, byteCount: es)
            return
        }
        let inner = shape[nd - 1]
        let innerStep = stride[nd - 1] * es
        let outer = shape.dropLast().reduce(1, *)
        var index = [Int](repeating: 0, count: nd - 1)
        var s = 0
        var d = 0
        for _ in 0..<outer {
            if innerStep == es {
                (dst + d).copyMemory(from: src + s, byteCount: inner * es)
            } else {
                var p = s
                switch es {
                case 8:
                    for k in 0..<inner {
                        (dst + d + k * 8).storeBytes(of: src.loadUnaligned(fromByteOffset: p, as: UInt64.self), as: UInt64.self); p += innerStep
                    }
                case 4:
                    for k in 0..<inner {
                        (dst + d + k * 4).storeBytes(of: src.loadUnaligned(fromByteOffset: p, as: UInt32.self), as: UInt32.self); p += innerStep
                    }
                case 2:
                    for k in 0..<inner {
                        (dst + d + k * 2).storeBytes(of: src.loadUnaligned(fromByteOffset: p, as: UInt16.self), as: UInt16.self); p += innerStep
                    }
                default: for k in 0..<inner { (dst + d + k).storeBytes(of: src.load(fromByteOffset: p, as: UInt8.self), as: UInt8.self); p += innerStep }
                }
            }
            d += inner * es
            var k = nd - 2
            while k >= 0 {
                index[k] += 1
                s += stride[k] * es
                if index[k] < shape[k] { break }
                s -= shape[k] * stride[k] * es
                index[k] = 0
                k -= 1
            }
        }
    }
}
