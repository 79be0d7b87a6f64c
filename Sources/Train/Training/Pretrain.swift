import Dispatch
import Foundation
import GSLoRACluster
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel

/// How to pre-train a face-style ViT from scratch (spec/TRAINING.md §A.10): every parameter trains, CosFace head included;
/// AdamW with no decay on tensors of ndim ≤ 1 and biases; cosine schedule with linear warm-up from `warmupLR`.
public struct PretrainOptions: Codable, Equatable, Sendable {
    public var imageSize = 112
    public var patchSize = 8
    public var channels = 3
    public var width = 512
    public var depth = 6
    public var heads = 8
    public var mlpWidth = 2048
    /// CosFace scale and margin.
    public var s = 64.0
    public var m = 0.35
    public var epochs = 10
    public var batchSize = 64
    public var lr = 6e-4
    public var minLR = 1e-5
    public var warmupEpochs = 1
    public var warmupLR = 1e-6
    public var weightDecay = 0.05
    public var dropout = 0.1
    public var seed: UInt64 = 1337
    /// Images per evaluation forward call.
    public var evalBatch = 64

    public init() {}

    /// The model these options describe, for `classes` classes (attention scale width^-0.5, as the face model).
    public func config(classes: Int) throws -> ModelConfig {
        func need(_ ok: Bool, _ option: Setting, _ why: String) throws { if !ok { throw TrainingError.badOption(option: option, problem: why) } }
        for (v, n) in [
            (imageSize, Setting("imageSize")), (patchSize, Setting("patchSize")), (channels, Setting("channels")), (width, Setting("width")),
            (depth, Setting("depth")), (heads, Setting("heads")), (mlpWidth, Setting("mlpWidth")), (epochs, Setting("epochs")),
            (batchSize, Setting("batchSize")), (evalBatch, Setting("evalBatch"))
        ] {
            try need(v >= 1 && v <= 1 << 16, n, "must lie in 1…65536 (got \(v))")
        }
        try need(imageSize % patchSize == 0, Setting("patchSize"), "\(patchSize) does not divide the image size \(imageSize)")
        try need(width % heads == 0, Setting("heads"), "\(heads) heads do not divide the width \(width)")
        try need(channels == 1 || channels == 3, Setting("channels"), "must be 1 or 3 (got \(channels))")
        try need(warmupEpochs >= 0, Setting("warmupEpochs"), "must be ≥ 0")
        try need(dropout >= 0 && dropout < 1, Setting("dropout"), "must lie in [0, 1)")
        try need(s.isFinite && s > 0, Setting("s"), "must be a finite scale > 0")
        try need(m.isFinite, Setting("m"), "must be a finite margin")
        for (v, n) in [(lr, Setting("lr")), (minLR, Setting("minLR"))] { try need(v.isFinite && v >= 0, n, "must be finite and ≥ 0") }
        guard warmupLR.isFinite && warmupLR >= 0 else {
            throw TrainingError.invalidArgument("the warm-up learning rate must be finite and ≥ 0 (got \(warmupLR))")
        }
        try need(weightDecay.isFinite && weightDecay >= 0, Setting("weightDecay"), "must be finite and ≥ 0")
        try need(classes >= 2, Setting("data"), "pre-training needs at least two classes (got \(classes))")
        return ModelConfig(
            family: .faceViT, imageSize: imageSize, patchSize: patchSize, channels: channels, width: width, depth: depth,
            heads: heads, headDim: width / heads, mlpWidth: mlpWidth, numClasses: classes,
            head: ModelConfig.Head(kind: .cosface, s: s, m: m), attentionScale: 1 / Double(width).squareRoot(),
            layerNormEps: 1e-5, qkvBias: false)
    }
}

/// Per-epoch numbers of a pre-training run.
public struct PretrainEpoch: Codable, Sendable {
    public var epoch: Int
    public var lr: Double
    public var loss: Double
    public var trainAccuracy: Double
    /// Test accuracy, plain argmax and with the margin criterion.
    public var testAccuracy: Double
    public var testAccuracyMargin: Double
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case epoch, lr, loss, trainAccuracy = "train_acc", testAccuracy = "test_acc", testAccuracyMargin = "test_acc_margin", seconds
    }
}

