import Dispatch
import Foundation
import GSLoRAAdapters
import GSLoRAConvert
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining

/// Writes a merged backbone in a foreign format (`.pth`, `.safetensors`); the command passes Convert's
/// `Converter.convert`, the same path as gslora-convert (Train does not depend on Convert).

/// What the demo reports as it goes (the command prints; nothing here does).
public enum DemoEvent {
    /// A stage begins.
    case stage(String)
    case note(String)
    case pretrain(PretrainEvent)
    case train(run: String, event: TrainEvent)
}

/// The main job end to end, through the library calls the commands make: load Fashion-MNIST; pre-train a face-style
/// ViT (`Pretrainer`, gslora-train pretrain) unless OUT/pretrained.gslr holds one with the same settings; evaluate
/// it; for each run forget 2 classes per task over 4 tasks (`Trainer`, gslora-train forget; groups below the prune
/// threshold are pruned by `AdapterPrune` as each adapter is written, so the chain's fingerprints hold); merge the
/// chain (`LoRAMerge`, gslora-merge); evaluate the merged file (`AdaptedModel` + `BatchedForward` +
/// `ForgettingScore`, gslora-eval); export it (`Converter`, gslora-convert); write the report folder.
public final class ForgettingDemo {
    public let options: DemoOptions
    public var onEvent: ((DemoEvent) -> Void)?
    /// Polled between steps by the trainer; true stops the run.
    public var shouldStop: () -> Bool = { false }

    public var pretrainedPath: String { options.output + "/pretrained.gslr" }
    public var reportFolder: String { options.output }
    /// Header metadata key under which the cache key is stored.
    static let cacheKey = "gslora_demo_pretrain"

    private var stages: [StageTiming] = []

    /// The folders (in the output folder) of the GS-LoRA run and of the GS-LoRA++ run (`plus`).
    static let runName = "gslora", plusRunName = "gslora-plus"

    /// Every file a run writes except the pre-training cache (reused when its settings match): the report, and each
    /// forgetting run's state, adapters and merged model. A command checks them before it starts.
    public var outputFiles: [String] {
        var runs = [(Self.runName, options.forgetting)]
        if options.plus { runs.append((Self.plusRunName, options.forgettingPlus)) }
        return ["report.json", "report.md"].map { reportFolder + "/" + $0 }
            + runs.flatMap { name, o in
                (["state.gslr"] + (0..<max(o.tasks, 1)).map { "task-\($0 + 1).gslr" } + ["merged.gslr", "merged.pth", "merged.safetensors"])
                    .map { options.output + "/" + name + "/" + $0 }
            }
    }

    public init(options: DemoOptions) {
        self.options = options
    }

    /// The merged .gslr to a .pth or .safetensors with the family's original names, as gslora-convert writes them.
    static func export(input: String, output: String) throws -> ExportSummary {
        let r = try Converter.convert(input: input, output: output, options: ConvertOptions(force: true))
        guard let out = r.outputs.first else { throw DemoError.failed(stage: "export", problem: "\(output) was not written") }
        return ExportSummary(path: out.path, format: out.kind, tensors: out.tensors, bytes: out.bytes)
    }

    public func run() throws -> DemoReport {
        let t0 = DispatchTime.now().uptimeNanoseconds, c0 = Self.cpuSeconds()
        stages = []
        try FileManager.default.createDirectory(atPath: options.output, withIntermediateDirectories: true)
        let (data, backbone, summary, reference) = try prepare(validating: [options.forgetting] + (options.plus ? [options.forgettingPlus] : []))

        var runs: [RunSummary] = []
        runs.append(
            try forgettingRun(
                name: Self.runName, title: "GS-LoRA", options: options.forgetting, backbone: backbone, data: data,
                reference: reference))
        if options.plus {
            let shots = options.forgettingPlus.shots.map { "\($0)-shot" } ?? "full data"
            runs.append(
                try forgettingRun(
                    name: Self.plusRunName, title: "GS-LoRA++ (\(shots))", options: options.forgettingPlus,
                    backbone: backbone, data: data, reference: reference))
        }
        let order = try ClassOrder.make(classes: backbone.config.numClasses, seed: options.forgetting.seed)
        var report = DemoReport(
            data: data.source, classNames: data.train.classNames, seed: options.seed, classOrder: order,
            criterion: options.forgetting.marginEval ? "margin" : "cosine", quick: options.quick, pretrain: summary,
            runs: runs, stages: [], seconds: 0, checks: [])
        try timed("write report") {
            report.stages = stages
            report.seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            report.cpuSeconds = Self.cpuSeconds() - c0
            report.checks = DemoChecks.evaluate(report)
            try ReportWriter.write(report, to: reportFolder)
        }
        // The report file holds the job's time up to writing it; the returned value adds the writing itself.
        report.stages = stages
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        report.cpuSeconds = Self.cpuSeconds() - c0
        return report
    }

