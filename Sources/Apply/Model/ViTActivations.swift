import GSLoRAFormat

/// What one block's forward leaves behind. In eval mode a single instance is shared by all blocks and only the
/// buffers the forward needs are sized; in training mode every block has its own, holding what its backward
/// pass reads and cannot cheaply recompute (layer inputs, LayerNorm statistics, Q, K and V per head, the GELU
/// input, dropout masks, the LoRA down-projections x·Aᵀ). The softmax probabilities and the GELU output are
/// recomputed by the backward pass from Q, K and the GELU input, bit for bit. Rows are batch·tokens, row-major.
public final class BlockActivations {
    /// Residual stream entering the block [rows, width] (training only).
    public let input = FloatBuffer(count: 0)
    public private(set) var ln1Out = FloatBuffer(count: 0)
    public let ln1Mean = FloatBuffer(count: 0)
    public let ln1Rstd = FloatBuffer(count: 0)
    /// [rows, 3·inner]: Q | K | V, head h at columns h·headDim within each third. Kept only by a class-only last block
    /// in training, whose backward reads it; other blocks write `ViTActivations.qkv` and keep the per-head copies.
    public let qkv = FloatBuffer(count: 0)
    /// The class query's softmax probabilities [batch, heads, tokens] of a class-only last block in training.
    public let probs = FloatBuffer(count: 0)
    /// Q, K and V gathered dense per head [3][batch, heads, tokens, head_dim], float32 or bf16: the operands of
    /// attention's products (grown on first use).
    let qkvHeads = ScratchBytes()
    /// Whether the last forward's attention products ran in bf16 (the backward pass runs as the forward did).
    var attentionInBF16 = false
    /// Heads concatenated head-major [rows, inner]: the input of the output projection.
    public private(set) var attnOut = FloatBuffer(count: 0)
    /// Dropout after the attention projection, of the GELU output, and after fc2 (nil without dropout), recomputed by
    /// the backward pass.
    var attnDropout: RowDropout?
    var hiddenDropout: RowDropout?
    var fc2Dropout: RowDropout?
    /// Residual stream after the attention branch [rows, width] (training only).
    public let mid = FloatBuffer(count: 0)
    public let ln2Out = FloatBuffer(count: 0)
    public let ln2Mean = FloatBuffer(count: 0)
    public let ln2Rstd = FloatBuffer(count: 0)
    /// fc1's product x·Wᵀ [rows, mlp], then the GELU input v = fc1(x) (bias and LoRA included), which training keeps
    /// for the backward pass; in eval the GELU runs in place here.
    public let fc1Out = FloatBuffer(count: 0)
    /// Per adapter: x·Aᵀ for fc1 and fc2 [rows, rank].
    public private(set) var loraFc1: [FloatBuffer] = []
    public private(set) var loraFc2: [FloatBuffer] = []

    /// Uses `first`'s LN1 output and attention output buffers (what only weight gradients read), or own ones again.
    func share(_ first: BlockActivations?) {
        if let first {
            ln1Out = first.ln1Out
            attnOut = first.attnOut
        } else if let shared = sharedWith, ln1Out === shared.ln1Out {
            ln1Out = FloatBuffer(count: 0)
            attnOut = FloatBuffer(count: 0)
        }
        sharedWith = first
    }
    private weak var sharedWith: BlockActivations?

    /// What one block's activations hold, for `size` and `floats`.
    struct Sizes {
        /// rows = batch·tokens (`size` only runs on sizes `floats` accepted).
        let rows, batch, width, inner, mlp, tokens, heads: Int
        let ranks: [Int]
        /// Training; a class-only last block in training (which keeps its qkv rows and class-query probabilities).
        let training, classOnly: Bool
        /// Whether LN1's output and the attention output are this block's own (not shared with block 0).
        let ownsWeightInputs: Bool

        /// Floats of the buffers `size` reserves and attention's per-head copy (counted as float32; in bf16 it is
        /// half). Double, so hostile sizes saturate rather than overflow.
        var floats: Double {
            let r = Double(batch) * Double(tokens), w = Double(width), i = Double(inner), m = Double(mlp)
            let keep: Double = training ? 1 : 0, own: Double = ownsWeightInputs ? 1 : 0
            // input and mid (training); ln1Out and attnOut unless shared; ln2Out; LayerNorm statistics; fc1Out; x·Aᵀ.
            var total = 2 * r * w * keep + own * r * (w + i) + r * w + 4 * r + r * m
            total += ranks.reduce(0) { $0 + 2 * r * Double($1) }
            // A class-only last block keeps its qkv rows and class-query probabilities; the others Q | K | V per head.
            total += classOnly ? 3 * r * i + Double(batch) * Double(heads) * Double(tokens) : 3 * r * i
            return total
        }
    }

