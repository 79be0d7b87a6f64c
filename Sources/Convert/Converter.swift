import Foundation
import GSLoRAFormat

/// How `Converter.convert` writes its output.
public struct ConvertOptions: Sendable {
    public enum Names: String, CaseIterable, Sendable {
        /// The family's own keys (what PyTorch's load_state_dict expects).
        case original
        /// gslora's timm-like names (spec/MODELS.md).
        case canonical
    }

    public var importing: ImportOptions
    public var dtype: DTypeCast.Target
    /// Tensor names in .safetensors and .pth outputs (.gslr always uses canonical names). Default: original.
    public var names: Names
    /// Where the adapter of a LoRA checkpoint goes (.gslr output only); default: OUT with ".adapter.gslr".
    public var adapterOut: String?
    /// Replace existing output files.
    public var force: Bool
    /// The image pipeline to store in a .gslr backbone, given the model's config and the pipeline read from the
    /// input (a .gslr record or config.json; spec/FORMAT.md §4.7). nil keeps the one read.
    public var pipeline: (@Sendable (ModelConfig, PreprocessRecord?) throws -> PreprocessRecord)?

    public init(
        importing: ImportOptions = ImportOptions(), dtype: DTypeCast.Target = .keep, names: Names = .original,
        adapterOut: String? = nil, force: Bool = false
    ) {
        self.importing = importing
        self.dtype = dtype
        self.names = names
        self.adapterOut = adapterOut
        self.force = force
    }
}

/// What a conversion did, for the one-line summary and the JSON report.
public struct ConvertReport: Codable, Sendable {
    public struct Output: Codable, Sendable {
        public var path: String
        /// "backbone", "adapter", "tensors" (.gslr kinds), "safetensors", "pth" or "peft" (a PEFT folder).
        public var kind: String
        public var tensors: Int
        public var parameters: Int
        public var bytes: Int
    }

    public var input: String
    public var source: String
    public var family: String?
    public var config: ModelConfig?
    public var loraRank: Int?
    public var loraMerge: String?
    public var outputs: [Output]
    public var seconds: Double
    public var notices: [String]

    /// "face_vit → out.gslr (backbone): 25 tensors, 118,346 params, 474,112 bytes; + out.adapter.gslr ...; 0.02 s"
    public var summary: String {
        let what = family ?? (loraRank != nil ? "adapter" : "tensors")
        let outs = outputs.map { "\($0.path) (\($0.kind)): \($0.tensors) tensors, \(Self.grouped($0.parameters)) params, \(Self.grouped($0.bytes)) bytes" }
        return "\(what) → " + outs.joined(separator: "; + ") + String(format: "; %.2f s", seconds)
    }

    static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0, (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }
}

/// The whole IN → OUT pipeline of gslora-convert: read any supported checkpoint, apply the family's canonical names,
/// split LoRA, cast, and write .gslr, .safetensors or .pth chosen by the output's extension.
public enum Converter {
    public enum OutputFormat: String, CaseIterable, Sendable {
        case gslr, safetensors, pth, peft

        /// From the extension: .gslr, .safetensors, .pth/.pt/.bin; a folder (a directory, or a path ending in "/")
        /// is a PEFT LoRA folder.
        public init?(path: String) {
            if PeftFolder.isFolder(path) { self = .peft; return }
            let ext = (path as NSString).pathExtension.lowercased()
            switch ext {
            case "gslr": self = .gslr
            case "safetensors": self = .safetensors
            case "pth", "pt", "bin": self = .pth
            default: return nil
            }
        }
    }

