import GSLoRAFormat

/// A value on the restricted unpickler's stack. Containers are reference types so memoized objects can be mutated
/// after being stored (SETITEMS on a memoized dict), and so the VM can dismantle them iteratively at the end:
/// nothing here is ever released recursively, however deep the input nests.
enum PValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer beyond Int64, as little-endian two's-complement bytes (LONG1/LONG4).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case container(PContainer)
    /// An allow-listed callable or class; calling it only builds data.
    case global(PGlobal)
    case storage(PStorage)
    case tensor(PTensor)
    /// A dtype or device, kept by name.
    case symbol(String)

    /// Python's type name, for error messages.
    var typeName: String {
        switch self {
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case let .container(c): return c.kind.rawValue
        case let .global(g): return g.name
        case .storage: return "storage"
        case .tensor: return "Tensor"
        case .symbol: return "symbol"
        }
    }
}

final class PContainer {
    enum Kind: String { case list, tuple, dict, orderedDict = "OrderedDict", set, frozenset }
    let kind: Kind
    /// Byte position of the opcode that created it, for errors found after the VM ran.
    let offset: Int
    /// Elements (list/tuple/set) or values (dicts).
    var items: [PValue] = []
    /// Dict keys, parallel to `items`; `index` finds an existing key so SETITEM replaces like Python does.
    var keys: [PValue] = []
    var index: [DictKey: Int] = [:]

    init(_ kind: Kind, offset: Int, items: [PValue] = []) {
        self.kind = kind
        self.offset = offset
        self.items = items
    }

    var isDict: Bool { kind == .dict || kind == .orderedDict }

    func set(_ key: PValue, _ value: PValue) {
        let k = DictKey(key)
        if let i = index[k] {
            items[i] = value
        } else {
            index[k] = keys.count
            keys.append(key)
            items.append(value)
        }
    }
}

/// A dict key reduced to what decides equality for the keys checkpoints use (str, int, bool, None, float).
enum DictKey: Hashable {
    case string(String), int(Int), other(String)

    init(_ v: PValue) {
        switch v {
        case let .string(s): self = .string(s)
        case let .int(i): self = .int(i)
        case let .bool(b): self = .int(b ? 1 : 0)
        case let .float(d) where d == d.rounded() && abs(d) < 9e15: self = .int(Int(d))
        default: self = .other(PValue.printed(v))
        }
    }
}

extension PValue {
    /// The printed form of a scalar, used for non-string dict keys.
    static func printed(_ v: PValue) -> String {
        switch v {
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .bigInt(b): return BigIntText.decimal(b)
        case let .float(d): return String(d)
        case let .string(s): return s
        case let .bytes(b): return "b'" + b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + "'"
        case let .symbol(s): return s
        case let .container(c): return "<\(c.kind.rawValue)>"
        case let .global(g): return g.name
        case .storage: return "<storage>"
        case .tensor: return "<tensor>"
        }
    }
}

/// Decimal text of a little-endian two's-complement integer (bounded length, quadratic is fine).
enum BigIntText {
    /// Little-endian two's-complement bytes of a decimal integer (text pickles' LONG), nil if it is not one.
    static func bytes(decimal: String) -> [UInt8]? {
        var digits = Substring(decimal)
        let negative = digits.first == "-"
        if negative || digits.first == "+" { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        var mag: [UInt8] = [0] // little-endian magnitude
        for ch in digits.utf8 {
            var carry = Int(ch - UInt8(ascii: "0"))
            for i in 0..<mag.count {
                let v = Int(mag[i]) * 10 + carry
                mag[i] = UInt8(v & 0xff)
                carry = v >> 8
            }
            if carry > 0 { mag.append(UInt8(carry)) }
        }
        mag.append(0) // room for the sign bit
        guard negative else { return mag }
        var carry = 1
        for i in 0..<mag.count {
            let v = Int(~mag[i]) + carry
            mag[i] = UInt8(v & 0xff)
            carry = v >> 8
        }
        return mag
    }

    static func decimal(_ le: [UInt8]) -> String {
        guard !le.isEmpty else { return "0" }
        let negative = le.last! & 0x80 != 0
        var mag = le
        if negative { // two's complement negate
            var carry = 1
            for i in 0..<mag.count {
                let v = Int(~mag[i]) + carry
                mag[i] = UInt8(v & 0xff)
                carry = v >> 8
            }
        }
        var digits: [UInt8] = []
        var words = Array(mag.reversed()) // big-endian
        while words.contains(where: { $0 != 0 }) {
            var rem = 0
            for i in 0..<words.count {
                let cur = rem * 256 + Int(words[i])
                words[i] = UInt8(cur / 10)
                rem = cur % 10
            }
            digits.append(UInt8(rem))
        }
        let text = digits.isEmpty ? "0" : String(digits.reversed().map { Character(String($0)) })
        return negative ? "-" + text : text
    }
}

/// A storage named by a persistent id: ('storage', <type>, key, location, numel[, view_metadata]).
final class PStorage {
    let key: String
    let dtype: DType
    /// Elements of `dtype` the storage holds, as declared.
    let numel: Int
    /// Legacy view storages: (root key, element offset into the root).
    let viewOf: (key: String, offset: Int)?

    init(key: String, dtype: DType, numel: Int, viewOf: (key: String, offset: Int)?) {
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.viewOf = viewOf
    }
}

/// A tensor as `_rebuild_tensor_v2` describes it; checked and materialized after the VM, when its path is known.
final class PTensor {
    let storage: PStorage
    let offset: Int
    let shape: [Int]
    let stride: [Int]
    var isParameter = false

    init(storage: PStorage, offset: Int, shape: [Int], stride: [Int]) {
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride
    }
}