    func size(_ s: Sizes) {
        let keep = s.training ? 1 : 0, rows = s.rows, w = s.width
        input.reserve(rows * w * keep)
        ln1Out.reserve(rows * w)
        ln1Mean.reserve(rows)
        ln1Rstd.reserve(rows)
        qkv.reserve(s.classOnly ? rows * 3 * s.inner : 0)
        probs.reserve(s.classOnly ? s.batch * s.heads * s.tokens : 0)
        attnOut.reserve(rows * s.inner)
        mid.reserve(rows * w * keep)
        ln2Out.reserve(rows * w)
        ln2Mean.reserve(rows)
        ln2Rstd.reserve(rows)
        fc1Out.reserve(rows * s.mlp)
        while loraFc1.count < s.ranks.count { loraFc1.append(FloatBuffer(count: 0)); loraFc2.append(FloatBuffer(count: 0)) }
        loraFc1.removeLast(loraFc1.count - s.ranks.count)
        loraFc2.removeLast(loraFc2.count - s.ranks.count)
        for (i, r) in s.ranks.enumerated() { loraFc1[i].reserve(rows * r); loraFc2[i].reserve(rows * r) }
    }

    /// Every float buffer this block holds, shared ones included.
    var floatBuffers: [FloatBuffer] {
        [input, ln1Out, ln1Mean, ln1Rstd, qkv, probs, attnOut, mid, ln2Out, ln2Mean, ln2Rstd, fc1Out] + loraFc1 + loraFc2
    }
}

/// Everything one forward call leaves in memory, reused by the next call of the same or a smaller batch.
public final class ViTActivations {
    public private(set) var batch = 0
    public private(set) var training = false
    /// Flattened patches [batch·patches, patchDim] in the family's order ((p1 p2 c) for face, (c p1 p2) for conv).
    public let patches = FloatBuffer(count: 0)
    /// patch_embed output including bias [batch·patches, width].
    public let patchEmbed = FloatBuffer(count: 0)
    /// Class token + patch embeddings + position embeddings, before embedding dropout [batch·tokens, width].
    public let tokens = FloatBuffer(count: 0)
    /// Dropout after the embedding sum (nil without dropout).
    var tokensDropout: RowDropout?
    /// The residual stream. After the last block it holds the transformer output when `ViT.allTokensInLastBlock`
    /// is set; otherwise the last block's input (that block then runs on the class rows only, in `pooled`).
    public let stream = FloatBuffer(count: 0)
    /// Scratch for linear outputs [batch·tokens, width].
    let scratch = FloatBuffer(count: 0)
    /// The qkv rows of the block being run [batch·tokens, 3·inner] (see `BlockActivations.qkv`).
    let qkv = FloatBuffer(count: 0)
    /// Softmax probabilities of the block being run (or recomputed by the backward pass): in training
    /// [batch, heads, tokens, tokens]; in eval per worker for the class-only block, per image group otherwise.
    let probs = FloatBuffer(count: 0)
    /// In precision bf16, the probabilities rounded to bf16 (an operand of attention's products).
    let probs16 = ScratchBytes()
    /// The GELU output of the block being run (or recomputed by the backward pass): the fc2 input [rows, mlp]
    /// (training only; eval runs the GELU in place).
    public let hidden = FloatBuffer(count: 0)
    /// The current block's LoRA B factors transposed, fc1 then fc2 per adapter (see `LoRAView`).
    let loraBt = FloatBuffer(count: 0)
    public private(set) var blocks: [BlockActivations] = []
    /// Whether the last forward ran its last block on the class rows only (the backward pass follows suit).
    public private(set) var classOnlyLastBlock = false
    /// Whether every block kept the inputs of qkv and proj, which only their weight gradients read.
    public private(set) var keptWeightInputs = true
    /// Class-token rows before the final LayerNorm [batch, width], its statistics, and the embedding after it.
    public let pooled = FloatBuffer(count: 0)
    public let normMean = FloatBuffer(count: 0)
    public let normRstd = FloatBuffer(count: 0)
    public let embedding = FloatBuffer(count: 0)
    /// CosFace/ArcFace: the L2-normalised embedding [batch, width], its norms [batch], the normalised head rows
    /// [classes, width], their norms [classes], and the cosines [batch, classes].
    public let unitEmbedding = FloatBuffer(count: 0)
    public let embeddingNorm = FloatBuffer(count: 0)
    public let unitHead = FloatBuffer(count: 0)
    public let headNorm = FloatBuffer(count: 0)
    public let cosine = FloatBuffer(count: 0)

    /// Largest activation footprint accepted, in floats (16 GiB).
    static let capFloats = 1 << 32

