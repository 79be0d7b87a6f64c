import GSLoRAFormat

/// A validated, memory-mapped .safetensors file (the Hugging Face format): an 8-byte little-endian header length N,
/// N bytes of JSON `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, then the
/// data. Tensors are zero-copy views into the mapping. Everything is checked before a single tensor is handed out:
/// the header fits the file and the 100 MB cap, the JSON is well formed with unique names, every dtype is known,
/// dtype × shape equals the byte range, and the ranges tile the data section exactly (contiguous, no overlap, no gap).
public struct SafetensorsFile {
    public let path: String
    /// In data order (ascending offsets), which is the order the tensors were written in.
    public let tensors: [Tensor]
    public let metadata: [String: String]

    /// The header cap the reference implementation uses.
    public static let maxHeaderLength = 100_000_000
    static let metadataKey = "__metadata__"

    public static func open(_ path: String) throws -> SafetensorsFile {
        let m: MappedFile
        do { m = try MappedFile(path) } catch { throw ConvertError.unreadable(file: path, reason: "\(error)") }
        return try parse(m.bytes, path: path)
    }

    /// Parses a whole file already in memory; tensors view into `bytes`.
    public static func parse(_ bytes: Bytes, path: String) throws -> SafetensorsFile {
        func bad(_ r: String) -> ConvertError { .badSafetensors(file: path, reason: r) }
        let buf = bytes.buffer
        guard buf.count >= 8 else { throw bad("the file has \(buf.count) bytes, fewer than the 8-byte header length") }
        let n64 = buf.loadUnaligned(as: UInt64.self).littleEndian
        guard n64 <= UInt64(maxHeaderLength) else { throw bad("the header length \(n64) is above the 100 MB limit") }
        let n = Int(n64)
        guard n <= buf.count - 8 else { throw bad("the header length \(n) runs past the end of the \(buf.count)-byte file") }
        guard n >= 2, buf[8] == UInt8(ascii: "{") else { throw bad("the header does not start with '{'") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: buf[8..<(8 + n)])
        let json: StrictJSON
        do { json = try StrictJSON.parse(headerBytes) } catch let f as StrictJSON.Failure {
            throw bad("header JSON at byte \(8 + f.offset): \(f.reason)")
        }
        guard case let .object(items) = json else { throw bad("the header is not a JSON object") }

        let dataStart = 8 + n
        let dataLength = buf.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        entries.reserveCapacity(items.count)
        for (name, value) in items {
            if name == metadataKey {
                guard case let .object(kv) = value else { throw bad("__metadata__ is not an object") }
                for (k, v) in kv {
                    guard case let .string(s) = v else { throw bad("__metadata__ value of \"\(k)\" is not a string") }
                    metadata[k] = s
                }
                continue
            }
            entries.append(try entry(name, value, path: path))
        }

        // Ranges must tile [0, dataLength) exactly, in offset order.
        let order = entries.indices.sorted { (entries[$0].begin, entries[$0].end) < (entries[$1].begin, entries[$1].end) }
        var expectedBegin = 0
        for k in order {
            let e = entries[k]
            if e.begin < expectedBegin {
                throw bad("tensor '\(e.name)' data_offsets [\(e.begin), \(e.end)] overlap the previous tensor, which ends at \(expectedBegin)")
            }
            if e.begin > expectedBegin {
                throw bad("tensor '\(e.name)' starts at \(e.begin), leaving a gap after byte \(expectedBegin)")
            }
            guard e.end <= dataLength else {
                throw bad("tensor '\(e.name)' data_offsets [\(e.begin), \(e.end)] run past the \(dataLength)-byte data section")
            }
            expectedBegin = e.end
        }
        guard expectedBegin == dataLength else {
            throw bad("the tensors cover \(expectedBegin) bytes but the data section holds \(dataLength)")
        }

        let base = buf.baseAddress.map { UnsafeRawPointer($0) + dataStart }
        let tensors = order.map { k -> Tensor in
            let e = entries[k]
            let view = UnsafeRawBufferPointer(start: e.end > e.begin ? base! + e.begin : nil, count: e.end - e.begin)
            return Tensor(name: e.name, dtype: e.dtype, shape: e.shape, data: Bytes(owner: bytes.owner, buffer: view))
        }
        return SafetensorsFile(path: path, tensors: tensors, metadata: metadata)
    }