    /// What every forgetting run starts from: the data, the pre-trained backbone (trained, or from the cache) and its
    /// evaluation. `validating`: recipes refused now if the data cannot serve them, not after minutes of pre-training.
    func prepare(validating recipes: [TrainOptions]) throws -> (TrainData, TrainBackbone, PretrainSummary, ForgettingReport) {
        let data = try timed("load data") { try loadData() }
        testSet = data.test
        for o in recipes { try o.validate(classes: data.train.classNames.count) }
        let (backbone, pretrain) = try preparedBackbone(data)
        let reference = try timed("evaluate pre-trained") { try evaluate(backbone, modelPath: backbone.path) }
        var summary = pretrain
        summary.accuracy = reference.cosine.accRetain ?? 0
        summary.accuracyMargin = reference.margin.accRetain ?? 0
        summary.perClass = (0..<backbone.config.numClasses).map { k in reference.cosine.perClass.first { $0.index == k }?.accuracy }
        return (data, backbone, summary, reference.cosine)
    }

    func timed<R>(_ stage: String, _ body: () throws -> R) throws -> R {
        onEvent?(.stage(stage))
        let s0 = DispatchTime.now().uptimeNanoseconds, c0 = Self.cpuSeconds()
        let r = try body()
        stages.append(StageTiming(stage: stage, seconds: Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e9, cpuSeconds: Self.cpuSeconds() - c0))
        return r
    }

    /// CPU time of the whole process (all threads) so far.
    static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    // MARK: data

    /// Fashion-MNIST train and test splits as 1×28×28 images in [0, 1] (optionally only the first N of each).
    func loadData() throws -> TrainData {
        let dir = options.data
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else {
            throw DemoError.missingData(path: dir, problem: "no such folder")
        }
        guard isDir.boolValue else { throw DemoError.missingData(path: dir, problem: "not a folder") }
        let pre = Preprocessing.direct(size: options.pretrain.imageSize, channels: options.pretrain.channels)
        func load(_ split: FashionMNIST.Split, limit: Int?) throws -> ImageSet {
            let set: ImageSet
            do {
                set = try FashionMNIST.load(split, directory: dir, preprocessing: pre)
            } catch let e as DataError {
                if case let .fashionMNISTMissing(_, file) = e { throw DemoError.missingData(path: dir, problem: "\(file) is missing") }
                throw DemoError.badData(path: dir, problem: "the Fashion-MNIST files cannot be used: \(e)")
            }
            guard let limit, limit < set.count else { return set }
            return set.subset(indices: 0..<limit)
        }
        return try TrainData(train: try load(.train, limit: options.trainLimit), test: try load(.test, limit: options.testLimit), source: dir)
    }

    // MARK: backbone

