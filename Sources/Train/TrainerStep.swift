import Apply
import Dispatch
import Format

/// The trainable LoRA factors of a model's single adapter, in the order the official code's `named_parameters`
/// lists them (per block: fc1 A, fc1 B, fc2 A, fc2 B), under canonical names (`blocks.{i}.mlp.fc{1,2}.lora_{A,B}`).
public struct LoRAFactorList: @unchecked Sendable {
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

/// One GS-LoRA(++) optimiser step on a model that carries exactly one (trainable) adapter (GSLORA.md §§3–7,
/// spec/TRAINING.md §2): the retain batch forward in train mode (labels → margin logits), CE_r (+ w_r·K_r) and
/// ∂L/∂e through the head, backward into the LoRA gradients; the forget batch the same way with β·relu(BND − CE_f)
/// (+ w_f·relu(M − K_f)); α·T/‖g‖ added per factor; AdamW on the factors in place. Each hinge acts on its own batch
/// mean, so running the batches one after the other is exact. Training, tests and the benchmark all run this.
public final class GSLoRAStep {
    public let model: ViT
    public let factors: LoRAFactorList
    public let head: ClassifierHead
    public let lasso: GroupLasso
    public let grouping: LoRAGrouping
    public var optimizer: AdamW
    /// The last computed gradient per factor (data terms + α·structure), valid after `computeGradients`.
    public let gradients: ViTGradients
    private let headWeight: [Float]
    private let gradBuffers: [FloatBuffer]

    public init(model: ViT, grouping: LoRAGrouping = .block, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0.05) throws {
        guard model.adapters.count == 1, let adapter = model.adapters.first else {
            throw TrainError.invalidArgument("a GS-LoRA step trains exactly one adapter; the model carries \(model.adapters.count) (fold earlier tasks into the base first)")
        }
        self.model = model
        factors = LoRAFactorList(adapter)
        head = try ClassifierHead(model.config.head, classes: model.config.numClasses, dim: model.config.width)
        lasso = try GroupLasso(slots: try LoRASlot.parse(factors.names), grouping: grouping)
        self.grouping = grouping
        optimizer = try AdamW(parameters: zip(factors.names, factors.shapes).map { ($0, $1) }, beta1: beta1, beta2: beta2,
                              eps: eps, weightDecay: weightDecay)
        gradients = ViTGradients(model: model, parameters: false)
        gradBuffers = LoRAFactorList.buffers(gradients.lora[0])
        headWeight = model.parameters.head.weight.array
    }

    /// The current gradient of factor `i` (after `computeGradients`).
    public func gradient(_ i: Int) -> [Float] { gradBuffers[i].array }

    /// Losses and the full gradient at the current factors, without changing them. `structure` false leaves the
    /// group-lasso term out entirely (α warm-up before its start epoch, as the single-step engine does).
    /// `forgetFirst` runs the forget batch's forward/backward first (single-step few-shot with forget driving).
    public func computeGradients(retainImages: UnsafeBufferPointer<Float>, retainLabels: [Int],
                                 forgetImages: UnsafeBufferPointer<Float>, forgetLabels: [Int],
                                 prototypes: PrototypeTable?, settings: ObjectiveSettings, dropout: Float,
                                 structure: Bool = true, forgetFirst: Bool = false, marginAccuracy: Bool = false) throws -> StepResult {
        var timings = StepTimings()
        func timed<R>(_ slot: WritableKeyPath<StepTimings, Double>, _ body: () throws -> R) rethrows -> R {
            let t0 = DispatchTime.now().uptimeNanoseconds
            defer { timings[keyPath: slot] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
            return try body()
        }
        gradients.zero()
        let mode = ForwardMode.train(dropout: dropout)
        let classes = model.config.numClasses
        var parts: [Bool: (loss: BatchLoss<Float>, accuracy: Double)] = [:]
        for isForget in forgetFirst ? [true, false] : [false, true] {
            let images = isForget ? forgetImages : retainImages, labels = isForget ? forgetLabels : retainLabels
            let out = try timed(\.forward) { try model.forward(images: images, batch: labels.count, labels: labels, mode: mode) }
            let loss: BatchLoss<Float> = try timed(\.loss) {
                isForget
                    ? try GSLoRAObjective.forgetPart(head: head, headWeight: headWeight, embeddings: out.embeddings, labels: labels,
                                                     prototypes: prototypes, settings: settings)
                    : try GSLoRAObjective.retainPart(head: head, headWeight: headWeight, embeddings: out.embeddings, labels: labels,
                                                     prototypes: prototypes, settings: settings)
            }
            try timed(\.backward) { try model.backward(gradEmbeddings: loss.gradEmbeddings, into: gradients) }
            let acc = try ForgettingMetrics.accuracy(logits: marginAccuracy ? out.trainingLogits : out.logits, labels: labels, classes: classes)
            parts[isForget] = (loss, acc)
        }
        let r = parts[false]!, f = parts[true]!
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
    public func step(retainImages: UnsafeBufferPointer<Float>, retainLabels: [Int],
                     forgetImages: UnsafeBufferPointer<Float>, forgetLabels: [Int],
                     prototypes: PrototypeTable?, settings: ObjectiveSettings, lr: Double, dropout: Float,
                     structure: Bool = true, forgetFirst: Bool = false, marginAccuracy: Bool = false) throws -> StepResult {
        var r = try computeGradients(retainImages: retainImages, retainLabels: retainLabels, forgetImages: forgetImages,
                                     forgetLabels: forgetLabels, prototypes: prototypes, settings: settings, dropout: dropout,
                                     structure: structure, forgetFirst: forgetFirst, marginAccuracy: marginAccuracy)
        r.timings.update = try applyUpdate(lr: lr)
        return r
    }
}