public struct PretrainReport: Codable, Sendable {
    public var output: String
    public var fingerprint: String
    public var parameters: Int
    public var epochs: [PretrainEpoch]
    public var seconds: Double
}

public enum PretrainEvent {
    /// 1-based step of `steps` in 0-based `epoch`.
    case step(epoch: Int, step: Int, steps: Int, loss: Double, accuracy: Double, imagesPerSecond: Double)
    case epochFinished(PretrainEpoch)
}

/// One all-parameters step: forward (train mode, margin logits), CE through the CosFace head (whose weight gradient
/// comes from the loss side), backward through every backbone parameter, AdamW on everything.
public final class PretrainStep {
    public let model: ViT
    public let head: ClassifierHead
    public let names: [String]
    public let shapes: [[Int]]
    public var optimizer: AdamW
    public let gradients: ViTGradients
    private let values: [FloatBuffer]
    private let grads: [FloatBuffer]

    public init(model: ViT, weightDecay: Double = 0.05) throws {
        guard model.adapters.isEmpty else {
            throw TrainingError.invalidArgument("the model has adapters, but pre-training trains the backbone itself; remove them")
        }
        self.model = model
        let c = model.config
        head = try ClassifierHead(c.head, classes: c.numClasses, dim: c.width)
        let layout = Self.layout(c)
        names = layout.0
        shapes = layout.1
        values = model.parameters.allBuffers
        // Loaded weights may be views of the model file; the steps write every one of them.
        values.forEach { $0.detach() }
        gradients = ViTGradients(model: model, parameters: true)
        grads = gradients.parameters!.allBuffers
        guard values.count == names.count, zip(values, shapes).allSatisfy({ $0.count == $1.reduce(1, *) }) else {
            throw TrainingError.invalidArgument("the parameter layout of this model config is not supported for pre-training")
        }
        optimizer = try AdamW(parameters: zip(names, shapes).map { ($0, $1) }, weightDecay: weightDecay)
    }

    /// Canonical names and shapes in `ViTParameters.allBuffers` order.
    static func layout(_ c: ModelConfig) -> ([String], [[Int]]) {
        var n: [String] = [], s: [[Int]] = []
        func add(_ name: String, _ shape: [Int]) { n.append(name); s.append(shape) }
        func linear(_ p: String, _ out: Int, _ inF: Int, bias: Bool = true, weightShape: [Int]? = nil) {
            add(p + ".weight", weightShape ?? [out, inF])
            if bias { add(p + ".bias", [out]) }
        }
        func norm(_ p: String) { add(p + ".weight", [c.width]); add(p + ".bias", [c.width]) }
        let w = c.width, inner = c.heads * c.headDim
        add("cls_token", [1, 1, w])
        add("pos_embed", [1, c.numTokens, w])
        linear("patch_embed", w, c.patchDim, weightShape: c.family == .faceViT ? nil : [w, c.channels, c.patchSize, c.patchSize])
        for i in 0..<c.depth {
            let b = "blocks.\(i)."
            norm(b + "norm1")
            linear(b + "attn.qkv", 3 * inner, w, bias: c.qkvBias)
            linear(b + "attn.proj", w, inner)
            norm(b + "norm2")
            linear(b + "mlp.fc1", c.mlpWidth, w)
            linear(b + "mlp.fc2", w, c.mlpWidth)
        }
        norm(c.finalNormName)
        linear("head", c.numClasses, w, bias: c.head.kind == .linear)
        return (n, s)
    }

    /// Loss, train accuracy (margin logits) and phase timings of one step; the parameters are updated in place.
    public func step(images: UnsafeBufferPointer<Float>, labels: [Int], lr: Double, dropout: Float) throws -> (
        loss: Double, accuracy: Double, timings: StepTimings
    ) {
        try step(
            images: images, labels: labels, rows: 0..<labels.count, total: labels.count, communicator: SingleProcess(), lr: lr,
            dropout: dropout)
    }

