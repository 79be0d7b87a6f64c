import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAAdapters
import GSLoRAFormat

@main
struct PruneCommand: GsloraCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-prune",
        abstract: "Remove weak GS-LoRA groups from an adapter (their records stay, marked pruned).",
        discussion: """
            Groups are ranked by the norm recorded in the file, Σ_T ‖T‖_F over the group's factors (spec/FORMAT.md \
            §4.4, spec/TRAINING.md §A.3's reported form). The report also shows the group-lasso loss form sqrt(Σ_T ‖T‖_F²), \
            both computed from the data, and how much of ΔW = s·B·A the pruning removes: \
            ‖ΔW_pruned − ΔW‖_F / ‖ΔW‖_F over all LoRA layers and per target (mlp.fc1, mlp.fc2 over all blocks), \
            computed exactly. Pruned tensors leave the file; merging the result skips them. Without -o the result is \
            ADAPTER.pruned.gslr beside ADAPTER (task1.gslr → task1.pruned.gslr); an existing output is replaced only \
            with --force, and never the input.

            Examples:
              gslora-prune task1.gslr --threshold 1e-3 -o task1.pruned.gslr
              gslora-prune task1.gslr --keep 2 -o task1.top2.gslr --json
              gslora-prune task1.gslr --threshold 1e-3          (writes task1.pruned.gslr)

            Exit status: 0 pruned, 1 bad input or failed write, 2 usage error.
            """)

    @Argument(help: "The adapter .gslr to prune.")
    var adapter: String

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp("The adapter .gslr to write (default: ADAPTER.pruned.gslr beside ADAPTER).", valueName: "file"))
    var outputOption: String?

    var output: String { outputOption ?? OutputPolicy.beside(adapter, suffix: ".pruned.gslr") }

    @Option(help: "Prune every group whose recorded norm (Σ‖T‖_F) is below this value; 0 keeps all.")
    var threshold: Double?

    @Option(help: "Keep the K groups with the largest recorded norms, prune the rest.")
    var keep: Int?

    @Flag(help: "Print the report as JSON on stdout.")
    var json = false

    @Flag(help: "Replace an existing output file (never the input).")
    var force = false

    func validate() throws {
        guard (threshold == nil) != (keep == nil) else { throw ValidationError("give exactly one of --threshold and --keep") }
        if let t = threshold, !(t.isFinite && t >= 0) { throw ValidationError("--threshold must be a finite number ≥ 0") }
        if let k = keep, k < 0 { throw ValidationError("--keep must be ≥ 0") }
        if adapter == output || AtomicFile.sameFile(adapter, output) {
            throw ValidationError("\(output): the output is the input; choose a different output path")
        }
    }

    func run() throws {
        try OutputPolicy.checkFile(output, inputs: [adapter], force: force)
        let rule: PruneRule = threshold.map { .threshold($0) } ?? .keep(keep!)
        let r = try AdapterPrune.pruneFile(input: adapter, output: output, rule: rule)
        for w in r.warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
            return
        }
        func num(_ x: Double?) -> String { x.map { String(format: "%.6g", $0) } ?? "-" }
        let nameWidth = max(5, r.groups.map(\.name.count).max() ?? 0)
        print("group".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  recorded Σ‖T‖_F  computed Σ‖T‖_F  sqrt(Σ‖T‖²)  state")
        for g in r.groups {
            let state = g.before == g.after ? g.after.rawValue : "\(g.before.rawValue) → \(g.after.rawValue)"
            print(
                g.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  "
                    + [num(g.recordedNorm), num(g.frobeniusSum), num(g.lossNorm)].map { $0.padding(toLength: 15, withPad: " ", startingAt: 0) }.joined(
                        separator: "  ")
                    + "  " + state)
        }
        print("kept \(r.kept) of \(r.groups.count) groups (\(r.newlyPruned) pruned now, \(r.pruned) in all); \(r.bytesBefore) → \(r.bytesAfter) bytes")
        print(
            "‖ΔW_pruned − ΔW‖_F / ‖ΔW‖_F = \(num(r.change.relative)) (‖ΔW‖_F = \(num(r.change.norm)))"
                + r.perTarget.map { "; \($0.target): \(num($0.relative))" }.joined())
        print("wrote \(r.output) (fingerprint \(r.outputFingerprint))")
    }
}
