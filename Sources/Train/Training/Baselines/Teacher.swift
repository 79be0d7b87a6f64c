import GSLoRAModel

/// A frozen copy of a model (the pretrained teacher of LwF, DER(++), FDR, SCRUB and LIRF, spec/TRAINING.md §B.1). It runs
/// the student's own training path with dropout 0 — numerically eval mode — so that while student and teacher hold
/// the same weights their outputs are bit-identical and the distances between them exactly 0.
public final class Teacher {
    public let model: ViT
    public let head: ClassifierHead

    public struct Output {
        public let embeddings: [Float]
        /// Margin logits on the labels passed.
        public let logits: [Float]
        /// The residual stream entering block `streamBlock` ([B, tokens, width]), when asked for.
        public let stream: [Float]?
    }

    public init(copying student: FullParameterModel) throws {
        model = try student.frozenCopy()
        head = student.head
    }

    public func forward(images: [Float], labels: [Int], streamBlock: Int? = nil) throws -> Output {
        let out = try model.forward(images: images, batch: labels.count, labels: labels, mode: .train(dropout: 0))
        let h = try head.forward(embeddings: out.embeddings, weight: model.parameters.head.weight.array, labels: labels)
        let stream = streamBlock.map { FullParameterModel.streamEntering($0, of: model, batch: labels.count) }
        return Output(embeddings: out.embeddings, logits: h.logits, stream: stream)
    }
}

extension FullParameterModel {
    /// The residual stream entering block `block` in the last training-mode forward of `model`, all tokens.
    static func streamEntering(_ block: Int, of model: ViT, batch: Int) -> [Float] {
        let n = batch * model.config.numTokens * model.config.width
        return Array(UnsafeBufferPointer(start: model.activations.blocks[block].input.pointer, count: n))
    }

    public func streamEntering(_ block: Int, batch: Int) -> [Float] { Self.streamEntering(block, of: model, batch: batch) }
}
