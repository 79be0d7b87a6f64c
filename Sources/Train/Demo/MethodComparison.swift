import Dispatch
import Foundation
import GSLoRAAdapters
import GSLoRAFormat
import GSLoRATraining

/// The paper's main table on the demo's protocol: every method of `ComparisonOptions`, one
/// after another, on the demo's pre-trained backbone (shared with the demo's cache), in each data setting. GS-LoRA rows
/// run the demo's `Trainer` with the demo's recipe, so the full-data GS-LoRA row equals the demo's numbers for the same
/// seed. Each finished row is cached in its run folder (`compare/SETTING/METHOD/result.json`, with the settings that
/// made it), so a rerun skips it; an interrupted GS-LoRA row resumes from its state, an interrupted baseline keeps its
/// finished tasks (SCRUB restarts). compare.md / compare.json / plots are rewritten after every row.
public final class MethodComparison {
    public let demo: ForgettingDemo
    public let options: ComparisonOptions
    /// Re-run every row, replacing cached results (also those made with other settings).
    public var force = false

    public var folder: String { demo.options.output + "/compare" }
    public func runFolder(_ setting: ComparisonOptions.Setting, _ method: ComparisonOptions.Method) -> String {
        folder + "/" + setting.rawValue + "/" + method.id
    }

    public init(demo: ForgettingDemo, options: ComparisonOptions) {
        self.demo = demo
        self.options = options
    }

    private var events: ((DemoEvent) -> Void)? { demo.onEvent }

    public func run() throws -> ComparisonReport {
        let t0 = DispatchTime.now().uptimeNanoseconds, c0 = ForgettingDemo.cpuSeconds()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let recipes = options.settings.flatMap { s in options.methods(s).map { recipe(s, $0) } }
        let (data, backbone, pretrain, _) = try demo.prepare(validating: recipes)
        let order = try ClassOrder.make(classes: backbone.config.numClasses, seed: demo.options.forgetting.seed)
        var report = ComparisonReport(
            data: data.source, classNames: data.train.classNames, seed: demo.options.seed, classOrder: order,
            criterion: demo.options.forgetting.marginEval ? "margin" : "cosine", quick: demo.options.quick,
            options: options, shots: demo.options.forgettingPlus.shots, pretrain: pretrain, rows: [], seconds: 0, cpuSeconds: 0)
        let all = options.settings.flatMap { s in options.methods(s).map { (s, $0) } }
        for (i, (setting, method)) in all.enumerated() {
            events?(.stage("compare \(i + 1)/\(all.count): \(method.title), \(setting.rawValue)"))
            report.rows.append(try row(setting, method, backbone: backbone, data: data))
            report.seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            report.cpuSeconds = ForgettingDemo.cpuSeconds() - c0
            try ComparisonWriter.write(report, to: folder)
        }
        return report
    }

    /// The training options of a row: the demo's GS-LoRA recipes, or the demo's protocol with a baseline's epochs.
    func recipe(_ setting: ComparisonOptions.Setting, _ method: ComparisonOptions.Method) -> TrainOptions {
        let d = demo.options
        var o = setting == .full ? d.forgetting : d.forgettingPlus
        switch method {
        case .gslora:
            o.plus = false
        case .gsloraPlus:
            // Full data: the demo's GS-LoRA recipe with the few-shot run's prototype hinge.
            o.plus = true
            o.prototypeMargin = d.forgettingPlus.prototypeMargin
            o.prototypeForget = d.forgettingPlus.prototypeForget
            o.emaStart = nil
        case let .gsloraScaledAlpha(k):
            o.plus = false
            o.alpha *= k
            o.pruneThreshold = options.scaledAlphaPruneThreshold
        case .baseline:
            let r = options.recipe(setting)
            o.plus = false
            o.epochs = [r.epochs]
            o.batchSize = r.batchSize
        }
        return o
    }

    /// A baseline's settings: the main-table values, SCRUB's super-epochs and Retrain's warm-up scaled to the epochs.
    func baselineSettings(_ m: BaselineMethod, _ setting: ComparisonOptions.Setting) -> BaselineSettings {
        var s = BaselineSettings(method: m)
        let r = options.recipe(setting)
        s.scrubSuperEpochs = r.scrubSuperEpochs
        // The official 5 warm-up epochs of 100.
        s.warmupEpochs = Int((Double(s.warmupEpochs * r.epochs) / 100).rounded())
        return s
    }

    /// What a cached result must have been made with.
    func cacheKey(
        _ setting: ComparisonOptions.Setting, _ method: ComparisonOptions.Method, _ o: TrainOptions, backbone: TrainBackbone,
        data: TrainData
    ) throws -> JSONValue {
        var key: [String: JSONValue] = [
            "setting": .string(setting.rawValue), "method": .string(method.id), "options": try JSONValue.from(o),
            "backbone": .string(backbone.weights.fingerprint), "data": .string(data.source),
            "train_images": .int(data.train.count), "test_images": .int(data.test.count)
        ]
        if case let .baseline(m) = method { key["baseline"] = try JSONValue.from(baselineSettings(m, setting)) }
        return .object(key)
    }

