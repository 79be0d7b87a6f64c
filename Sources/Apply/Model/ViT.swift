import Dispatch
import GSLoRAFormat

/// How a forward call runs. `train` keeps every block's activations for the backward pass and applies dropout
/// (GS-LoRA: p = 0.1 after the embedding sum, the attention projection, GELU and fc2); `eval` keeps only what
/// the next layer needs.
public enum ForwardMode: Equatable, Sendable {
    case eval
    case train(dropout: Float)

    var isTraining: Bool { self != .eval }
    var dropout: Float { if case .train(let p) = self { return p } else { return 0 } }
}

/// What a forward call returns, per image row-major.
public struct ViTOutput: Sendable {
    public let batch: Int
    /// The pooled row after the final LayerNorm [batch, width].
    public let embeddings: [Float]
    /// The pooled row before the final LayerNorm [batch, width]: the class-token row, or with mean pooling the mean
    /// of the patch-token rows.
    public let preNormCLS: [Float]
    /// Logits without margin [batch, classes]: s·cos for CosFace/ArcFace, e·Wᵀ + b for a linear head.
    public let logits: [Float]
    /// CosFace/ArcFace logits with the margin on each image's label column; nil without labels or for a linear head.
    public let marginLogits: [Float]?

    /// The logits a loss is computed on: with margin when there is one.
    public var trainingLogits: [Float] { marginLogits ?? logits }
}

/// A ViT backbone with its classifier head, driven only by `ModelConfig` and canonical weights
/// (face transformer, torchvision and timm layouts). LoRA adapters apply live (W untouched); `merged()`
/// folds them into a copy of the weights. Not thread-safe: one forward at a time per instance
/// (it reuses its activation buffers).
public final class ViT {
    public let config: ModelConfig
    public let parameters: ViTParameters
    /// Applied live, in order: y = x·Wᵀ + b + Σ scaling·(x·Aᵀ)·Bᵀ on each block's fc1 and fc2.
    public private(set) var adapters: [LoRAAdapter]
    /// Dropout stream for training-mode calls; reseed to reproduce a run.
    public var dropoutSeed: UInt64 = 0x6753_4C6F_5241 { didSet { dropoutCalls = 0 } }
    private var dropoutCalls: UInt64 = 0
    /// The global sample index of each image of the next training-mode calls (nil: the batch position). Dropout masks
    /// are drawn per global sample, so a batch split across data-parallel ranks drops what one process would.
    public var dropoutSamples: [Int]?
    /// Advances the dropout stream past one training-mode call (with dropout) that this process does not make: a
    /// data-parallel rank holding no rows of one of a step's batches, whose later calls must draw what one process draws.
    public func skipDropoutCall() { dropoutCalls &+= 1 }
    /// Run the last block on every token, not only on the class token. The outputs are the same either way (they
    /// read only the class row); set this to get the whole transformer output in `activations.stream`. Mean pooling
    /// reads every patch row, so its last block always runs on every token.
    public var allTokensInLastBlock = false
    /// Whether training forwards keep, per block, the inputs of qkv and proj that only their weight gradients read.
    /// A model whose weights stay frozen (GS-LoRA) turns it off: the blocks then share one buffer for each, 2 × rows ×
    /// width floats per block less, and a backward pass asking for weight gradients is refused.
    public var keepsWeightGradientInputs = true
    /// Arithmetic of the frozen linear layers' and attention's products, forward and (GS-LoRA training) backward;
    /// all-parameter training needs `.float32`. Setting it drops the bf16 weight copies, which are packed on the
    /// first bf16 call: set it again after changing weights in place.
    public var precision: MatmulPrecision = .float32 { didSet { bf16 = BF16Matmul() } }
    /// The bf16 products, packed weights and primitives of this model.
    public private(set) var bf16 = BF16Matmul()
    /// The float32 products of the frozen linear layers (dense inputs; strided ones go to OpenBLAS).
    public let f32 = F32Matmul()
    /// Attention's batched products (float32, or bf16 in precision bf16) and their primitives.
    let attentionProducts = BatchedMatmul()
    /// The buffers of the last forward call (the backward pass reads them after a training-mode call).
    public let activations = ViTActivations()
    let backwardScratch = BackwardScratch()

