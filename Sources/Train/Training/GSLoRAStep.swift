import Dispatch
import GSLoRAModel

/// The trainable LoRA factors of a model's single adapter, in the order the official code's `named_parameters`
/// lists them (per block: fc1 A, fc1 B, fc2 A, fc2 B), under canonical names (`blocks.{i}.mlp.fc{1,2}.lora_{A,B}`).
public struct LoRAFactorList {
    public let names: [String]
    public let shapes: [[Int]]
    public let values: [FloatBuffer]

    public init(_ a: LoRAAdapter) {
        var names: [String] = [], shapes: [[Int]] = [], values: [FloatBuffer] = []
        for i in 0..<a.fc1.count {
            for (n, f) in [("fc1", a.fc1[i]), ("fc2", a.fc2[i])] {
                names += ["blocks.\(i).mlp.\(n).lora_A", "blocks.\(i).mlp.\(n).lora_B"]
                shapes += [[f.rank, f.inFeatures], [f.outFeatures, f.rank]]
                values += [f.a, f.b]
            }
        }
        self.names = names
        self.shapes = shapes
        self.values = values
    }

    /// The matching gradient buffers of `g`, same order.
    static func buffers(_ g: LoRAGradients) -> [FloatBuffer] {
        zip(g.fc1, g.fc2).flatMap { [$0.a, $0.b, $1.a, $1.b] }
    }
}

/// Wall-clock seconds of one step's phases (the backbone phases are GEMM-dominated; `loss` is the head, CE,
/// prototype and group-lasso arithmetic; `update` is AdamW).
public struct StepTimings: Sendable, Equatable {
    public var forward = 0.0
    public var backward = 0.0
    public var loss = 0.0
    public var update = 0.0
    public var total: Double { forward + backward + loss + update }
    public init() {}
}

/// What one GS-LoRA step computed.
public struct StepResult: Sendable {
    public var terms: LossTerms
    /// Top-1 accuracy (percent) on the step's retain and forget batches, on the logits `marginAccuracy` chose.
    public var retainAccuracy: Double
    public var forgetAccuracy: Double
    public var timings: StepTimings
}

/// One GS-LoRA(++) optimiser step on a model that carries exactly one (trainable) adapter (spec/TRAINING.md §A.3–A.7,
/// spec/TRAINING.md §2): the retain and forget batches forward together in train mode (labels → margin logits); on
/// the retain rows CE_r (+ w_r·K_r), on the forget rows β·relu(BND − CE_f) (+ w_f·relu(M − K_f)), each with ∂L/∂e
/// through the head; one backward into the LoRA gradients; α·T/‖g‖ added per factor; AdamW on the factors in place.
/// Each hinge acts on its own batch mean and the backbone treats rows independently, so this is exactly the
/// reference's two passes. Training, tests and the benchmark all run this.
public final class GSLoRAStep {
    public let model: ViT
    public let factors: LoRAFactorList
    public let head: ClassifierHead
    public let lasso: GroupLasso
    public let grouping: LoRAGrouping
    public var optimizer: AdamW
    /// The last computed gradient per factor (data terms + α·structure), valid after `computeGradients`.
    public let gradients: ViTGradients
    let headWeight: [Float]
    let gradBuffers: [FloatBuffer]
    /// Both batches' images, in the order the forward takes them.
    var combinedImages: [Float] = []

    public init(
        model: ViT, grouping: LoRAGrouping = .block, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
        weightDecay: Double = 0.05
    ) throws {
        guard model.adapters.count == 1, let adapter = model.adapters.first else {
            throw TrainingError.invalidArgument(
                "a GS-LoRA step trains exactly one adapter; the model carries \(model.adapters.count) (fold earlier tasks into the base first)")
        }
        self.model = model
        factors = LoRAFactorList(adapter)
        head = try ClassifierHead(model.config.head, classes: model.config.numClasses, dim: model.config.width)
        lasso = try GroupLasso(slots: try LoRASlot.parse(factors.names), grouping: grouping)
        self.grouping = grouping
        optimizer = try AdamW(
            parameters: zip(factors.names, factors.shapes).map { ($0, $1) }, beta1: beta1, beta2: beta2,
            eps: eps, weightDecay: weightDecay)
        gradients = ViTGradients(model: model, parameters: false)
        // Only LoRA's factors train: qkv's and proj's inputs need not be kept per block.
        model.keepsWeightGradientInputs = false
        gradBuffers = LoRAFactorList.buffers(gradients.lora[0])
        headWeight = model.parameters.head.weight.array
    }

    /// The current gradient of factor `i` (after `computeGradients`).
    public func gradient(_ i: Int) -> [Float] { gradBuffers[i].array }

