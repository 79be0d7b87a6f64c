import GSLoRAFormat

/// The outcome of `LoRAMerge.mergeFiles`, for printing or as JSON.
public struct MergeReport: Codable, Sendable {
    public var base: String
    public var output: String
    public var baseFingerprint: String
    /// Fingerprint of the written file (equal to the last step's `fingerprintAfter`).
    public var outputFingerprint: String
    public var steps: [MergeStep]
    /// The file's full `merged` list: earlier merges recorded in the base, then these.
    public var merged: [MergedTask]
    public var bytes: Int
    public var warnings: [String]
}

/// Merging adapter files into a backbone file (`gslora-merge`).
public enum LoRAMerge {
    /// Folds `adapters` into `base` in the order given (`scales[i]` for adapter i, default 1) and writes the
    /// backbone to `output` atomically, keeping config, classes and metadata and recording each task in `merged`.
    public static func mergeFiles(
        base: String, adapters: [String], scales: [Double] = [], output: String,
        force: Bool = false
    ) throws -> MergeReport {
        guard !adapters.isEmpty else { throw AdapterError.invalidArgument("no adapter to merge; give at least one adapter file") }
        guard scales.count <= adapters.count else {
            throw AdapterError.invalidArgument(
                "\(scales.count) scales for \(adapters.count) adapters; give at most one \(Setting("scales")) per adapter, in order")
        }
        let file = try GSLRFile.open(base)
        var weights = try MergedWeights(file: file)
        let start = weights.fingerprint
        var warnings: [String] = []
        for (i, path) in adapters.enumerated() {
            let adapter = try AdapterFile.open(path)
            let step = try weights.fold(adapter, scale: i < scales.count ? scales[i] : 1, force: force)
            if step.forced {
                warnings.append("\(path): trained on \(step.expectedBase) but merged into \(step.actualBase) because of \(Setting("allowBaseMismatch"))")
            }
        }
        var header = file.header
        header.merged = weights.merged
        try GSLRWriter.write(output, header: header, tensors: weights.tensors, inputs: [base] + adapters)
        let written = try GSLRFile.open(output)
        let predicted = weights.fingerprint
        guard written.fingerprint == predicted else {
            throw AdapterError.invalidArgument(
                "\(output): the written weights have fingerprint \(written.fingerprint), not the \(predicted) computed in memory; the output is not trustworthy, write it again"
            )
        }
        return MergeReport(
            base: base, output: output, baseFingerprint: start, outputFingerprint: written.fingerprint,
            steps: weights.steps, merged: weights.merged, bytes: written.fileSize, warnings: warnings)
    }
}
