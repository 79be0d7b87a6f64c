import ArgumentParser
import CommandSupport
import Foundation
import GSLoRACluster
import GSLoRAConvert
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining

/// `gslora-train forget`: GS-LoRA(++) single-step or continual forgetting, one adapter per task.
struct ForgetCommand: ParsableCommand, ComputeCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Forget classes of a backbone with GS-LoRA(++): writes OUTDIR/task-N.gslr per task.",
        discussion: """
            BACKBONE is a backbone .gslr (gslora-convert or gslora-train pretrain makes one) or a .pth/.safetensors ViT. \
            DATA is an image folder with train/ and test/ sub-folders (one folder per class; or any image folder plus \
            --test-data), a Fashion-MNIST-style IDX folder (`fashion-mnist` for Debian's dataset-fashion-mnist), or an \
            .npy of preprocessed N×C×H×W float32 images with --labels (and --test-data/--test-labels). Image files go \
            through the backbone's pipeline (stored in the .gslr, else the family default; --mean, --std, \
            --interpolation, --resize, --crop-pct override it), printed on stderr.

            Classes come from a seeded class order π: task t (1-based) forgets P = --classes-per-task classes, \
            π[F−(t−1)P : F−(t−1)P+P] with F = classes − P, and retains the rest except earlier tasks' and the first \
            --missing classes. --forget names a task's classes instead; give it once per task, in order. Between tasks the adapter is merged \
            into the base (as gslora-merge does) and a fresh adapter trains on the merged model; each adapter records the \
            fingerprint of the exact base it trained on.

            Defaults are the paper's CASIA continual recipe (spec/TRAINING.md §A.7): lr 1e-2 → 1e-5 cosine per epoch, 100 epochs, \
            batch 48, data ratio 0.1, rank 8, block groups, BND 105, β 0.2, α 1e-4, AdamW wd 0.05, dropout 0.1. \
            --plus adds GS-LoRA++'s prototype hinge (w_f 0.01, margin 18) and an EMA report from epoch 30 (decay 0.9).

            --method picks a baseline of the paper's main table instead (spec/TRAINING.md §7): finetune, retrain, l2, ewc, \
            mas, lwf, der, der++, fdr, scrub, scrub-s, lirf, with the official scripts' values as defaults (lr, λ, …; \
            batch 48). They train the backbone itself and write the whole backbone per task, with a lineage record \
            (method, settings, classes, metrics, starting fingerprint) in its header; --resume keeps the finished tasks.

            The state (OUTDIR/state.gslr) is saved after every epoch and on Ctrl-C/SIGTERM (exit 130); --resume continues \
            to the same adapter bytes as an uninterrupted run. An OUTDIR that holds a run's state.gslr or task-N.gslr is \
            refused unless --resume (continue it) or --force (start over, replacing them); the backbone and data are \
            never replaced. Off a terminal, progress is one plain line per epoch (and every 30 s) on stderr.

            Under mpirun or srun (README "More than one machine") every global batch is split across the ranks, with the \
            same results as one process up to float32 summation order; rank 0 alone writes OUTDIR (which every rank must \
            see) and reports. This holds for GS-LoRA, GS-LoRA++ and every --method.

            Before it starts, the run prints its predicted peak memory and the fastest a step can be (its FLOPs at the \
            GEMM speed measured then), and refuses a run whose peak exceeds the memory available (--skip-memory-check \
            starts it anyway). The peak, per process, is the sum of: the data, (train + test images) × C×H×W × 4 bytes \
            at the model's input size; the weights, 4 bytes per parameter, twice for GS-LoRA (the base and the merged \
            copy) and 2 + (anchor/teacher copies) times for a baseline, plus gradients and AdamW's moments (3 × 4 bytes \
            per trained parameter); the activations of a step, about depth × 2·batch × tokens × (3·width + 3·heads·head \
            dim + mlp) × 4 bytes kept per block (a baseline training every weight keeps width + heads·head dim more), \
            plus once 2·batch × tokens × (7·width + 12·heads·head dim + 3·mlp) × 4 bytes and 2·batch × heads × tokens² \
            × 8 bytes for the block being run (linear in batch, depth and width; quadratic in tokens only through the \
            attention probabilities, which are recomputed rather than kept per block); one evaluation batch; about 60 MB \
            of runtime.

            Examples:
              gslora-train forget fmnist.gslr --data fashion-mnist --forget Sandal,Bag --epochs 20 --data-ratio 0.2 -o run1
              gslora-train forget fmnist.gslr --data fashion-mnist --forget Sandal,Bag --forget Shirt --epochs 12 -o run2
              gslora-train forget face.gslr --data casia100 --tasks 4 --classes-per-task 20 --plus --log run.jsonl -o cl
              gslora-train forget face.gslr --data casia100 --tasks 4 --classes-per-task 20 --shots 4 --batch-size 4 -o fs
              gslora-train forget face.gslr --data casia100 --tasks 4 --classes-per-task 20 -o cl --resume
              gslora-train forget face.gslr --data casia100 --tasks 4 --classes-per-task 20 --precision bf16 -o cl16
              gslora-train forget face.gslr --data casia100 --tasks 4 --classes-per-task 20 --method ewc --lambda 10 -o ewc
            """)

    @Argument(help: "The backbone: a backbone .gslr or a .pth/.safetensors ViT.") var backbone: String
    @Option(help: "Training data: image folder (train/ + test/), IDX folder, `fashion-mnist`, or .npy images.") var data: String
    @Option(help: "Test data (default: DATA's test split).") var testData: String?
    @Option(help: "Labels .npy for .npy training images.") var labels: String?
    @Option(help: "Labels .npy for .npy test images.") var testLabels: String?
    @Option(name: [.short, .customLong("output")], help: "Output folder for task-N.gslr and state.gslr.") var output: String

    @Option(help: "Classes to forget in one task (indices, ranges 0-4, names); repeat it for each continual task; default: from the class order.") var forget:
        [String] = []
    @Option(help: "Continual tasks (default: 1, or one per --forget).") var tasks: Int?
    @Option(help: "Classes forgotten per task (P).") var classesPerTask = 1
    @Option(help: "Missing classes k (never trained on).") var missing = 0
    @Option(help: "Seed of class order, subsets, initialisation, batches and dropout.") var seed: UInt64 = 1337
    @Option(help: "Fraction of each set (forget, retain) drawn per task.") var dataRatio = 0.1
    @Option(help: "Few-shot: images per forget and retain class (instead of --data-ratio).") var shots: Int?
    @Option(help: "Images per batch (each of retain and forget).") var batchSize = 48
    @Option(help: "Epochs per task, comma list per task (the last repeats).") var epochs = "100"
    @Option(help: "Peak learning rate (cosine per epoch down to --min-lr; default 1e-2, a baseline's own with --method).") var lr: Double?
    @Option(help: "Final learning rate.") var minLR = 1e-5
    @Option(help: "AdamW weight decay (on A and B too, as the official code).") var weightDecay = 0.05
    @Option(help: "Dropout in training.") var dropout = 0.1
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "LoRA alpha (scaling = alpha / rank).") var loraAlpha = 1.0
    @Option(help: "Group-lasso groups: block, lora or matrix.") var grouping = "block"
    @Option(name: .customLong("bnd"), help: "BND: the forget CE is pushed up to this bound.") var bound = 105.0
    @Option(help: "β, comma list per task (the last repeats).") var beta = "0.2"
    @Option(help: "α of the group-lasso term.") var alpha = 1e-4
    @Option(help: "Epoch from which α applies (0: always; the single-step recipe uses 20).") var alphaStartEpoch = 0
    @Flag(help: "GS-LoRA++: prototype hinge and EMA report.") var plus = false
    @Option(help: "w_f of the prototype hinge, comma list per task (the last repeats).") var prototypeWeight = "0.01"
    @Option(help: "Margin M of the prototype hinge.") var prototypeMargin = 18.0
    @Option(help: "w_r (retain prototype pull).") var prototypeRetainWeight = 0.0
    @Option(parsing: .unconditional, help: "EMA of ΔW from the end of this 0-based epoch (--plus); negative: no EMA.") var emaStart = 30
    @Option(help: "EMA decay.") var emaDecay = 0.9
    @Flag(help: "Count accuracy with the margin on the true class (the paper's face numbers).") var marginEval = false
    @Option(help: "Also evaluate on the test set every N steps (0: before and after each task only).") var evalEvery = 0
    @Option(help: "Prune groups whose norm is below this before writing each adapter.") var pruneThreshold: Double?
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup(title: "Image pipeline") var preprocessOptions: PreprocessOptions
    @Option(help: "Images per evaluation batch.") var evalBatch = 64
    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "Continue from OUTDIR/state.gslr.") var resume = false
    @Flag(help: "Start over in an OUTDIR that holds a run's state.gslr or task-N.gslr, replacing them (never an input).") var force = false
    @Option(help: "Append every step's numbers as JSON lines to this file.") var log: String?
    @Flag(help: "Print the final report as JSON on stdout.") var json = false
    @Flag(help: "Start even when the predicted peak memory exceeds what the machine has available.") var skipMemoryCheck = false
    @OptionGroup var methodOptions: MethodOptions

    func validate() throws {
        guard !(resume && force) else { throw ValidationError("--resume continues the run in OUTDIR and --force starts it over; give one") }
        // The number lists are usage errors before the backbone and data are loaded.
        _ = try epochList()
        _ = try numbers(beta, "--beta")
        _ = try numbers(prototypeWeight, "--prototype-weight")
    }

    /// OUTDIR's files may be written: none is an input, and an earlier run's are only continued (--resume) or
    /// replaced (--force). Checked before the backbone and data are loaded.
    private func checkOutputs() throws {
        let taskCount = tasks ?? max(forget.count, 1)
        let state = output + "/state.gslr"
        let files = [state] + (0..<max(taskCount, 1)).map { output + "/task-\($0 + 1).gslr" }
        let inputs = [backbone, data, testData, labels, testLabels, log].compactMap { $0 }
        try OutputPolicy.checkFolderOutputs(output, files: files, inputs: inputs, force: force || resume) { path in
            path == state
                ? "\(output) holds an interrupted run (\(state)); pass --resume to continue it or --force to start over"
                : "\(path) exists; pass --force to replace it (or --resume to continue an interrupted run), or choose another -o"
        }
    }

    func run() throws { try ClusterRun.run(train) }

    /// The run; under MPI every rank trains its share of each batch and rank 0 alone writes files and reports.
    func train(_ world: Communicator) throws {
        try checkOutputs()
        let console = Console()
        let (model, stored) = try loadBackbone()
        let pipeline = try preprocessOptions.pipeline(
            for: model.config, stored: stored, modelPath: backbone,
            inputs: [self.data] + (testData.map { [$0] } ?? []))
        let method = try methodOptions.resolvedMethod(plus: plus)
        let counts = try TrainData.imageCounts(data: self.data, testData: testData)
        // GS-LoRA's step takes a retain and a forget batch; a baseline's at most as many.
        let estimate = RunEstimate(
            config: model.config, trained: BaselineMethod(rawValue: method).map { .allParameters(extraCopies: $0.weightCopies) } ?? .lora(rank: rank),
            imagesPerStep: 2 * min(max(batchSize, 0), Int.max / 2), evalBatch: evalBatch, trainImages: counts.train, testImages: counts.test,
            gemmGFLOPs: ModelCost.measureGEMMSpeed())
        if world.isRoot { console.message(estimate.summary) }
        if !skipMemoryCheck, let available = RunEstimate.availableMemory() {
            try estimate.check(available: available / ClusterRun.processesOnThisMachine)
        }
        let data = try TrainData.load(
            data: self.data, testData: testData, labels: labels, testLabels: testLabels, classNames: model.classes,
            classes: model.config.numClasses, preprocessing: pipeline)
        let names =
            model.classes ?? (data.train.classNames.count == model.config.numClasses ? data.train.classNames : (0..<model.config.numClasses).map(String.init))
        var o = TrainOptions()
        o.seed = seed
        o.tasks = tasks ?? max(forget.count, 1)
        o.classesPerTask = classesPerTask
        if !forget.isEmpty { o.forget = try forget.map { try ClassSelection.parse($0, classNames: names, option: "--forget") } }
        o.missing = missing
        o.dataRatio = dataRatio
        o.shots = shots
        o.batchSize = batchSize
        o.epochs = try epochList()
        let baseline = methodOptions.baselineSettings(method: method, lr: lr, weightDecay: MethodOptions.given.contains("--weight-decay") ? weightDecay : nil)
        o.lr = lr ?? 1e-2
        o.minLR = minLR
        o.weightDecay = weightDecay
        o.dropout = dropout
        o.rank = rank
        o.loraAlpha = loraAlpha
        o.grouping = grouping
        o.bound = bound
        o.beta = try numbers(beta, "--beta")
        o.alpha = alpha
        o.alphaStartEpoch = alphaStartEpoch
        o.plus = method == "gslora++"
        o.prototypeForget = try numbers(prototypeWeight, "--prototype-weight")
        o.prototypeMargin = prototypeMargin
        o.prototypeRetain = prototypeRetainWeight
        o.emaStart = emaStart >= 0 ? emaStart : nil
        o.emaDecay = emaDecay
        o.marginEval = marginEval
        o.evalEvery = evalEvery
        o.pruneThreshold = pruneThreshold
        o.evalBatch = evalBatch
        o.precision = precisionOption.precision

        let trainer: ForgettingRun
        if let settings = baseline {
            let b = try BaselineTrainer(backbone: model, data: data, options: o, settings: settings, outputDirectory: output)
            b.communicator = world
            trainer = b
        } else {
            let t = try Trainer(backbone: model, data: data, options: o, outputDirectory: output)
            t.communicator = world
            trainer = t
        }
        let runLog = world.isRoot ? try log.map { try RunLog(path: $0) } : nil
        if world.isRoot {
            trainer.onEvent = { e in
                try? runLog?.write(e)
                switch e {
                case let .step(s): console.progress(ProgressLine.render(s, tasks: o.tasks), force: s.step == s.steps)
                case let .taskStarted(t, c, nf, nr, steps):
                    console.message(
                        "task \(t)/\(o.tasks): forget \(c.forget.map { names[$0] }.joined(separator: ",")) · \(c.retain.count) retained · \(nf)+\(nr) training images · \(steps) steps, ≥ \(ProgressLine.duration(estimate.secondsPerStep * Double(steps))) predicted"
                    )
                case let .evaluated(t, phase, m, h): console.message("task \(t) \(phase): \(ProgressLine.metrics(m, h: h))")
                case .stateSaved: console.epochEnded()
                case let .taskFinished(r): console.message("task \(r.index) → \(r.adapter)")
                }
            }
        }
        Signals.install()
        trainer.shouldStop = { stopRequested != 0 }
        let report: TrainReport
        do {
            report = try trainer.run(resume: resume)
        } catch let e as TrainingError {
            if case .interrupted = e {
                if world.isRoot { console.message("\(e)") }
                throw ExitCode(130)
            }
            throw e
        }
        guard world.isRoot else { return }
        for t in report.tasks {
            console.message(
                "task \(t.index): \(ProgressLine.metrics(t.after, h: t.h))  (before: acc_r \(fmt(t.before.accRetain)) acc_f \(fmt(t.before.accForget)))  → \(t.adapter)"
            )
            if let n = t.parametersChanged, let b = t.bytes { console.message("task \(t.index): \(method) changed \(n) parameters, wrote \(b) bytes") }
        }
        if json { try Console.json(report) }
    }

    private func fmt(_ v: Double?) -> String { v.map { String(format: "%.2f", $0) } ?? "–" }

    private func epochList() throws -> [Int] {
        try numbers(epochs, "--epochs").map { v in
            guard v >= 1, v <= 1_000_000, v == v.rounded() else { throw ValidationError("--epochs: '\(String(format: "%g", v))' is not a whole number ≥ 1") }
            return Int(v)
        }
    }

    private func numbers(_ list: String, _ option: String) throws -> [Double] {
        try list.split(separator: ",").map {
            guard let v = Double($0.trimmingCharacters(in: .whitespaces)), v.isFinite, v >= 0 else {
                throw ValidationError("\(option): '\($0)' is not a non-negative number")
            }
            return v
        }
    }

    /// The backbone and its stored image pipeline.
    private func loadBackbone() throws -> (TrainBackbone, PreprocessRecord?) {
        if (try? detectFormat(path: backbone)) == .gslr {
            let b = try TrainBackbone.open(backbone)
            return (b, try GSLRFile.open(backbone).header.preprocess)
        }
        let imported: ImportedModel
        do { imported = try ModelImport.load(backbone, options: modelOptions.importOptions) } catch {
            throw TrainingError.badModel(path: backbone, problem: "\(error)")
        }
        guard let config = imported.config else {
            throw TrainingError.badModel(
                path: backbone,
                problem: imported.adapter != nil
                    ? "it is an adapter, not a backbone"
                    : "no supported ViT family (face_vit, torchvision_vit, timm_vit) was recognised in it")
        }
        // Embedded LoRA factors are part of the model PyTorch runs: training starts from W + s·B·A.
        return (
            try TrainBackbone(config: config, tensors: imported.runnableWeights(), classes: imported.classes, source: backbone),
            imported.preprocess
        )
    }
}
