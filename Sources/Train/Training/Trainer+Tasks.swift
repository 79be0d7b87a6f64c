import Dispatch
import Foundation
import GSLoRAAdapters
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel

extension Trainer {
    /// One forgetting task on `weights` (the base: backbone ⊕ earlier adapters); folds its adapter into `weights`.
    func runTask(
        _ t: Int, order: [Int], weights: inout MergedWeights, backboneFingerprint: String, finished: [String],
        resume: Bool
    ) throws -> TaskReport {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let c = backbone.config, o = options
        let classes = try o.taskClasses(order: order, task: t)
        let baseFingerprint = weights.fingerprint
        let base = try backbone.model(weights)

        // Training subsets of this task (spec/TRAINING.md §5), from the task's own stream.
        let index = try LabelIndex(labels: data.train.labels, classes: c.numClasses)
        let (forgetSet, retainSet) = try TrainingSubset.task(t, classes: classes, options: o, index: index)

        let prototypes = o.plus ? try prototypeTable(base, samples: forgetSet + retainSet) : nil
        let before = try evaluate(base, classes)
        onEvent?(.evaluated(task: t + 1, phase: "before", metrics: before, h: nil))

        // Fresh adapter: loralib's A ~ U(±1/√in) (a = √5) for the first task, a = √50 later (spec/TRAINING.md §4.12).
        var initRNG = SplitMix64(seed: o.seed, stream: 32 + UInt64(t))
        let adapter = try LoRAAdapter(
            config: c, rank: o.rank, scaling: Float(o.loraAlpha / Double(o.rank)),
            gain: t == 0 ? 1 : Float((6.0 / 51.0).squareRoot()), seed: initRNG.next())
        let model = try ViT(config: c, parameters: base.parameters, adapters: [adapter])
        model.precision = o.precision
        guard let grouping = LoRAGrouping(rawValue: o.grouping) else { throw TrainingError.badOption(option: Setting("grouping"), problem: o.grouping) }
        let step = try GSLoRAStep(model: model, grouping: grouping, weightDecay: o.weightDecay)
        let schedule = try CosineSchedule(baseLR: o.lr, minLR: o.minLR, epochs: o.epochs(task: t))
        var pairingRNG = SplitMix64(seed: o.seed, stream: 48 + UInt64(t))
        var pairing = try BatchPairing(
            retain: retainSet, forget: forgetSet, batchSize: o.batchSize, seed: pairingRNG.next(),
            fewShotSingleStep: o.shots != nil && o.tasks == 1)
        var ema: DeltaEMA?
        if o.plus, let start = o.emaStart { ema = try DeltaEMA(startEpoch: start, decay: o.emaDecay) }
        let emaShapes = (0..<c.depth).flatMap { _ in [[c.mlpWidth, c.width], [c.width, c.mlpWidth]] }
        let names = step.factors.names, shapes = step.factors.shapes

        var startEpoch = 0, startStep = 0, taskStep = 0
        if resume {
            let s = try TrainState.read(statePath, names: names, shapes: shapes, emaShapes: emaShapes)
            guard s.record.baseFingerprint == baseFingerprint else {
                throw TrainingError.badState(
                    path: statePath,
                    problem:
                        "task \(t + 1) trained on base \(s.record.baseFingerprint), but the base rebuilt from the backbone and earlier adapters is \(baseFingerprint)"
                )
            }
            for (buf, v) in zip(step.factors.values, s.factors) { v.withUnsafeBufferPointer { buf.pointer.update(from: $0.baseAddress!, count: v.count) } }
            try step.optimizer.restore(steps: s.record.adamSteps, expAvg: s.expAvg, expAvgSq: s.expAvgSq)
            if let saved = s.ema {
                guard var e = ema else { throw TrainingError.badState(path: statePath, problem: "it holds an EMA this run does not keep") }
                try e.endOfEpoch(e.startEpoch, deltas: saved)
                ema = e
            }
            startEpoch = s.record.epoch
            startStep = s.record.stepInEpoch
            taskStep = s.record.taskStep
        }

        func save(epoch: Int, stepInEpoch: Int) throws {
            guard communicator.isRoot else { return }
            let rec = TrainState.Record(
                options: o, backboneFingerprint: backboneFingerprint, baseFingerprint: baseFingerprint,
                adapterFingerprints: finished, task: t, epoch: epoch, stepInEpoch: stepInEpoch, taskStep: taskStep,
                adamSteps: step.optimizer.steps, emaCount: 0)
            try TrainState(
                record: rec, factors: step.factors.values.map(\.array), expAvg: step.optimizer.expAvg,
                expAvgSq: step.optimizer.expAvgSq, ema: ema?.deltas
            ).write(statePath, names: names, shapes: shapes, emaShapes: emaShapes)
            onEvent?(.stateSaved(path: statePath))
        }

        let stepsPerEpoch = pairing.stepsPerEpoch, totalSteps = stepsPerEpoch * o.epochs(task: t)
        onEvent?(.taskStarted(task: t + 1, classes: classes, forgetSamples: forgetSet.count, retainSamples: retainSet.count, steps: totalSteps))
        let rBuf = FloatBuffer(count: 0), fBuf = FloatBuffer(count: 0)
        var rLabels: [Int] = [], fLabels: [Int] = []
        let loopStart = DispatchTime.now().uptimeNanoseconds
        var stepsRun = 0
        for e in 0..<o.epochs(task: t) {
            // Every epoch's batches are drawn, also the ones a resumed run skips, so the loaders' streams line up.
            let pairs = pairing.nextEpoch()
            if e < startEpoch { continue }
            let lr = schedule.lr(epoch: e)
            let settings = try o.objective(task: t, epoch: e)
            for (i, pair) in pairs.enumerated() where e > startEpoch || i >= startStep {
                // This rank's rows of the global pair (all of it in one process).
                let rows = GlobalRows(
                    retainTotal: pair.retain.count, forgetTotal: pair.forget.count, rank: communicator.rank,
                    size: communicator.size)
                data.train.gather(Array(pair.retain[rows.retain]), into: rBuf, labels: &rLabels)
                data.train.gather(Array(pair.forget[rows.forget]), into: fBuf, labels: &fLabels)
                var dropoutRNG = SplitMix64(seed: o.seed, stream: (UInt64(t + 1) << 40) | UInt64(taskStep))
                model.dropoutSeed = dropoutRNG.next()
                let s0 = DispatchTime.now().uptimeNanoseconds
                let r =
                    communicator.size == 1
                    ? try step.step(
                        retainImages: UnsafeBufferPointer(rBuf.buffer), retainLabels: rLabels,
                        forgetImages: UnsafeBufferPointer(fBuf.buffer), forgetLabels: fLabels, prototypes: prototypes,
                        settings: settings, lr: lr, dropout: Float(o.dropout), structure: o.structureOn(epoch: e),
                        forgetFirst: pairing.driver == .forget, marginAccuracy: o.marginEval)
                    : try step.dataParallelStep(
                        retainImages: UnsafeBufferPointer(rBuf.buffer), retainLabels: rLabels,
                        forgetImages: UnsafeBufferPointer(fBuf.buffer), forgetLabels: fLabels, rows: rows,
                        communicator: communicator, prototypes: prototypes, settings: settings, lr: lr,
                        dropout: Float(o.dropout), structure: o.structureOn(epoch: e),
                        forgetFirst: pairing.driver == .forget, marginAccuracy: o.marginEval)
                let now = DispatchTime.now().uptimeNanoseconds
                taskStep += 1
                stepsRun += 1
                if let onEvent {
                    let pace = Double(now - loopStart) / 1e9 / Double(stepsRun)
                    let left = (totalSteps - taskStep) + (o.tasks - t - 1) * totalSteps
                    onEvent(
                        .step(
                            StepReport(
                                task: t + 1, epoch: e, epochs: o.epochs(task: t), step: taskStep, steps: totalSteps, lr: lr,
                                ceRetain: r.terms.ceRetain, ceForget: r.terms.ceForget, boundedForget: r.terms.boundedForget,
                                structure: r.terms.structure, klForget: r.terms.klForget, prototypeTerm: r.terms.prototypeTerm,
                                total: r.terms.total, accRetain: r.retainAccuracy, accForget: r.forgetAccuracy,
                                imagesPerSecond: Double(pair.retain.count + pair.forget.count) / (Double(now - s0) / 1e9),
                                eta: pace * Double(left), seconds: Double(now - s0) / 1e9)))
                }
                if o.evalEvery > 0 && taskStep % o.evalEvery == 0 {
                    let m = try evaluate(model, classes)
                    onEvent?(.evaluated(task: t + 1, phase: "step \(taskStep)", metrics: m, h: Self.h(before, m)))
                }
                if try stopRequested() {
                    try save(epoch: e, stepInEpoch: i + 1)
                    throw TrainingError.interrupted(statePath: statePath)
                }
            }
            if ema != nil { try ema!.endOfEpoch(e, deltas: try Self.deltas(adapter)) }
            try save(epoch: e + 1, stepInEpoch: 0)
            if try stopRequested() { throw TrainingError.interrupted(statePath: statePath) }
        }

        let after = try evaluate(model, classes)
        let h = Self.h(before, after)
        onEvent?(.evaluated(task: t + 1, phase: "after", metrics: after, h: h))
        var emaMetrics: TaskMetrics?
        if let d = ema?.deltas {
            emaMetrics = try evaluate(try emaModel(weights, deltas: d), classes)
            onEvent?(.evaluated(task: t + 1, phase: "ema", metrics: emaMetrics!, h: Self.h(before, emaMetrics!)))
        }

        // Only reproducible numbers go into the file, so a resumed run writes the same bytes.
        var numbers = after.numbers()
        numbers.merge(before.numbers("before_")) { a, _ in a }
        if let emaMetrics { numbers.merge(emaMetrics.numbers("ema_")) { a, _ in a } }
        if let h { numbers["h"] = h }
        numbers["steps"] = Double(totalSteps)
        numbers["forget_samples"] = Double(forgetSet.count)
        numbers["retain_samples"] = Double(retainSet.count)
        let record = TaskRecord(
            index: t + 1, forget: classes.forget, retain: classes.retain, old: classes.old, settings: o.settings,
            metrics: numbers)
        let (header, tensors) = try AdapterOutput.build(step: step, options: o, task: record, baseFingerprint: baseFingerprint)
        let path = adapterPath(task: t)
        let file = try writtenByRoot(path) { try AdapterOutput.write(path, header: header, tensors: tensors, pruneThreshold: o.pruneThreshold) }
        try weights.fold(file)
        return TaskReport(
            index: t + 1, forget: classes.forget, retain: classes.retain, old: classes.old, missing: classes.missing,
            forgetSamples: forgetSet.count, retainSamples: retainSet.count, steps: totalSteps, adapter: path,
            adapterFingerprint: file.fingerprint, baseFingerprint: baseFingerprint, before: before, after: after, h: h,
            ema: emaMetrics, groupNorms: file.info.groups.map(\.norm),
            prunedGroups: file.info.groups.filter { $0.state == .pruned }.count,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }

    func evaluate(_ model: ViT, _ classes: TaskClasses) throws -> TaskMetrics {
        try TaskEvaluation.evaluate(
            model, test: data.test, classes: classes, margin: options.marginEval, batch: options.evalBatch,
            communicator: communicator)
    }

    static func h(_ before: TaskMetrics, _ now: TaskMetrics) -> Double? {
        guard let fb = before.accForget, let f = now.accForget, let r = now.accRetain else { return nil }
        return ForgettingScore.h(forgetBefore: fb, forget: f, retain: r)
    }

    /// Per-class mean embeddings of the task-start model (eval mode) over the task's training subsets. Data-parallel,
    /// each rank embeds its contiguous share of the samples and the per-class sums and counts are summed over ranks.
    func prototypeTable(_ model: ViT, samples: [Int]) throws -> PrototypeTable {
        let sub = data.train.subset(indices: Array(samples[communicator.shard(samples.count)]))
        let out = try sub.withPixels {
            try BatchedForward.run(model, images: $0, count: sub.count, embeddings: true, batchSize: options.evalBatch)
        }
        let c = backbone.config
        var s = try PrototypeTable.sums(embeddings: out.embeddings ?? [], labels: sub.labels, dim: c.width, classes: c.numClasses)
        try communicator.allreduceSum(&s.sums)
        try communicator.allreduceSum(&s.counts)
        return try PrototypeTable.mean(sums: s.sums, counts: s.counts, dim: c.width, classes: c.numClasses)
    }

    /// ΔW = s·B·A of every LoRA linear (block by block, fc1 then fc2).
    static func deltas(_ a: LoRAAdapter) throws -> [[Float]] {
        try (0..<a.fc1.count).flatMap { i in
            try [a.fc1[i], a.fc2[i]].map { f in
                try loraDelta(
                    a: f.a.array, b: f.b.array, rank: f.rank, inFeatures: f.inFeatures, outFeatures: f.outFeatures,
                    scale: Double(a.scaling))
            }
        }
    }

    /// The base with W + EMA(ΔW) on every LoRA linear, out of place.
    func emaModel(_ weights: MergedWeights, deltas: [[Float]]) throws -> ViT {
        var tensors = weights.tensors.filter { backbone.modelTensors.contains($0.name) }
        let c = backbone.config
        for i in 0..<c.depth {
            for (j, fc) in ["fc1", "fc2"].enumerated() {
                let name = "blocks.\(i).mlp.\(fc).weight"
                guard let k = tensors.firstIndex(where: { $0.name == name }) else { continue }
                var w = try tensors[k].floats()
                let d = deltas[2 * i + j]
                for x in 0..<w.count { w[x] += d[x] }
                tensors[k] = Tensor(name: name, shape: tensors[k].shape, floats: w)
            }
        }
        return try ViT(config: c, weights: tensors)
    }
}