    /// What `size` reserves for a batch, and what attention's per-head copies grow to, in floats (float32 operands;
    /// the bf16 copies of precision bf16 are not counted). Double, so hostile sizes saturate rather than overflow.
    public static func floats(
        config c: ModelConfig, batch b: Int, ranks: [Int], training: Bool, classOnlyLastBlock: Bool, keepWeightInputs: Bool = true
    ) -> Double {
        let inner = Double(c.heads * c.headDim), t = Double(c.numTokens), w = Double(c.width), batch = Double(b)
        let rows = batch * t, patches = batch * Double(c.numPatches), classes = Double(c.numClasses)
        var total = (0..<(training ? c.depth : 1)).reduce(0.0) { sum, l in
            sum
                + blockSizes(
                    c, batch: b, ranks: ranks, training: training, classOnly: classOnlyLastBlock && l == c.depth - 1,
                    ownsWeightInputs: !training || keepWeightInputs || l == 0
                ).floats
        }
        // patches, patchEmbed; tokens, stream, scratch; qkv; probabilities; hidden; LoRA Bᵀ; pooled, its statistics and the embedding.
        total += patches * (Double(c.patchDim) + w) + 3 * rows * w + 3 * rows * inner + probabilityFloats(c, batch: b, training: training)
        total += (training ? rows * Double(c.mlpWidth) : 0) + ranks.reduce(0) { $0 + Double($1) * Double(c.width + c.mlpWidth) }
        total += batch * (2 * w + 2)
        if c.head.kind != .linear { total += batch * (w + 1) + classes * (w + 1) + batch * classes }
        return total
    }

    /// The probability buffer: the whole batch in training, `evalAttentionImages` images (at least a row per worker) in eval.
    private static func probabilityFloats(_ c: ModelConfig, batch: Int, training: Bool) -> Double {
        let square = Double(c.numTokens) * Double(c.numTokens), heads = Double(c.heads)
        return training ? Double(batch) * heads * square : max(Double(Parallel.workers), Double(min(batch, ViT.evalAttentionImages)) * heads) * square
    }

    private static func blockSizes(
        _ c: ModelConfig, batch b: Int, ranks: [Int], training: Bool, classOnly: Bool, ownsWeightInputs: Bool
    ) -> BlockActivations.Sizes {
        BlockActivations.Sizes(
            rows: b &* c.numTokens, batch: b, width: c.width, inner: c.heads * c.headDim, mlp: c.mlpWidth, tokens: c.numTokens,
            heads: c.heads, ranks: ranks, training: training, classOnly: classOnly && training, ownsWeightInputs: ownsWeightInputs)
    }

    /// `classOnlyLastBlock`: the last block will run on the class rows only (and, in training, keep its qkv rows).
    func size(
        config c: ModelConfig, batch b: Int, ranks: [Int], training: Bool, classOnlyLastBlock: Bool, keepWeightInputs: Bool = true
    ) throws {
        let need = ViTActivations.floats(
            config: c, batch: b, ranks: ranks, training: training, classOnlyLastBlock: classOnlyLastBlock, keepWeightInputs: keepWeightInputs)
        guard need <= Double(ViTActivations.capFloats) else {
            throw ModelError.tooLarge("batch \(b) needs more than \(ViTActivations.capFloats * 4 >> 30) GiB of activations")
        }
        self.batch = b
        self.training = training
        let w = c.width, n = b * c.numPatches, rows = b * c.numTokens, inner = c.heads * c.headDim
        patches.reserve(n * c.patchDim)
        patchEmbed.reserve(n * w)
        tokens.reserve(rows * w)
        stream.reserve(rows * w)
        scratch.reserve(rows * w)
        qkv.reserve(rows * 3 * inner)
        probs.reserve(Int(ViTActivations.probabilityFloats(c, batch: b, training: training)))
        hidden.reserve(training ? rows * c.mlpWidth : 0)
        let count = training ? c.depth : 1
        while blocks.count < count { blocks.append(BlockActivations()) }
        blocks.removeLast(blocks.count - count)
        for (l, a) in blocks.enumerated() {
            let shares = training && !keepWeightInputs && l > 0
            a.share(shares ? blocks[0] : nil)
            a.size(
                ViTActivations.blockSizes(
                    c, batch: b, ranks: ranks, training: training, classOnly: classOnlyLastBlock && l == c.depth - 1, ownsWeightInputs: !shares))
        }
        self.classOnlyLastBlock = classOnlyLastBlock
        keptWeightInputs = !training || keepWeightInputs
        pooled.reserve(b * w)
        normMean.reserve(b)
        normRstd.reserve(b)
        embedding.reserve(b * w)
        let margin = c.head.kind != .linear
        unitEmbedding.reserve(margin ? b * w : 0)
        embeddingNorm.reserve(margin ? b : 0)
        unitHead.reserve(margin ? c.numClasses * w : 0)
        headNorm.reserve(margin ? c.numClasses : 0)
        cosine.reserve(margin ? b * c.numClasses : 0)
    }

    /// Floats these activations hold now, each buffer once however many blocks share it (bf16 copies as half floats).
    public var residentFloats: Int {
        var buffers = [patches, patchEmbed, tokens, stream, scratch, qkv, probs, hidden, loraBt, pooled, normMean, normRstd, embedding]
        buffers += [unitEmbedding, embeddingNorm, unitHead, headNorm, cosine] + blocks.flatMap(\.floatBuffers)
        var seen = Set<ObjectIdentifier>()
        let floats = buffers.reduce(0) { seen.insert(ObjectIdentifier($1)).inserted ? $0 + $1.count : $0 }
        return floats + ([probs16] + blocks.map(\.qkvHeads)).reduce(0) { $0 + $1.byteCount / 4 }
    }
}
