import ArgumentParser
import CommandSupport
import Foundation
import GSLoRACluster
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel

@main
struct EvalCommand: GsloraCommand, ComputeCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-eval",
        abstract: "Accuracy on forgotten, retained and earlier-forgotten classes, per class, and H.",
        discussion: """
            DATA is an image folder (one sub-folder per class, named as the model's classes when the file has them), a \
            Fashion-MNIST-style IDX folder (`fashion-mnist` names Debian's dataset-fashion-mnist; or an images file, with \
            --labels or its sibling labels file), or an .npy of \
            preprocessed N×C×H×W float32 images with --labels LABELS.npy. CLASSES are comma lists of indices, ranges \
            (0-4) or class names. Retained classes default to every class in the data that is neither forgotten nor old. \
            Image files go through the model's pipeline (stored in the .gslr, else the family default; --mean, --std, \
            --interpolation, --resize, --crop-pct override it), printed on stderr.

            Accuracy is the argmax of the plain logits (s·cos for a CosFace head). --margin-eval reproduces the official \
            face numbers, which subtract s·m from the true label's logit first (spec/TRAINING.md §A.8). With --before (a report \
            written earlier by `gslora-eval --json -o`), Δ = Acc_f(before) − Acc_f and H = 2·Δ·Acc_r/(Δ+Acc_r+1e-8).

            Examples:
              gslora-eval face.gslr --data test/ --forget 0-19 --json -o before.json
              gslora-eval face.gslr --adapter t1.gslr --data test/ --forget 0-19 \\
                  --before before.json
              gslora-eval face.t1.gslr --adapter t2.gslr --data test/ \\
                  --forget 20-39 --old 0-19 --margin-eval
              gslora-eval fmnist.gslr --data fashion-mnist --forget Sandal,Bag
              gslora-eval fmnist.gslr --data fashion-mnist --forget Sandal,Bag --precision bf16
              mpirun -np 4 gslora-eval fmnist.gslr --data fashion-mnist --forget Sandal,Bag -o report.json

            Under mpirun or srun the images are split across the ranks; the counts equal one process's, and rank 0 alone \
            prints and writes (README "More than one machine").

            The report's notes also go to stderr (`note:` lines); an existing -o file is replaced only with --force.

            Exit status: 0 evaluated, 1 bad input or failed check, 2 usage error.
            """)

    @Argument(help: "The model: a backbone .gslr, or a .pth/.safetensors ViT.")
    var model: String

    @OptionGroup var adapterOptions: AdapterOptions

    @OptionGroup var precisionOption: PrecisionOption

    @OptionGroup(title: "Image pipeline") var preprocessOptions: PreprocessOptions

    @Option(help: "The evaluation data: image folder, IDX folder or file, or .npy images.")
    var data: String

    @Option(help: "Labels for .npy images (an .npy of class indices) or for an IDX images file.")
    var labels: String?

    @Option(help: "Which split of an IDX folder: test (t10k-*) or train.")
    var split: String = "test"

    @Option(help: "Classes forgotten by the model (indices, ranges, names).")
    var forget: String

    @Option(help: "Classes to measure retention on (default: every other class in the data, minus --old).")
    var retain: String?

    @Option(help: "Classes forgotten by earlier tasks.")
    var old: String?

    @Option(help: "A JSON report of the model before forgetting, for Δ and H.")
    var before: String?

    @Flag(help: "Count a face image as correct only if cos_y − m beats every other cosine (the official numbers).")
    var marginEval = false

    @Option(help: "Images per forward batch.")
    var batchSize: Int = 64

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: [.short, .customLong("output")], help: "Write the report as JSON to this file.")
    var output: String?

    @Flag(help: "Print the report as JSON on stdout instead of a table.")
    var json = false

    @Flag(help: "Replace an existing -o file (never an input).")
    var force = false

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        guard ["test", "train"].contains(split) else { throw ValidationError("--split must be test or train") }
        if let o = output {
            for input in [model, data] + adapterOptions.adapters + [labels, before].compactMap({ $0 }) where input == o || AtomicFile.sameFile(input, o) {
                throw ValidationError("\(o): the output is also an input; choose a different output path")
            }
        }
    }

    func run() throws { try ClusterRun.run(evaluate) }

    /// The evaluation; under MPI the images are split across the ranks and rank 0 alone writes and prints.
    func evaluate(_ world: Communicator) throws {
        if let output, world.isRoot {
            try OutputPolicy.checkFile(output, inputs: [model, data] + adapterOptions.adapters + [labels, before].compactMap { $0 }, force: force)
        }
        let loaded = try LoadedModel.load(model, options: modelOptions)
        let c = loaded.config
        let built = try adapterOptions.apply(to: loaded)
        precisionOption.apply(to: built.model)
        let pre = try preprocessOptions.pipeline(for: c, stored: loaded.preprocess, modelPath: model, inputs: [data])
        let (set, skipped) = try EvalData.load(
            path: data, labels: labels, split: split, classNames: loaded.classes,
            numClasses: c.numClasses, preprocessing: pre)
        guard set.count > 0 else { throw EvaluationError.badData(path: data, problem: "holds no images") }
        let names = set.classNames
        let f = try ClassSelection.parse(forget, classNames: names, option: "--forget")
        let r = try retain.map { try ClassSelection.parse($0, classNames: names, option: "--retain") }
        let o = try old.map { try ClassSelection.parse($0, classNames: names, option: "--old") } ?? []
        let beforeReport = try before.map(ForgettingScore.readReport)
        let margin = marginEval && c.head.kind != .linear
        let progress = world.isRoot ? Progress("eval") : nil
        let predictions = try set.withPixels { px in
            try BatchedForward.predict(
                built.model, images: px, labels: set.labels, margin: margin, batchSize: batchSize,
                communicator: world, progress: progress?.update)
        }
        var report = try ForgettingScore.report(
            predictions: predictions, labels: set.labels, classNames: names, forget: f, retain: r, old: o, before: beforeReport,
            beforePath: before, criterion: c.head.kind == .linear ? "linear" : margin ? "margin" : "cosine", model: model,
            adapters: adapterOptions.adapters, merged: adapterOptions.merged, data: data)
        report.notes =
            loaded.notices + (marginEval && !margin ? ["--margin-eval ignored: a linear head has no margin"] : [])
            + (skipped.isEmpty ? [] : ["\(skipped.count) image(s) skipped, first: \(skipped[0].path): \(skipped[0].reason)"]) + report.notes
        if precisionOption.precision != .float32 {
            report.notes.append(
                "frozen linear layers ran in \(precisionOption.precision.rawValue) (≈1e-3 relative error per product; float32 is the parity-tested precision)")
        }
        guard world.isRoot else { return }
        if let output { try ForgettingScore.write(report, to: output, inputs: [model, data] + adapterOptions.adapters) }
        StatusLine().notes(report.notes)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(Self.table(report))
        }
    }

    static func pct(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "-" }

    /// "0-4,7" for [0,1,2,3,4,7].
    static func ranges(_ xs: [Int]) -> String {
        guard !xs.isEmpty else { return "-" }
        var parts: [String] = []
        var i = 0
        while i < xs.count {
            var j = i
            while j + 1 < xs.count && xs[j + 1] == xs[j] + 1 { j += 1 }
            parts.append(j > i ? "\(xs[i])-\(xs[j])" : "\(xs[i])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    static func table(_ r: ForgettingReport) -> String {
        var lines: [String] = []
        let how = r.adapters.isEmpty ? "" : " + \(r.adapters.count) adapter(s) (\(r.merged ? "merged" : "live"))"
        lines.append("model \(r.model)\(how); data \(r.data) (\(r.samples) images); accuracy by \(r.criterion) logits")
        func count(_ cs: [Int]) -> Int { r.perClass.filter { cs.contains($0.index) }.reduce(0) { $0 + $1.samples } }
        lines.append("set      images  accuracy  classes")
        for (name, cs, acc) in [("forget", r.forget, r.accForget), ("retain", r.retain, r.accRetain), ("old", r.old, r.accOld)] {
            lines.append(
                name.padding(toLength: 7, withPad: " ", startingAt: 0) + String(format: "%7d", count(cs)) + "  "
                    + pct(acc).padding(toLength: 8, withPad: " ", startingAt: 0) + "  " + ranges(cs))
        }
        if let b = r.accForgetBefore {
            lines.append("Acc_f before \(pct(b)) (\(r.before ?? "-"))  Δ \(pct(r.delta))  H \(pct(r.h))")
        }
        lines.append("per class:")
        let w = max(4, r.perClass.map(\.name.count).max() ?? 0)
        lines.append("  idx  " + "name".padding(toLength: w, withPad: " ", startingAt: 0) + "  role    images  correct  accuracy")
        for c in r.perClass {
            lines.append(
                String(format: "  %3d  ", c.index) + c.name.padding(toLength: w, withPad: " ", startingAt: 0) + "  "
                    + c.role.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0) + String(format: "  %6d  %7d  ", c.samples, c.correct)
                    + pct(c.accuracy))
        }
        return lines.joined(separator: "\n")
    }
}