    /// One step of a data-parallel run in which this rank holds `rows` of a global batch of `total` images (all of
    /// them on one process): the CE gradient is scaled to this rank's share of the global mean, every gradient is
    /// summed over the ranks (bucketed allreduces), and every rank takes the same AdamW step. Dropout is drawn per
    /// global sample. Loss and accuracy are the global batch's. Alone, this is exactly the one-process step.
    public func step(
        images: UnsafeBufferPointer<Float>, labels: [Int], rows: Range<Int>, total: Int, communicator: Communicator,
        lr: Double, dropout: Float
    ) throws -> (loss: Double, accuracy: Double, timings: StepTimings) {
        guard labels.count == rows.count, total > 0, rows.upperBound <= total else {
            throw TrainingError.invalidArgument("\(labels.count) local labels for rows \(rows) of a batch of \(total)")
        }
        let alone = communicator.size == 1
        var timings = StepTimings()
        func timed<R>(_ slot: WritableKeyPath<StepTimings, Double>, _ body: () throws -> R) rethrows -> R {
            let t0 = DispatchTime.now().uptimeNanoseconds
            defer { timings[keyPath: slot] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
            return try body()
        }
        gradients.zero()
        // Global CE sum and correct count, summed over the ranks.
        var sums = [0.0, 0.0], local = (loss: 0.0, accuracy: 0.0)
        if !labels.isEmpty {
            if !alone { model.dropoutSamples = Array(rows) }
            defer { model.dropoutSamples = nil }
            let out = try timed(\.forward) { try model.forward(images: images, batch: labels.count, labels: labels, mode: .train(dropout: dropout)) }
            let (ce, g) = try timed(\.loss) { () throws -> (CrossEntropyResult<Float>, HeadGradients<Float>) in
                let f = try head.forward(
                    embeddings: out.embeddings, weight: model.parameters.head.weight.array,
                    bias: model.parameters.head.bias?.array, labels: labels)
                let ce = try CrossEntropy.mean(logits: f.logits, labels: labels, classes: head.classes)
                // This rank's rows' share of the global batch mean (the factor is 1 alone).
                let share = Float(Double(labels.count) / Double(total))
                return (ce, try f.backward(gradLogits: alone ? ce.gradLogits : ce.gradLogits.map { $0 * share }))
            }
            try timed(\.backward) {
                try model.backward(gradEmbeddings: g.embeddings, into: gradients)
                let hp = gradients.parameters!.head
                g.weight.withUnsafeBufferPointer { hp.weight.pointer.update(from: $0.baseAddress!, count: $0.count) }
                if let hb = hp.bias, let gb = g.bias { gb.withUnsafeBufferPointer { hb.pointer.update(from: $0.baseAddress!, count: $0.count) } }
            }
            let acc = try ForgettingMetrics.accuracy(logits: out.trainingLogits, labels: labels, classes: head.classes)
            local = (ce.mean, acc)
            sums = [ce.mean * Double(labels.count), (acc * Double(labels.count) / 100).rounded()]
        }
        if !alone {
            try communicator.allreduceSum(grads.map(\.buffer))
            try communicator.allreduceSum(&sums)
        }
        try timed(\.update) {
            for i in values.indices {
                try optimizer.step(index: i, parameter: values[i].buffer, gradient: UnsafeBufferPointer(grads[i].buffer), lr: lr)
            }
        }
        return alone ? (local.loss, local.accuracy, timings) : (sums[0] / Double(total), 100 * sums[1] / Double(total), timings)
    }

    /// The parameters as canonical float32 tensors.
    public var tensors: [Tensor] {
        zip(names, zip(shapes, values)).map { Tensor(name: $0, shape: $1.0, floats: $1.1.array) }
    }
}

/// Trains a face-style ViT from scratch on labelled images and writes it as a backbone `.gslr` (config + class
/// names): how a user makes a small model of their own. The final epoch's weights are written (no selection on the
/// test set).
public final class Pretrainer {
    public let options: PretrainOptions
    public let data: TrainData
    public let config: ModelConfig
    public var onEvent: ((PretrainEvent) -> Void)?
    /// The ranks of a data-parallel run: each computes its contiguous share of every global batch and of the test
    /// set; rank 0 alone writes the output (which every rank must see, as on a cluster's shared file system).
    public var communicator: Communicator = SingleProcess()

