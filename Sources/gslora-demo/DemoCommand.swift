import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAData
import GSLoRADemo
import GSLoRAEvaluation
import GSLoRAModel
import GSLoRATraining

@main
struct DemoCommand: GsloraCommand, ComputeCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-demo",
        abstract: "Continual forgetting on Fashion-MNIST end to end: pre-train, forget 4×2 classes with GS-LoRA, prune, merge, export, report.",
        discussion: """
            Stages (each the library path of the named command):
              1. pre-train a face-style ViT (CosFace head) on Fashion-MNIST (gslora-train pretrain); cached in \
            OUT/pretrained.gslr with its settings, so a rerun with the same settings skips it (a rerun into a folder \
            that holds an earlier run's results needs --force);
              2. forget 2 classes per task over 4 tasks, classes from a seeded class order (gslora-train forget), \
            evaluating before and after every task; groups with norm < 1e-3 are pruned as each adapter is written \
            (gslora-prune's code), so every adapter still chains onto the one before;
              3. merge the chain into one backbone (gslora-merge) and evaluate the merged file (gslora-eval);
              4. export it as .pth and .safetensors (gslora-convert);
              5. write OUT/report.md, report.json and SVG plots (accuracy over tasks; group norms per block), and PNG \
            copies of the plots when rsvg-convert (librsvg2-bin) is installed.
            --plus adds a GS-LoRA++ run (prototype hinge) on 4 images per class.

            --compare runs the paper's main table instead (spec/TRAINING.md §7, "The comparison"): Retrain, L2, EWC, MAS,         LwF, DER, DER++, FDR, SCRUB, SCRUB-S, LIRF, GS-LoRA and GS-LoRA++ on the same backbone and tasks, with full data         and with 4 images per class, plus GS-LoRA at 10× and 100× α with pruning. It writes OUT/compare/compare.md,         compare.json and plots (H per task; H against parameters changed). Each finished method is cached in         OUT/compare/SETTING/METHOD, so an interrupted comparison continues where it stopped when run again; --force         runs every method again.

            Examples:
              gslora-demo                       (5–8 minutes on 2 idle cores; the report is gslora-demo-out/report.md)
              gslora-demo --plus -o run2
              gslora-demo --force               (run again into gslora-demo-out, replacing its results)
              gslora-demo --forget Sandal,Bag --forget Shirt   (two tasks of your choice)
              gslora-demo --quick -o /tmp/ci    (a few hundred images, one epoch, small model: every stage, seconds)
              gslora-demo --compare             (about an hour on 2 cores; reuses the demo's pre-trained backbone)
              gslora-demo --compare --quick -o /tmp/ci   (every method, one epoch: about half a minute)

            Exit status: 0 done and every check passed, 1 bad input, failure or a failed check (the report is still written), \
            2 usage error, 130 interrupted.
            """)

    @Option(
        name: [.short, .customLong("output"), .customLong("out")],
        help: ArgumentHelp("Output folder (pretrained.gslr cache, one folder per run, the report).", valueName: "folder"))
    var output = "gslora-demo-out"

    @Flag(help: "Run into an output folder that holds an earlier run's results, replacing them (never an input).")
    var force = false

    @Option(help: "Fashion-MNIST folder with the four *-idx*-ubyte(.gz) files.")
    var data = FashionMNIST.directory

    @Option(help: "Seed of pre-training, class order, subsets, initialisation, batches and dropout.")
    var seed: UInt64 = 1337

    @Flag(help: "Also run GS-LoRA++ (prototype hinge) with 4 training images per class.")
    var plus = false

    @Flag(help: "The shortened CI job: a few hundred images, one epoch, a small model.")
    var quick = false

    @Option(
        help: ArgumentHelp(
            "Classes to forget in one task (names or indices, e.g. Sandal,Bag); repeat for each task.",
            discussion: "Default: 4 tasks of 2 classes from the seeded class order."))
    var forget: [String] = []

    @Option(help: "Forget on this face_vit backbone .gslr instead of pre-training one.")
    var backbone: String?

    @Flag(
        help: ArgumentHelp(
            "Compare every forgetting method of the paper's main table instead (OUT/compare).",
            discussion: "The eleven baselines, GS-LoRA and GS-LoRA++ in full data and 4-shot, and GS-LoRA at 10× and 100× α with pruning."))
    var compare = false

    @Flag(help: "Print report.json (with --compare: compare.json) on stdout at the end.")
    var json = false

    func run() throws {
        var o = DemoOptions(seed: seed, quick: quick)
        o.output = output
        o.data = data
        o.plus = plus
        o.backbone = backbone
        if !forget.isEmpty {
            o.forget(tasks: try forget.map { try ClassSelection.parse($0, classNames: FashionMNIST.classNames, option: "--forget") })
        }
        if compare { return try runComparison(o) }
        let demo = ForgettingDemo(options: o)
        try OutputPolicy.checkFolderOutputs(output, files: demo.outputFiles, inputs: [data] + [backbone].compactMap { $0 }, force: force) { _ in
            "\(output) holds an earlier run's results; pass --force to replace them (the cached pre-trained backbone is reused), or choose another -o"
        }
        let console = DemoConsole()
        let report = try Self.interruptible(
            demo, console: console, tasks: o.forgetting.tasks,
            advice: "run the same command again with --force (the pre-trained backbone is cached)"
        ) { try demo.run() }
        console.summary(report, folder: demo.reportFolder)
        try Self.finish(
            report, plots: report.runs.flatMap { [ReportWriter.accuracyPlot($0), ReportWriter.normsPlot($0)] },
            folder: demo.reportFolder, console: console, json: json)
        // Everything is written either way; a failed acceptance check is a failed run for scripts (exit 1).
        let failed = report.checks.filter { !$0.passed }
        if !failed.isEmpty {
            console.message("error: \(failed.count) of \(report.checks.count) checks failed; see \(demo.reportFolder)/report.md")
            throw ExitCode(1)
        }
    }

    /// `--compare`: every method one after another; finished rows are cached in OUT/compare, so a rerun continues.
    func runComparison(_ o: DemoOptions) throws {
        let demo = ForgettingDemo(options: o)
        let comparison = MethodComparison(demo: demo, options: ComparisonOptions(quick: quick))
        comparison.force = force
        let console = DemoConsole()
        let report = try Self.interruptible(
            demo, console: console, tasks: o.forgetting.tasks,
            advice: "run the same command again to continue (finished methods are cached in \(comparison.folder))"
        ) {
            try comparison.run()
        }
        console.comparison(report, folder: comparison.folder)
        try Self.finish(report, plots: ComparisonWriter.plots(report), folder: comparison.folder, console: console, json: json)
    }

    /// Runs `body` with the demo's events on the console and Ctrl-C/SIGTERM as a clean stop (exit 130 with `advice`).
    static func interruptible<R>(_ demo: ForgettingDemo, console: DemoConsole, tasks: Int, advice: String, _ body: () throws -> R) throws -> R {
        demo.onEvent = { console.show($0, tasks: tasks) }
        DemoSignals.install()
        demo.shouldStop = { demoStopRequested != 0 }
        do {
            return try body()
        } catch let e as TrainingError {
            if case .interrupted = e {
                console.message("interrupted; " + advice)
                throw ExitCode(130)
            }
            throw e
        }
    }

    /// PNG copies of the report's plots (when rsvg-convert is there) and, with --json, the report on stdout.
    static func finish<Report: Encodable>(_ report: Report, plots: [String], folder: String, console: DemoConsole, json: Bool) throws {
        if let tool = PNGPlots.tool {
            let pngs = try PNGPlots.render(plots, folder: folder, tool: tool)
            console.message("plots as PNG too: " + pngs.map { ($0 as NSString).lastPathComponent }.joined(separator: ", "))
        } else {
            console.message("PNG plots skipped: rsvg-convert is not installed (apt-get install librsvg2-bin); the SVGs are written")
        }
        if json { FileHandle.standardOutput.write(Data(try ReportWriter.json(report).utf8)) }
    }
}