    public init(config: ModelConfig, parameters: ViTParameters, adapters: [LoRAAdapter] = []) throws {
        try ViTParameters.validate(config)
        self.config = config
        self.parameters = parameters
        self.adapters = []
        try setAdapters(adapters)
    }

    /// Loads canonical weights (any float dtype) for `config`; every tensor is checked by name and shape.
    public convenience init(config: ModelConfig, weights: [Tensor], adapters: [LoRAAdapter] = []) throws {
        try self.init(config: config, parameters: try ViTParameters(config: config, weights: weights), adapters: adapters)
    }

    public func setAdapters(_ list: [LoRAAdapter]) throws {
        for a in list { try a.check(against: config) }
        adapters = list
    }

    /// A model whose fc1/fc2 weights are W + Σ scaling·B·A (float32, out of place) and that has no adapters.
    /// Unchanged tensors are shared with this model.
    public func merged() throws -> ViT {
        let p = parameters
        let blocks = p.blocks.enumerated().map { i, b in
            BlockParams(
                norm1: b.norm1, qkv: b.qkv, proj: b.proj, norm2: b.norm2,
                fc1: b.fc1.merging(adapters.map { ($0.fc1[i], $0.scaling) }),
                fc2: b.fc2.merging(adapters.map { ($0.fc2[i], $0.scaling) }))
        }
        let m = try ViT(
            config: config,
            parameters: ViTParameters(
                clsToken: p.clsToken, posEmbed: p.posEmbed, patchEmbed: p.patchEmbed,
                blocks: blocks, norm: p.norm, head: p.head))
        m.dropoutSeed = dropoutSeed
        m.precision = precision
        return m
    }

    /// Runs images [batch, channels, size, size] (NCHW, float32, already preprocessed) through the model.
    /// `labels` (one per image, in 0..<classes) turn on the CosFace/ArcFace margin for `marginLogits`.
    /// In eval mode a batch runs in pieces of about `evalRows` token rows: images are independent there, the
    /// products stay tall enough for full GEMM speed, and the activations are those of a piece, not of the batch.
    public func forward(
        images: UnsafeBufferPointer<Float>, batch: Int, labels: [Int]? = nil,
        mode: ForwardMode = .eval
    ) throws -> ViTOutput {
        let c = config, piece = max(1, Self.evalRows / c.numTokens), perImage = c.channels * c.imageSize * c.imageSize
        // Anything `run` would refuse (sizes that do not match, even by overflow) goes to it whole, to be refused.
        let (need, overflow) = perImage.multipliedReportingOverflow(by: batch)
        guard !mode.isTraining, batch > piece, !overflow, images.count == need, (labels?.count ?? batch) == batch else {
            return try withPrecisionThreads { try run(images: images, batch: batch, labels: labels, mode: mode) }
        }
        var embeddings: [Float] = [], preNorm: [Float] = [], logits: [Float] = [], margin: [Float]? = labels == nil ? nil : []
        for start in stride(from: 0, to: batch, by: piece) {
            let n = min(piece, batch - start)
            let out = try withPrecisionThreads {
                try run(
                    images: UnsafeBufferPointer(rebasing: images[(start * perImage)..<((start + n) * perImage)]), batch: n,
                    labels: labels.map { Array($0[start..<(start + n)]) }, mode: mode)
            }
            embeddings += out.embeddings
            preNorm += out.preNormCLS
            logits += out.logits
            if let m = out.marginLogits { margin? += m } else { margin = nil }
        }
        return ViTOutput(batch: batch, embeddings: embeddings, preNormCLS: preNorm, logits: logits, marginLogits: margin)
    }

    /// Token rows of an eval-mode piece (`forward`).
    static let evalRows = 2048

