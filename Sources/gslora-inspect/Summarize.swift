import CommandSupport
import Foundation
import GSLoRAConvert
import GSLoRAFormat

/// Turns any supported file into a `FileSummary`: .gslr from its header alone; .pth and .safetensors through Convert.
enum Summarize {
    static func file(_ path: String, includeTable: Bool, verify: Bool, importing: ImportOptions = ImportOptions()) throws -> FileSummary {
        let format = try detectFormat(path: path)
        guard format == .gslr else { return try foreign(path, format: format, includeTable: includeTable, importing: importing) }
        let f = try GSLRFile.open(path)
        var s = FileSummary(f, includeTable: includeTable)
        if verify {
            let progress = Progress(path: path)
            let start = DispatchTime.now().uptimeNanoseconds
            let bad = f.verify(progress: progress.update)
            progress.finish()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            s.verification = FileSummary.Verification(checkedBytes: s.tensorBytes, seconds: seconds, mismatches: bad)
        }
        return s
    }

    /// A PyTorch or safetensors file, read (never executed) by the importer in lenient mode so an unusual layout is
    /// still shown. Such files carry no CRCs, so they are computed here: unlike .gslr, this reads every byte.
    private static func foreign(_ path: String, format: CheckpointFormat, includeTable: Bool, importing: ImportOptions) throws -> FileSummary {
        var options = importing
        options.lenient = true
        let m = try ModelImport.load(path, options: options)
        let all = m.weights + m.lora + m.extra
        let crcs = CRC32.ofEach(all.map(\.data.buffer))
        let table = zip(all, crcs).map { t, crc in
            TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, offset: 0, length: t.data.count, crc32: crc)
        }
        let kind: FileKind = m.adapter != nil ? .adapter : m.config == nil ? .tensors : .backbone
        var metadata = m.metadata
        if !m.notices.isEmpty { metadata["gslora.notices"] = .array(m.notices.map { .string($0) }) }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        var s = FileSummary(
            path: path, format: format.rawValue, fileBytes: size, kind: kind, model: m.config,
            classes: m.classes, adapter: m.adapter, merged: m.merged, metadata: metadata,
            table: table, includeTable: includeTable)
        s.preprocess = m.preprocess
        // The fingerprint a converted backbone will have: its weights only, LoRA factors and optimizer state aside;
        // an exported adapter's is its factors' (it has no weights), as its .gslr file's.
        let binding: Fingerprint.Binding =
            m.adapter.map { .adapter(scaling: $0.scaling, base: $0.baseFingerprint) }
            ?? m.config.map { .model($0) } ?? .none
        s.fingerprint = Fingerprint.of(Array(table.prefix(m.adapter != nil ? m.lora.count : m.weights.count)), binding: binding)
        // LoRA factors in a model checkpoint are part of the model PyTorch runs: a backbone with an embedded adapter.
        if m.config != nil, m.adapter == nil, let a = try m.embeddedAdapter(baseFingerprint: s.fingerprint) { s.adapter = a }
        return s
    }
}

/// Verification progress on stderr (`StatusLine`: redrawn on a terminal, a plain line every 30 s elsewhere).
final class Progress {
    let path: String
    private let status = StatusLine()
    private var lastPercent = -1

    init(path: String) { self.path = path }

    func update(_ done: Int, _ total: Int) {
        guard total > 0 else { return }
        let p = Int(Double(done) / Double(total) * 100)
        guard p != lastPercent else { return }
        lastPercent = p
        status.progress("verifying \(path): \(p)%", force: true)
    }

    func finish() { status.clear() }
}