    /// Losses and the full gradient at the current factors, without changing them. `structure` false leaves the
    /// group-lasso term out entirely (α warm-up before its start epoch, as the single-step engine does).
    /// `forgetFirst` puts the forget batch first in the combined batch (single-step few-shot with forget driving, where
    /// the reference runs its forward first); only the dropout draws and the order of summation depend on it.
    public func computeGradients(
        retainImages: UnsafeBufferPointer<Float>, retainLabels: [Int],
        forgetImages: UnsafeBufferPointer<Float>, forgetLabels: [Int],
        prototypes: PrototypeTable?, settings: ObjectiveSettings, dropout: Float,
        structure: Bool = true, forgetFirst: Bool = false, marginAccuracy: Bool = false
    ) throws -> StepResult {
        var timings = StepTimings()
        func timed<R>(_ slot: WritableKeyPath<StepTimings, Double>, _ body: () throws -> R) rethrows -> R {
            let t0 = DispatchTime.now().uptimeNanoseconds
            defer { timings[keyPath: slot] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
            return try body()
        }
        gradients.zero()
        let classes = model.config.numClasses, w = model.config.width
        // Both batches in one forward and one backward: each loss term reads only its own batch's rows, so this is the
        // two passes' arithmetic in half the calls, with products twice as tall.
        let first = forgetFirst ? (forgetImages, forgetLabels) : (retainImages, retainLabels)
        let second = forgetFirst ? (retainImages, retainLabels) : (forgetImages, forgetLabels)
        let labels = first.1 + second.1
        combinedImages.removeAll(keepingCapacity: true)
        combinedImages.append(contentsOf: first.0)
        combinedImages.append(contentsOf: second.0)
        let out = try timed(\.forward) {
            try model.forward(images: combinedImages, batch: labels.count, labels: labels, mode: .train(dropout: dropout))
        }
        let firstRows = 0..<first.1.count, secondRows = first.1.count..<labels.count
        let (forgetRows, retainRows) = forgetFirst ? (firstRows, secondRows) : (secondRows, firstRows)
        func rows<T>(_ v: [T], _ r: Range<Int>, _ width: Int) -> [T] { Array(v[(r.lowerBound * width)..<(r.upperBound * width)]) }
        let (retainLoss, forgetLoss): (BatchLoss<Float>, BatchLoss<Float>) = try timed(\.loss) {
            (
                try GSLoRAObjective.retainPart(
                    head: head, headWeight: headWeight, embeddings: rows(out.embeddings, retainRows, w),
                    labels: retainLabels, prototypes: prototypes, settings: settings),
                try GSLoRAObjective.forgetPart(
                    head: head, headWeight: headWeight, embeddings: rows(out.embeddings, forgetRows, w),
                    labels: forgetLabels, prototypes: prototypes, settings: settings)
            )
        }
        let gradEmbeddings =
            forgetFirst
            ? forgetLoss.gradEmbeddings + retainLoss.gradEmbeddings
            : retainLoss.gradEmbeddings + forgetLoss.gradEmbeddings
        try timed(\.backward) { try model.backward(gradEmbeddings: gradEmbeddings, into: gradients) }
        let logits = marginAccuracy ? out.trainingLogits : out.logits
        let r = (
            loss: retainLoss,
            accuracy: try ForgettingMetrics.accuracy(
                logits: rows(logits, retainRows, classes), labels: retainLabels,
                classes: classes)
        )
        let f = (
            loss: forgetLoss,
            accuracy: try ForgettingMetrics.accuracy(
                logits: rows(logits, forgetRows, classes), labels: forgetLabels,
                classes: classes)
        )
        let result = try timed(\.loss) { () throws -> ObjectiveResult<Float> in
            let values = factors.values.map(\.array)
            let res = try GSLoRAObjective.combine(r.loss, f.loss, lora: values, lasso: structure ? lasso : nil, settings: settings)
            if structure {
                for (g, s) in zip(gradBuffers, res.gradLoRA) {
                    s.withUnsafeBufferPointer { sp in
                        for j in 0..<g.count { g.pointer[j] += sp[j] }
                    }
                }
            }
            return res
        }
        return StepResult(terms: result.terms, retainAccuracy: r.accuracy, forgetAccuracy: f.accuracy, timings: timings)
    }

    /// AdamW on every factor with the gradients of the last `computeGradients`, in place. Returns the seconds taken.
    @discardableResult
    public func applyUpdate(lr: Double) throws -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        for (i, (v, g)) in zip(factors.values, gradBuffers).enumerated() {
            try optimizer.step(index: i, parameter: v.buffer, gradient: UnsafeBufferPointer(g.buffer), lr: lr)
        }
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// `computeGradients` then `applyUpdate`: one optimiser step.
    public func step(
        retainImages: UnsafeBufferPointer<Float>, retainLabels: [Int],
        forgetImages: UnsafeBufferPointer<Float>, forgetLabels: [Int],
        prototypes: PrototypeTable?, settings: ObjectiveSettings, lr: Double, dropout: Float,
        structure: Bool = true, forgetFirst: Bool = false, marginAccuracy: Bool = false
    ) throws -> StepResult {
        var r = try computeGradients(
            retainImages: retainImages, retainLabels: retainLabels, forgetImages: forgetImages,
            forgetLabels: forgetLabels, prototypes: prototypes, settings: settings, dropout: dropout,
            structure: structure, forgetFirst: forgetFirst, marginAccuracy: marginAccuracy)
        r.timings.update = try applyUpdate(lr: lr)
        return r
    }
}