    private func run(images: UnsafeBufferPointer<Float>, batch: Int, labels: [Int]?, mode: ForwardMode) throws -> ViTOutput {
        let c = config
        guard batch > 0 else { throw ModelError.badInput("batch is \(batch)") }
        let perImage = c.channels * c.imageSize * c.imageSize
        let (need, o) = perImage.multipliedReportingOverflow(by: batch)
        guard !o, images.count == need else {
            throw ModelError.badInput(
                "\(images.count) floats given, \(batch) images of \(c.channels)×\(c.imageSize)×\(c.imageSize) need \(o ? "too many" : "\(need)")")
        }
        if let labels {
            guard labels.count == batch else { throw ModelError.badInput("\(labels.count) labels for \(batch) images") }
            if let bad = labels.first(where: { $0 < 0 || $0 >= c.numClasses }) {
                throw ModelError.badInput("label \(bad) is outside 0..<\(c.numClasses)")
            }
        }
        let p = mode.dropout
        guard p >= 0, p < 1 else { throw ModelError.badInput("dropout probability \(p) is outside [0, 1)") }
        var dropout: Dropout? = nil
        if p > 0 {
            dropoutCalls &+= 1
            dropout = Dropout(probability: p, seed: dropoutSeed &+ dropoutCalls &* 0x9E37_79B9_7F4A_7C15)
            if let samples = dropoutSamples {
                guard samples.count == batch else { throw ModelError.badInput("\(samples.count) dropout sample indices for \(batch) images") }
                dropout?.samples = samples
            }
        }
        let acts = activations
        try acts.size(
            config: c, batch: batch, ranks: adapters.map(\.rank), training: mode.isTraining,
            classOnlyLastBlock: !allTokensInLastBlock && c.pooling == "cls", keepWeightInputs: keepsWeightGradientInputs)

        try embed(images.baseAddress!, batch: batch, into: acts, dropout: &dropout)
        for l in 0..<c.depth {
            let a = acts.blocks[mode.isTraining ? l : 0]
            if l == c.depth - 1 && acts.classOnlyLastBlock {
                try classBlock(l, batch: batch, acts: acts, a: a, dropout: &dropout)
            } else {
                try block(l, batch: batch, acts: acts, a: a, dropout: &dropout)
            }
        }
        let pooled = pool(batch: batch, acts: acts)
        let (logits, margin) = head(batch: batch, labels: labels, acts: acts)
        return ViTOutput(batch: batch, embeddings: acts.embedding.array, preNormCLS: pooled, logits: logits, marginLogits: margin)
    }

    public func forward(images: [Float], batch: Int, labels: [Int]? = nil, mode: ForwardMode = .eval) throws -> ViTOutput {
        try images.withUnsafeBufferPointer { try forward(images: $0, batch: batch, labels: labels, mode: mode) }
    }

    // MARK: - stages

    /// Patchify, patch embedding, class token, position embedding, embedding dropout → the residual stream.
    private func embed(_ images: UnsafePointer<Float>, batch: Int, into acts: ViTActivations, dropout: inout Dropout?) throws {
        let c = config, w = c.width, t = c.numTokens, n = c.numPatches
        Patchify.run(config: c, images: images, batch: batch, out: acts.patches.pointer)
        let pe = parameters.patchEmbed
        try frozenProduct(
            pe.weight, outF: w, inF: c.patchDim, input: acts.patches.pointer, lda: c.patchDim, rows: batch * n,
            out: acts.patchEmbed.pointer, ldc: w)
        if let bias = pe.bias { Kernels.addBias(acts.patchEmbed.pointer, rows: batch * n, cols: w, bias: bias.pointer) }
        let tok = acts.tokens.pointer, pos = parameters.posEmbed.pointer, cls = parameters.clsToken.pointer
        for b in 0..<batch {
            let dst = tok + b * t * w
            for j in 0..<w { dst[j] = cls[j] + pos[j] }
            let src = acts.patchEmbed.pointer + b * n * w
            for i in 0..<(n * w) { dst[w + i] = src[i] + pos[w + i] }
        }
        acts.stream.pointer.update(from: tok, count: batch * t * w)
        acts.tokensDropout = dropout?.nextRows(rowStride: w, rowsPerSample: t)
        if let mask = acts.tokensDropout { Kernels.applyDropout(acts.stream.pointer, rows: batch * t, cols: w, mask) }
    }

