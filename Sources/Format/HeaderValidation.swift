import Foundation

/// The checks a header must pass before anything in it is used (spec/FORMAT.md §3-4); shared by reader and writer.
enum HeaderValidation {
    /// Decodes header JSON after `HeaderScan` bounded its nesting and refused repeated keys.
    static func decode(_ json: UnsafeRawBufferPointer, file: String) throws -> GSLRHeader {
        do {
            try HeaderScan.check(json)
        } catch HeaderScan.Problem.tooDeep(let depth) {
            throw FormatError.limitExceeded(file: file, what: "header JSON nesting depth", value: depth, limit: GSLR.maxHeaderDepth)
        } catch HeaderScan.Problem.duplicateKey(let key) {
            throw FormatError.badHeader(file: file, problem: "key \"\(key.prefix(100))\" appears twice in one JSON object")
        }
        let data = json.count == 0 ? Data() : Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: json.baseAddress!), count: json.count, deallocator: .none)
        do {
            return try JSONDecoder().decode(GSLRHeader.self, from: data)
        } catch let e as GSLRHeader.TableTooLarge {
            throw FormatError.limitExceeded(file: file, what: "tensor count", value: e.count, limit: GSLR.maxTensors)
        } catch let e as DecodingError {
            throw FormatError.badHeader(file: file, problem: describe(e))
        } catch {
            throw FormatError.badHeader(file: file, problem: "not valid JSON (\(error))")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "top level" : String(p.dropFirst(p.hasPrefix(".") ? 1 : 0))
        }
        switch e {
        case let .keyNotFound(k, c): return "missing key '\(k.stringValue)' at \(path(c))"
        case let .typeMismatch(_, c), let .valueNotFound(_, c):
            let why = c.debugDescription.hasSuffix(".") ? String(c.debugDescription.dropLast()) : c.debugDescription
            return "wrong type at \(path(c)): \(why)"
        case let .dataCorrupted(c):
            // Foundation's message for broken JSON carries the underlying parse error.
            let why = c.debugDescription.hasSuffix(".") ? String(c.debugDescription.dropLast()) : c.debugDescription
            let under = (c.underlyingError as NSError?).flatMap { $0.userInfo[NSDebugDescriptionErrorKey] as? String }.map { " (\($0))" } ?? ""
            return c.codingPath.isEmpty ? "not valid JSON: \(why)\(under)" : "bad value at \(path(c)): \(why)"
        @unknown default: return "\(e)"
        }
    }

    /// Table and kind checks. Returns the byte length of the data section (end of the last tensor).
    /// `fileDataBytes` is how many bytes follow the data start in the file (nil when writing).
    @discardableResult
    static func check(_ h: GSLRHeader, file: String, fileDataBytes: Int? = nil) throws -> (dataLength: Int, index: [[UInt8]: Int]) {
        guard GSLR.isValidAlignment(h.alignment) else {
            throw FormatError.badHeader(file: file, problem: "alignment \(h.alignment) is not a power of two in [\(GSLR.minAlignment), \(GSLR.maxAlignment)]")
        }
        guard h.tensors.count <= GSLR.maxTensors else {
            throw FormatError.limitExceeded(file: file, what: "tensor count", value: h.tensors.count, limit: GSLR.maxTensors)
        }
        // Names are compared as UTF-8 bytes (spec §4.2), not by Swift's Unicode-equivalence rules.
        var index = [[UInt8]: Int](minimumCapacity: h.tensors.count)
        var expected = 0
        for (i, t) in h.tensors.enumerated() {
            let nameBytes = t.name.utf8.count
            guard nameBytes > 0 else { throw FormatError.badTensor(file: file, tensor: "#\(i)", problem: "empty name") }
            guard nameBytes <= GSLR.maxNameBytes else {
                throw FormatError.limitExceeded(file: file, what: "name length of tensor #\(i) in bytes", value: nameBytes, limit: GSLR.maxNameBytes)
            }
            // Control characters would make fingerprint lines (TAB/LF separated) ambiguous.
            if t.name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                throw FormatError.badTensor(file: file, tensor: t.name.debugDescription, problem: "name contains a control character")
            }
            guard t.shape.count <= GSLR.maxRank else {
                throw FormatError.limitExceeded(file: file, what: "rank of tensor '\(t.name)'", value: t.shape.count, limit: GSLR.maxRank)
            }
            if let d = t.shape.first(where: { $0 < 0 }) {
                throw FormatError.badTensor(file: file, tensor: t.name, problem: "negative dimension \(d) in shape \(t.shape)")
            }
            guard let len = GSLR.byteLength(shape: t.shape, dtype: t.dtype) else {
                throw FormatError.badTensor(file: file, tensor: t.name, problem: "shape \(t.shape) × \(t.dtype.rawValue) overflows 64-bit size arithmetic")
            }
            guard t.length == len else {
                throw FormatError.badTensor(file: file, tensor: t.name, problem: "byte length \(t.length) but shape \(t.shape) × \(t.dtype.rawValue) (\(t.dtype.size) bytes) needs \(len)")
            }
            guard index.updateValue(i, forKey: Array(t.name.utf8)) == nil else { throw FormatError.duplicateName(file: file, tensor: t.name) }
            guard t.offset >= 0 else { throw FormatError.badLayout(file: file, tensor: t.name, problem: "offset \(t.offset) is negative") }
            guard t.offset % h.alignment == 0 else {
                throw FormatError.badLayout(file: file, tensor: t.name, problem: "offset \(t.offset) is not a multiple of the alignment \(h.alignment)")
            }
            guard t.offset >= expected else {
                throw FormatError.badLayout(file: file, tensor: t.name, problem: "offset \(t.offset) overlaps the previous tensor, which ends at \(expected)")
            }
            guard t.offset == expected else {
                throw FormatError.badLayout(file: file, tensor: t.name, problem: "offset \(t.offset) leaves a gap: the previous tensor's padded end is \(expected)")
            }
            let (end, o) = t.offset.addingReportingOverflow(t.length)
            if let avail = fileDataBytes, o || end > avail {
                throw FormatError.badLayout(file: file, tensor: t.name, problem: "bytes \(t.offset)..<\(o ? Int.max : end) of the data section are beyond the end of the file (data section has \(avail) bytes)")
            }
            guard !o, let next = GSLR.alignUp(end, h.alignment) else {
                throw FormatError.badTensor(file: file, tensor: t.name, problem: "offset + length overflows")
            }
            expected = i == h.tensors.count - 1 ? end : next
        }
        try checkKind(h, file: file, index: index)
        return (expected, index)
    }

    static func checkKind(_ h: GSLRHeader, file: String, index: [[UInt8]: Int]) throws {
        if let m = h.model {
            let dims: [(String, Int)] = [("image_size", m.imageSize), ("patch_size", m.patchSize), ("channels", m.channels),
                                         ("width", m.width), ("depth", m.depth), ("heads", m.heads), ("head_dim", m.headDim),
                                         ("mlp_width", m.mlpWidth), ("num_classes", m.numClasses)]
            for (k, v) in dims where v < 1 || v > 1 << 20 {
                throw FormatError.badHeader(file: file, problem: "model.\(k) is \(v), outside 1...\(1 << 20)")
            }
            guard m.imageSize % m.patchSize == 0 else {
                throw FormatError.badHeader(file: file, problem: "model.image_size \(m.imageSize) is not a multiple of patch_size \(m.patchSize)")
            }
            guard m.attentionScale.isFinite, m.attentionScale > 0, m.layerNormEps.isFinite, m.layerNormEps > 0 else {
                throw FormatError.badHeader(file: file, problem: "model.attention_scale and model.layer_norm_eps must be finite and positive")
            }
            if let c = h.classes, c.count != m.numClasses {
                throw FormatError.badHeader(file: file, problem: "\(c.count) class names for a model with \(m.numClasses) classes")
            }
        }
        if let p = h.preprocess, let problem = p.problem(channels: h.model?.channels, imageSize: h.model?.imageSize) {
            throw FormatError.badHeader(file: file, problem: "preprocess: \(problem)")
        }
        switch h.kind {
        case .backbone:
            guard h.model != nil else { throw FormatError.badHeader(file: file, problem: "a backbone file needs a 'model' config") }
        case .adapter:
            guard let a = h.adapter else { throw FormatError.badHeader(file: file, problem: "an adapter file needs an 'adapter' record") }
            guard a.rank >= 1, a.rank <= 1 << 16 else { throw FormatError.badHeader(file: file, problem: "adapter.rank \(a.rank) is outside 1...65536") }
            guard a.alpha.isFinite, a.scaling.isFinite else { throw FormatError.badHeader(file: file, problem: "adapter.alpha and adapter.scaling must be finite") }
            guard Fingerprint.isWellFormed(a.baseFingerprint) else {
                throw FormatError.badHeader(file: file, problem: "adapter.base_fingerprint \"\(a.baseFingerprint.prefix(80))\" is not \"sha256:\" + 64 lowercase hex digits")
            }
            var seen = Set<[UInt8]>()
            for g in a.groups {
                guard g.norm.isFinite, g.norm >= 0 else { throw FormatError.badHeader(file: file, problem: "group '\(g.name)' has norm \(g.norm)") }
                for m in g.members {
                    guard seen.insert(Array(m.utf8)).inserted else { throw FormatError.badHeader(file: file, problem: "tensor '\(m)' is a member of two groups") }
                    let present = index[Array(m.utf8)] != nil
                    if g.state == .kept && !present {
                        throw FormatError.badHeader(file: file, problem: "kept group '\(g.name)' lists tensor '\(m)', which is not in the table")
                    }
                    if g.state == .pruned && present {
                        throw FormatError.badHeader(file: file, problem: "pruned group '\(g.name)' lists tensor '\(m)', which is still in the table")
                    }
                }
            }
        case .tensors:
            break
        }
    }
}
