import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAAdapters
import GSLoRAFormat

@main
struct MergeCommand: GsloraCommand, ComputeCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-merge",
        abstract: "Fold GS-LoRA adapters into a backbone: W ← W + scale·s·B·A, in the order given.",
        discussion: """
            The arithmetic is float32 whatever the stored dtype; each weight is written back in its own dtype (F16/BF16 \
            rounded to nearest even). Every adapter must have been trained on the weights it is applied to: the base \
            for task 1, the base with tasks 1 … t−1 merged for task t (a continual chain). Its recorded base \
            fingerprint is compared with the fingerprint of the weights so far; a mismatch is refused unless --allow-base-mismatch. \
            Pruned groups (tensors absent from the adapter) are not merged. The output keeps the base's config, class \
            names and metadata and lists each merged task (task index, adapter fingerprint, scale). Without -o the result \
            is BASE.merged.gslr beside BASE (base.gslr → base.merged.gslr); an existing output is replaced only with \
            --force, and never an input.

            Examples:
              gslora-merge face_vit.gslr task1.gslr -o face_vit.t1.gslr
              gslora-merge face_vit.gslr t1.gslr t2.gslr          (writes face_vit.merged.gslr)
              gslora-merge face_vit.gslr t1.gslr t2.gslr t3.gslr -o face_vit.t123.gslr
              gslora-merge base.gslr task1.gslr --scale 0.5 -o half.gslr
              gslora-merge base.gslr other.gslr -o out.gslr --allow-base-mismatch --json

            Exit status: 0 merged, 1 bad input or failed check (fingerprint, NaN),
            2 usage error.
            """)

    @Argument(help: "The backbone .gslr to merge into.")
    var base: String

    @Argument(help: "Adapter .gslr files, in the order they were trained.")
    var adapters: [String] = []

    @Option(
        name: [.short, .customLong("output")], help: ArgumentHelp("The backbone .gslr to write (default: BASE.merged.gslr beside BASE).", valueName: "file"))
    var outputOption: String?

    var output: String { outputOption ?? OutputPolicy.beside(base, suffix: ".merged.gslr") }

    @Option(name: .customLong("scale"), help: "Multiplier of an adapter's scaling; repeat once per adapter, in order (default 1).")
    var scales: [Double] = []

    @Flag(help: "Merge even when an adapter's base fingerprint does not match (prints a warning).")
    var allowBaseMismatch = false

    @Flag(help: "Replace an existing output file (never an input).")
    var force = false

    @Flag(help: "Print the report as JSON on stdout.")
    var json = false

    func validate() throws {
        guard !adapters.isEmpty else { throw ValidationError("give at least one adapter after the base") }
        guard scales.count <= adapters.count else {
            throw ValidationError("\(scales.count) --scale values for \(adapters.count) adapters; give at most one per adapter")
        }
        if let bad = scales.first(where: { !$0.isFinite }) { throw ValidationError("--scale \(bad) is not a finite number") }
        for input in [base] + adapters where input == output || AtomicFile.sameFile(input, output) {
            throw ValidationError("\(output): the output is also an input; choose a different output path")
        }
    }

    func run() throws {
        try OutputPolicy.checkFile(output, inputs: [base] + adapters, force: force)
        let report = try LoRAMerge.mergeFiles(base: base, adapters: adapters, scales: scales, output: output, force: allowBaseMismatch)
        for w in report.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
            return
        }
        print("merged \(report.steps.count) adapter(s) into \(report.base) → \(report.output) (\(report.bytes) bytes)")
        for s in report.steps {
            let check = s.forced ? "MISMATCH ALLOWED (trained on \(s.expectedBase))" : "base fingerprint ok"
            print(
                "  task \(s.task)  \(s.adapter)  scale \(s.scale) (s·B·A with s = \(s.scaling))  \(s.layers) layers"
                    + (s.prunedLayers > 0 ? ", \(s.prunedLayers) pruned" : "") + "  \(check)")
        }
        print("fingerprint \(report.outputFingerprint)")
    }
}