    private func block(_ l: Int, batch: Int, acts: ViTActivations, a: BlockActivations, dropout: inout Dropout?) throws {
        let c = config, w = c.width, rows = batch * c.numTokens, inner = c.heads * c.headDim, m = c.mlpWidth
        let prm = parameters.blocks[l], x = acts.stream.pointer, eps = Float(c.layerNormEps)
        let training = acts.training
        if training { a.input.pointer.update(from: x, count: rows * w) }

        // Attention branch: x += Dropout(Proj(Attn(LN1(x)))).
        let ln1Rounded = roundedInputSlot(rows: rows, cols: w)
        Kernels.layerNorm(
            x, rows: rows, cols: w, gamma: prm.norm1.weight.pointer, beta: prm.norm1.bias.pointer, eps: eps,
            out: a.ln1Out.pointer, mean: a.ln1Mean.pointer, rstd: a.ln1Rstd.pointer, rounded: ln1Rounded)
        let qkv = acts.qkv.pointer
        try apply(prm.qkv, a.ln1Out.pointer, rows: rows, out: qkv, inputRounded: ln1Rounded != nil)
        if let bias = prm.qkv.bias { Kernels.addBias(qkv, rows: rows, cols: 3 * inner, bias: bias.pointer) }
        try attention(qkv, batch: batch, a: a)
        try apply(prm.proj, a.attnOut.pointer, rows: rows, out: acts.scratch.pointer)
        a.attnDropout = dropout?.nextRows(rowStride: w, rowsPerSample: c.numTokens)
        Kernels.residualAdd(x, acts.scratch.pointer, rows: rows, cols: w, bias: prm.proj.bias?.pointer, mask: a.attnDropout)
        if training { a.mid.pointer.update(from: x, count: rows * w) }

        // FFN branch: x += Dropout(fc2(Dropout(GELU(fc1(LN2(x)))))), LoRA live on fc1 and fc2.
        let fc2Lora = try ffn(l, x, a: a, rows: rows, dropout: &dropout, maskRowStride: m)
        a.fc2Dropout = dropout?.nextRows(rowStride: w, rowsPerSample: c.numTokens)
        Kernels.residualAdd(x, acts.scratch.pointer, rows: rows, cols: w, bias: prm.fc2.bias?.pointer, mask: a.fc2Dropout, lora: fc2Lora)
    }

