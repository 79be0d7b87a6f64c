import GSLoRAFormat
import GSLoRAModel

/// A ViT whose backbone parameters train (the baselines of spec/TRAINING.md §7): forward passes in train mode through the
/// student, each followed by its own backward, accumulate gradients of every parameter until `zeroGradients()`;
/// `trainable` says which parameters the optimiser updates (the CosFace weight is frozen except in Retrain).
/// Parameters are addressed by their canonical names in `ViTParameters.allBuffers` order.
public final class FullParameterModel {
    public let model: ViT
    public let head: ClassifierHead
    public let names: [String]
    public let shapes: [[Int]]
    /// The live parameter storage and its gradient, index-aligned with `names`.
    public let values: [FloatBuffer]
    public let gradients: [FloatBuffer]
    public let trainable: [Bool]
    private let holder: ViTGradients

    /// One forward pass whose backward is still to come: the student's outputs and the head's state.
    public struct Pass {
        public let output: ViTOutput
        public let head: HeadForward<Float>
        /// The margin logits on the labels passed (B×classes).
        public var logits: [Float] { head.logits }
        public var embeddings: [Float] { output.embeddings }
    }

    public init(model: ViT, trainable: (String) -> Bool) throws {
        guard model.adapters.isEmpty else {
            throw TrainingError.badOption(
                option: Setting("method"), problem: "the all-parameter methods train the backbone itself; start from a model without adapters")
        }
        let c = model.config
        guard c.head.kind != .linear else {
            throw TrainingError.badOption(
                option: Setting("method"), problem: "the baselines need a CosFace/ArcFace head (the face model's); this model has a linear head")
        }
        self.model = model
        head = try ClassifierHead(c.head, classes: c.numClasses, dim: c.width)
        let layout = PretrainStep.layout(c)
        names = layout.0
        shapes = layout.1
        values = model.parameters.allBuffers
        // Loaded weights may be views of the model file (whose tensors the run still reads); training writes them.
        values.forEach { $0.detach() }
        holder = ViTGradients(model: model, parameters: true)
        gradients = holder.parameters!.allBuffers
        guard values.count == names.count, zip(values, shapes).allSatisfy({ $0.count == $1.reduce(1, *) }) else {
            throw TrainingError.invalidArgument("the parameter layout of this model config is not supported for all-parameter training")
        }
        self.trainable = names.map(trainable)
    }

    public var headIndex: Int { names.count - (model.parameters.head.bias == nil ? 1 : 2) }

    public func index(of name: String) -> Int? { names.firstIndex(of: name) }

    public func zeroGradients() { holder.zero() }

    /// Train-mode forward of a batch with the margin on `labels`.
    public func forward(images: [Float], labels: [Int], dropout: Float) throws -> Pass {
        let out = try model.forward(images: images, batch: labels.count, labels: labels, mode: .train(dropout: dropout))
        let h = try head.forward(embeddings: out.embeddings, weight: model.parameters.head.weight.array, labels: labels)
        return Pass(output: out, head: h)
    }

    /// Adds the gradients of a loss with ∂loss/∂logits `gradLogits` and ∂loss/∂embeddings `gradEmbeddings` (either may
    /// be nil) for `pass`, which must be the last forward call of this model. `stream` injects ∂loss/∂(residual
    /// stream entering block `stream.block`) (LIRF's attention-transfer term).
    public func backward(
        _ pass: Pass, gradLogits: [Float]?, gradEmbeddings: [Float]? = nil,
        stream: (block: Int, gradient: [Float])? = nil
    ) throws {
        var gE = gradEmbeddings ?? [Float](repeating: 0, count: pass.embeddings.count)
        guard gE.count == pass.embeddings.count else { throw TrainingError.invalidShape("embedding gradient \(gE.count) for \(pass.embeddings.count) values") }
        if let gradLogits {
            let g = try pass.head.backward(gradLogits: gradLogits)
            for i in gE.indices { gE[i] += g.embeddings[i] }
            let hw = gradients[headIndex].pointer
            for (i, v) in g.weight.enumerated() { hw[i] += v }
        }
        try model.backward(gradEmbeddings: gE, into: holder, stream: stream)
    }

    /// A frozen copy of the current parameters (teachers, LIRF's deposit), dropout-free.
    public func frozenCopy() throws -> ViT {
        try ViT(config: model.config, weights: tensors)
    }

    /// Current values as canonical float32 tensors.
    public var tensors: [Tensor] {
        zip(names, zip(shapes, values)).map { Tensor(name: $0, shape: $1.0, floats: $1.1.array) }
    }

    /// Copies of the current values, index-aligned with `names`.
    public func snapshot() -> [[Float]] { values.map(\.array) }
}
