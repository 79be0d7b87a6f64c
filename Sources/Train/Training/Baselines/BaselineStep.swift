import Foundation
import GSLoRACluster
import GSLoRAFormat
import GSLoRAModel

/// A batch of images (NCHW float32) with the labels the method trains on (for relabelled forget data, the rewritten
/// ones; spec/TRAINING.md §B.1). In a data-parallel run it holds one rank's contiguous rows `rows` of a global batch of
/// `total` images; alone, all of them.
public struct BaselineBatch: Sendable {
    public var images: [Float]
    public var labels: [Int]
    public var rows: Range<Int>
    public var total: Int
    public init(images: [Float], labels: [Int]) { self.init(images: images, labels: labels, rows: 0..<labels.count, total: labels.count) }
    public init(images: [Float], labels: [Int], rows: Range<Int>, total: Int) {
        self.images = images; self.labels = labels; self.rows = rows; self.total = total
    }
}

/// What one step of a baseline feeds it (spec/TRAINING.md §B.2): `joint` for the regularised methods and Retrain (the concat
/// batch, or the retain batch), `forget` + `retain` for the teacher methods, `next` for DER++'s second retain batch.
public struct BaselineInput: Sendable {
    public var joint: BaselineBatch?
    public var forget: BaselineBatch?
    public var retain: BaselineBatch?
    public var next: BaselineBatch?
    public init(joint: BaselineBatch? = nil, forget: BaselineBatch? = nil, retain: BaselineBatch? = nil, next: BaselineBatch? = nil) {
        self.joint = joint; self.forget = forget; self.retain = retain; self.next = next
    }
}

/// SCRUB's two kinds of step: a max-step on forget data, a min-step on retain data.
public enum SCRUBPhase: String, Sendable { case forget, remain }

/// One optimiser step of a baseline, exactly as the official training functions compute it: the loss terms (the values
/// the official meters log, by their names there), gradients of every trainable parameter, then AdamW (Adam with
/// coupled decay for SCRUB). The teacher and SCRUB's averaged model are taken from the model at construction (the
/// pretrained model, never refreshed between tasks; §5 item 4).
public final class BaselineStep {
    public let settings: BaselineSettings
    public let student: FullParameterModel
    public let teacher: Teacher?
    public private(set) var optimizer: AdamW
    /// L2 / EWC / MAS terms (empty until a task ends; `ParameterPenalty.add`).
    public var penalty: ParameterPenalty
    public var average: AveragedModel?
    /// LIRF: the lower half that trains is blocks 0..<split plus the embeddings.
    public let lirfSplit: Int

    /// `forgetClassCount` is S, LIRF's column split, when `settings.lirfColumns` is nil.
    public init(model: ViT, settings: BaselineSettings, forgetClassCount: Int) throws {
        try settings.validate()
        self.settings = settings
        let depth = model.config.depth
        lirfSplit = depth / 2
        let method = settings.method, split = depth / 2
        let st = try FullParameterModel(model: model) { name in
            switch method {
            case .retrain: return true
            case .lirf:
                if ["cls_token", "pos_embed", "patch_embed.weight", "patch_embed.bias"].contains(name) { return true }
                guard name.hasPrefix("blocks."), let i = Int(name.dropFirst(7).prefix { $0.isNumber }) else { return false }
                return i < split
            default: return !name.hasPrefix("head.")
            }
        }
        student = st
        teacher = method.usesTeacher ? try Teacher(copying: st) : nil
        if method == .lirf {
            guard depth >= 2 else {
                throw TrainingError.badOption(option: Setting("method"), problem: "LIRF splits the model in two halves and needs depth ≥ 2 (got \(depth))")
            }
            let s = settings.lirfColumns ?? forgetClassCount
            guard s >= 1, s < model.config.numClasses else {
                throw TrainingError.badOption(option: Setting("lirfColumns"), problem: "must lie in 1..<\(model.config.numClasses) (got \(s))")
            }
        }
        let decay = method.isSCRUB ? 0 : settings.weightDecay
        optimizer = try AdamW(parameters: zip(st.names, st.shapes).map { ($0, $1) }, weightDecay: decay)
        penalty = try ParameterPenalty(lambda: method.isRegularised ? settings.lambda : 0)
        average = method.isSCRUB ? try AveragedModel(values: st.snapshot(), beta: settings.scrubSWABeta) : nil
        self.forgetClassCount = forgetClassCount
    }

