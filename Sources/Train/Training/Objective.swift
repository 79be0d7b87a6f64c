/// The weights of one GS-LoRA(++) objective (spec/TRAINING.md §A.3–A.5):
/// L = CE_r + β·max(0, BND − CE_f) + α·L_struct + w_f·max(0, M − K_f) + w_r·K_r.
public struct ObjectiveSettings: Sendable, Equatable {
    public var beta: Double
    /// BND, on the batch-mean forget CE.
    public var bound: Double
    public var alpha: Double
    /// w_f and M of the prototype hinge; w_f = 0 (and w_r = 0) is plain GS-LoRA.
    public var prototypeForgetWeight: Double
    public var prototypeMargin: Double
    /// w_r; 0 in every shipped script.
    public var prototypeRetainWeight: Double

    public init(
        beta: Double, bound: Double, alpha: Double, prototypeForgetWeight: Double = 0,
        prototypeMargin: Double = 18, prototypeRetainWeight: Double = 0
    ) throws {
        for (v, n) in [
            (beta, "beta"), (bound, "BND"), (alpha, "alpha"), (prototypeForgetWeight, "w_f"),
            (prototypeMargin, "prototype margin"), (prototypeRetainWeight, "w_r")
        ] where !v.isFinite || v < 0 {
            throw TrainingError.invalidArgument("\(n) must be finite and ≥ 0 (got \(v))")
        }
        self.beta = beta
        self.bound = bound
        self.alpha = alpha
        self.prototypeForgetWeight = prototypeForgetWeight
        self.prototypeMargin = prototypeMargin
        self.prototypeRetainWeight = prototypeRetainWeight
    }
}

/// The terms of one step's loss: CEs, the bounded forget term and L_struct before β and α, the weighted prototype
/// term, and the weighted total.
public struct LossTerms: Sendable {
    public var ceRetain: Double
    public var ceForget: Double
    /// max(0, BND − CE_f), before β.
    public var boundedForget: Double
    /// Whether BND − CE_f > 0, i.e. the forget term still has a gradient.
    public var boundedForgetActive: Bool
    /// L_struct before α (nil when no group lasso was given).
    public var structure: Double?
    public var groupNorms: GroupLasso.Value?
    /// K(E_f, Y_f) and K(E_r, Y_r) (nil without prototypes).
    public var klForget: Double?
    public var klRetain: Double?
    /// w_f·max(0, M − K_f) + w_r·K_r (0 without prototypes).
    public var prototypeTerm: Double
    public var total: Double
}

/// One batch's share of the objective. The objective is a sum of a retain part, a forget part and the structure
/// term, so each batch can be pushed through the model and back on its own (retain first, then forget, as the
/// official engine does), which is what a backbone that keeps only its last forward's activations needs.
public struct BatchLoss<T: TrainScalar> {
    /// Mean CE of the batch on the logits given (margin logits in training).
    public var ce: Double
    /// K(E, Y) against the prototypes (nil without prototypes).
    public var kl: Double?
    /// This batch's weighted contribution to L_total: CE_r + w_r·K_r, or β·max(0, BND − CE_f) + w_f·max(0, M − K_f).
    public var value: Double
    /// ∂(value)/∂logits, B×C.
    public var gradLogits: [T]
    /// ∂(value)/∂embeddings, B×dim. From the logits entry points: the prototype part only; from the head entry
    /// points: head and prototype parts together, i.e. what the backbone backward starts from.
    public var gradEmbeddings: [T]
    /// ∂(value)/∂head weight (head entry points only), for runs that train the head.
    public var gradHeadWeight: [T]?
}

/// The α·L_struct part.
public struct StructureLoss<T: TrainScalar> {
    public var norms: GroupLasso.Value
    /// α·L_struct.
    public var value: Double
    /// α·∂L_struct/∂T per factor, in the order given.
    public var gradLoRA: [[T]]
}

/// The loss of one (retain, forget) batch pair and its gradients with respect to everything the step moves.
public struct ObjectiveResult<T: TrainScalar> {
    public var terms: LossTerms
    public var retain: BatchLoss<T>
    public var forget: BatchLoss<T>
    /// α·∂L_struct/∂T per LoRA factor (zeros when no group lasso was given). The data terms' LoRA gradients come
    /// from the backbone backward and are added to these.
    public var gradLoRA: [[T]]
}