    /// LN2 of the stream rows x [rows, width] into `a.ln2Out`, fc1 with its LoRA, bias, GELU and dropout, then fc2's
    /// product into `activations.scratch`; returns fc2's LoRA, whose up-projection the residual add applies with fc2's
    /// bias and dropout. The hidden mask element of row r is drawn at r·maskRowStride + column. Training keeps the
    /// GELU input in `a.fc1Out` and the mask in `a.hiddenDropout`, from which the backward pass recomputes the rest.
    private func ffn(
        _ l: Int, _ x: UnsafePointer<Float>, a: BlockActivations, rows: Int, dropout: inout Dropout?,
        maskRowStride: Int
    ) throws -> [LoRAView] {
        let c = config, w = c.width, m = c.mlpWidth, prm = parameters.blocks[l], training = activations.training
        let ln2Rounded = roundedInputSlot(rows: rows, cols: w)
        Kernels.layerNorm(
            x, rows: rows, cols: w, gamma: prm.norm2.weight.pointer, beta: prm.norm2.bias.pointer, eps: Float(c.layerNormEps),
            out: a.ln2Out.pointer, mean: a.ln2Mean.pointer, rstd: a.ln2Rstd.pointer, rounded: ln2Rounded)
        let lora = loraViews(l, a: a)
        try frozenProduct(
            prm.fc1.weight, outF: m, inF: w, input: a.ln2Out.pointer, lda: w, rows: rows, out: a.fc1Out.pointer, ldc: m,
            inputRounded: ln2Rounded != nil)
        LoRAKernels.down(a.ln2Out.pointer, ldx: w, rows: rows, cols: w, lora.fc1)
        let hidden = training ? activations.hidden.pointer : a.fc1Out.pointer
        let mask = dropout?.nextRows(rowStride: maskRowStride, rowsPerSample: maskRowStride == m ? c.numTokens : 1)
        a.hiddenDropout = mask
        let hiddenRounded = roundedInputSlot(rows: rows, cols: m)
        LoRAKernels.ffnMiddle(
            a.fc1Out.pointer, rows: rows, cols: m, bias: prm.fc1.bias?.pointer, fc1: lora.fc1, mask: mask,
            hidden: hidden, fc2: lora.fc2, rounded: hiddenRounded)
        try frozenProduct(
            prm.fc2.weight, outF: w, inF: m, input: hidden, lda: m, rows: rows, out: activations.scratch.pointer, ldc: w,
            inputRounded: hiddenRounded != nil)
        return lora.fc2
    }

    /// The last block for the class token only: every token's K and V (the class query attends to them all), the class
    /// rows' Q, attention, projection and FFN. The class rows of the stream are packed into `acts.pooled` [batch, width]
    /// and finished there; from `mid` on, this block's activations hold class rows only, and its dropout masks are the
    /// class rows of masks over every token (what the all-token path draws). Attention probabilities are [batch, heads,
    /// tokens]. In training the qkv rows stay in `a.qkv` for the backward pass.
    private func classBlock(_ l: Int, batch: Int, acts: ViTActivations, a: BlockActivations, dropout: inout Dropout?) throws {
        let c = config, w = c.width, t = c.numTokens, rows = batch * t, inner = c.heads * c.headDim, ld = 3 * inner
        let prm = parameters.blocks[l], x = acts.stream.pointer, eps = Float(c.layerNormEps), m = c.mlpWidth
        if acts.training { a.input.pointer.update(from: x, count: rows * w) }

        let ln1Rounded = roundedInputSlot(rows: rows, cols: w)
        Kernels.layerNorm(
            x, rows: rows, cols: w, gamma: prm.norm1.weight.pointer, beta: prm.norm1.bias.pointer, eps: eps,
            out: a.ln1Out.pointer, mean: a.ln1Mean.pointer, rstd: a.ln1Rstd.pointer, rounded: ln1Rounded)
        let wq = prm.qkv.weight, qkv = (acts.training ? a.qkv : acts.qkv).pointer
        try frozenProduct(
            wq, firstRow: inner, outF: 2 * inner, inF: w, input: a.ln1Out.pointer, lda: w, rows: rows,
            out: qkv + inner, ldc: ld, inputRounded: ln1Rounded != nil)
        try frozenProduct(wq, outF: inner, inF: w, input: a.ln1Out.pointer, lda: t * w, rows: batch, out: qkv, ldc: t * ld)
        if let bias = prm.qkv.bias {
            Kernels.addBias(qkv + inner, rows: rows, cols: 2 * inner, ld: ld, bias: bias.pointer + inner)
            Kernels.addBias(qkv, rows: batch, cols: inner, ld: t * ld, bias: bias.pointer)
        }
        classAttention(qkv, batch: batch, a: a)
        try apply(prm.proj, a.attnOut.pointer, rows: batch, out: acts.scratch.pointer)
        let xc = acts.pooled.pointer
        for b in 0..<batch { (xc + b * w).update(from: x + b * t * w, count: w) }
        a.attnDropout = dropout?.nextRows(rowStride: t * w, rowsPerSample: 1)
        Kernels.residualAdd(xc, acts.scratch.pointer, rows: batch, cols: w, bias: prm.proj.bias?.pointer, mask: a.attnDropout)
        if acts.training { a.mid.pointer.update(from: xc, count: batch * w) }

        let fc2Lora = try ffn(l, xc, a: a, rows: batch, dropout: &dropout, maskRowStride: t * m)
        a.fc2Dropout = dropout?.nextRows(rowStride: t * w, rowsPerSample: 1)
        Kernels.residualAdd(xc, acts.scratch.pointer, rows: batch, cols: w, bias: prm.fc2.bias?.pointer, mask: a.fc2Dropout, lora: fc2Lora)
    }

