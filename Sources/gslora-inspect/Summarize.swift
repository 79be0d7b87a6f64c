import Convert
import Foundation
import Format

/// Turns any supported file into a `FileSummary`: .gslr from its header alone; .pth and .safetensors through Convert.
enum Summarize {
    static func file(_ path: String, includeTable: Bool, verify: Bool) throws -> FileSummary {
        let format = try detectFormat(path: path)
        guard format == .gslr else { return try foreign(path, format: format, includeTable: includeTable) }
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
    private static func foreign(_ path: String, format: CheckpointFormat, includeTable: Bool) throws -> FileSummary {
        let m = try ModelImport.load(path, options: ImportOptions(lenient: true))
        let all = m.weights + m.lora + m.extra
        let crcs = CRC32.ofEach(all.map(\.data.buffer))
        let table = zip(all, crcs).map { t, crc in
            TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, offset: 0, length: t.data.count, crc32: crc)
        }
        let kind: FileKind = m.config == nil ? .tensors : .backbone
        var metadata = m.metadata
        if !m.notices.isEmpty { metadata["gslora.notices"] = .array(m.notices.map { .string($0) }) }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        var s = FileSummary(path: path, format: format.rawValue, fileBytes: size, kind: kind, model: m.config,
                            classes: m.classes, adapter: m.adapter, merged: m.merged, metadata: metadata,
                            table: table, includeTable: includeTable)
        // The fingerprint a converted backbone will have: its weights only, LoRA factors and optimizer state aside.
        s.fingerprint = Fingerprint.of(Array(table.prefix(m.weights.count)), binding: m.config.map { .model($0) } ?? .none)
        return s
    }
}

/// A one-line progress display on stderr, shown only when stderr is a terminal.
final class Progress {
    let path: String
    let enabled = isatty(2) == 1
    private var lastPercent = -1

    init(path: String) { self.path = path }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let p = Int(Double(done) / Double(total) * 100)
        guard p != lastPercent else { return }
        lastPercent = p
        FileHandle.standardError.write(Data("\rverifying \(path): \(p)%".utf8))
    }

    func finish() {
        if enabled && lastPercent >= 0 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
