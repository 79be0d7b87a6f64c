import Dispatch
import Foundation
import GSLoRACluster
import GSLoRAFormat
import GSLoRAModel

/// Continual forgetting with one of the all-parameter baselines (spec/TRAINING.md §7) in the protocol
/// the GS-LoRA trainer uses — the same class order, tasks, training subsets (`dataRatio`/`shots`), missing classes
/// and evaluation — writing the whole backbone after each task to `OUTDIR/task-{t+1}.gslr` with a lineage record
/// (`gslora_baseline` in the header: method, settings, the task's classes and metrics, the fingerprint of the model
/// it started from; spec/FORMAT.md). Baselines continue from the live model into the next task (Retrain starts each
/// task from a fresh model). `run(resume: true)` keeps the finished task files whose lineage matches this run and
/// trains the remaining tasks; an interrupted task restarts from its beginning.
public final class BaselineTrainer {
    public let backbone: TrainBackbone
    public let data: TrainData
    public let options: TrainOptions
    public let settings: BaselineSettings
    public let outputDirectory: String
    public var onEvent: ((TrainEvent) -> Void)?
    public var shouldStop: () -> Bool = { false }
    /// The ranks of a data-parallel run: each computes its share of every global batch, of the EWC/MAS importance
    /// batches and of the evaluations; rank 0 alone writes the task files (to a folder every rank reads).
    public var communicator: Communicator = SingleProcess()

    public func outputPath(task t: Int) -> String { outputDirectory + "/task-\(t + 1).gslr" }
    package static let metadataKey = "gslora_baseline"