    /// out = input·Wᵀ for a frozen linear layer; no bias: callers fuse it into the next elementwise pass.
    private func apply(
        _ layer: Linear, _ input: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>,
        inputRounded: Bool = false
    ) throws {
        try frozenProduct(
            layer.weight, outF: layer.outFeatures, inF: layer.inFeatures, input: input, lda: layer.inFeatures,
            rows: rows, out: out, ldc: layer.outFeatures, inputRounded: inputRounded)
    }

    /// The class query of one image and head against every token of the qkv rows: s = scale·q·Kᵀ, softmax, o = s·V, written packed
    /// [batch, inner] into attnOut. Vector work, so plain SIMD loops rather than BLAS calls.
    private func classAttention(_ qkvRows: UnsafeMutablePointer<Float>, batch: Int, a: BlockActivations) {
        let c = config, t = c.numTokens, hd = c.headDim, heads = c.heads, inner = heads * hd, ld = 3 * inner
        let scale = Float(c.attentionScale), jobs = batch * heads
        let qkv = SendablePointer(qkvRows), out = SendablePointer(a.attnOut.pointer)
        // Training keeps every (image, head)'s probabilities for the backward pass; eval needs one row per worker.
        let keepAll = activations.training, probs = SendablePointer((keepAll ? a.probs : activations.probs).pointer)
        Parallel.jobs(jobs) { job, worker in
            let b = job / heads, h = job % heads
            let q = qkv.p + b * t * ld + h * hd
            let s = probs.p + (keepAll ? job : worker) * t
            for j in 0..<t { s[j] = scale * Kernels.dot(q, q + j * ld + inner, hd) }
            Kernels.softmaxRows(s, rows: 1, cols: t)
            let o = out.p + b * inner + h * hd
            o.update(repeating: 0, count: hd)
            for j in 0..<t {
                let v = q + j * ld + 2 * inner, pj = s[j]
                for d in 0..<hd { o[d] += pj * v[d] }
            }
        }
    }

    /// The pooled rows (the class-token row, or with mean pooling the mean of the patch-token rows) and the final
    /// LayerNorm; returns the pre-norm rows. After a class-only last block `pooled` holds them already.
    private func pool(batch: Int, acts: ViTActivations) -> [Float] {
        let c = config, w = c.width, t = c.numTokens
        if c.pooling == "avg" {
            let scale = 1 / Float(t - 1)
            for b in 0..<batch {
                let dst = acts.pooled.pointer + b * w, rows = acts.stream.pointer + b * t * w
                dst.update(repeating: 0, count: w)
                Kernels.addColumnSums(rows + w, rows: t - 1, cols: w, into: dst)
                for j in 0..<w { dst[j] *= scale }
            }
        } else if !acts.classOnlyLastBlock {
            for b in 0..<batch { (acts.pooled.pointer + b * w).update(from: acts.stream.pointer + b * t * w, count: w) }
        }
        Kernels.layerNorm(
            acts.pooled.pointer, rows: batch, cols: w, gamma: parameters.norm.weight.pointer,
            beta: parameters.norm.bias.pointer, eps: Float(c.layerNormEps), out: acts.embedding.pointer,
            mean: acts.normMean.pointer, rstd: acts.normRstd.pointer)
        return acts.pooled.array
    }
}
