import Apply
import Foundation

/// A batch of images (NCHW float32) with the labels the method trains on (for relabelled forget data, the rewritten
/// ones; spec/TRAINING.md §B.1).
public struct BaselineBatch: Sendable {
    public var images: [Float]
    public var labels: [Int]
    public init(images: [Float], labels: [Int]) { self.images = images; self.labels = labels }
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
            guard depth >= 2 else { throw TrainerError.badOption(option: "--method", problem: "LIRF splits the model in two halves and needs depth ≥ 2 (got \(depth))") }
            let s = settings.lirfColumns ?? forgetClassCount
            guard s >= 1, s < model.config.numClasses else {
                throw TrainerError.badOption(option: "--lirf-columns", problem: "must lie in 1..<\(model.config.numClasses) (got \(s))")
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
        optimizer = try AdamW(parameters: zip(student.names, student.shapes).map { ($0, $1) },
                              weightDecay: settings.method.isSCRUB ? 0 : settings.weightDecay)
    }

    /// Computes the loss terms and gradients of one step (no update). SCRUB methods need `phase`.
    public func computeGradients(_ input: BaselineInput, phase: SCRUBPhase? = nil, dropout: Float) throws -> [String: Double] {
        student.zeroGradients()
        lastCorrect = [:]
        let s = settings
        func need(_ b: BaselineBatch?, _ what: String) throws -> BaselineBatch {
            guard let b, !b.labels.isEmpty else { throw TrainError.emptySet("\(s.method.rawValue) needs a \(what) batch") }
            return b
        }
        /// CE of a fresh student pass, its gradient scaled by `weight` added; returns (CE, pass).
        func ce(_ b: BaselineBatch, weight: Double, role: String) throws -> Double {
            let pass = try student.forward(images: b.images, labels: b.labels, dropout: dropout)
            record(role, pass, b.labels)
            let r = try CrossEntropy.mean(logits: pass.logits, labels: b.labels, classes: classes)
            if weight != 0 { try student.backward(pass, gradLogits: r.gradLogits.map { $0 * Float(weight) }) }
            return r.mean
        }
        switch s.method {
        case .finetune, .l2, .ewc, .mas, .retrain:
            let c = try ce(try need(input.joint, s.method == .retrain ? "retain" : "forget+retain"), weight: 1, role: "joint")
            let reg = try penalty.apply(to: student)
            return ["CE": c, "regularization": reg, "total": c + reg]
        case .lwf:
            let cf = try ce(try need(input.forget, "forget"), weight: 1, role: "forget")
            let r = try need(input.retain, "retain")
            let pass = try student.forward(images: r.images, labels: r.labels, dropout: dropout)
            record("retain", pass, r.labels)
            let cr = try CrossEntropy.mean(logits: pass.logits, labels: r.labels, classes: classes)
            let kd: LossGradient
            if s.lwfIntendedKD {
                let t = try teacher!.forward(images: r.images, labels: r.labels)
                kd = try Distillation.lwfIntended(student: pass.logits, teacher: t.logits, classes: classes, temperature: s.lwfTemperature)
            } else {
                kd = Distillation.lwfOfficial(student: pass.logits, classes: classes)
            }
            let g = zip(cr.gradLogits, kd.gradient).map { Float(s.lwfLambdaRemain) * $0 + Float(s.lwfLambdaKD) * $1 }
            try student.backward(pass, gradLogits: g)
            return ["CE": cf, "KD": kd.value, "remain": cr.mean, "total": cf + s.lwfLambdaKD * kd.value + s.lwfLambdaRemain * cr.mean]
        case .der, .derpp:
            let cf = try ce(try need(input.forget, "forget"), weight: 1, role: "forget")
            let r = try need(input.retain, "retain")
            let t = try teacher!.forward(images: r.images, labels: r.labels)
            let pass = try student.forward(images: r.images, labels: r.labels, dropout: dropout)
            record("retain", pass, r.labels)
            let der = try Distillation.der(student: pass.embeddings, teacher: t.embeddings)
            try student.backward(pass, gradLogits: nil, gradEmbeddings: der.gradient.map { $0 * Float(s.lambda) })
            var terms = ["CE": cf, "DER": der.value]
            var total = cf + s.lambda * der.value
            if s.method == .derpp {
                let next = try ce(try need(input.next, "second retain"), weight: s.lambdaPlus, role: "next")
                terms["CE_next"] = next
                total += s.lambdaPlus * next
            }
            terms["total"] = total
            return terms
        case .fdr:
            let cf = try ce(try need(input.forget, "forget"), weight: 1, role: "forget")
            let r = try need(input.retain, "retain")
            let t = try teacher!.forward(images: r.images, labels: r.labels)
            let pass = try student.forward(images: r.images, labels: r.labels, dropout: dropout)
            record("retain", pass, r.labels)
            let fdr = try Distillation.fdr(student: pass.logits, teacher: t.logits, classes: classes)
            try student.backward(pass, gradLogits: fdr.gradient.map { $0 * Float(s.lambda) })
            return ["CE": cf, "FDR": fdr.value, "total": cf + s.lambda * fdr.value]
        case .lirf:
            return try lirf(forget: try need(input.forget, "forget"), retain: try need(input.retain, "retain"), dropout: dropout)
        case .scrub, .scrubS:
            guard let phase else { throw TrainError.invalidArgument("SCRUB steps are forget or remain steps; pass the phase") }
            let b = try need(phase == .forget ? input.forget : input.retain, phase.rawValue)
            let t = try teacher!.forward(images: b.images, labels: b.labels)
            let pass = try student.forward(images: b.images, labels: b.labels, dropout: dropout)
            record(phase == .forget ? "forget" : "retain", pass, b.labels)
            let kd = try Distillation.scrubKD(student: pass.logits, teacher: t.logits, classes: classes, temperature: s.scrubTemperature)
            let dist = try average!.distance(to: student, addingGradientTimes: s.scrubSmoothing)
            let smooth = s.scrubSmoothing * dist
            if phase == .forget {
                try student.backward(pass, gradLogits: kd.gradient.map { -$0 })
                return ["kd_forget": kd.value, "total_forget": -kd.value + smooth, "param_dist": dist]
            }
            let cr = try CrossEntropy.mean(logits: pass.logits, labels: b.labels, classes: classes)
            let g = zip(cr.gradLogits, kd.gradient).map { Float(s.scrubGamma) * $0 + Float(s.scrubAlpha) * $1 }
            try student.backward(pass, gradLogits: g)
            return ["CE": cr.mean, "kd_remain": kd.value, "total_remain": s.scrubGamma * cr.mean + s.scrubAlpha * kd.value + smooth,
                    "param_dist": dist]
        }
    }

