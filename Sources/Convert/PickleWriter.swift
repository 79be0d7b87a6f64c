import GSLoRAFormat

/// Emits a protocol-2 pickle of a `CheckpointValue` the way `torch.save` lays one out: dicts as
/// `collections.OrderedDict`, tensors as `torch._utils._rebuild_tensor_v2(persistent_load(('storage',
/// torch.<Type>Storage, key, 'cpu', numel)), 0, size, stride, False, OrderedDict())`. Only globals that
/// `torch.load(weights_only=True)` accepts are written. Tensors with the same bytes share one storage key.
struct PickleWriter {
    private(set) var out: [UInt8] = [0x80, 2]
    /// Storage records to write, in key order ("0", "1", ...).
    private(set) var storages: [(key: String, tensor: Tensor)] = []
    private var storageKeys: [StorageIdentity: String] = [:]
    private var globals: [String: Int] = [:]
    private var memoCount = 0

    private struct StorageIdentity: Hashable {
        let address: UInt
        let count: Int
        let dtype: DType
    }

    static func storageType(_ d: DType) -> String {
        switch d {
        case .f32: return "FloatStorage"
        case .f16: return "HalfStorage"
        case .bf16: return "BFloat16Storage"
        case .f64: return "DoubleStorage"
        case .i64: return "LongStorage"
        case .i32: return "IntStorage"
        case .i16: return "ShortStorage"
        case .i8: return "CharStorage"
        case .u8: return "ByteStorage"
        case .bool: return "BoolStorage"
        }
    }

    /// Pickles `value` and the final STOP.
    mutating func write(_ value: CheckpointValue) {
        emit(value)
        out.append(0x2e)
    }

    private mutating func emit(_ v: CheckpointValue) {
        switch v {
        case let .tensor(t): tensor(t)
        case let .dict(items):
            global("collections", "OrderedDict")
            out += [0x29, 0x52] // EMPTY_TUPLE REDUCE
            guard !items.isEmpty else { return }
            out.append(0x28) // MARK
            for (k, x) in items {
                string(k)
                emit(x)
            }
            out.append(0x75) // SETITEMS
        case let .list(items):
            out.append(0x5d) // EMPTY_LIST
            guard !items.isEmpty else { return }
            out.append(0x28)
            for x in items { emit(x) }
            out.append(0x65) // APPENDS
        case let .tuple(items):
            tuple(items.count) { w in for x in items { w.emit(x) } }
        case let .string(s): string(s)
        case let .int(i): int(i)
        case let .float(d):
            out.append(0x47) // BINFLOAT, big-endian
            withUnsafeBytes(of: d.bitPattern.bigEndian) { out += $0 }
        case let .bool(b): out.append(b ? 0x88 : 0x89)
        case .none: out.append(0x4e)
        case let .bytes(b):
            // Protocol 2 has no bytes opcode; Python writes _codecs.encode(latin-1 text, 'latin1').
            global("_codecs", "encode")
            out.append(0x28)
            var text = ""
            text.unicodeScalars.append(contentsOf: b.map { Unicode.Scalar($0) })
            string(text)
            string("latin1")
            out += [0x74, 0x52] // TUPLE REDUCE
        case let .symbol(s): symbol(s)
        }
    }

    private mutating func symbol(_ s: String) {
        if s.hasPrefix("torch."), DType(torchName: String(s.dropFirst(6))) != nil {
            global("torch", String(s.dropFirst(6)))
        } else if s.hasPrefix("device("), s.hasSuffix(")") {
            let spec = s.dropFirst(7).dropLast()
            global("torch", "device")
            out.append(0x28)
            string(String(spec))
            out += [0x74, 0x52]
        } else {
            string(s)
        }
    }

    private mutating func tensor(_ t: Tensor) {
        let id = StorageIdentity(address: UInt(bitPattern: t.data.buffer.baseAddress), count: t.data.count, dtype: t.dtype)
        let key: String
        if let k = storageKeys[id], t.data.count > 0 {
            key = k
        } else {
            key = String(storages.count)
            storages.append((key, t))
            storageKeys[id] = key
        }
        global("torch._utils", "_rebuild_tensor_v2")
        out.append(0x28) // MARK of the argument tuple
        tuple(5) { w in
            w.string("storage")
            w.global("torch", Self.storageType(t.dtype))
            w.string(key)
            w.string("cpu")
            w.int(t.count)
        }
        out.append(0x51) // BINPERSID
        int(0)
        tuple(t.shape.count) { w in for d in t.shape { w.int(d) } }
        var strides = [Int](repeating: 1, count: t.shape.count)
        for i in stride(from: t.shape.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * max(t.shape[i + 1], 1) }
        tuple(strides.count) { w in for s in strides { w.int(s) } }
        out.append(0x89) // requires_grad False
        global("collections", "OrderedDict")
        out += [0x29, 0x52] // backward hooks: OrderedDict()
        out += [0x74, 0x52] // TUPLE REDUCE
    }

    private mutating func tuple(_ n: Int, _ body: (inout PickleWriter) -> Void) {
        switch n {
        case 0: out.append(0x29)
        case 1...3:
            body(&self)
            out.append(0x84 + UInt8(n)) // TUPLE1-3
        default:
            out.append(0x28)
            body(&self)
            out.append(0x74)
        }
    }

    /// GLOBAL once per name, then BINGET/LONG_BINGET from the memo.
    private mutating func global(_ module: String, _ name: String) {
        let full = module + "\n" + name + "\n"
        if let i = globals[full] {
            if i < 256 { out += [0x68, UInt8(i)] } else { out.append(0x6a); le(UInt32(i)) }
            return
        }
        out.append(0x63)
        out += Array(full.utf8)
        globals[full] = memoCount
        if memoCount < 256 { out += [0x71, UInt8(memoCount)] } else { out.append(0x72); le(UInt32(memoCount)) }
        memoCount += 1
    }

    private mutating func string(_ s: String) {
        let b = Array(s.utf8)
        out.append(0x58) // BINUNICODE
        le(UInt32(b.count))
        out += b
    }

    private mutating func int(_ i: Int) {
        if i >= 0, i < 256 {
            out += [0x4b, UInt8(i)]
        } else if i >= 0, i < 65536 {
            out.append(0x4d)
            le(UInt16(i))
        } else if let v = Int32(exactly: i) {
            out.append(0x4a)
            le(UInt32(bitPattern: v))
        } else {
            out += [0x8a, 8] // LONG1 with 8 two's-complement bytes
            le(UInt64(bitPattern: Int64(i)))
        }
    }

    private mutating func le<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }
}
