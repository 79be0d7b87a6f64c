/// A linear pre-pass over the header JSON that enforces what JSON itself leaves open (spec/FORMAT.md §4), over the
/// whole header, ignored keys included: UTF-8 without a byte-order mark, nesting depth bounded (so the decoder cannot
/// recurse deeply on hostile input), no object repeating a key (JSON parsers disagree on which duplicate wins) and
/// no number beyond binary64; and the schema's integer keys hold JSON integers (the decoder would take `64.0` for 64).
/// Grammar errors are left to the decoder.
enum HeaderScan {
    enum Problem: Error, Equatable {
        case byteOrderMark
        case invalidUTF8(at: Int)
        case tooDeep(Int)
        case duplicateKey(String)
        case numberOutOfRange(String, at: Int)
        /// A number with a fraction or exponent where the schema wants an integer; the path is like `tensors[2].offset`.
        case notAnInteger(String, path: String)
    }

    private struct Frame {
        let isObject: Bool
        var expectKey: Bool
        var keys: Set<[UInt8]> = []
        /// The key whose value is being read (objects) or the element index (arrays).
        var key: String = ""
        var index = 0
    }

    /// The integer-typed keys of spec/FORMAT.md §4 as paths from the top ("[]" for any array element).
    static let integerPaths: Set<[String]> = {
        var p: Set<[String]> = [
            ["alignment"], ["tensors", "[]", "offset"], ["tensors", "[]", "length"], ["tensors", "[]", "shape", "[]"],
            ["adapter", "rank"], ["adapter", "task", "index"], ["merged", "[]", "task"]
        ]
        for k in ["image_size", "patch_size", "channels", "width", "depth", "heads", "head_dim", "mlp_width", "num_classes"] { p.insert(["model", k]) }
        for k in ["forget", "retain", "old"] { p.insert(["adapter", "task", k, "[]"]) }
        return p
    }()

    static func check(_ json: UnsafeRawBufferPointer) throws {
        if json.starts(with: [0xEF, 0xBB, 0xBF]) { throw Problem.byteOrderMark }
        if let bad = firstInvalidUTF8(json) { throw Problem.invalidUTF8(at: bad) }
        var stack: [Frame] = []
        var i = 0
        let n = json.count
        while i < n {
            let b = json[i]
            switch b {
            case 0x22: // string
                let start = i + 1
                var j = start
                var escaped = false
                while j < n {
                    let c = json[j]
                    if c == 0x5C { escaped = true; j += 2; continue }
                    if c == 0x22 { break }
                    j += 1
                }
                if let top = stack.last, top.isObject, top.expectKey {
                    let raw = UnsafeRawBufferPointer(rebasing: json[min(start, n)..<min(j, n)])
                    let key = escaped ? unescape(raw) : Array(raw)
                    guard stack[stack.count - 1].keys.insert(key).inserted else {
                        throw Problem.duplicateKey(String(decoding: key, as: UTF8.self))
                    }
                    stack[stack.count - 1].expectKey = false
                    stack[stack.count - 1].key = String(decoding: key, as: UTF8.self)
                }
                i = j + 1
                continue
            case 0x7B, 0x5B: // { [
                stack.append(Frame(isObject: b == 0x7B, expectKey: b == 0x7B))
                if stack.count > GSLR.maxHeaderDepth { throw Problem.tooDeep(stack.count) }
            case 0x7D, 0x5D: // } ]
                if !stack.isEmpty { stack.removeLast() }
            case 0x2C: // ,
                if let top = stack.last {
                    if top.isObject { stack[stack.count - 1].expectKey = true } else { stack[stack.count - 1].index += 1 }
                }
            case 0x2D, 0x30...0x39: // a number: - or a digit, then digits . e E + -
                var j = i + 1
                while j < n, json[j] == 0x2B || json[j] == 0x2D || json[j] == 0x2E || json[j] == 0x45 || json[j] == 0x65 || (0x30...0x39).contains(json[j]) {
                    j += 1
                }
                let token = String(decoding: UnsafeRawBufferPointer(rebasing: json[i..<j]), as: UTF8.self)
                // A malformed token is the decoder's to report; a well-formed one that overflows binary64 is ours.
                if let v = Double(token), v.isInfinite { throw Problem.numberOutOfRange(String(token.prefix(40)), at: i) }
                if token.utf8.contains(where: { $0 == 0x2E || $0 == 0x45 || $0 == 0x65 }), stack.count <= 4,
                    integerPaths.contains(stack.map { $0.isObject ? $0.key : "[]" })
                {
                    let path = stack.map { $0.isObject ? "." + $0.key : "[\($0.index)]" }.joined().dropFirst()
                    throw Problem.notAnInteger(String(token.prefix(40)), path: String(path))
                }
                i = j
                continue
            default:
                break
            }
            i += 1
        }
    }

    /// Offset of the first byte that does not belong to a well-formed UTF-8 sequence (RFC 3629: no overlongs, no
    /// surrogates, nothing above U+10FFFF), or nil.
    static func firstInvalidUTF8(_ s: UnsafeRawBufferPointer) -> Int? {
        var i = 0
        let n = s.count
        while i < n {
            let b = s[i]
            if b < 0x80 { i += 1; continue }
            let len: Int, lo: UInt8, hi: UInt8
            switch b {
            case 0xC2...0xDF: len = 2; lo = 0x80; hi = 0xBF
            case 0xE0: len = 3; lo = 0xA0; hi = 0xBF
            case 0xE1...0xEC, 0xEE...0xEF: len = 3; lo = 0x80; hi = 0xBF
            case 0xED: len = 3; lo = 0x80; hi = 0x9F
            case 0xF0: len = 4; lo = 0x90; hi = 0xBF
            case 0xF1...0xF3: len = 4; lo = 0x80; hi = 0xBF
            case 0xF4: len = 4; lo = 0x80; hi = 0x8F
            default: return i
            }
            guard i + len <= n, (lo...hi).contains(s[i + 1]) else { return i }
            for k in 2..<len where !(0x80...0xBF).contains(s[i + k]) { return i }
            i += len
        }
        return nil
    }

    /// The UTF-8 bytes a JSON string body stands for. Malformed escapes are kept raw; the decoder reports them.
    static func unescape(_ s: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= s.count else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 {
                let c = s[at + k]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }
        while i < s.count {
            let c = s[i]
            guard c == 0x5C, i + 1 < s.count else { out.append(c); i += 1; continue }
            let e = s[i + 1]
            switch e {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                guard var u = hex4(i + 2) else { out += [c, e]; i += 2; continue }
                i += 6
                if u >= 0xD800 && u < 0xDC00, i + 1 < s.count, s[i] == 0x5C, s[i + 1] == 0x75, let lo = hex4(i + 2), lo >= 0xDC00 && lo < 0xE000 {
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
                }
                out += Array(String(Character(Unicode.Scalar(u) ?? "\u{FFFD}")).utf8)
                continue
            default: out.append(e) // \" \\ \/ and anything malformed
            }
            i += 2
        }
        return out
    }
}