public enum GSLoRAObjective {
    /// CE_r + w_r·K_r from retain logits; embeddings are needed only with prototypes.
    public static func retainPart<T: TrainScalar>(
        logits: [T], labels: [Int], classes: Int, embeddings: [T] = [],
        prototypes: PrototypeTable? = nil, settings: ObjectiveSettings
    ) throws -> BatchLoss<T> {
        let ce = try CrossEntropy.mean(logits: logits, labels: labels, classes: classes)
        var loss = BatchLoss(
            ce: ce.mean, kl: nil, value: ce.mean, gradLogits: ce.gradLogits,
            gradEmbeddings: [T](repeating: 0, count: embeddings.count), gradHeadWeight: nil)
        if let prototypes {
            let k = try PrototypeDivergence.kl(embeddings: embeddings, labels: labels, prototypes: prototypes)
            loss.kl = k.value
            loss.value += settings.prototypeRetainWeight * k.value
            loss.gradEmbeddings = k.gradEmbeddings.map { T(settings.prototypeRetainWeight) * $0 }
        }
        return loss
    }

    /// β·max(0, BND − CE_f) + w_f·max(0, M − K_f) from forget logits. Both hinges act on batch means and, like
    /// PyTorch's relu, pass gradient only while their argument is > 0.
    public static func forgetPart<T: TrainScalar>(
        logits: [T], labels: [Int], classes: Int, embeddings: [T] = [],
        prototypes: PrototypeTable? = nil, settings: ObjectiveSettings
    ) throws -> BatchLoss<T> {
        let ce = try CrossEntropy.mean(logits: logits, labels: labels, classes: classes)
        let gap = settings.bound - ce.mean
        var loss = BatchLoss(
            ce: ce.mean, kl: nil, value: settings.beta * max(0, gap),
            gradLogits: gap > 0 ? ce.gradLogits.map { T(-settings.beta) * $0 } : [T](repeating: 0, count: logits.count),
            gradEmbeddings: [T](repeating: 0, count: embeddings.count), gradHeadWeight: nil)
        if let prototypes {
            let k = try PrototypeDivergence.kl(embeddings: embeddings, labels: labels, prototypes: prototypes)
            let hinge = settings.prototypeMargin - k.value
            loss.kl = k.value
            loss.value += settings.prototypeForgetWeight * max(0, hinge)
            if hinge > 0 { loss.gradEmbeddings = k.gradEmbeddings.map { T(-settings.prototypeForgetWeight) * $0 } }
        }
        return loss
    }

    /// The retain part from embeddings through the head (labels passed, so margins apply).
    public static func retainPart<T: TrainScalar>(
        head: ClassifierHead, headWeight: [T], headBias: [T]? = nil, embeddings: [T],
        labels: [Int], prototypes: PrototypeTable? = nil,
        settings: ObjectiveSettings
    ) throws -> BatchLoss<T> {
        let f = try head.forward(embeddings: embeddings, weight: headWeight, bias: headBias, labels: labels)
        let loss = try retainPart(
            logits: f.logits, labels: labels, classes: head.classes,
            embeddings: prototypes == nil ? [] : embeddings, prototypes: prototypes, settings: settings)
        return try throughHead(loss, f, hasPrototypes: prototypes != nil)
    }

    /// The forget part from embeddings through the head (labels passed, so margins apply).
    public static func forgetPart<T: TrainScalar>(
        head: ClassifierHead, headWeight: [T], headBias: [T]? = nil, embeddings: [T],
        labels: [Int], prototypes: PrototypeTable? = nil,
        settings: ObjectiveSettings
    ) throws -> BatchLoss<T> {
        let f = try head.forward(embeddings: embeddings, weight: headWeight, bias: headBias, labels: labels)
        let loss = try forgetPart(
            logits: f.logits, labels: labels, classes: head.classes,
            embeddings: prototypes == nil ? [] : embeddings, prototypes: prototypes, settings: settings)
        return try throughHead(loss, f, hasPrototypes: prototypes != nil)
    }

