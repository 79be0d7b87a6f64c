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
        } catch HeaderScan.Problem.byteOrderMark {
            throw FormatError.badHeader(file: file, problem: "the header starts with a UTF-8 byte-order mark; it must be UTF-8 without one")
        } catch HeaderScan.Problem.invalidUTF8(let at) {
            throw FormatError.badHeader(file: file, problem: "the header is not valid UTF-8 (byte \(at) of the header)")
        } catch HeaderScan.Problem.notAnInteger(let token, let path) {
            throw FormatError.badHeader(file: file, problem: "bad value at \(path): \(token) is not written as an integer (no fraction or exponent)")
        } catch HeaderScan.Problem.numberOutOfRange(let token, let at) {
            throw FormatError.badHeader(file: file, problem: "the number \(token) (byte \(at) of the header) is beyond the range of a binary64")
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
            // Only a parse failure carries an underlying error; a value of the wrong type or range at the top level
            // (an enum case, an integer with a fraction) is a schema error, not broken JSON.
            if c.codingPath.isEmpty && c.underlyingError != nil { return "not valid JSON: \(why)\(under)" }
            return "bad value at \(path(c)): \(why)"
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
                throw FormatError.badTensor(
                    file: file, tensor: t.name,
                    problem: "byte length \(t.length) but shape \(t.shape) × \(t.dtype.rawValue) (\(t.dtype.size) bytes) needs \(len)")
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
                throw FormatError.badLayout(
                    file: file, tensor: t.name, problem: "offset \(t.offset) leaves a gap: the previous tensor's padded end is \(expected)")
            }
            let (end, o) = t.offset.addingReportingOverflow(t.length)
            if let avail = fileDataBytes, o || end > avail {
                throw FormatError.badLayout(
                    file: file, tensor: t.name,
                    problem: "bytes \(t.offset)..<\(o ? Int.max : end) of the data section are beyond the end of the file (data section has \(avail) bytes)")
            }
            guard !o, let next = GSLR.alignUp(end, h.alignment) else {
                throw FormatError.badTensor(file: file, tensor: t.name, problem: "offset + length overflows")
            }
            expected = i == h.tensors.count - 1 ? end : next
        }
        try checkKind(h, file: file, index: index)
        return (expected, index)
    }

    /// The values every 1.x reader knows; anything else is refused (spec/FORMAT.md §4.3-4.4: closed lists).
    static let poolings: Set<String> = ["cls", "avg"]
    static let groupings: Set<String> = ["block", "lora", "matrix"]
    static let scalingRules: Set<String> = ["alpha/rank", "alpha/sqrt(rank)"]

    static func checkKind(_ h: GSLRHeader, file: String, index: [[UInt8]: Int]) throws {
        func bad(_ p: String) -> FormatError { .badHeader(file: file, problem: p) }
        if let m = h.model {
            let dims: [(String, Int)] = [
                ("image_size", m.imageSize), ("patch_size", m.patchSize), ("channels", m.channels),
                ("width", m.width), ("depth", m.depth), ("heads", m.heads), ("head_dim", m.headDim),
                ("mlp_width", m.mlpWidth), ("num_classes", m.numClasses)
            ]
            for (k, v) in dims where v < 1 || v > 1 << 20 {
                throw bad("model.\(k) is \(v), outside 1...\(1 << 20)")
            }
            guard m.imageSize % m.patchSize == 0 else {
                throw bad("model.image_size \(m.imageSize) is not a multiple of patch_size \(m.patchSize)")
            }
            guard m.attentionScale.isFinite, m.attentionScale > 0, m.layerNormEps.isFinite, m.layerNormEps > 0 else {
                throw bad("model.attention_scale and model.layer_norm_eps must be finite and positive")
            }
            guard poolings.contains(m.pooling) else {
                throw bad("model.pooling \"\(m.pooling.prefix(40))\" is not one of \(poolings.sorted())")
            }
            if m.head.kind != .linear {
                guard let sc = m.head.s, let mg = m.head.m, sc.isFinite, mg.isFinite else {
                    throw bad("model.head of kind \(m.head.kind.rawValue) needs finite numbers s and m")
                }
            }
            if let c = h.classes, c.count != m.numClasses {
                throw bad("\(c.count) class names for a model with \(m.numClasses) classes")
            }
            if h.kind == .backbone, let (name, block) = highestBlock(h.tensors, family: m.family), block >= m.depth {
                throw bad(
                    "tensor '\(name)' belongs to block \(block), but model.depth is \(m.depth) (blocks 0...\(m.depth - 1)); the config does not describe these weights"
                )
            }
        }
        for (i, t) in (h.merged ?? []).enumerated() {
            guard t.task >= 0 else { throw bad("merged[\(i)].task is \(t.task); task indices are ≥ 0") }
            guard Fingerprint.isWellFormed(t.adapterFingerprint) else {
                throw bad(
                    "merged[\(i)].adapter_fingerprint \"\(t.adapterFingerprint.prefix(80))\" is not a fingerprint (\"\(Fingerprint.prefix)\" or \"\(Fingerprint.tableOnlyPrefix)\" + 64 lowercase hex digits)"
                )
            }
            guard t.scale.isFinite else { throw bad("merged[\(i)].scale \(t.scale) is not finite") }
        }
        if let p = h.preprocess, let problem = p.problem(channels: h.model?.channels, imageSize: h.model?.imageSize) {
            throw FormatError.badHeader(file: file, problem: "preprocess: \(problem)")
        }
        switch h.kind {
        case .backbone:
            guard h.model != nil else { throw bad("a backbone file needs a 'model' config") }
        case .adapter:
            guard let a = h.adapter else { throw bad("an adapter file needs an 'adapter' record") }
            guard a.rank >= 1, a.rank <= 1 << 16 else { throw bad("adapter.rank \(a.rank) is outside 1...65536") }
            guard a.alpha.isFinite, a.scaling.isFinite else { throw bad("adapter.alpha and adapter.scaling must be finite") }
            guard scalingRules.contains(a.scalingRule) else {
                throw bad("adapter.scaling_rule \"\(a.scalingRule.prefix(40))\" is not one of \(scalingRules.sorted())")
            }
            let rsLoRA = a.scalingRule == "alpha/sqrt(rank)"
            let expected = rsLoRA ? a.alpha / Double(a.rank).squareRoot() : a.alpha / Double(a.rank)
            guard a.scaling == expected else {
                throw bad(
                    "adapter.scaling \(a.scaling) is not \(a.scalingRule) = \(expected) for alpha \(a.alpha) and rank \(a.rank), as scaling_rule \"\(a.scalingRule)\" says"
                )
            }
            guard groupings.contains(a.grouping) else {
                throw bad("adapter.grouping \"\(a.grouping.prefix(40))\" is not one of \(groupings.sorted())")
            }
            guard Fingerprint.isWellFormed(a.baseFingerprint) else {
                throw bad(
                    "adapter.base_fingerprint \"\(a.baseFingerprint.prefix(80))\" is not a fingerprint (\"\(Fingerprint.prefix)\" or \"\(Fingerprint.tableOnlyPrefix)\" + 64 lowercase hex digits)"
                )
            }
            guard a.task.index >= 0 else { throw bad("adapter.task.index is \(a.task.index); it is ≥ 1 in a chain, 0 outside one") }
            for (k, list) in [("forget", a.task.forget), ("retain", a.task.retain), ("old", a.task.old)] {
                if let c = list.first(where: { $0 < 0 }) { throw bad("adapter.task.\(k) holds class \(c); class indices are ≥ 0") }
            }
            var seen = Set<[UInt8]>()
            for g in a.groups {
                guard g.norm.isFinite, g.norm >= 0 else { throw bad("group '\(g.name)' has norm \(g.norm)") }
                for m in g.members {
                    guard seen.insert(Array(m.utf8)).inserted else { throw bad("tensor '\(m)' is a member of two groups") }
                    let present = index[Array(m.utf8)] != nil
                    if g.state == .kept && !present {
                        throw bad("kept group '\(g.name)' lists tensor '\(m)', which is not in the table")
                    }
                    if g.state == .pruned && present {
                        throw bad("pruned group '\(g.name)' lists tensor '\(m)', which is still in the table")
                    }
                }
            }
        case .tensors:
            break
        }
    }

    /// Block name prefixes: the family's source layout and the canonical `blocks.{i}.` (spec/MODELS.md).
    static func blockPrefixes(_ f: ModelConfig.Family) -> [String] {
        switch f {
        case .faceViT: return ["transformer.layers.", "blocks."]
        case .torchvisionViT: return ["encoder.layers.encoder_layer_", "blocks."]
        case .timmViT: return ["blocks."]
        }
    }

    /// The tensor with the highest block index `i` in a name `PREFIX{i}.…`, if any.
    static func highestBlock(_ tensors: [TensorInfo], family: ModelConfig.Family) -> (String, Int)? {
        var best: (String, Int)?
        for t in tensors {
            for p in blockPrefixes(family) where t.name.hasPrefix(p) {
                let digits = t.name.utf8.dropFirst(p.utf8.count).prefix(while: { $0 >= 0x30 && $0 <= 0x39 })
                let rest = t.name.utf8.dropFirst(p.utf8.count + digits.count)
                guard !digits.isEmpty, rest.first == 0x2E else { continue }
                let i = Int(String(decoding: digits, as: UTF8.self)) ?? Int.max
                if best == nil || i > best!.1 { best = (t.name, i) }
            }
        }
        return best
    }
}