    /// One tensor entry, checked on its own: exactly dtype, shape and data_offsets; dtype × shape = byte count.
    static func entry(_ name: String, _ value: StrictJSON, path: String) throws -> (name: String, dtype: DType, shape: [Int], begin: Int, end: Int) {
        func bad(_ r: String) -> ConvertError { .badSafetensors(file: path, reason: "tensor '\(name)': \(r)") }
        guard case let .object(fields) = value else { throw bad("entry is not an object") }
        var dtypeName: String?
        var shapeJSON: [StrictJSON]?
        var offsetsJSON: [StrictJSON]?
        for (k, v) in fields {
            switch (k, v) {
            case let ("dtype", .string(s)): dtypeName = s
            case let ("shape", .array(a)): shapeJSON = a
            case let ("data_offsets", .array(a)): offsetsJSON = a
            case ("dtype", _), ("shape", _), ("data_offsets", _): throw bad("\"\(k)\" has the wrong JSON type")
            default: throw bad("unknown field \"\(k)\"")
            }
        }
        guard let dtypeName, let shapeJSON, let offsetsJSON else { throw bad("needs dtype, shape and data_offsets") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw bad("dtype \"\(dtypeName)\" is not supported (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard shapeJSON.count <= 32 else { throw bad("\(shapeJSON.count) dimensions, more than 32") }
        var shape: [Int] = []
        var count = 1
        for d in shapeJSON {
            guard let v = integer(d) else { throw bad("shape holds a value that is not a non-negative integer") }
            let (c, o) = count.multipliedReportingOverflow(by: v)
            guard !o else { throw bad("shape \(shape + [v]) overflows") }
            shape.append(v)
            count = c
        }
        guard offsetsJSON.count == 2, let begin = integer(offsetsJSON[0]), let end = integer(offsetsJSON[1]) else {
            throw bad("data_offsets is not two non-negative integers")
        }
        guard begin <= end else { throw bad("data_offsets [\(begin), \(end)] end before they begin") }
        let (bytes, o) = count.multipliedReportingOverflow(by: dtype.size)
        guard !o, bytes == end - begin else {
            throw bad(
                "shape \(shape) × \(dtype.rawValue) needs \(o ? "too many" : String(bytes)) bytes but data_offsets [\(begin), \(end)] hold \(end - begin)")
        }
        return (name, dtype, shape, begin, end)
    }

    /// A JSON number that is a plain non-negative integer fitting in Int.
    static func integer(_ v: StrictJSON) -> Int? {
        guard case let .number(s) = v, !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(s)
    }
}

/// Writes .safetensors files that Hugging Face tools read.
public enum SafetensorsWriter {
    /// Writes `tensors` in the given order (ascending offsets) with `metadata` as `__metadata__`. The header is padded
    /// with spaces so the data starts 8-byte aligned. Returns the file size.
    @discardableResult
    public static func write(_ path: String, tensors: [Tensor], metadata: [String: String] = [:], inputs: [String] = []) throws -> Int {
        var seen = Set<String>()
        var header = "{"
        if !metadata.isEmpty {
            header += StrictJSON.quote(SafetensorsFile.metadataKey) + ":{"
            header += metadata.keys.sorted().map { StrictJSON.quote($0) + ":" + StrictJSON.quote(metadata[$0]!) }.joined(separator: ",")
            header += "}"
        }
        var offset = 0
        for (k, t) in tensors.enumerated() {
            guard t.name != SafetensorsFile.metadataKey, seen.insert(t.name).inserted else {
                throw ConvertError.badOutput(file: path, reason: "tensor name '\(t.name)' is used twice or reserved; safetensors names must be unique")
            }
            guard t.data.count == t.count * t.dtype.size else {
                throw ConvertError.badOutput(
                    file: path, reason: "tensor '\(t.name)' holds \(t.data.count) bytes, shape \(t.shape) × \(t.dtype.rawValue) needs \(t.count * t.dtype.size)"
                )
            }
            if k > 0 || !metadata.isEmpty { header += "," }
            header += StrictJSON.quote(t.name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
            header += "\"data_offsets\":[\(offset),\(offset + t.data.count)]}"
            offset += t.data.count
        }
        header += "}"
        var h = Array(header.utf8)
        h += [UInt8](repeating: 0x20, count: (8 - (8 + h.count) % 8) % 8)
        guard h.count <= SafetensorsFile.maxHeaderLength else {
            throw ConvertError.badOutput(file: path, reason: "the safetensors header would be \(h.count) bytes, above the 100 MB limit")
        }
        var size = 0
        do {
            try AtomicFile.write(path, inputs: inputs) { sink in
                var n = UInt64(h.count).littleEndian
                try withUnsafeBytes(of: &n) { try sink.write($0) }
                try sink.write(h)
                for t in tensors { try sink.write(t.data) }
                size = sink.offset
            }
        } catch let e as FormatError {
            throw ConvertError.writing(path, e)
        }
        return size
    }
}