    public static func convert(input: String, output: String, options: ConvertOptions) throws -> ConvertReport {
        let start = Date()
        guard let format = OutputFormat(path: output) else {
            throw ConvertError.badOutput(
                file: output,
                reason: "unknown output extension '.\((output as NSString).pathExtension)'; use .gslr, .safetensors, .pth or a folder ending in / (PEFT)")
        }
        guard FileManager.default.fileExists(atPath: input) else {
            throw ConvertError.unreadable(file: input, reason: "no such file")
        }
        var adapterPath: String?
        try checkOutput(output, input: input, options: options)
        if let a = options.adapterOut {
            guard format == .gslr else {
                throw ConvertError.badOutput(
                    file: a, reason: "\(Setting("adapterOut")) needs a .gslr output; .safetensors and .pth outputs keep the LoRA factors in the same file")
            }
            guard OutputFormat(path: a) == .gslr else { throw ConvertError.badOutput(file: a, reason: "the adapter output must end in .gslr") }
            guard a != output, !AtomicFile.sameFile(a, output) else {
                throw ConvertError.badOutput(file: a, reason: "the adapter output is the backbone output; choose two different paths")
            }
        }

        var (m, claims) = try importModel(input, options: options)
        if let make = options.pipeline {
            guard let c = m.config else {
                throw ConvertError.badOutput(
                    file: output,
                    reason:
                        "an image pipeline (\(Setting("mean")), \(Setting("std")), \(Setting("interpolation")), \(Setting("resize")), \(Setting("cropPct"))) is stored with a recognised backbone only, and \(input) is not one"
                )
            }
            let p = try make(c, m.preprocess)
            if let problem = p.problem(channels: c.channels, imageSize: c.imageSize) {
                throw ConvertError.badOutput(file: output, reason: "image pipeline: \(problem)")
            }
            m.preprocess = p
        }
        m.weights = m.weights.map { DTypeCast.apply(options.dtype, to: $0) }
        m.lora = m.lora.map { DTypeCast.apply(options.dtype, to: $0) }
        m.extra = m.extra.map { DTypeCast.apply(options.dtype, to: $0) }
        var notices = m.notices
        if options.dtype != .keep { notices.append("float tensors cast to \(options.dtype.rawValue) (round to nearest even); integer tensors unchanged") }

        var inputs = [input]
        if let b = options.importing.base { inputs.append(b) }
        var outputs: [ConvertReport.Output] = []
        switch format {
        case .gslr:
            if !m.lora.isEmpty && m.adapter == nil {
                adapterPath = options.adapterOut ?? defaultAdapterPath(output)
                try checkOutput(adapterPath!, input: input, options: options)
            }
            if options.adapterOut != nil && adapterPath == nil { notices.append("\(Setting("adapterOut")) ignored: there are no LoRA factors to write") }
            // Only the first file written copies records unchecked: a bad adapter record must not follow a kept backbone.
            try settleClaims(claims, input: input, except: m.adapter != nil ? m.lora : m.weights + m.extra)
            outputs = try writeGSLR(m, output: output, adapterPath: adapterPath, inputs: inputs, notices: &notices)
        case .safetensors:
            let tensors = try named(m, options.names) + m.extra
            try settleClaims(claims, input: input, except: tensors)
            var meta: [String: String] = [SafetensorsMetadata.format: "pt", SafetensorsMetadata.names: options.names.rawValue]
            if let c = m.config {
                meta[SafetensorsMetadata.family] = c.family.rawValue
                meta[SafetensorsMetadata.config] = SafetensorsMetadata.encode(c)
            }
            // What a .gslr header carries beyond the tensors, so the file converts back to the same thing.
            if let a = m.adapter { meta[SafetensorsMetadata.adapter] = SafetensorsMetadata.encode(a) }
            if let c = m.classes { meta[SafetensorsMetadata.classes] = SafetensorsMetadata.encode(c) }
            if let g = m.merged, !g.isEmpty { meta[SafetensorsMetadata.merged] = SafetensorsMetadata.encode(g) }
            let md = provenance(m).merging(m.metadata) { a, _ in a }
            meta[SafetensorsMetadata.metadata] = SafetensorsMetadata.encode(md)
            if let p = m.preprocess, m.config != nil { meta[SafetensorsMetadata.preprocess] = SafetensorsMetadata.encode(p) }
            let size = try SafetensorsWriter.write(output, tensors: tensors, metadata: meta, inputs: inputs)
            outputs = [.init(path: output, kind: "safetensors", tensors: tensors.count, parameters: count(tensors), bytes: size)]
        case .pth:
            let tensors = try named(m, options.names)
            try settleClaims(claims, input: input, except: tensors)
            if !m.extra.isEmpty { notices.append("the .pth output holds the state dict only; \(m.extra.count) optimizer tensors were not written") }
            let size = try writePth(output, tensors: tensors, leaves: pthLeaves(m, notices: &notices), inputs: inputs)
            outputs = [.init(path: output, kind: "pth", tensors: tensors.count, parameters: count(tensors), bytes: size)]
        case .peft:
            let (info, base) = try peftBinding(m, output: output, options: options)
            try settleClaims(claims, input: input, except: m.lora)
            let md = m.source == .gslr ? m.metadata : provenance(m).merging(m.metadata) { a, _ in a }
            let size = try PeftFolder.write(
                output, info: info, tensors: m.lora, base: base, classes: m.classes, metadata: md,
                force: options.force, inputs: inputs)
            outputs = [.init(path: output, kind: "peft", tensors: m.lora.count, parameters: count(m.lora), bytes: size)]
            notices.append("PEFT folder for \(base.config.family.rawValue) written; load it with PeftModel.from_pretrained(model, \"\(output)\")")
        }
        if let p = m.preprocess, m.config != nil {
            notices.append(
                format != .pth
                    ? "image pipeline stored: resize \(p.resize) (\(p.interpolation.rawValue)), crop \(p.crop)"
                        + (p.mean.map { ", mean \($0) std \(p.std ?? [])" } ?? "")
                    : "the image pipeline is stored in .gslr and .safetensors outputs only; this .pth file does not carry it")
        }
        return ConvertReport(
            input: input, source: m.source.rawValue, family: m.family?.rawValue, config: m.config,
            loraRank: m.loraRank, loraMerge: m.mergeState?.rawValue, outputs: outputs,
            seconds: Date().timeIntervalSince(start), notices: notices)
    }