    private let forgetClassCount: Int
    private var classes: Int { student.head.classes }
    /// Per image of the last step's batches, whether the student's margin logits put it on the label it trained on:
    /// "joint", "forget", "retain" (progress reports; SCRUB's forget step fills "forget").
    public private(set) var lastCorrect: [String: [Bool]] = [:]

    private func record(_ role: String, _ pass: FullParameterModel.Pass, _ labels: [Int]) {
        let c = classes
        lastCorrect[role] = labels.enumerated().map { r, y in
            let row = pass.logits[(r * c)..<((r + 1) * c)]
            return row.indices.max { row[$0] < row[$1] }.map { $0 - r * c } == y
        }
    }

    /// Recreates the optimiser (the official code builds a new one at the start of every task).
    public func resetOptimizer() throws {
        optimizer = try AdamW(
            parameters: zip(student.names, student.shapes).map { ($0, $1) },
            weightDecay: settings.method.isSCRUB ? 0 : settings.weightDecay)
    }

    /// Computes the loss terms and gradients of one step (no update). SCRUB methods need `phase`.
    ///
    /// Data-parallel (`communicator` of more than one rank, each batch holding this rank's rows): every term is a mean
    /// (or, DER, a sum) over one batch's samples, so each rank computes its rows' share of the global value and
    /// gradient, the gradients and terms are summed over the ranks (bucketed allreduces), and the terms that read
    /// only the parameters (L2/EWC/MAS penalty, SCRUB's distance to its averaged model) are added after the sum, once.
    /// Dropout is drawn per global sample. Alone, this is the one-process arithmetic exactly.
    public func computeGradients(
        _ input: BaselineInput, phase: SCRUBPhase? = nil, dropout: Float,
        communicator: Communicator = SingleProcess()
    ) throws -> [String: Double] {
        student.zeroGradients()
        lastCorrect = [:]
        let s = settings, alone = communicator.size == 1
        func need(_ b: BaselineBatch?, _ what: String) throws -> BaselineBatch {
            guard let b, b.total > 0 else { throw TrainingError.emptySet("\(s.method.rawValue) needs a \(what) batch") }
            return b
        }
        /// This rank's rows' share of a mean over `b` (exactly 1 alone).
        func share(_ b: BaselineBatch) -> Double { Double(b.labels.count) / Double(b.total) }
        /// A train-mode student pass over this rank's rows of `b`, dropout drawn per global sample; nil (the dropout
        /// stream advanced as if it ran) when the rank holds none of them.
        func pass(_ b: BaselineBatch, role: String) throws -> FullParameterModel.Pass? {
            guard !b.labels.isEmpty else {
                if dropout > 0 { student.model.skipDropoutCall() }
                return nil
            }
            if !alone { student.model.dropoutSamples = Array(b.rows) }
            defer { student.model.dropoutSamples = nil }
            let p = try student.forward(images: b.images, labels: b.labels, dropout: dropout)
            record(role, p, b.labels)
            return p
        }
        /// CE of a fresh student pass (this rank's share), its gradient scaled by `weight` added.
        func ce(_ b: BaselineBatch, weight: Double, role: String) throws -> Double {
            guard let p = try pass(b, role: role) else { return 0 }
            let r = try CrossEntropy.mean(logits: p.logits, labels: b.labels, classes: classes)
            let k = share(b)
            if weight != 0 { try student.backward(p, gradLogits: r.gradLogits.map { $0 * Float(weight * k) }) }
            return r.mean * k
        }
        /// Sums the gradients and the data terms over the ranks.
        func reduced(_ terms: [String: Double]) throws -> [String: Double] {
            guard !alone else { return terms }
            try communicator.allreduceSum(student.gradients.map(\.buffer))
            let keys = terms.keys.sorted()
            var v = keys.map { terms[$0]! }
            try communicator.allreduceSum(&v)
            return Dictionary(uniqueKeysWithValues: zip(keys, v))
        }
        switch s.method {
        case .finetune, .l2, .ewc, .mas, .retrain:
            let t = try reduced(["CE": try ce(try need(input.joint, s.method == .retrain ? "retain" : "forget+retain"), weight: 1, role: "joint")])
            let c = t["CE"]!, reg = try penalty.apply(to: student)
            return ["CE": c, "regularization": reg, "total": c + reg]
        case .lwf:
            let cf = try ce(try need(input.forget, "forget"), weight: 1, role: "forget")
            let r = try need(input.retain, "retain")
            var t = ["CE": cf, "KD": 0.0, "remain": 0.0]
            if let p = try pass(r, role: "retain") {
                let cr = try CrossEntropy.mean(logits: p.logits, labels: r.labels, classes: classes)
                let kd: LossGradient
                if s.lwfIntendedKD {
                    let tc = try teacher!.forward(images: r.images, labels: r.labels)
                    kd = try Distillation.lwfIntended(student: p.logits, teacher: tc.logits, classes: classes, temperature: s.lwfTemperature)
                } else {
                    kd = Distillation.lwfOfficial(student: p.logits, classes: classes)
                }
                let k = share(r)
                let g = zip(cr.gradLogits, kd.gradient).map { Float(s.lwfLambdaRemain * k) * $0 + Float(s.lwfLambdaKD * k) * $1 }
                try student.backward(p, gradLogits: g)
                t["KD"] = kd.value * k
                t["remain"] = cr.mean * k
            }
            t = try reduced(t)
            t["total"] = t["CE"]! + s.lwfLambdaKD * t["KD"]! + s.lwfLambdaRemain * t["remain"]!
            return t
        case .der, .derpp:
            let cf = try ce(try need(input.forget, "forget"), weight: 1, role: "forget")
            let r = try need(input.retain, "retain")
            var t = ["CE": cf, "DER": 0.0]
            if let p = try pass(r, role: "retain") {
                let tc = try teacher!.forward(images: r.images, labels: r.labels)
                // A sum over the batch (no mean): each rank's rows add their own part.
                let der = try Distillation.der(student: p.embeddings, teacher: tc.embeddings)
                try student.backward(p, gradLogits: nil, gradEmbeddings: der.gradient.map { $0 * Float(s.lambda) })
                t["DER"] = der.value
            }
            if s.method == .derpp {
                t["CE_next"] = try ce(try need(input.next, "second retain"), weight: s.lambdaPlus, role: "next")
            }
            t = try reduced(t)
            t["total"] = t["CE"]! + s.lambda * t["DER"]! + s.lambdaPlus * (t["CE_next"] ?? 0)
            return t
        case .fdr:
            let cf = try ce(try need(input.forget, "forget"), weight: 1, role: "forget")
            let r = try need(input.retain, "retain")
            var t = ["CE": cf, "FDR": 0.0]
            if let p = try pass(r, role: "retain") {
                let tc = try teacher!.forward(images: r.images, labels: r.labels)
                let fdr = try Distillation.fdr(student: p.logits, teacher: tc.logits, classes: classes)
                let k = share(r)
                try student.backward(p, gradLogits: fdr.gradient.map { $0 * Float(s.lambda * k) })
                t["FDR"] = fdr.value * k
            }
            t = try reduced(t)
            t["total"] = t["CE"]! + s.lambda * t["FDR"]!
            return t
        case .lirf:
            var t = try lirf(forget: try need(input.forget, "forget"), retain: try need(input.retain, "retain"), pass: pass, share: share)
            t = try reduced(t)
            t["total"] = t["CE"]! - 300 * t["AT"]! + 10 * t["KP"]! + 0.05 * t["pt_re"]! + 5 * t["remain"]!
            return t
        case .scrub, .scrubS:
            guard let phase else { throw TrainingError.invalidArgument("SCRUB steps are forget or remain steps; pass the phase") }
            let b = try need(phase == .forget ? input.forget : input.retain, phase.rawValue)
            // Alone, the distance's gradient goes in first, as in the official step; data-parallel, after the sum.
            var dist = 0.0
            if alone { dist = try average!.distance(to: student, addingGradientTimes: s.scrubSmoothing) }
            var t = ["kd": 0.0, "CE": 0.0]
            if let p = try pass(b, role: phase == .forget ? "forget" : "retain") {
                let tc = try teacher!.forward(images: b.images, labels: b.labels)
                let kd = try Distillation.scrubKD(student: p.logits, teacher: tc.logits, classes: classes, temperature: s.scrubTemperature)
                let k = share(b)
                t["kd"] = kd.value * k
                if phase == .forget {
                    try student.backward(p, gradLogits: kd.gradient.map { -$0 * Float(k) })
                } else {
                    let cr = try CrossEntropy.mean(logits: p.logits, labels: b.labels, classes: classes)
                    let g = zip(cr.gradLogits, kd.gradient).map { Float(s.scrubGamma * k) * $0 + Float(s.scrubAlpha * k) * $1 }
                    try student.backward(p, gradLogits: g)
                    t["CE"] = cr.mean * k
                }
            }
            t = try reduced(t)
            if !alone { dist = try average!.distance(to: student, addingGradientTimes: s.scrubSmoothing) }
            let smooth = s.scrubSmoothing * dist, kd = t["kd"]!
            if phase == .forget { return ["kd_forget": kd, "total_forget": -kd + smooth, "param_dist": dist] }
            let cr = t["CE"]!
            return ["CE": cr, "kd_remain": kd, "total_remain": s.scrubGamma * cr + s.scrubAlpha * kd + smooth, "param_dist": dist]
        }
    }

