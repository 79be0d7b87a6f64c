import Dispatch
import Foundation
import GSLoRAAdapters
import GSLoRACluster
import GSLoRAFormat

/// Single-step and continual GS-LoRA(++) forgetting (spec/TRAINING.md §A.9):
///
/// for each task t: the class split from the seeded class order; the sub-sampled (or few-shot) training sets;
/// prototypes from the task-start model (GS-LoRA++); "before" test metrics; a fresh adapter (loralib init, a = √5
/// for the first task and √50 later, B = 0), AdamW and cosine schedule; `epochs` epochs of paired steps
/// (`GSLoRAStep`); "after" metrics and H; the adapter written to `OUTDIR/task-{t+1}.gslr` and folded into the base
/// the next task trains on (exactly as `gslora-merge` folds it, so fingerprints chain). The state is written to
/// `OUTDIR/state.gslr` after every epoch and when `shouldStop` turns true (the run then throws
/// `TrainingError.interrupted`); `run(resume: true)` continues from it to the same bytes.
public final class Trainer {
    public let backbone: TrainBackbone
    public let data: TrainData
    public let options: TrainOptions
    public let outputDirectory: String
    /// Called with progress and results (on the training thread).
    public var onEvent: ((TrainEvent) -> Void)?
    /// Polled after every step; true stops the run after saving the state.
    public var shouldStop: () -> Bool = { false }
    /// The ranks of a data-parallel run (spec/TRAINING.md, "More than one process"): each computes its share of every
    /// global batch and of the evaluations; rank 0 alone writes the state and adapters (the output folder must be one
    /// every rank reads, as on a cluster's shared file system).
    public var communicator: Communicator = SingleProcess()

    public var statePath: String { outputDirectory + "/state.gslr" }
    public func adapterPath(task t: Int) -> String { outputDirectory + "/task-\(t + 1).gslr" }