    public init(backbone: TrainBackbone, data: TrainData, options: TrainOptions, settings: BaselineSettings, outputDirectory: String) throws {
        try options.validate(classes: backbone.config.numClasses)
        try settings.validate()
        let c = backbone.config
        guard data.train.channels == c.channels, data.train.height == c.imageSize, data.train.width == c.imageSize else {
            throw TrainingError.badData(
                path: data.source,
                problem:
                    "images are \(data.train.channels)×\(data.train.height)×\(data.train.width), the model takes \(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
        guard c.head.kind != .linear else {
            throw TrainingError.badModel(
                path: backbone.path, problem: "the baselines train with the CosFace/ArcFace margin logits of the face model; this model has a linear head")
        }
        self.backbone = backbone
        self.data = data
        self.options = options
        self.settings = settings
        self.outputDirectory = outputDirectory
    }

    /// The lineage every task file of this run records (besides its own task), compared on resume.
    var lineage: [String: JSONValue] {
        get throws {
            [
                "method": .string(settings.method.rawValue), "settings": try JSONValue.from(settings),
                "protocol": try JSONValue.from(options), "started_from": .string(backbone.weights.fingerprint)
            ]
        }
    }

    /// The per-class test counts of the model the last task ended with (its next task's "before").
    private var lastCounts: ClassCounts?

    public func run(resume: Bool = false) throws -> TrainReport {
        let t0 = DispatchTime.now().uptimeNanoseconds
        lastCounts = nil
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let c = backbone.config, o = options
        let order = try ClassOrder.make(classes: c.numClasses, seed: o.seed)
        var reports: [TaskReport] = []
        var current = try backbone.model(backbone.weights)
        var currentFingerprint = backbone.weights.fingerprint
        var firstTask = 0
        if resume {
            let want = try lineage
            for t in 0..<o.tasks {
                let path = outputPath(task: t)
                guard FileManager.default.fileExists(atPath: path) else { break }
                let file = try GSLRFile.open(path)
                guard case .object(let rec)? = file.header.metadata[Self.metadataKey],
                    want.allSatisfy({ rec[$0.key] == $0.value })
                else {
                    throw TrainingError.badState(
                        path: path,
                        problem:
                            "it was not written by this run (other method, settings, options or starting model); use another \(Setting("output")) or the same options"
                    )
                }
                let decoded: TaskReport?
                if let task = rec["task"] { decoded = try? task.decode(TaskReport.self) } else { decoded = nil }
                guard var r = decoded else { throw TrainingError.badState(path: path, problem: "its task record cannot be read") }
                r.adapter = path
                r.adapterFingerprint = file.fingerprint
                r.bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
                reports.append(r)
                current = try ViT(config: c, weights: file.allTensors())
                currentFingerprint = file.fingerprint
                firstTask = t + 1
            }
            if settings.method.isSCRUB && firstTask > 0 && firstTask < o.tasks {
                throw TrainingError.badState(
                    path: outputPath(task: firstTask - 1),
                    problem:
                        "SCRUB's averaged model lives only in memory, so a SCRUB run resumes only from its first task; run it again into a new \(Setting("output")) folder"
                )
            }
        }
        var step: BaselineStep?
        for t in firstTask..<o.tasks {
            let report = try runTask(t, order: order, model: &current, fingerprint: &currentFingerprint, step: &step)
            reports.append(report)
            onEvent?(.taskFinished(report))
        }
        return TrainReport(
            backbone: backbone.path, backboneFingerprint: backbone.weights.fingerprint, output: outputDirectory,
            classOrder: order, criterion: o.marginEval ? "margin" : "cosine", resumed: resume, tasks: reports,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }

    private func runTask(_ t: Int, order: [Int], model current: inout ViT, fingerprint: inout String, step: inout BaselineStep?) throws -> TaskReport {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let c = backbone.config, o = options, s = settings, method = s.method
        let classes = try o.taskClasses(order: order, task: t)
        // The same training subsets as the GS-LoRA trainer draws for this task.
        let index = try LabelIndex(labels: data.train.labels, classes: c.numClasses)
        let (forgetSet, retainSet) = try TrainingSubset.task(t, classes: classes, options: o, index: index)
        // Retrain's "before" is the pretrained model's (spec/TRAINING.md §7 decision 7): its previous model is a fresh one.
        // A continuing method starts the task from the model the last task ended with: its counts are already there.
        let before: TaskMetrics
        if method != .retrain, let n = lastCounts, n.covers(classes) {
            before = TaskEvaluation.metrics(n, classes)
        } else {
            before = try evaluate(method == .retrain ? try backbone.model(backbone.weights) : current, classes)
        }
        onEvent?(.evaluated(task: t + 1, phase: "before", metrics: before, h: nil))

        // The step: Retrain builds a fresh model every task; the others keep one step (teacher, averaged model and
        // penalty terms carry over) and recreate the optimiser.
        if method == .retrain {
            var seeds = SplitMix64(seed: o.seed, stream: 64 + UInt64(t))
            let fresh = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: seeds.next()))
            step = try BaselineStep(model: fresh, settings: s, forgetClassCount: classes.forget.count)
        } else if let st = step {
            try st.resetOptimizer()
        } else {
            step = try BaselineStep(model: current, settings: s, forgetClassCount: classes.forget.count)
            // Resumed regularised runs rebuild the terms of the finished tasks from their files.
            if method.isRegularised {
                for j in 0..<t { step!.penalty.add(try penaltyTerm(task: j, order: order, model: try startModel(task: j))) }
            }
        }
        let st = step!
        if method.isRegularised { st.penalty.add(try penaltyTerm(task: t, order: order, model: st.student.model)) }
        let student = st.student
        let startValues = student.snapshot()

        var relabel = try ForgetRelabel(modulus: s.relabelModulus ?? classes.forget.count, rng: SplitMix64(seed: o.seed, stream: 96 + UInt64(t)))
        let forgetMembers = Set(forgetSet)
        func batch(_ idx: [Int], rewrite: Bool) -> BaselineBatch {
            // The whole batch is relabelled (the rewrite stream advances as on one process), this rank's rows gathered.
            var labels = idx.map { data.train.labels[$0] }
            if rewrite { for (k, i) in idx.enumerated() where forgetMembers.contains(i) { labels[k] = relabel.rewrite(labels[k]) } }
            let rows = communicator.shard(idx.count)
            var images: [Float] = [], gathered: [Int] = []
            data.train.gather(idx[rows], into: &images, labels: &gathered)
            return BaselineBatch(images: images, labels: Array(labels[rows]), rows: rows, total: idx.count)
        }

        let epochs = method.isSCRUB ? s.scrubSuperEpochs : o.epochs(task: t)
        let schedule = try CosineSchedule(baseLR: s.lr, minLR: o.minLR, epochs: epochs, warmupEpochs: s.warmupEpochs)
        func loader(_ set: [Int], _ k: UInt64) throws -> ShuffledLoader {
            try ShuffledLoader(samples: set, batchSize: o.batchSize, rng: SplitMix64(seed: o.seed, stream: 48 + 8 * UInt64(t) + k))
        }
        var joint = try loader(method == .retrain ? retainSet : forgetSet + retainSet, 0)
        var forgetLoader = try loader(forgetSet, 1), retainLoader = try loader(retainSet, 2)
        let perEpoch: Int
        switch method {
        case .retrain, .finetune, .l2, .ewc, .mas: perEpoch = joint.batchCount
        case .scrub, .scrubS: perEpoch = 5 * forgetLoader.batchCount + 10 * retainLoader.batchCount
        default: perEpoch = forgetLoader.batchCount
        }
        let totalSteps = perEpoch * epochs
        onEvent?(.taskStarted(task: t + 1, classes: classes, forgetSamples: forgetSet.count, retainSamples: retainSet.count, steps: totalSteps))

        var taskStep = 0
        var jointIndices: [Int]?
        let loopStart = DispatchTime.now().uptimeNanoseconds
        func run(_ input: BaselineInput, phase: SCRUBPhase?, lr: Double, epoch: Int) throws {
            var dropoutRNG = SplitMix64(seed: o.seed, stream: (UInt64(t + 1) << 40) | UInt64(taskStep))
            student.model.dropoutSeed = dropoutRNG.next()
            let s0 = DispatchTime.now().uptimeNanoseconds
            let terms = try st.computeGradients(input, phase: phase, dropout: Float(o.dropout), communicator: communicator)
            // Train-batch accuracies on the labels trained on; a joint batch splits by membership of the forget set.
            var correct = st.lastCorrect
            if let j = correct["joint"], let b = jointIndices {
                correct["forget"] = zip(j, b).filter { forgetMembers.contains($0.1) }.map(\.0)
                correct["retain"] = zip(j, b).filter { !forgetMembers.contains($0.1) }.map(\.0)
            }
            func acc(_ k: String) -> Double {
                guard let c = correct[k], !c.isEmpty else { return 0 }
                return 100 * Double(c.filter { $0 }.count) / Double(c.count)
            }
            try st.applyUpdate(lr: lr)
            taskStep += 1
            let now = DispatchTime.now().uptimeNanoseconds
            let images = [input.joint, input.forget, input.retain, input.next].compactMap { $0?.labels.count }.reduce(0, +)
            let pace = Double(now - loopStart) / 1e9 / Double(taskStep)
            // ce_f / ce_r: the forget-side and retain-side terms (both the joint CE for the joint methods).
            let forgetTerm = phase == .remain ? 0 : terms["CE"] ?? terms["kd_forget"] ?? 0
            let retainTerm = phase == .forget ? 0 : terms["remain"] ?? terms["DER"] ?? terms["FDR"] ?? terms["CE"] ?? 0
            var report = StepReport(
                task: t + 1, epoch: epoch, epochs: epochs, step: taskStep, steps: totalSteps, lr: lr,
                ceRetain: retainTerm, ceForget: forgetTerm,
                boundedForget: 0, structure: nil, klForget: nil, prototypeTerm: 0,
                total: terms["total"] ?? terms["total_forget"] ?? terms["total_remain"] ?? 0, accRetain: acc("retain"), accForget: acc("forget"),
                imagesPerSecond: Double(images) / (Double(now - s0) / 1e9),
                eta: pace * Double(totalSteps - taskStep + (o.tasks - t - 1) * totalSteps), seconds: Double(now - s0) / 1e9)
            report.terms = terms
            onEvent?(.step(report))
            if o.evalEvery > 0 && taskStep % o.evalEvery == 0 {
                let m = try evaluate(student.model, classes)
                onEvent?(.evaluated(task: t + 1, phase: "step \(taskStep)", metrics: m, h: Trainer.h(before, m)))
            }
            if try agreedStop(communicator, shouldStop) { throw TrainingError.interrupted(statePath: outputDirectory) }
        }
        for e in 0..<epochs {
            let lr = schedule.lr(epoch: e)
            switch method {
            case .retrain, .finetune, .l2, .ewc, .mas:
                for b in joint.pass() {
                    jointIndices = Array(b[communicator.shard(b.count)])
                    try run(BaselineInput(joint: batch(b, rewrite: method != .retrain)), phase: nil, lr: lr, epoch: e)
                }
            case .scrub, .scrubS:
                for round in 0..<10 {
                    let rlr = st.scrubLR(superEpoch: e, round: round)
                    if round < 5 {
                        for b in forgetLoader.pass() { try run(BaselineInput(forget: batch(b, rewrite: false)), phase: .forget, lr: rlr, epoch: e) }
                    }
                    for b in retainLoader.pass() { try run(BaselineInput(retain: batch(b, rewrite: false)), phase: .remain, lr: rlr, epoch: e) }
                }
                try st.average!.update(with: student)
            default:
                // The forget loader drives; retain batches cycle (a new shuffle when exhausted, leftovers dropped).
                var retainBatches = retainLoader.pass()[...]
                func nextRetain() -> [Int] {
                    if retainBatches.isEmpty { retainBatches = retainLoader.pass()[...] }
                    return retainBatches.removeFirst()
                }
                for b in forgetLoader.pass() {
                    let r = nextRetain()
                    let next = method == .derpp ? nextRetain() : nil
                    try run(
                        BaselineInput(
                            forget: batch(b, rewrite: true), retain: batch(r, rewrite: false),
                            next: next.map { batch($0, rewrite: false) }), phase: nil, lr: lr, epoch: e)
                }
            }
        }

        current = student.model
        let counts = try TaskEvaluation.counts(
            current, test: data.test, classes: classes.retain + classes.forget + classes.old + classes.missing,
            margin: options.marginEval, batch: options.evalBatch, communicator: communicator)
        lastCounts = counts
        let after = TaskEvaluation.metrics(counts, classes)
        let h = Trainer.h(before, after)
        onEvent?(.evaluated(task: t + 1, phase: "after", metrics: after, h: h))

        // Parameters the task changed (against the model it started from) and those the method trains.
        var changed = 0, trained = 0
        for (i, v) in student.values.enumerated() {
            if student.trainable[i] { trained += v.count }
            let a = startValues[i]
            for j in 0..<v.count where v.pointer[j] != a[j] { changed += 1 }
        }
        let path = outputPath(task: t)
        var report = TaskReport(
            index: t + 1, forget: classes.forget, retain: classes.retain, old: classes.old, missing: classes.missing,
            forgetSamples: forgetSet.count, retainSamples: retainSet.count, steps: totalSteps, adapter: path,
            adapterFingerprint: "", baseFingerprint: fingerprint, before: before, after: after, h: h, ema: nil,
            groupNorms: [], prunedGroups: 0, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        report.parametersChanged = changed
        var rec = try lineage
        rec["task"] = try JSONValue.from(report)
        rec["parameters_trained"] = .number(Double(trained))
        let header = GSLRHeader(kind: .backbone, model: c, classes: backbone.classes, metadata: [Self.metadataKey: .object(rec)])
        if communicator.isRoot { try GSLRWriter.write(path, header: header, tensors: student.tensors) }
        try communicator.barrier()
        let file = try GSLRFile.open(path)
        report.adapterFingerprint = file.fingerprint
        report.bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        fingerprint = file.fingerprint
        return report
    }

    func evaluate(_ model: ViT, _ classes: TaskClasses) throws -> TaskMetrics {
        try TaskEvaluation.evaluate(
            model, test: data.test, classes: classes, margin: options.marginEval, batch: options.evalBatch,
            communicator: communicator)
    }

    /// The model task j started from: the backbone, or task j's predecessor file.
    private func startModel(task j: Int) throws -> ViT {
        j == 0 ? try backbone.model(backbone.weights) : try ViT(config: backbone.config, weights: try GSLRFile.open(outputPath(task: j - 1)).allTensors())
    }

    /// The L2 / EWC / MAS term of task j at `model` (the model task j starts from): anchor = its trainable parameters;
    /// importance (EWC, MAS) on a separately drawn retain subset of task 1 (shots per class, or the data ratio), and on
    /// the full retain set of task j ≥ 2 (spec/TRAINING.md §B.3, §7 decision 5).
    private func penaltyTerm(task j: Int, order: [Int], model: ViT) throws -> ParameterPenalty.Term {
        let m = try FullParameterModel(model: model) { !$0.hasPrefix("head.") }
        let anchor: [[Float]?] = m.values.indices.map { m.trainable[$0] ? m.values[$0].array : nil }
        guard settings.method == .ewc || settings.method == .mas else { return .init(anchor: anchor, importance: nil) }
        let classes = try options.taskClasses(order: order, task: j)
        let index = try LabelIndex(labels: data.train.labels, classes: backbone.config.numClasses)
        var rng = SplitMix64(seed: options.seed, stream: 112 + UInt64(j))
        var samples: [Int]
        if j > 0 {
            samples = try index.samples(of: classes.retain)
        } else if let shots = options.shots {
            samples = try TrainingSubset.fewShot(index, classes: classes.retain, shots: shots, rng: &rng)
        } else {
            samples = try TrainingSubset.ratio(try index.samples(of: classes.retain), ratio: options.dataRatio, rng: &rng)
        }
        rng.fisherYates(&samples)
        let batches = stride(from: 0, to: samples.count, by: options.batchSize).map { a -> (images: [Float], labels: [Int]) in
            var images: [Float] = [], labels: [Int] = []
            data.train.gather(samples[a..<min(a + options.batchSize, samples.count)], into: &images, labels: &labels)
            return (images, labels)
        }
        let omega =
            settings.method == .ewc
            ? try ImportanceEstimate.fisher(m, batches: batches, communicator: communicator)
            : try ImportanceEstimate.mas(m, batches: batches, communicator: communicator)
        return .init(anchor: anchor, importance: omega)
    }
}