    /// LIRF (spec/TRAINING.md §B.3): the deposit module is the pretrained lower half and is never optimised, so its outputs
    /// are the teacher's (§5 item 3); only the lower half trains. Returns this rank's share of each term (the caller
    /// sums them over the ranks and forms the total).
    private func lirf(
        forget f: BaselineBatch, retain r: BaselineBatch, pass: (BaselineBatch, String) throws -> FullParameterModel.Pass?,
        share: (BaselineBatch) -> Double
    ) throws -> [String: Double] {
        let s = settings, a = s.lirfAlpha, tT = s.lirfTemperature, split = lirfSplit
        let cols = s.lirfColumns ?? forgetClassCount
        let b = f.labels.count, c = student.model.config
        var terms = ["CE": 0.0, "AT": 0.0, "KP": 0.0, "pt_re": 0.0, "remain": 0.0]
        if let p = try pass(f, "forget") {
            let k = share(f)
            let t = try teacher!.forward(images: f.images, labels: f.labels, streamBlock: split)
            let ce = try CrossEntropy.mean(logits: p.logits, labels: f.labels, classes: classes)
            let at = try Distillation.attentionTransfer(
                student: student.streamEntering(split, batch: b), teacher: t.stream!,
                batch: b, tokens: c.numTokens, width: c.width)
            let kp = try Distillation.klBatchMean(student: p.logits, teacher: t.logits, classes: classes, columns: cols..<classes, temperature: tT)
            // L = (1−α)·CE − 300·AT + 10·α·T²KL + 0.05·PT_RE + 5·REPLAY (fixed weights, lirf:147-153).
            let g = zip(ce.gradLogits, kp.gradient).map { Float((1 - a) * k) * $0 + Float(10 * a * k) * $1 }
            try student.backward(p, gradLogits: g, stream: (split, at.gradient.map { Float(-300 * k) * $0 }))
            let depositCE = try CrossEntropy.mean(logits: t.logits, labels: f.labels, classes: classes).mean
            terms["CE"] = (1 - a) * ce.mean * k
            terms["AT"] = at.value * k
            terms["KP"] = a * kp.value * k
            terms["pt_re"] = (1 - a) * depositCE * k
        }
        if let p = try pass(r, "retain") {
            let replay = try CrossEntropy.mean(logits: p.logits, labels: r.labels, classes: classes)
            try student.backward(p, gradLogits: replay.gradLogits.map { Float(5 * share(r)) * $0 })
            terms["remain"] = replay.mean * share(r)
        }
        return terms
    }

    /// The optimiser step on the gradients of `computeGradients`: AdamW (decoupled decay) or, for SCRUB, Adam with
    /// the decay added to the gradient. Only trainable parameters move.
    public func applyUpdate(lr: Double) throws {
        let coupled = settings.method.isSCRUB ? Float(settings.scrubWeightDecay) : 0
        for i in student.values.indices where student.trainable[i] {
            let v = student.values[i], g = student.gradients[i]
            if coupled != 0 { for j in 0..<g.count { g.pointer[j] += coupled * v.pointer[j] } }
            try optimizer.step(
                index: i, parameter: UnsafeMutableBufferPointer(start: v.pointer, count: v.count),
                gradient: UnsafeBufferPointer(start: g.pointer, count: g.count), lr: lr)
        }
    }

    /// SCRUB's learning rate in inner epoch 15·s + i (`sgda_utils.adjust_learning_rate`): tenfold lower after the
    /// decay epoch.
    public func scrubLR(superEpoch: Int, round: Int) -> Double {
        15 * superEpoch + round > settings.scrubDecayEpoch ? settings.lr * 0.1 : settings.lr
    }
}