    public init(options: PretrainOptions, data: TrainData) throws {
        config = try options.config(classes: data.train.classNames.count)
        guard data.train.channels == options.channels, data.train.height == options.imageSize, data.train.width == options.imageSize else {
            throw TrainingError.badData(
                path: data.source,
                problem:
                    "images are \(data.train.channels)×\(data.train.height)×\(data.train.width), the model takes \(options.channels)×\(options.imageSize)×\(options.imageSize)"
            )
        }
        self.options = options
        self.data = data
    }

    public func run(output: String) throws -> PretrainReport {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let o = options
        let model = try ViT(config: config, parameters: try ViTParameters.random(config: config, seed: o.seed))
        let step = try PretrainStep(model: model, weightDecay: o.weightDecay)
        let schedule = try CosineSchedule(baseLR: o.lr, minLR: o.minLR, epochs: o.epochs, warmupEpochs: o.warmupEpochs, warmupStartLR: o.warmupLR)
        var loader = try ShuffledLoader(samples: Array(0..<data.train.count), batchSize: o.batchSize, rng: SplitMix64(seed: o.seed, stream: 1))
        let buf = FloatBuffer(count: 0)
        var labels: [Int] = []
        var epochs: [PretrainEpoch] = []
        var taken = 0
        for e in 0..<o.epochs {
            let e0 = DispatchTime.now().uptimeNanoseconds
            let lr = schedule.lr(epoch: e)
            let batches = loader.pass()
            var lossSum = 0.0, correct = 0.0, seen = 0
            for (i, b) in batches.enumerated() {
                let rows = communicator.shard(b.count)
                data.train.gather(Array(b[rows]), into: buf, labels: &labels)
                var dropoutRNG = SplitMix64(seed: o.seed, stream: 1 << 40 | UInt64(taken))
                model.dropoutSeed = dropoutRNG.next()
                let s0 = DispatchTime.now().uptimeNanoseconds
                let r = try step.step(
                    images: UnsafeBufferPointer(buf.buffer), labels: labels, rows: rows, total: b.count,
                    communicator: communicator, lr: lr, dropout: Float(o.dropout))
                taken += 1
                lossSum += r.loss * Double(b.count)
                correct += r.accuracy * Double(b.count) / 100
                seen += b.count
                onEvent?(
                    .step(
                        epoch: e, step: i + 1, steps: batches.count, loss: r.loss, accuracy: r.accuracy,
                        imagesPerSecond: Double(b.count) / (Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e9)))
            }
            let test = try accuracies(model)
            let rec = PretrainEpoch(
                epoch: e, lr: lr, loss: lossSum / Double(seen), trainAccuracy: 100 * correct / Double(seen),
                testAccuracy: test.plain, testAccuracyMargin: test.margin,
                seconds: Double(DispatchTime.now().uptimeNanoseconds - e0) / 1e9)
            epochs.append(rec)
            onEvent?(.epochFinished(rec))
        }
        var meta: [String: JSONValue] = ["gslora_pretrain": try JSONValue.from(o)]
        if let last = epochs.last { meta["gslora_pretrain_result"] = try JSONValue.from(last) }
        let header = GSLRHeader(kind: .backbone, model: config, classes: data.train.classNames, metadata: meta)
        let tensors = step.tensors
        if communicator.isRoot { try GSLRWriter.write(output, header: header, tensors: tensors) }
        try communicator.barrier()
        let written = try GSLRFile.open(output)
        return PretrainReport(
            output: output, fingerprint: written.fingerprint, parameters: tensors.reduce(0) { $0 + $1.count },
            epochs: epochs, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }

    /// Test accuracy (percent), plain argmax and margin criterion.
    func accuracies(_ model: ViT) throws -> (plain: Double, margin: Double) {
        let test = data.test
        func acc(_ margin: Bool) throws -> Double {
            let p = try test.withPixels {
                try BatchedForward.predict(
                    model, images: $0, labels: test.labels, margin: margin, batchSize: options.evalBatch,
                    communicator: communicator)
            }
            return 100 * Double(zip(p, test.labels).filter { $0 == $1 }.count) / Double(test.count)
        }
        return (try acc(false), try acc(true))
    }
}
