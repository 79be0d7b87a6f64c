import GSLoRAFormat

/// Storages named by persistent ids, shared by every pickle of one file so a key always means one storage.
final class StorageTable {
    private var byKey: [String: PStorage] = [:]

    func lookup(_ key: String) -> PStorage? { byKey[key] }

    func add(_ s: PStorage) { byKey[s.key] = s }

    /// Storages that are not views of another (in no particular order).
    var roots: [PStorage] { byKey.values.filter { $0.viewOf == nil } }
}

/// A restricted unpickler: a loop over opcodes with an explicit stack, a closed table of globals (`PGlobal`) and
/// no recursion over the input. Lengths are checked against the remaining input, so what it allocates is bounded by
/// the input size. Every container it creates is kept in `arena` and emptied by `dismantle()`, so releasing even a
/// 100k-deep structure never recurses.
final class PickleVM {
    private let data: UnsafeRawBufferPointer
    private var pos: Int
    private let file: String
    private let record: String
    /// Added to positions in errors, so they are file offsets (legacy) or record offsets (zip, base 0).
    private let base: Int
    private let storages: StorageTable
    private var stack: [PValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PValue] = [:]
    private var arena: [PContainer] = []
    private var opStart = 0

    /// Longest LONG1/LONG4 integer accepted (bytes): checkpoints never come close, and it keeps printing such
    /// numbers cheap.
    static let maxLongBytes = 64

    init(data: UnsafeRawBufferPointer, start: Int = 0, file: String, record: String, base: Int = 0, storages: StorageTable) {
        self.data = data
        self.pos = start
        self.file = file
        self.record = record
        self.base = base
        self.storages = storages
    }

    deinit { dismantle() }

    /// Empties every container so the graph is released one flat object at a time.
    func dismantle() {
        for c in arena {
            c.items.removeAll()
            c.keys.removeAll()
            c.index.removeAll()
        }
        arena.removeAll()
        stack.removeAll()
        memo.removeAll()
    }

    private func fail(_ reason: String) -> ConvertError {
        .badPickle(file: file, record: record, offset: base + opStart, reason: reason)
    }

    private func make(_ kind: PContainer.Kind, _ items: [PValue] = []) -> PContainer {
        let c = PContainer(kind, offset: base + opStart, items: items)
        arena.append(c)
        return c
    }

    // MARK: reading the stream

    private func need(_ n: Int) throws {
        guard n >= 0, n <= data.count - pos else {
            throw fail("truncated: needs \(n) more bytes, \(data.count - pos) left")
        }
    }

    private func u8() throws -> UInt8 {
        try need(1)
        defer { pos += 1 }
        return data[pos]
    }