    /// The backbone to forget on: `options.backbone`, the cached pretrained.gslr when its settings match, or a new one.
    func preparedBackbone(_ data: TrainData) throws -> (TrainBackbone, PretrainSummary) {
        if let path = options.backbone {
            let b = try timed("open backbone") { try openBackbone(path, data: data) }
            return (
                b,
                PretrainSummary(
                    path: path, fingerprint: b.weights.fingerprint, cached: true, options: options.pretrain,
                    parameters: parameterCount(b), trainImages: data.train.count, accuracy: 0, accuracyMargin: 0,
                    perClass: [], epochs: [], seconds: 0)
            )
        }
        let key = try cacheKey(data)
        let path = pretrainedPath
        if FileManager.default.fileExists(atPath: path) {
            let file: GSLRFile
            do { file = try GSLRFile.open(path) } catch {
                throw DemoError.wrongModel(path: path, problem: "the cached backbone cannot be read (\(error)); delete it to pre-train again")
            }
            try checkFamily(file, path: path, cached: true)
            if file.header.metadata[Self.cacheKey] == key {
                let b = try openBackbone(path, data: data)
                onEvent?(.note("pre-trained backbone from the cache: \(path)"))
                stages.append(StageTiming(stage: "pre-train (cached)", seconds: 0))
                return (
                    b,
                    PretrainSummary(
                        path: path, fingerprint: b.weights.fingerprint, cached: true, options: options.pretrain,
                        parameters: parameterCount(b), trainImages: data.train.count, accuracy: 0, accuracyMargin: 0,
                        perClass: [], epochs: [], seconds: 0)
                )
            }
            onEvent?(.note("\(path) was pre-trained with other settings; training it again"))
        }
        let result = try timed("pre-train") { () throws -> PretrainReport in
            let trainer = try Pretrainer(options: options.pretrain, data: data)
            trainer.onEvent = { [weak self] in self?.onEvent?(.pretrain($0)) }
            let partial = options.output + "/.pretrained.partial.gslr"
            defer { try? FileManager.default.removeItem(atPath: partial) }
            let r = try trainer.run(output: partial)
            // The same file with the cache key added to its metadata (the weights, and so the fingerprint, unchanged).
            let written = try GSLRFile.open(partial)
            var header = written.header
            header.metadata = header.metadata.merging([Self.cacheKey: key]) { _, new in new }
            try GSLRWriter.write(path, header: header, tensors: written.allTensors(), inputs: [partial])
            return r
        }
        let b = try openBackbone(path, data: data)
        return (
            b,
            PretrainSummary(
                path: path, fingerprint: b.weights.fingerprint, cached: false, options: options.pretrain,
                parameters: parameterCount(b), trainImages: data.train.count, accuracy: 0, accuracyMargin: 0,
                perClass: [], epochs: result.epochs, seconds: result.seconds)
        )
    }

    /// What the cached backbone must have been made from: the pre-training options and the training data.
    func cacheKey(_ data: TrainData) throws -> JSONValue {
        .object([
            "options": try JSONValue.from(options.pretrain), "data": .string(data.source),
            "train_images": .int(data.train.count), "classes": .array(data.train.classNames.map { .string($0) })
        ])
    }

    func checkFamily(_ file: GSLRFile, path: String, cached: Bool) throws {
        let fix =
            cached
            ? "delete it (or choose another \(Setting("output"))) so the demo can pre-train its own"
            : "give a face_vit backbone .gslr (gslora-train pretrain makes one)"
        guard file.kind == .backbone, let c = file.header.model else {
            throw DemoError.wrongModel(path: path, problem: "it is a .gslr of kind \(file.kind.rawValue), not a backbone; \(fix)")
        }
        guard c.family == .faceViT else {
            throw DemoError.wrongModel(
                path: path,
                problem: "it is a \(c.family.rawValue) checkpoint, but the demo forgets on a face_vit model "
                    + "(CosFace head, 1×28×28 input); \(fix)")
        }
    }

    func openBackbone(_ path: String, data: TrainData) throws -> TrainBackbone {
        let file: GSLRFile
        do { file = try GSLRFile.open(path) } catch {
            throw DemoError.wrongModel(
                path: path, problem: "cannot open it as a backbone .gslr (\(error)); convert other checkpoints with gslora-convert first")
        }
        try checkFamily(file, path: path, cached: options.backbone == nil)
        let b = try TrainBackbone.open(path)
        let c = b.config
        guard c.channels == data.train.channels, c.imageSize == data.train.height, c.imageSize == data.train.width,
            c.numClasses == data.train.classNames.count
        else {
            throw DemoError.wrongModel(
                path: path,
                problem: "it takes \(c.channels)×\(c.imageSize)×\(c.imageSize) images into \(c.numClasses) classes, "
                    + "Fashion-MNIST has \(data.train.channels)×\(data.train.height)×\(data.train.width) images in \(data.train.classNames.count) classes")
        }
        return b
    }

    /// The LoRA factors GS-LoRA trains: rank-r A and B on both FFN linears of every block.
    static func loraParameters(_ c: ModelConfig, rank: Int) -> Int { c.depth * 2 * rank * (c.width + c.mlpWidth) }

    func parameterCount(_ b: TrainBackbone) -> Int {
        b.weights.tensors.filter { b.modelTensors.contains($0.name) }.reduce(0) { $0 + $1.count }
    }

    // MARK: evaluation (gslora-eval's path)

    /// Per-class test accuracy of a backbone file (plus adapters already merged into it), plain cosine and margin.
    func evaluate(_ b: TrainBackbone, modelPath: String, forget: [Int] = [], retain: [Int]? = nil, old: [Int] = []) throws -> (
        cosine: ForgettingReport, margin: ForgettingReport
    ) {
        let built = try AdaptedModel.build(config: b.config, weights: b.weights, modelTensors: b.modelTensors, adapters: [])
        return try score(built.model, modelPath: modelPath, forget: forget, retain: retain, old: old)
    }