    /// Reads the input. A `torch.save` zip converted without a cast is read with its stored records' CRCs claimed,
    /// not checked (`TorchLoadOptions.claimStoredRecordCRCs`): each record a writer copies whole is hashed as it is
    /// written, so the input is read once instead of twice. Returns the mapping holding the claims, which the caller
    /// settles (`settleClaims`) before writing; nil when nothing was claimed.
    static func importModel(_ input: String, options: ConvertOptions) throws -> (ImportedModel, Bytes?) {
        // The cases ModelImport.load sends elsewhere, and casts (which read every byte anyway), take the usual path.
        guard options.dtype == .keep, !input.lowercased().hasSuffix(".safetensors"), let file = try? MappedFile(input),
            (try? detectFormat(path: input, bytes: file.bytes)) == .torchZip
        else {
            return (try ModelImport.load(input, options: options.importing), nil)
        }
        file.adviseSequential()
        do {
            let root = try TorchCheckpoint.loadZip(path: input, bytes: file.bytes, options: TorchLoadOptions(claimStoredRecordCRCs: true))
            var m = try ModelImport.load(checkpoint: root, path: input, options: options.importing)
            try ModelImport.readPipeline(&m, options: options.importing)
            return (m, file.bytes)
        } catch {
            // A damaged record can trip a check on its values first (LoRA reconciliation); its CRC names the real cause.
            try settleClaims(file.bytes, input: input)
            throw error
        }
    }

    /// Checks every record CRC still only claimed in `mapping` except those of exactly `except`'s bytes, which the
    /// next writer hashes as it copies them (and refuses to keep its file on a mismatch).
    static func settleClaims(_ mapping: Bytes?, input: String, except: [Tensor] = []) throws {
        guard let mapping else { return }
        do {
            try MappedFile.verifyClaimedChecksums(in: mapping, except: except.map(\.data))
        } catch let e as FormatError {
            throw ConvertError.writing(input, e)
        }
    }

    /// The output may not be the input (or the base), and is not replaced unless `force`.
    static func checkOutput(_ output: String, input: String, options: ConvertOptions) throws {
        let others = [input] + (options.importing.base.map { [$0] } ?? [])
        for p in others where p == output || AtomicFile.sameFile(p, output) {
            throw ConvertError.badOutput(file: output, reason: "the output is the input file \(p); choose a different output path")
        }
        // A PEFT folder may exist; PeftFolder.write checks the files inside it.
        if !options.force && FileManager.default.fileExists(atPath: output) && !PeftFolder.isFolder(output) {
            throw ConvertError.badOutput(file: output, reason: "the file exists; pass \(Setting("force")) to replace it")
        }
    }

