import Dispatch
import GSLoRAAdapters
import GSLoRACluster

/// This rank's share of one global (retain, forget) batch pair: its contiguous rows of each global batch.
public struct GlobalRows: Sendable, Equatable {
    public var retain: Range<Int>
    public var forget: Range<Int>
    public var retainTotal: Int
    public var forgetTotal: Int

    /// Rank `rank` of `size`'s rows (`Communicator.shard` of each batch).
    public init(retainTotal: Int, forgetTotal: Int, rank: Int, size: Int) {
        retain = SingleProcess.shard(retainTotal, rank: rank, size: size)
        forget = SingleProcess.shard(forgetTotal, rank: rank, size: size)
        self.retainTotal = retainTotal
        self.forgetTotal = forgetTotal
    }
}

extension GSLoRAStep {
    /// `computeGradients` for one rank of a data-parallel run that holds only `rows` of the global batch pair.
    /// The loss is the global one: the per-rank CE sums are allreduced first, so the forget hinge's gate reads the
    /// GLOBAL batch-mean CE_f, and each rank's ∂L/∂e is its rows' share of the global means; the LoRA gradients are
    /// then summed with one allreduce, and α·∂L_struct (same factors everywhere) is added after it. Dropout masks are
    /// drawn per global sample. GS-LoRA++'s prototype terms are batch means too: each rank's K sums are allreduced
    /// with the CE sums, the w_f hinge is gated on the global K_f, and each rank's rows contribute their share of the
    /// global mean's gradient. Every rank returns the same result; it differs from one process's only in the order
    /// of summation.
    public func computeGradients(
        retainImages: UnsafeBufferPointer<Float>, retainLabels: [Int],
        forgetImages: UnsafeBufferPointer<Float>, forgetLabels: [Int], rows: GlobalRows,
        communicator: Communicator, prototypes: PrototypeTable?, settings: ObjectiveSettings, dropout: Float,
        structure: Bool = true, forgetFirst: Bool = false, marginAccuracy: Bool = false
    ) throws -> StepResult {
        guard retainLabels.count == rows.retain.count, forgetLabels.count == rows.forget.count else {
            throw TrainingError.invalidArgument("\(retainLabels.count)+\(forgetLabels.count) local labels for rows \(rows.retain) and \(rows.forget)")
        }
        var timings = StepTimings()
        func timed<R>(_ slot: WritableKeyPath<StepTimings, Double>, _ body: () throws -> R) rethrows -> R {
            let t0 = DispatchTime.now().uptimeNanoseconds
            defer { timings[keyPath: slot] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
            return try body()
        }
        gradients.zero()
        let classes = model.config.numClasses, w = model.config.width
        // The combined batch in the global order one process uses: first batch's rows, then the second's.
        let first = forgetFirst ? (forgetImages, forgetLabels, rows.forget, rows.forgetTotal) : (retainImages, retainLabels, rows.retain, rows.retainTotal)
        let second = forgetFirst ? (retainImages, retainLabels, rows.retain, rows.retainTotal) : (forgetImages, forgetLabels, rows.forget, rows.forgetTotal)
        let labels = first.1 + second.1
        let firstRows = 0..<first.1.count, secondRows = first.1.count..<labels.count
        let (forgetRows, retainRows) = forgetFirst ? (firstRows, secondRows) : (secondRows, firstRows)
        func part<T>(_ v: [T], _ r: Range<Int>, _ width: Int) -> [T] { Array(v[(r.lowerBound * width)..<(r.upperBound * width)]) }

        // Ungated forget part: the gate is set below from the global CE_f.
        var open = settings
        open.bound = .greatestFiniteMagnitude
        var local: (retain: BatchLoss<Float>?, forget: BatchLoss<Float>?, correctRetain: Double, correctForget: Double) = (nil, nil, 0, 0)
        // K(E, Y) of this rank's rows (their local mean and its gradient), GS-LoRA++ only.
        var kl: (retain: PrototypeDivergence.Result<Float>?, forget: PrototypeDivergence.Result<Float>?) = (nil, nil)
        if !labels.isEmpty {
            combinedImages.removeAll(keepingCapacity: true)
            combinedImages.append(contentsOf: first.0)
            combinedImages.append(contentsOf: second.0)
            model.dropoutSamples = Array(first.2) + second.2.map { first.3 + $0 }
            defer { model.dropoutSamples = nil }
            let out = try timed(\.forward) {
                try model.forward(images: combinedImages, batch: labels.count, labels: labels, mode: .train(dropout: dropout))
            }
            let logits = marginAccuracy ? out.trainingLogits : out.logits
            func correct(_ r: Range<Int>, _ y: [Int]) throws -> Double {
                y.isEmpty
                    ? 0 : (try ForgettingMetrics.accuracy(logits: part(logits, r, classes), labels: y, classes: classes) * Double(y.count) / 100).rounded()
            }
            try timed(\.loss) {
                if !retainLabels.isEmpty {
                    local.retain = try GSLoRAObjective.retainPart(
                        head: head, headWeight: headWeight, embeddings: part(out.embeddings, retainRows, w),
                        labels: retainLabels, settings: settings)
                }
                if !forgetLabels.isEmpty {
                    local.forget = try GSLoRAObjective.forgetPart(
                        head: head, headWeight: headWeight, embeddings: part(out.embeddings, forgetRows, w),
                        labels: forgetLabels, settings: open)
                }
                if let prototypes {
                    if !retainLabels.isEmpty {
                        kl.retain = try PrototypeDivergence.kl(embeddings: part(out.embeddings, retainRows, w), labels: retainLabels, prototypes: prototypes)
                    }
                    if !forgetLabels.isEmpty {
                        kl.forget = try PrototypeDivergence.kl(embeddings: part(out.embeddings, forgetRows, w), labels: forgetLabels, prototypes: prototypes)
                    }
                }
                local.correctRetain = try correct(retainRows, retainLabels)
                local.correctForget = try correct(forgetRows, forgetLabels)
            }
        }
        var sums = [
            Double(retainLabels.count) * (local.retain?.ce ?? 0), Double(forgetLabels.count) * (local.forget?.ce ?? 0),
            local.correctRetain, local.correctForget,
            Double(retainLabels.count) * (kl.retain?.value ?? 0), Double(forgetLabels.count) * (kl.forget?.value ?? 0)
        ]
        try communicator.allreduceSum(&sums)
        let ceRetain = sums[0] / Double(rows.retainTotal), ceForget = sums[1] / Double(rows.forgetTotal)
        let gate = settings.bound - ceForget > 0
        let kRetain: Double? = prototypes == nil ? nil : sums[4] / Double(rows.retainTotal)
        let kForget: Double? = prototypes == nil ? nil : sums[5] / Double(rows.forgetTotal)
        let prototypeGate = kForget.map { settings.prototypeMargin - $0 > 0 } ?? false

        if !labels.isEmpty {
            // This rank's rows' share of the global batch means.
            let retainScale = Float(Double(retainLabels.count) / Double(rows.retainTotal))
            let forgetScale: Float = gate ? Float(Double(forgetLabels.count) / Double(rows.forgetTotal)) : 0
            var gr = (local.retain?.gradEmbeddings ?? []).map { $0 * retainScale }
            var gf = (local.forget?.gradEmbeddings ?? []).map { $0 * forgetScale }
            // w_r·∂K_r always; −w_f·∂K_f while the global prototype hinge is open. ∂K/∂e of the local mean is (Q − P)/B_local.
            if let k = kl.retain {
                let scale = Float(settings.prototypeRetainWeight) * retainScale
                for j in gr.indices { gr[j] += scale * k.gradEmbeddings[j] }
            }
            if let k = kl.forget, prototypeGate {
                let scale = -Float(settings.prototypeForgetWeight) * Float(Double(forgetLabels.count) / Double(rows.forgetTotal))
                for j in gf.indices { gf[j] += scale * k.gradEmbeddings[j] }
            }
            try timed(\.backward) { try model.backward(gradEmbeddings: forgetFirst ? gf + gr : gr + gf, into: gradients) }
        }
        try communicator.allreduceSum(gradBuffers.map(\.buffer))

        let r = BatchLoss<Float>(
            ce: ceRetain, kl: kRetain, value: ceRetain + settings.prototypeRetainWeight * (kRetain ?? 0),
            gradLogits: [], gradEmbeddings: [], gradHeadWeight: nil)
        let f = BatchLoss<Float>(
            ce: ceForget, kl: kForget,
            value: settings.beta * max(0, settings.bound - ceForget)
                + settings.prototypeForgetWeight * max(0, settings.prototypeMargin - (kForget ?? settings.prototypeMargin)),
            gradLogits: [], gradEmbeddings: [], gradHeadWeight: nil)
        let result = try timed(\.loss) { () throws -> ObjectiveResult<Float> in
            let res = try GSLoRAObjective.combine(r, f, lora: factors.values.map(\.array), lasso: structure ? lasso : nil, settings: settings)
            if structure {
                for (g, s) in zip(gradBuffers, res.gradLoRA) {
                    s.withUnsafeBufferPointer { sp in
                        for j in 0..<g.count { g.pointer[j] += sp[j] }
                    }
                }
            }
            return res
        }
        return StepResult(
            terms: result.terms, retainAccuracy: 100 * sums[2] / Double(rows.retainTotal),
            forgetAccuracy: 100 * sums[3] / Double(rows.forgetTotal), timings: timings)
    }

}

extension GSLoRAStep {
    /// `computeGradients(… rows:communicator: …)` then the AdamW step every rank takes alike.
    public func dataParallelStep(
        retainImages: UnsafeBufferPointer<Float>, retainLabels: [Int],
        forgetImages: UnsafeBufferPointer<Float>, forgetLabels: [Int], rows: GlobalRows,
        communicator: Communicator, prototypes: PrototypeTable?, settings: ObjectiveSettings, lr: Double,
        dropout: Float, structure: Bool = true, forgetFirst: Bool = false,
        marginAccuracy: Bool = false
    ) throws -> StepResult {
        var r = try computeGradients(
            retainImages: retainImages, retainLabels: retainLabels, forgetImages: forgetImages,
            forgetLabels: forgetLabels, rows: rows, communicator: communicator, prototypes: prototypes,
            settings: settings, dropout: dropout, structure: structure, forgetFirst: forgetFirst,
            marginAccuracy: marginAccuracy)
        r.timings.update = try applyUpdate(lr: lr)
        return r
    }
}

/// Whether any rank was asked to stop (a signal may reach the ranks between different steps; all must stop at the
/// same one).
func agreedStop(_ communicator: Communicator, _ shouldStop: () -> Bool) throws -> Bool {
    guard communicator.size > 1 else { return shouldStop() }
    var flag = [shouldStop() ? 1.0 : 0]
    try communicator.allreduceSum(&flag)
    return flag[0] > 0
}

extension Trainer {
    /// `agreedStop` on this run's communicator.
    func stopRequested() throws -> Bool { try agreedStop(communicator, shouldStop) }

    /// Rank 0 writes the adapter; once it is in place the other ranks open the same file.
    func writtenByRoot(_ path: String, _ write: () throws -> AdapterFile) throws -> AdapterFile {
        guard communicator.size > 1 else { return try write() }
        let file = communicator.isRoot ? try write() : nil
        try communicator.barrier()
        return try file ?? AdapterFile.open(path)
    }
}