    func score(_ model: ViT, modelPath: String, forget: [Int], retain: [Int]?, old: [Int]) throws -> (cosine: ForgettingReport, margin: ForgettingReport) {
        let test = try dataForEval()
        func report(_ margin: Bool) throws -> ForgettingReport {
            let predictions = try test.withPixels {
                try BatchedForward.predict(model, images: $0, labels: test.labels, margin: margin, batchSize: options.forgetting.evalBatch)
            }
            return try ForgettingScore.report(
                predictions: predictions, labels: test.labels, classNames: test.classNames, forget: forget,
                retain: retain, old: old, before: nil, beforePath: nil, criterion: margin ? "margin" : "cosine",
                model: modelPath, adapters: [], merged: true, data: options.data)
        }
        return (try report(false), try report(true))
    }

    private var testSet: ImageSet?
    private func dataForEval() throws -> ImageSet {
        guard let testSet else { throw DemoError.failed(stage: "evaluate", problem: "no test set loaded") }
        return testSet
    }

    // MARK: one forgetting run

    func forgettingRun(
        name: String, title: String, options o: TrainOptions, backbone: TrainBackbone, data: TrainData,
        reference: ForgettingReport
    ) throws -> RunSummary {
        let folder = options.output + "/" + name
        let r0 = DispatchTime.now().uptimeNanoseconds
        let result = try timed("\(name): forget \(o.tasks) tasks (prune below \(o.pruneThreshold.map { String($0) } ?? "–"))") { () throws -> TrainReport in
            let trainer = try Trainer(backbone: backbone, data: data, options: o, outputDirectory: folder)
            trainer.onEvent = { [weak self] in self?.onEvent?(.train(run: name, event: $0)) }
            trainer.shouldStop = shouldStop
            return try trainer.run()
        }
        let trainable = Self.loraParameters(backbone.config, rank: o.rank)
        let backboneParameters = parameterCount(backbone)
        var rows: [TaskRow] = []
        for t in result.tasks {
            let file = try AdapterFile.open(t.adapter)
            let groups = file.info.groups.map { GroupRow(name: $0.name, norm: $0.norm, kept: $0.state == .kept) }
            rows.append(
                TaskRow(
                    task: t.index, forget: t.forget, retain: t.retain, old: t.old, accRetain: t.after.accRetain,
                    accForget: t.after.accForget, accOld: t.after.accOld, h: t.h, accForgetBefore: t.before.accForget,
                    accRetainPretrained: reference.accuracy(over: t.retain), trainableParameters: trainable,
                    backboneParameters: backboneParameters, groups: groups, adapter: t.adapter, adapterBytes: file.fileSize,
                    trainImages: t.forgetSamples + t.retainSamples, steps: t.steps, seconds: t.seconds))
        }
        guard let last = result.tasks.last else { throw DemoError.failed(stage: name, problem: "the trainer ran no task") }

        let mergedPath = folder + "/merged.gslr"
        let merge = try timed("\(name): merge") {
            try LoRAMerge.mergeFiles(base: backbone.path, adapters: result.tasks.map(\.adapter), output: mergedPath)
        }
        let scores = try timed("\(name): evaluate merged") { () throws -> ForgettingReport in
            let m = try TrainBackbone.open(mergedPath)
            guard m.weights.fingerprint == merge.outputFingerprint else {
                throw DemoError.failed(stage: "\(name): evaluate merged", problem: "\(mergedPath) changed after it was written")
            }
            let s = try evaluate(m, modelPath: mergedPath, forget: last.forget, retain: last.retain, old: last.old)
            return o.marginEval ? s.margin : s.cosine
        }
        let merged = MergedSummary(
            path: mergedPath, fingerprint: merge.outputFingerprint, bytes: merge.bytes, accRetain: scores.accRetain,
            accForget: scores.accForget, accOld: scores.accOld)
        let exports = try timed("\(name): export") {
            try ["pth", "safetensors"].map { try Self.export(input: mergedPath, output: folder + "/merged." + $0) }
        }
        return RunSummary(
            name: name, title: title, options: o, folder: folder, tasks: rows, merged: merged, exports: exports,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - r0) / 1e9)
    }
}