    /// "out.gslr" → "out.adapter.gslr".
    public static func defaultAdapterPath(_ output: String) -> String {
        (output as NSString).deletingPathExtension + ".adapter.gslr"
    }

    static func count(_ ts: [Tensor]) -> Int { ts.reduce(0) { $0 + $1.count } }

    /// What a header's metadata says about where the file came from.
    static func provenance(_ m: ImportedModel) -> [String: JSONValue] {
        var md: [String: JSONValue] = ["converted_from": .string((m.path as NSString).lastPathComponent), "source_format": .string(m.source.rawValue)]
        if let r = m.loraRank { md["lora_rank"] = .int(r) }
        if let s = m.mergeState { md["lora_merge"] = .string(s.rawValue) }
        return md
    }

    /// Weights and LoRA in one list under the names asked for.
    static func named(_ m: ImportedModel, _ names: ConvertOptions.Names) throws -> [Tensor] {
        let all = m.interleaved
        guard names == .original, let f = m.family else { return all }
        let map = ModelFamilies.map(for: f)
        return try all.map { t in
            guard let o = map.original(t.name) else {
                throw ConvertError.badModel(file: m.path, tensor: t.name, reason: "has no \(f.rawValue) original name")
            }
            var c = t
            c.name = o
            return c
        }
    }

    static func writeGSLR(
        _ m: ImportedModel, output: String, adapterPath: String?, inputs: [String],
        notices: inout [String]
    ) throws -> [ConvertReport.Output] {
        var metadata = provenance(m).merging(m.metadata) { a, _ in a }
        if m.source == .gslr { metadata = m.metadata }
        var outs: [ConvertReport.Output] = []
        if let a = m.adapter {
            // Re-export of an adapter file.
            let h = GSLRHeader(kind: .adapter, classes: m.classes, adapter: a, metadata: metadata)
            try gslrWrite(output, h, m.lora, inputs: inputs)
            return [.init(path: output, kind: "adapter", tensors: m.lora.count, parameters: count(m.lora), bytes: fileSize(output))]
        }
        let backbone = m.weights + m.extra
        if !m.extra.isEmpty { notices.append("\(m.extra.count) optimizer tensors stored after the model weights") }
        let kind: FileKind = m.config == nil ? .tensors : .backbone
        let h = GSLRHeader(
            kind: kind, model: m.config, classes: m.classes, merged: m.merged, preprocess: m.config == nil ? nil : m.preprocess,
            metadata: metadata)
        try gslrWrite(output, h, backbone, inputs: inputs)
        outs.append(.init(path: output, kind: kind.rawValue, tensors: backbone.count, parameters: count(backbone), bytes: fileSize(output)))

        if let adapterPath, let rank = m.loraRank, let alpha = m.loraAlpha {
            let factors = LoRAImport.Factors(tensors: m.lora, rank: rank, targets: m.loraTargets)
            let info = try LoRAImport.adapterInfo(
                factors, alpha: alpha, baseFingerprint: Fingerprint.of(backbone, binding: m.config.map { .model($0) } ?? .none))
            var md = provenance(m)
            md["base_file"] = .string((output as NSString).lastPathComponent)
            let ah = GSLRHeader(kind: .adapter, adapter: info, metadata: md)
            try gslrWrite(adapterPath, ah, m.lora, inputs: inputs)
            outs.append(.init(path: adapterPath, kind: "adapter", tensors: m.lora.count, parameters: count(m.lora), bytes: fileSize(adapterPath)))
            notices.append(
                "LoRA factors written as an adapter to \(adapterPath) (rank \(rank), \(info.groups.count) block groups); the backbone holds no LoRA tensors")
        }
        return outs
    }

    static func gslrWrite(_ path: String, _ h: GSLRHeader, _ tensors: [Tensor], inputs: [String]) throws {
        do {
            try GSLRWriter.write(path, header: h, tensors: tensors, inputs: inputs)
        } catch let e as FormatError {
            throw ConvertError.writing(path, e)
        }
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }
}
