import GSLoRAFormat

/// NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), read as float32 and written as float32.
///
/// Reading accepts little-endian `<f4` (mapped, not copied), `<f8`, `<f2`, `<i8`, `<i4` and `|u1`, converted to
/// float32 by value (bytes are not scaled to [0, 1]). C order only: `fortran_order: True` is refused, as are
/// big-endian and structured arrays. The shape must account for every byte after the header.
public enum NPY {
    /// NumPy's own default cap on the header (`max_header_size`).
    static let maxHeaderBytes = 10_000
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Any array, as float32 with its stored shape.
    public static func read(path: String) throws -> Tensor {
        let file = try map(path)
        defer { withExtendedLifetime(file) {} } // `bytes` points into the mapping
        let bytes = file.bytes.buffer
        let (header, dataOffset) = try parseHeader(bytes, path: path)
        let (descr, shape) = try interpret(header, path: path)
        let (kind, itemSize) = try elementType(descr, path: path)
        var count = 1
        for d in shape {
            let (c, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw DataError.badNPY(path: path, problem: "shape \(shape) overflows") }
            count = c
        }
        let (need, overflow) = count.multipliedReportingOverflow(by: itemSize)
        guard !overflow, need == bytes.count - dataOffset else {
            throw DataError.badNPY(
                path: path,
                problem:
                    "shape \(shape) of \(descr) needs \(overflow ? "more than Int.max" : String(need)) data bytes, the file holds \(bytes.count - dataOffset) (truncated file or wrong header)"
            )
        }
        let name = (path.split(separator: "/").last.map(String.init) ?? path)
        let data = UnsafeRawBufferPointer(rebasing: bytes[dataOffset...])
        if kind == .f32, dataOffset % 4 == 0 {
            return Tensor(name: name, dtype: .f32, shape: shape, data: Bytes(owner: file.bytes.owner, buffer: data))
        }
        let owner = ByteOwner.allocate(count * 4)
        let out = UnsafeMutableRawPointer(mutating: owner.base.baseAddress!).assumingMemoryBound(to: Float.self)
        let src = data.baseAddress
        // loadUnaligned: the data offset need not be a multiple of the element size.
        switch kind {
        case .f32: for i in 0..<count { out[i] = src!.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f64: for i in 0..<count { out[i] = Float(src!.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .f16: for i in 0..<count { out[i] = Float(src!.loadUnaligned(fromByteOffset: 2 * i, as: Float16.self)) }
        case .i64: for i in 0..<count { out[i] = Float(src!.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .i32: for i in 0..<count { out[i] = Float(src!.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .u8: for i in 0..<count { out[i] = Float(src!.load(fromByteOffset: i, as: UInt8.self)) }
        }
        return Tensor(name: name, dtype: .f32, shape: shape, data: Bytes(owner: owner))
    }

    /// The array's shape, from the header alone (the data is not read).
    public static func shape(path: String) throws -> [Int] {
        let file = try map(path)
        // The mapping must outlive the parse: the buffer points into it.
        return try withExtendedLifetime(file) { try interpret(try parseHeader(file.bytes.buffer, path: path).0, path: path).shape }
    }

    private static func map(_ path: String) throws -> MappedFile {
        do {
            return try MappedFile(path)
        } catch let FormatError.io(_, op, e) {
            throw DataError.io(path: path, operation: op, errno: e)
        }
    }

    /// A batch of model inputs: float32 [N, C, H, W]. A 3-D [C, H, W] array is one image (N = 1).
    public static func readImages(path: String, channels: Int, height: Int, width: Int) throws -> Tensor {
        var t = try read(path: path)
        let want = [channels, height, width]
        if t.shape.count == 3 && t.shape == want { t.shape = [1] + want }
        guard t.shape.count == 4, Array(t.shape.dropFirst()) == want else {
            var hint = ""
            if t.shape.count == 4 && t.shape[3] == channels && Array(t.shape[1...2]) == [height, width] {
                hint = " It looks channels-last (N, H, W, C); save arr.transpose(0, 3, 1, 2) instead."
            }
            throw DataError.badNPY(
                path: path,
                problem: "holds shape \(tuple(t.shape)), the model needs (N, \(channels), \(height), \(width)) in PyTorch layout (N, C, H, W).\(hint)")
        }
        return t
    }

    /// Writes `values` as a C-order `<f4` array of `shape`, atomically (temporary file renamed into place).
    public static func write(_ values: UnsafeBufferPointer<Float>, shape: [Int], to path: String) throws {
        guard !shape.contains(where: { $0 < 0 }), shape.reduce(1, *) == values.count else {
            throw DataError.mismatch(what: path, problem: "shape \(shape) does not hold \(values.count) values")
        }
        let header = headerBytes(shape: shape)
        do {
            try AtomicFile.write(path) { sink in
                try sink.write(header)
                if values.count > 0 { try sink.write(UnsafeRawBufferPointer(values)) }
            }
        } catch let FormatError.io(_, op, e) {
            throw DataError.io(path: path, operation: op, errno: e)
        }
    }

    /// Writes a float32 tensor (see `write(_:shape:to:)`).
    public static func write(_ tensor: Tensor, to path: String) throws {
        guard tensor.dtype == .f32, tensor.data.count == tensor.count * 4 else {
            throw DataError.mismatch(what: path, problem: "only float32 tensors are written as .npy, got \(tensor.dtype.rawValue) \(tensor.shape)")
        }
        let floats = UnsafeBufferPointer(start: tensor.data.buffer.baseAddress?.assumingMemoryBound(to: Float.self), count: tensor.count)
        try write(floats, shape: tensor.shape, to: path)
    }

    /// Magic, version, length and the padded dict: version 1.0 unless the header needs more than 65535 bytes.
    /// The data starts on a 64-byte boundary, as NumPy ≥ 1.24 writes it.
    static func headerBytes(shape: [Int]) -> [UInt8] {
        var dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(tuple(shape)), }".utf8)
        func paddedTotal(_ preamble: Int) -> Int { (preamble + dict.count + 1 + 63) / 64 * 64 }
        let v1 = paddedTotal(10) - 10 <= 65535
        let preamble = v1 ? 10 : 12
        let padded = paddedTotal(preamble)
        dict += [UInt8](repeating: 0x20, count: padded - preamble - dict.count - 1) + [0x0A]
        var out = magic + (v1 ? [1, 0] : [2, 0])
        let n = dict.count
        out += v1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : (0..<4).map { UInt8((n >> (8 * $0)) & 0xFF) }
        return out + dict
    }

    static func tuple(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    // MARK: - Header parsing

    enum Kind { case f32, f64, f16, i64, i32, u8 }

    private static func elementType(_ descr: String, path: String) throws -> (Kind, Int) {
        switch descr {
        case "<f4": return (.f32, 4)
        case "<f8": return (.f64, 8)
        case "<f2": return (.f16, 2)
        case "<i8": return (.i64, 8)
        case "<i4": return (.i32, 4)
        case "|u1", "<u1", ">u1": return (.u8, 1)
        default:
            if descr.hasPrefix(">") {
                throw DataError.badNPY(path: path, problem: "data is big-endian (\(descr)); save it little-endian, e.g. arr.astype('<f4')")
            }
            throw DataError.badNPY(path: path, problem: "element type '\(descr)' is not supported; save it as float32, e.g. arr.astype('<f4')")
        }
    }

    /// Checks magic and version; returns the header dict text and where the data starts.
    private static func parseHeader(_ b: UnsafeRawBufferPointer, path: String) throws -> (String, Int) {
        guard b.count >= 10, Array(b[0..<6]) == magic else {
            throw DataError.badNPY(path: path, problem: "not an .npy file (wrong magic bytes)")
        }
        let major = b[6]
        let preamble: Int, length: Int
        switch major {
        case 1:
            preamble = 10
            length = Int(b[8]) | Int(b[9]) << 8
        case 2, 3:
            guard b.count >= 12 else { throw DataError.badNPY(path: path, problem: "file ends inside the header length") }
            preamble = 12
            length = (0..<4).reduce(0) { $0 | Int(b[8 + $1]) << (8 * $1) }
        default:
            throw DataError.badNPY(path: path, problem: "format version \(major).\(b[7]) is not 1, 2 or 3")
        }
        guard length <= maxHeaderBytes else {
            throw DataError.badNPY(path: path, problem: "header is \(length) bytes, above NumPy's limit of \(maxHeaderBytes)")
        }
        guard preamble + length <= b.count else {
            throw DataError.badNPY(path: path, problem: "header of \(length) bytes runs past the end of the \(b.count)-byte file")
        }
        // Version 1 and 2 headers are latin-1, version 3 UTF-8; the keys and values that matter are ASCII.
        let text = String(decoding: b[preamble..<(preamble + length)], as: UTF8.self)
        return (text, preamble + length)
    }

    private enum Value: Equatable {
        case string(String)
        case bool(Bool)
        case ints([Int])
    }

    /// Reads the dict literal `{'descr': ..., 'fortran_order': ..., 'shape': (...)}`.
    private static func interpret(_ text: String, path: String) throws -> (descr: String, shape: [Int]) {
        var p = HeaderParser(chars: Array(text.unicodeScalars), path: path)
        let dict = try p.dict()
        guard Set(dict.keys) == ["descr", "fortran_order", "shape"] else {
            throw DataError.badNPY(path: path, problem: "header keys \(dict.keys.sorted()) are not descr, fortran_order and shape")
        }
        guard case let .string(descr)? = dict["descr"] else {
            throw DataError.badNPY(path: path, problem: "'descr' is not a simple type string (structured arrays are not supported)")
        }
        guard case let .bool(fortran)? = dict["fortran_order"] else {
            throw DataError.badNPY(path: path, problem: "'fortran_order' is not True or False")
        }
        guard !fortran else {
            throw DataError.badNPY(path: path, problem: "array is stored in Fortran (column-major) order; save np.ascontiguousarray(arr) instead")
        }
        guard case let .ints(shape)? = dict["shape"] else {
            throw DataError.badNPY(path: path, problem: "'shape' is not a tuple of integers")
        }
        return (descr, shape)
    }

    private struct HeaderParser {
        let chars: [Unicode.Scalar]
        let path: String
        var i = 0

        func fail(_ what: String) -> DataError {
            .badNPY(path: path, problem: "malformed header at character \(i): \(what)")
        }

        mutating func skipSpace() {
            while i < chars.count, chars[i].properties.isWhitespace { i += 1 }
        }

        mutating func expect(_ c: Unicode.Scalar) throws {
            skipSpace()
            guard i < chars.count, chars[i] == c else { throw fail("expected '\(c)'") }
            i += 1
        }

        mutating func peek() -> Unicode.Scalar? {
            skipSpace()
            return i < chars.count ? chars[i] : nil
        }

        mutating func dict() throws -> [String: Value] {
            try expect("{")
            var result: [String: Value] = [:]
            while peek() != "}" {
                guard case let .string(key) = try value() else { throw fail("dict key is not a string") }
                try expect(":")
                guard result.updateValue(try value(), forKey: key) == nil else { throw fail("key '\(key)' repeated") }
                if peek() == "," { i += 1 } else { break }
            }
            try expect("}")
            return result
        }

        mutating func value() throws -> Value {
            guard let c = peek() else { throw fail("header ends early") }
            switch c {
            case "'", "\"":
                i += 1
                var s = ""
                while i < chars.count, chars[i] != c {
                    guard chars[i] != "\\" else { throw fail("escapes in strings are not supported") }
                    s.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw fail("unterminated string") }
                i += 1
                return .string(s)
            case "(":
                i += 1
                var dims: [Int] = []
                while peek() != ")" {
                    dims.append(try integer())
                    if peek() == "," { i += 1 } else { break }
                }
                try expect(")")
                return .ints(dims)
            case "[":
                throw fail("a list here means a structured array, which is not supported")
            default:
                var word = ""
                while i < chars.count, chars[i].properties.isAlphabetic {
                    word.unicodeScalars.append(chars[i])
                    i += 1
                }
                switch word {
                case "True": return .bool(true)
                case "False": return .bool(false)
                default: throw fail("unexpected '\(word.isEmpty ? String(c) : word)'")
                }
            }
        }

        /// A non-negative dimension (a Python 2 `L` suffix is allowed).
        mutating func integer() throws -> Int {
            skipSpace()
            var v = 0, digits = 0
            while i < chars.count, ("0"..."9").contains(chars[i]) {
                let d = Int(chars[i].value) - 48
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(d)
                guard !o1, !o2 else { throw fail("dimension too large") }
                v = s
                digits += 1
                i += 1
            }
            guard digits > 0 else { throw fail("expected a non-negative integer") }
            if i < chars.count, chars[i] == "L" { i += 1 }
            return v
        }
    }
}