    public init(backbone: TrainBackbone, data: TrainData, options: TrainOptions, outputDirectory: String) throws {
        try options.validate(classes: backbone.config.numClasses)
        let c = backbone.config
        guard data.train.channels == c.channels, data.train.height == c.imageSize, data.train.width == c.imageSize else {
            throw TrainingError.badData(
                path: data.source,
                problem:
                    "images are \(data.train.channels)×\(data.train.height)×\(data.train.width), the model takes \(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
        guard data.train.classNames.count <= c.numClasses else {
            throw TrainingError.badData(path: data.source, problem: "\(data.train.classNames.count) classes, the model has \(c.numClasses)")
        }
        if let shots = options.shots {
            // Refuse up front, naming the class, rather than after the first tasks trained.
            let counts = data.train.indicesByClass.map(\.count)
            let order = try ClassOrder.make(classes: c.numClasses, seed: options.seed)
            for t in 0..<options.tasks {
                let tc = try options.taskClasses(order: order, task: t)
                for k in tc.forget + tc.retain where (k < counts.count ? counts[k] : 0) < shots {
                    let name = k < data.train.classNames.count ? " ('\(data.train.classNames[k])')" : ""
                    throw TrainingError.badOption(
                        option: Setting("shots"),
                        problem: "class \(k)\(name) has \(k < counts.count ? counts[k] : 0) training images, fewer than \(shots) shots")
                }
            }
        }
        self.backbone = backbone
        self.data = data
        self.options = options
        self.outputDirectory = outputDirectory
    }

    /// Runs every task (continuing from `state.gslr` with `resume`) and returns the report.
    public func run(resume: Bool = false) throws -> TrainReport {
        let t0 = DispatchTime.now().uptimeNanoseconds
        // The run folder's files are replaced as the run goes; the backbone must not be one of them.
        for p in [statePath] + (0..<options.tasks).map(adapterPath) where p == backbone.path || AtomicFile.sameFile(p, backbone.path) {
            throw TrainingError.badOption(option: Setting("output"), problem: "\(p) is the backbone; choose another output folder")
        }
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let c = backbone.config
        let order = try ClassOrder.make(classes: c.numClasses, seed: options.seed)
        let backboneFingerprint = backbone.weights.fingerprint
        var saved: TrainState.Record?
        if resume {
            guard FileManager.default.fileExists(atPath: statePath) else {
                throw TrainingError.badState(path: statePath, problem: "no training state to resume from")
            }
            let rec = try TrainState.readRecord(statePath)
            guard rec.backboneFingerprint == backboneFingerprint else {
                throw TrainingError.badState(
                    path: statePath,
                    problem: "it was written for a backbone with fingerprint \(rec.backboneFingerprint), but \(backbone.path) has \(backboneFingerprint)")
            }
            guard rec.options == options else {
                throw TrainingError.badState(
                    path: statePath,
                    problem: "it was written with other training options (\(Self.differences(rec.options, options))); resume with the same options")
            }
            guard rec.task < options.tasks, rec.adapterFingerprints.count == rec.task else {
                throw TrainingError.badState(
                    path: statePath, problem: "task \(rec.task + 1) of \(options.tasks) with \(rec.adapterFingerprints.count) finished adapters does not fit")
            }
            saved = rec
        }
        var weights = backbone.weights
        var reports: [TaskReport] = []
        for t in 0..<options.tasks {
            if let rec = saved, t < rec.task {
                // A finished task: its adapter must be the one the state recorded.
                let path = adapterPath(task: t)
                let file: AdapterFile
                do { file = try AdapterFile.open(path) } catch {
                    throw TrainingError.badState(path: path, problem: "cannot reopen a finished task's adapter: \(error)")
                }
                guard file.fingerprint == rec.adapterFingerprints[t] else {
                    throw TrainingError.badState(
                        path: path, problem: "it changed since the state was written (fingerprint \(file.fingerprint), recorded \(rec.adapterFingerprints[t]))")
                }
                try weights.fold(file)
                reports.append(try Self.report(from: file, path: path, steps: 0))
                continue
            }
            let report = try runTask(
                t, order: order, weights: &weights, backboneFingerprint: backboneFingerprint,
                finished: reports.map(\.adapterFingerprint), resume: saved?.task == t)
            reports.append(report)
            onEvent?(.taskFinished(report))
        }
        if communicator.isRoot { try? FileManager.default.removeItem(atPath: statePath) }
        return TrainReport(
            backbone: backbone.path, backboneFingerprint: backboneFingerprint, output: outputDirectory, classOrder: order,
            criterion: criterion, resumed: resume, tasks: reports,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }

    var criterion: String {
        backbone.config.head.kind == .linear ? "linear" : (options.marginEval ? "margin" : "cosine")
    }

    /// Options that differ, by JSON key.
    static func differences(_ a: TrainOptions, _ b: TrainOptions) -> String {
        guard case .object(let x)? = try? JSONValue.from(a), case .object(let y)? = try? JSONValue.from(b) else { return "unknown" }
        return Set(x.keys).union(y.keys).sorted().filter { x[$0] != y[$0] }.joined(separator: ", ")
    }

    /// A task report rebuilt from a finished adapter file (resume).
    static func report(from file: AdapterFile, path: String, steps: Int) throws -> TaskReport {
        let task = file.info.task, m = task.metrics
        func metrics(_ p: String) -> TaskMetrics {
            TaskMetrics(
                accRetain: m[p + "acc_r"], accForget: m[p + "acc_f"], accOld: m[p + "acc_o"], accMissing: m[p + "acc_m"],
                accRetainAll: m[p + "acc_r_all"])
        }
        let ema = metrics("ema_")
        return TaskReport(
            index: task.index, forget: task.forget, retain: task.retain, old: task.old, missing: [],
            forgetSamples: Int(m["forget_samples"] ?? 0), retainSamples: Int(m["retain_samples"] ?? 0), steps: Int(m["steps"] ?? 0),
            adapter: path, adapterFingerprint: file.fingerprint, baseFingerprint: file.info.baseFingerprint,
            before: metrics("before_"), after: metrics(""), h: m["h"], ema: ema == TaskMetrics() ? nil : ema,
            groupNorms: file.info.groups.map(\.norm), prunedGroups: file.info.groups.filter { $0.state == .pruned }.count,
            seconds: 0)
    }
}
