/// A linear pre-pass over the header JSON that enforces what JSON itself leaves open (spec/FORMAT.md §4): nesting
/// depth is bounded (so the decoder cannot recurse deeply on hostile input) and no object repeats a key (JSON
/// parsers disagree on which duplicate wins, so the format forbids them). Grammar errors are left to the decoder.
enum HeaderScan {
    enum Problem: Error, Equatable {
        case tooDeep(Int)
        case duplicateKey(String)
    }

    private struct Frame {
        let isObject: Bool
        var expectKey: Bool
        var keys: Set<[UInt8]> = []
    }

    static func check(_ json: UnsafeRawBufferPointer) throws {
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
                }
                i = j + 1
                continue
            case 0x7B, 0x5B: // { [
                stack.append(Frame(isObject: b == 0x7B, expectKey: b == 0x7B))
                if stack.count > GSLR.maxHeaderDepth { throw Problem.tooDeep(stack.count) }
            case 0x7D, 0x5D: // } ]
                if !stack.isEmpty { stack.removeLast() }
            case 0x2C: // ,
                if let top = stack.last, top.isObject { stack[stack.count - 1].expectKey = true }
            default:
                break
            }
            i += 1
        }
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