    private static func throughHead<T: TrainScalar>(_ loss: BatchLoss<T>, _ f: HeadForward<T>, hasPrototypes: Bool) throws -> BatchLoss<T> {
        var loss = loss
        let g = try f.backward(gradLogits: loss.gradLogits)
        loss.gradEmbeddings = hasPrototypes ? zip(g.embeddings, loss.gradEmbeddings).map { $0 + $1 } : g.embeddings
        loss.gradHeadWeight = g.weight
        return loss
    }

    /// α·L_struct and its gradient.
    public static func structurePart<T: TrainScalar>(lora: [[T]], lasso: GroupLasso, settings: ObjectiveSettings) throws -> StructureLoss<T> {
        let v = try lasso.value(lora)
        return StructureLoss(norms: v, value: settings.alpha * v.loss, gradLoRA: try lasso.gradient(lora, scale: settings.alpha))
    }

    /// The whole objective from logits the head already produced (margin logits for CosFace, as training uses them).
    /// Embeddings (B×dim) are needed only when `prototypes` is given.
    public static func evaluate<T: TrainScalar>(
        retainLogits: [T], retainLabels: [Int], forgetLogits: [T], forgetLabels: [Int], classes: Int,
        retainEmbeddings: [T] = [], forgetEmbeddings: [T] = [], prototypes: PrototypeTable? = nil,
        lora: [[T]] = [], lasso: GroupLasso? = nil, settings: ObjectiveSettings
    ) throws -> ObjectiveResult<T> {
        let r = try retainPart(
            logits: retainLogits, labels: retainLabels, classes: classes, embeddings: retainEmbeddings,
            prototypes: prototypes, settings: settings)
        let f = try forgetPart(
            logits: forgetLogits, labels: forgetLabels, classes: classes, embeddings: forgetEmbeddings,
            prototypes: prototypes, settings: settings)
        return try combine(r, f, lora: lora, lasso: lasso, settings: settings)
    }

    /// The whole objective from embeddings through the head; `retain.gradEmbeddings` and `forget.gradEmbeddings`
    /// are the full ∂L/∂e per image.
    public static func evaluate<T: TrainScalar>(
        head: ClassifierHead, headWeight: [T], headBias: [T]? = nil,
        retainEmbeddings: [T], retainLabels: [Int], forgetEmbeddings: [T], forgetLabels: [Int],
        prototypes: PrototypeTable? = nil, lora: [[T]] = [], lasso: GroupLasso? = nil, settings: ObjectiveSettings
    ) throws -> ObjectiveResult<T> {
        let r = try retainPart(
            head: head, headWeight: headWeight, headBias: headBias, embeddings: retainEmbeddings,
            labels: retainLabels, prototypes: prototypes, settings: settings)
        let f = try forgetPart(
            head: head, headWeight: headWeight, headBias: headBias, embeddings: forgetEmbeddings,
            labels: forgetLabels, prototypes: prototypes, settings: settings)
        return try combine(r, f, lora: lora, lasso: lasso, settings: settings)
    }

    /// Sums the parts into L_total = CE_r + β·max(0, BND − CE_f) + α·L_struct + L_pro and its logged terms.
    public static func combine<T: TrainScalar>(
        _ r: BatchLoss<T>, _ f: BatchLoss<T>, lora: [[T]] = [], lasso: GroupLasso? = nil,
        settings: ObjectiveSettings
    ) throws -> ObjectiveResult<T> {
        let s = try lasso.map { try structurePart(lora: lora, lasso: $0, settings: settings) }
        let bounded = max(0, settings.bound - f.ce)
        var proto = 0.0
        if let k = f.kl { proto += settings.prototypeForgetWeight * max(0, settings.prototypeMargin - k) }
        if let k = r.kl { proto += settings.prototypeRetainWeight * k }
        let terms = LossTerms(
            ceRetain: r.ce, ceForget: f.ce, boundedForget: bounded, boundedForgetActive: settings.bound - f.ce > 0,
            structure: s?.norms.loss, groupNorms: s?.norms, klForget: f.kl, klRetain: r.kl,
            prototypeTerm: proto, total: r.value + f.value + (s?.value ?? 0))
        return ObjectiveResult(
            terms: terms, retain: r, forget: f,
            gradLoRA: s?.gradLoRA ?? lora.map { [T](repeating: 0, count: $0.count) })
    }
}