    private func row(
        _ setting: ComparisonOptions.Setting, _ method: ComparisonOptions.Method, backbone: TrainBackbone,
        data: TrainData
    ) throws -> ComparisonRow {
        let o = recipe(setting, method)
        let runFolder = runFolder(setting, method), resultPath = runFolder + "/result.json"
        let key = try cacheKey(setting, method, o, backbone: backbone, data: data)
        if force {
            try? FileManager.default.removeItem(atPath: runFolder)
        } else if FileManager.default.fileExists(atPath: resultPath) {
            let cached: CachedComparisonRow
            do { cached = try JSONDecoder().decode(CachedComparisonRow.self, from: Data(contentsOf: URL(fileURLWithPath: resultPath))) } catch {
                throw DemoError.failed(
                    stage: "compare", problem: "\(resultPath) cannot be read (\(error)); delete it, or pass \(Setting("force")) to run every method again")
            }
            guard cached.key == key else {
                throw DemoError.failed(
                    stage: "compare",
                    problem:
                        "\(resultPath) was made with other settings; pass \(Setting("force")) to run every method again, or choose another \(Setting("output"))"
                )
            }
            events?(.note("\(method.title), \(setting.rawValue): finished earlier, from \(resultPath)"))
            var row = cached.row
            row.cached = true
            return row
        }

        let run = "\(setting.rawValue)/\(method.id)"
        let s0 = DispatchTime.now().uptimeNanoseconds, c0 = ForgettingDemo.cpuSeconds()
        let trainer: ForgettingRun
        let resume: Bool
        var recipeText = "\(o.epochs.map(String.init).joined(separator: "/")) epochs, batch \(o.batchSize)"
        switch method {
        case let .baseline(m):
            let s = baselineSettings(m, setting)
            trainer = try BaselineTrainer(backbone: backbone, data: data, options: o, settings: s, outputDirectory: runFolder)
            resume = !m.isSCRUB
            recipeText =
                (m.isSCRUB ? "\(s.scrubSuperEpochs) super-epochs, batch \(o.batchSize)" : recipeText) + ", lr \(s.lr)"
                + (s.lambda > 0 ? ", λ \(s.lambda)" : "") + (s.warmupEpochs > 0 ? ", \(s.warmupEpochs) warm-up epochs" : "")
        default:
            let t = try Trainer(backbone: backbone, data: data, options: o, outputDirectory: runFolder)
            trainer = t
            resume = FileManager.default.fileExists(atPath: t.statePath)
            recipeText +=
                ", lr \(o.lr), rank \(o.rank), α \(o.alpha)" + (o.plus ? ", prototype M \(SVGDocument.num(o.prototypeMargin))" : "")
                + (o.pruneThreshold.map { ", prune < \($0)" } ?? "")
        }
        trainer.onEvent = { [weak self] in self?.events?(.train(run: run, event: $0)) }
        trainer.shouldStop = demo.shouldStop
        let result = try trainer.run(resume: resume)

        var tasks: [ComparisonTask] = [], trainable = 0
        for t in result.tasks {
            switch method {
            case .baseline:
                let file = try GSLRFile.open(t.adapter)
                if case .object(let rec)? = file.header.metadata[BaselineTrainer.metadataKey] {
                    switch rec["parameters_trained"] {
                    case let .int(n)?: trainable = max(trainable, n)
                    case let .number(n)?: trainable = max(trainable, Int(n))
                    default: break
                    }
                }
                tasks.append(
                    ComparisonTask(
                        task: t.index, accRetain: t.after.accRetain, accForget: t.after.accForget, accOld: t.after.accOld,
                        h: t.h, parametersChanged: t.parametersChanged ?? 0, groupsKept: nil, groups: nil,
                        bytes: t.bytes ?? 0, seconds: t.seconds))
            default:
                let adapter = try AdapterFile.open(t.adapter)
                trainable = ForgettingDemo.loraParameters(backbone.config, rank: o.rank)
                let changed = try adapter.pairs().reduce(0) { $0 + $1.outFeatures * $1.inFeatures }
                tasks.append(
                    ComparisonTask(
                        task: t.index, accRetain: t.after.accRetain, accForget: t.after.accForget, accOld: t.after.accOld,
                        h: t.h, parametersChanged: changed, groupsKept: adapter.info.groups.filter { $0.state == .kept }.count,
                        groups: adapter.info.groups.count, bytes: adapter.fileSize, seconds: t.seconds))
            }
        }
        let row = ComparisonRow(
            setting: setting, method: method.id, title: method.title, recipe: recipeText, tasks: tasks, mean: ComparisonMean(tasks),
            trainableParameters: trainable, backboneParameters: demo.parameterCount(backbone),
            seconds: Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e9, cpuSeconds: ForgettingDemo.cpuSeconds() - c0,
            folder: runFolder)
        let text = try ReportWriter.json(CachedComparisonRow(key: key, row: row))
        try AtomicFile.write(resultPath) { try $0.write(Array(text.utf8)) }
        return row
    }
}