    /// LIRF (spec/TRAINING.md §B.3): the deposit module is the pretrained lower half and is never optimised, so its outputs
    /// are the teacher's (§5 item 3); only the lower half trains.
    private func lirf(forget f: BaselineBatch, retain r: BaselineBatch, dropout: Float) throws -> [String: Double] {
        let s = settings, a = s.lirfAlpha, tT = s.lirfTemperature, split = lirfSplit
        let cols = s.lirfColumns ?? forgetClassCount
        let b = f.labels.count, c = student.model.config
        let t = try teacher!.forward(images: f.images, labels: f.labels, streamBlock: split)
        let pass = try student.forward(images: f.images, labels: f.labels, dropout: dropout)
        record("forget", pass, f.labels)
        let ce = try CrossEntropy.mean(logits: pass.logits, labels: f.labels, classes: classes)
        let at = try Distillation.attentionTransfer(student: student.streamEntering(split, batch: b), teacher: t.stream!,
                                                    batch: b, tokens: c.numTokens, width: c.width)
        let kp = try Distillation.klBatchMean(student: pass.logits, teacher: t.logits, classes: classes, columns: cols..<classes, temperature: tT)
        // L = (1−α)·CE − 300·AT + 10·α·T²KL + 0.05·PT_RE + 5·REPLAY (fixed weights, lirf:147-153).
        let g = zip(ce.gradLogits, kp.gradient).map { Float(1 - a) * $0 + Float(10 * a) * $1 }
        try student.backward(pass, gradLogits: g, stream: (split, at.gradient.map { -300 * $0 }))
        let depositCE = try CrossEntropy.mean(logits: t.logits, labels: f.labels, classes: classes).mean
        let ptRE = (1 - a) * depositCE
        let replayPass = try student.forward(images: r.images, labels: r.labels, dropout: dropout)
        record("retain", replayPass, r.labels)
        let replay = try CrossEntropy.mean(logits: replayPass.logits, labels: r.labels, classes: classes)
        try student.backward(replayPass, gradLogits: replay.gradLogits.map { 5 * $0 })
        let ceTerm = (1 - a) * ce.mean, kpTerm = a * kp.value
        return ["CE": ceTerm, "AT": at.value, "KP": kpTerm, "pt_re": ptRE, "remain": replay.mean,
                "total": ceTerm - 300 * at.value + 10 * kpTerm + 0.05 * ptRE + 5 * replay.mean]
    }

    /// The optimiser step on the gradients of `computeGradients`: AdamW (decoupled decay) or, for SCRUB, Adam with
    /// the decay added to the gradient. Only trainable parameters move.
    public func applyUpdate(lr: Double) throws {
        let coupled = settings.method.isSCRUB ? Float(settings.scrubWeightDecay) : 0
        for i in student.values.indices where student.trainable[i] {
            let v = student.values[i], g = student.gradients[i]
            if coupled != 0 { for j in 0..<g.count { g.pointer[j] += coupled * v.pointer[j] } }
            try optimizer.step(index: i, parameter: UnsafeMutableBufferPointer(start: v.pointer, count: v.count),
                               gradient: UnsafeBufferPointer(start: g.pointer, count: g.count), lr: lr)
        }
    }

    /// SCRUB's learning rate in inner epoch 15·s + i (`sgda_utils.adjust_learning_rate`): tenfold lower after the
    /// decay epoch.
    public func scrubLR(superEpoch: Int, round: Int) -> Double {
        15 * superEpoch + round > settings.scrubDecayEpoch ? settings.lr * 0.1 : settings.lr
    }
}