    private func le<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        try need(n)
        var v: T = 0
        for i in 0..<n { v |= T(truncatingIfNeeded: data[pos + i]) << (8 * i) }
        pos += n
        return v
    }

    /// A length field checked against what is left, so a 2^60-byte declaration fails before any allocation.
    private func length<T: FixedWidthInteger>(_: T.Type) throws -> Int {
        let raw = try le(T.self)
        guard raw >= 0, let n = Int(exactly: raw), n <= data.count - pos else {
            throw fail("declared length \(raw) exceeds the \(data.count - pos) bytes left")
        }
        return n
    }

    private func bytes(_ n: Int) throws -> [UInt8] {
        try need(n)
        defer { pos += n }
        return Array(UnsafeRawBufferPointer(rebasing: data[pos..<(pos + n)]))
    }

    private func line() throws -> [UInt8] {
        var end = pos
        while end < data.count, data[end] != 0x0a { end += 1 }
        guard end < data.count else { throw fail("truncated: text argument without a newline") }
        let out = Array(UnsafeRawBufferPointer(rebasing: data[pos..<end]))
        pos = end + 1
        return out
    }

    private func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

    // MARK: stack

    private func pop() throws -> PValue {
        guard let v = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw fail("stack underflow") }
        return v
    }

    private func top() throws -> PValue {
        guard let v = stack.last, stack.count > (marks.last ?? 0) else { throw fail("stack underflow") }
        return v
    }

    private func popMark() throws -> [PValue] {
        guard let m = marks.popLast() else { throw fail("no MARK on the stack") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func topContainer(_ what: String, _ ok: (PContainer) -> Bool) throws -> PContainer {
        guard case let .container(c) = try top(), ok(c) else { throw fail("\(what) on a \((try? top())?.typeName ?? "?")") }
        return c
    }

    // MARK: the loop

    /// Runs to STOP and returns the unpickled value and the position just after STOP.
    func run() throws -> (value: PValue, end: Int) {
        while true {
            opStart = pos
            let op = try u8()
            switch op {
            case 0x80: // PROTO
                let v = try u8()
                guard v <= 5 else { throw fail("pickle protocol \(v) is newer than 5") }
            case 0x95: // FRAME: framing is only a read-ahead hint; the stream is parsed flat
                _ = try length(UInt64.self)
            case 0x2e: // STOP
                let v = try pop()
                return (v, pos)
            case 0x28: marks.append(stack.count) // MARK
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: stack.append(try top()) // DUP

            case 0x4e: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x4a: stack.append(.int(Int(try le(Int32.self)))) // BININT
            case 0x4b: stack.append(.int(Int(try u8()))) // BININT1
            case 0x4d: stack.append(.int(Int(try le(UInt16.self)))) // BININT2
            case 0x8a, 0x8b: // LONG1, LONG4
                let n = op == 0x8a ? Int(try u8()) : try length(Int32.self)
                guard n <= Self.maxLongBytes else { throw fail("integer of \(n) bytes exceeds the \(Self.maxLongBytes)-byte limit") }
                stack.append(try long(n))
            case 0x47: // BINFLOAT, big-endian
                let raw = try le(UInt64.self).byteSwapped
                stack.append(.float(Double(bitPattern: raw)))
            case 0x49: stack.append(try textInt(try line())) // INT
            case 0x4c: // LONG
                var l = try line()
                if l.last == UInt8(ascii: "L") { l.removeLast() }
                if let v = Int(text(l)) {
                    stack.append(.int(v))
                } else {
                    guard l.count <= Self.maxLongBytes * 2, let big = BigIntText.bytes(decimal: text(l)) else {
                        throw fail("LONG text '\(text(l).prefix(40))' is not an integer")
                    }
                    stack.append(try long(big))
                }
            case 0x46: // FLOAT
                guard let d = Double(text(try line())) else { throw fail("FLOAT text is not a number") }
                stack.append(.float(d))

            case 0x58: stack.append(.string(text(try bytes(try length(UInt32.self))))) // BINUNICODE
            case 0x8c: stack.append(.string(text(try bytes(Int(try u8()))))) // SHORT_BINUNICODE
            case 0x8d: stack.append(.string(text(try bytes(try length(UInt64.self))))) // BINUNICODE8
            case 0x54: stack.append(.string(text(try bytes(try length(Int32.self))))) // BINSTRING
            case 0x55: stack.append(.string(text(try bytes(Int(try u8()))))) // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(try bytes(try length(UInt32.self)))) // BINBYTES
            case 0x43: stack.append(.bytes(try bytes(Int(try u8())))) // SHORT_BINBYTES
            case 0x8e, 0x96: stack.append(.bytes(try bytes(try length(UInt64.self)))) // BINBYTES8, BYTEARRAY8
            case 0x53: // STRING: a quoted repr; only escape-free text is accepted
                let l = try line()
                guard l.count >= 2, let q = l.first, q == l.last, q == UInt8(ascii: "'") || q == UInt8(ascii: "\""),
                    !l.contains(UInt8(ascii: "\\"))
                else { throw fail("STRING argument is not a simple quoted string") }
                stack.append(.string(text(Array(l[1..<(l.count - 1)]))))
            case 0x56: // UNICODE
                stack.append(.string(try rawUnicodeEscape(try line())))

            case 0x7d: stack.append(.container(make(.dict))) // EMPTY_DICT
            case 0x5d: stack.append(.container(make(.list))) // EMPTY_LIST
            case 0x29: stack.append(.container(make(.tuple))) // EMPTY_TUPLE
            case 0x8f: stack.append(.container(make(.set))) // EMPTY_SET
            case 0x85, 0x86, 0x87: // TUPLE1-3
                let n = Int(op - 0x84)
                guard stack.count - n >= (marks.last ?? 0) else { throw fail("stack underflow") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                stack.append(.container(make(.tuple, items)))
            case 0x74: stack.append(.container(make(.tuple, try popMark()))) // TUPLE
            case 0x6c: stack.append(.container(make(.list, try popMark()))) // LIST
            case 0x91: stack.append(.container(make(.frozenset, try popMark()))) // FROZENSET
            case 0x64: // DICT
                let items = try popMark()
                let d = make(.dict)
                try setItems(d, items)
                stack.append(.container(d))
            case 0x61: // APPEND
                let v = try pop()
                try topContainer("APPEND", { $0.kind == .list }).items.append(v)
            case 0x65: // APPENDS
                let items = try popMark()
                try topContainer("APPENDS", { $0.kind == .list }).items.append(contentsOf: items)
            case 0x90: // ADDITEMS
                let items = try popMark()
                try topContainer("ADDITEMS", { $0.kind == .set }).items.append(contentsOf: items)
            case 0x73: // SETITEM
                let v = try pop()
                let k = try pop()
                try setItems(try topContainer("SETITEM", { $0.isDict }), [k, v])
            case 0x75: // SETITEMS
                let items = try popMark()
                try setItems(try topContainer("SETITEMS", { $0.isDict }), items)

            case 0x70: // PUT
                guard let i = Int(text(try line())), i >= 0 else { throw fail("PUT index is not a number") }
                memo[i] = try top()
            case 0x71: memo[Int(try u8())] = try top() // BINPUT
            case 0x72: memo[Int(try le(UInt32.self))] = try top() // LONG_BINPUT
            case 0x94: memo[memo.count] = try top() // MEMOIZE
            case 0x67: // GET
                guard let i = Int(text(try line())) else { throw fail("GET index is not a number") }
                try get(i)
            case 0x68: try get(Int(try u8())) // BINGET
            case 0x6a: try get(Int(try le(UInt32.self))) // LONG_BINGET

            case 0x63: // GLOBAL
                let module = text(try line())
                let name = text(try line())
                try global(module, name)
            case 0x93: // STACK_GLOBAL
                guard case let .string(name) = try pop(), case let .string(module) = try pop() else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                try global(module, name)
            case 0x52: // REDUCE
                let args = try pop()
                let callable = try pop()
                stack.append(try call(callable, args))
            case 0x81: // NEWOBJ
                let args = try pop()
                let cls = try pop()
                stack.append(try newObject(cls, args))
            case 0x92: // NEWOBJ_EX
                let kwargs = try pop()
                let args = try pop()
                let cls = try pop()
                guard case let .container(k) = kwargs, k.isDict, k.items.isEmpty else {
                    throw fail("NEWOBJ_EX with keyword arguments is not supported")
                }
                stack.append(try newObject(cls, args))
            case 0x62: // BUILD
                let state = try pop()
                try build(on: try top(), state: state)
            case 0x51: // BINPERSID
                stack.append(try persistentLoad(try pop()))
            case 0x50:
                throw fail("text persistent id (PERSID) is not a storage reference")
            default:
                throw fail("unsupported opcode \(Self.opcodeName(op))")
            }
        }
    }

    static func opcodeName(_ op: UInt8) -> String {
        let names: [UInt8: String] = [
            0x69: "INST", 0x6f: "OBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
            0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER"
        ]
        let hex = "0x" + String(op, radix: 16)
        return names[op].map { "\($0) (\(hex))" } ?? hex
    }

    // MARK: helpers for opcodes

    private func long(_ n: Int) throws -> PValue { try long(try bytes(n)) }

    /// Python's raw-unicode-escape: bytes are Latin-1, and only \\uXXXX and \\UXXXXXXXX are escapes.
    private func rawUnicodeEscape(_ b: [UInt8]) throws -> String {
        var out = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "u") || b[i + 1] == UInt8(ascii: "U") {
                let n = b[i + 1] == UInt8(ascii: "u") ? 4 : 8
                guard i + 2 + n <= b.count, let v = UInt32(String(decoding: b[(i + 2)..<(i + 2 + n)], as: UTF8.self), radix: 16),
                    let u = Unicode.Scalar(v)
                else { throw fail("UNICODE argument has a malformed escape") }
                out.append(u)
                i += 2 + n
            } else {
                out.append(Unicode.Scalar(b[i]))
                i += 1
            }
        }
        return String(out)
    }

    private func long(_ b: [UInt8]) throws -> PValue {
        guard !b.isEmpty else { return .int(0) }
        let negative = b.last! & 0x80 != 0
        let fill: UInt8 = negative ? 0xff : 0
        // Fits in Int64 when everything above 8 bytes is sign extension of bit 63.
        if b.count <= 8 || (b[8...].allSatisfy { $0 == fill } && (b[7] & 0x80 != 0) == negative) {
            var v: UInt64 = negative ? ~0 : 0
            for i in 0..<min(8, b.count) {
                v &= ~(UInt64(0xff) << (8 * UInt64(i)))
                v |= UInt64(b[i]) << (8 * UInt64(i))
            }
            return .int(Int(Int64(bitPattern: v)))
        }
        return .bigInt(b)
    }

    private func textInt(_ l: [UInt8]) throws -> PValue {
        let s = text(l)
        if s == "01" { return .bool(true) }
        if s == "00" { return .bool(false) }
        guard let v = Int(s) else { throw fail("INT text '\(s.prefix(40))' is not a 64-bit integer") }
        return .int(v)
    }

    private func setItems(_ d: PContainer, _ items: [PValue]) throws {
        guard items.count % 2 == 0 else { throw fail("odd number of items for a dict") }
        var i = 0
        while i < items.count {
            switch items[i] {
            case .container, .tensor, .storage, .global: throw fail("unhashable dict key of type \(items[i].typeName)")
            default: break
            }
            d.set(items[i], items[i + 1])
            i += 2
        }
    }

    private func get(_ i: Int) throws {
        guard let v = memo[i] else { throw fail("memo index \(i) was never stored") }
        stack.append(v)
    }

    private func global(_ module: String, _ name: String) throws {
        guard let v = PGlobal.resolve(module: module, name: name) else {
            throw ConvertError.forbiddenGlobal(file: file, record: record, offset: base + opStart, name: module + "." + name)
        }
        stack.append(v)
    }

    private func args(_ v: PValue, _ what: String) throws -> [PValue] {
        guard case let .container(c) = v, c.kind == .tuple else { throw fail("\(what) arguments are not a tuple") }
        return c.items
    }

    private func ints(_ v: PValue, _ what: String) throws -> [Int] {
        guard case let .container(c) = v, c.kind == .tuple || c.kind == .list else { throw fail("\(what) is not a tuple") }
        return try c.items.map {
            guard case let .int(i) = $0 else { throw fail("\(what) holds a \($0.typeName), not an int") }
            return i
        }
    }

    private func tensorArg(_ v: PValue, _ what: String) throws -> PTensor {
        guard case let .tensor(t) = v else { throw fail("\(what) expects a tensor, got \(v.typeName)") }
        return t
    }

    /// REDUCE: only the allow-listed constructors, each building data from checked arguments.
    private func call(_ callable: PValue, _ argv: PValue) throws -> PValue {
        guard case let .global(g) = callable else { throw fail("REDUCE on a \(callable.typeName), which is not callable") }
        let a = try args(argv, g.name)
        switch g {
        case .orderedDict:
            return try newObject(callable, argv)
        case .rebuildTensorV2, .rebuildTensor:
            let expected = g == .rebuildTensor ? [4] : [6, 7]
            guard expected.contains(a.count) else { throw fail("\(g.name) takes \(expected) arguments, got \(a.count)") }
            guard case let .storage(s) = a[0] else { throw fail("\(g.name): first argument is a \(a[0].typeName), not a storage") }
            guard case let .int(offset) = a[1] else { throw fail("\(g.name): storage offset is not an int") }
            let shape = try ints(a[2], "tensor size")
            let stride = try ints(a[3], "tensor stride")
            return .tensor(PTensor(storage: s, offset: offset, shape: shape, stride: stride))
        case .rebuildParameter, .rebuildParameterWithState:
            guard a.count == (g == .rebuildParameter ? 3 : 4) else { throw fail("\(g.name): wrong number of arguments (\(a.count))") }
            let t = try tensorArg(a[0], g.name)
            t.isParameter = true
            return .tensor(t)
        case .size:
            if a.isEmpty { return .container(make(.tuple)) }
            return .container(make(.tuple, try ints(a[0], "torch.Size").map { .int($0) }))
        case .device:
            guard let first = a.first, case let .string(type) = first, a.count <= 2 else { throw fail("torch.device expects a string") }
            if a.count == 2, case let .int(i) = a[1] { return .symbol("device(\(type):\(i))") }
            return .symbol("device(\(type))")
        case .codecsEncode:
            guard a.count == 2, case let .string(s) = a[0], case let .string(enc) = a[1] else {
                throw fail("_codecs.encode expects (str, encoding)")
            }
            switch enc.lowercased() {
            case "latin1", "latin-1", "iso-8859-1":
                var out: [UInt8] = []
                for u in s.unicodeScalars {
                    guard u.value < 256 else { throw fail("_codecs.encode: character beyond latin-1") }
                    out.append(UInt8(u.value))
                }
                return .bytes(out)
            case "utf-8", "utf8": return .bytes(Array(s.utf8))
            default: throw fail("_codecs.encode with encoding '\(enc)' is not supported")
            }
        case .set, .frozenset:
            let kind: PContainer.Kind = g == .set ? .set : .frozenset
            if a.isEmpty { return .container(make(kind)) }
            guard a.count == 1, case let .container(c) = a[0], !c.isDict else { throw fail("\(g.name) expects one sequence") }
            return .container(make(kind, c.items))
        case .bytearray:
            if a.isEmpty { return .bytes([]) }
            guard a.count == 1, case let .bytes(b) = a[0] else { throw fail("bytearray expects bytes") }
            return .bytes(b)
        case .storageType:
            throw fail("calling \(g.name) directly is not supported")
        }
    }

    private func newObject(_ cls: PValue, _ argv: PValue) throws -> PValue {
        guard case let .global(g) = cls else { throw fail("NEWOBJ on a \(cls.typeName)") }
        let a = try args(argv, g.name)
        switch g {
        case .orderedDict:
            let d = make(.orderedDict)
            if let first = a.first {
                guard a.count == 1, case let .container(pairs) = first, pairs.kind == .list || pairs.kind == .tuple else {
                    throw fail("OrderedDict expects a list of pairs")
                }
                for p in pairs.items {
                    guard case let .container(kv) = p, kv.kind == .tuple || kv.kind == .list, kv.items.count == 2 else {
                        throw fail("OrderedDict item is not a pair")
                    }
                    try setItems(d, kv.items)
                }
            }
            return .container(d)
        case .set, .frozenset:
            return try call(cls, argv)
        default:
            throw fail("NEWOBJ of \(g.name) is not supported")
        }
    }

    /// BUILD: tensors and parameters carry torch state (hooks, requires_grad) and OrderedDicts their `_metadata`;
    /// both are attributes, not data, and are dropped. Any other target is refused.
    private func build(on target: PValue, state: PValue) throws {
        switch target {
        case .tensor:
            return
        case let .container(c) where c.isDict:
            switch state {
            case let .container(s) where s.isDict || s.kind == .tuple: return
            case .none: return
            default: throw fail("BUILD on \(c.kind.rawValue) with a \(state.typeName) state")
            }
        default:
            throw fail("BUILD on a \(target.typeName) is not supported")
        }
    }

    /// BINPERSID: ('storage', <storage type>, key, location, numel[, view_metadata]).
    private func persistentLoad(_ pid: PValue) throws -> PValue {
        guard case let .container(t) = pid, t.kind == .tuple, t.items.count == 5 || t.items.count == 6,
            case .string("storage") = t.items[0]
        else {
            throw fail("persistent id is not a ('storage', type, key, location, numel) tuple")
        }
        guard case let .global(.storageType(dtype, typeName)) = t.items[1] else {
            throw fail("persistent id names a \(t.items[1].typeName), not a storage type")
        }
        let key: String
        switch t.items[2] {
        case let .string(s): key = s
        case let .int(i): key = String(i)
        default: throw fail("storage key is a \(t.items[2].typeName)")
        }
        guard case let .int(numel) = t.items[4], numel >= 0 else { throw fail("storage '\(key)' has an invalid element count") }
        let root = try storage(key: key, dtype: dtype, typeName: typeName, numel: numel, viewOf: nil)
        if t.items.count == 6, case let .container(view) = t.items[5] {
            guard view.kind == .tuple, view.items.count == 3, case let .string(viewKey) = view.items[0],
                case let .int(offset) = view.items[1], case let .int(viewSize) = view.items[2], offset >= 0, viewSize >= 0
            else {
                throw fail("storage '\(key)' has malformed view metadata")
            }
            return .storage(try storage(key: viewKey, dtype: dtype, typeName: typeName, numel: viewSize, viewOf: (key, offset)))
        }
        return .storage(root)
    }

    private func storage(key: String, dtype: DType, typeName: String, numel: Int, viewOf: (key: String, offset: Int)?) throws -> PStorage {
        if let s = storages.lookup(key) {
            guard s.dtype == dtype else {
                throw fail("storage '\(key)' is used as \(s.dtype.torchName) and as \(typeName)")
            }
            return s
        }
        let s = PStorage(key: key, dtype: dtype, numel: numel, viewOf: viewOf)
        storages.add(s)
        return s
    }
}
