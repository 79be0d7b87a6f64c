import GSLoRAFormat

/// What one block's forward leaves behind. In eval mode a single instance is shared by all blocks and only the
/// buffers the forward needs are sized; in training mode every block has its own, holding what its backward
/// pass reads (layer inputs, LayerNorm statistics, attention probabilities, GELU inputs, dropout masks,
/// the LoRA down-projections x·Aᵀ). Rows are batch·tokens, row-major.
public final class BlockActivations {
    /// Residual stream entering the block [rows, width] (training only).
    public let input = FloatBuffer(count: 0)
    public private(set) var ln1Out = FloatBuffer(count: 0)
    public let ln1Mean = FloatBuffer(count: 0)
    public let ln1Rstd = FloatBuffer(count: 0)
    /// [rows, 3·inner]: Q | K | V, head h at columns h·headDim within each third. Kept only by a class-only last block
    /// in training, whose backward reads it; other blocks write `ViTActivations.qkv` and keep the per-head copies.
    public let qkv = FloatBuffer(count: 0)
    /// Softmax probabilities [batch, heads, tokens, tokens], or [batch, heads, tokens] for a class-only last block
    /// (training only; eval uses per-worker scratch).
    public let probs = FloatBuffer(count: 0)
    /// Q, K and V gathered dense per head [3][batch, heads, tokens, head_dim], float32 or bf16, and in precision bf16
    /// a bf16 copy of the probabilities: the operands of attention's products (grown on first use).
    let qkvHeads = ScratchBytes()
    let probs16 = ScratchBytes()
    /// Whether the last forward's attention products ran in bf16 (the backward pass runs as the forward did).
    var attentionInBF16 = false
    /// Heads concatenated head-major [rows, inner]: the input of the output projection.
    public private(set) var attnOut = FloatBuffer(count: 0)
    /// Dropout after the attention projection and after fc2 (nil without dropout), recomputed by the backward pass.
    var attnDropout: RowDropout?
    var fc2Dropout: RowDropout?
    /// Residual stream after the attention branch [rows, width] (training only).
    public let mid = FloatBuffer(count: 0)
    public let ln2Out = FloatBuffer(count: 0)
    public let ln2Mean = FloatBuffer(count: 0)
    public let ln2Rstd = FloatBuffer(count: 0)
    /// fc1's product x·Wᵀ [rows, mlp]; then in training GELU′(v)·mask of the GELU input v = fc1(x) (bias and LoRA
    /// included), all the backward pass needs of v and the hidden dropout mask. In eval the GELU runs in place here.
    public let fc1Out = FloatBuffer(count: 0)
    /// GELU output after dropout: the fc2 input [rows, mlp] (training only).
    public let hidden = FloatBuffer(count: 0)
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

    func size(
        rows: Int, batch: Int, width w: Int, inner: Int, mlp: Int, tokens: Int, heads: Int,
        ranks: [Int], training: Bool, keepQKV: Bool
    ) {
        let keep = training ? 1 : 0
        input.reserve(rows * w * keep)
        ln1Out.reserve(rows * w)
        ln1Mean.reserve(rows)
        ln1Rstd.reserve(rows)
        qkv.reserve(keepQKV ? rows * 3 * inner : 0)
        probs.reserve(batch * heads * tokens * tokens * keep)
        attnOut.reserve(rows * inner)
        mid.reserve(rows * w * keep)
        ln2Out.reserve(rows * w)
        ln2Mean.reserve(rows)
        ln2Rstd.reserve(rows)
        fc1Out.reserve(rows * mlp)
        hidden.reserve(rows * mlp * keep)
        while loraFc1.count < ranks.count { loraFc1.append(FloatBuffer(count: 0)); loraFc2.append(FloatBuffer(count: 0)) }
        loraFc1.removeLast(loraFc1.count - ranks.count)
        loraFc2.removeLast(loraFc2.count - ranks.count)
        for (i, r) in ranks.enumerated() { loraFc1[i].reserve(rows * r); loraFc2[i].reserve(rows * r) }
    }

    /// Floats this instance needs for the given sizes (overflow-checked), for the memory cap.
    static func floats(
        rows: Int, batch: Int, width w: Int, inner: Int, mlp: Int, tokens: Int, heads: Int,
        ranks: [Int], training: Bool
    ) -> Int? {
        var total = 0
        func add(_ factors: Int...) -> Bool {
            var p = 1
            for f in factors {
                let (q, o) = p.multipliedReportingOverflow(by: f)
                if o { return false }
                p = q
            }
            let (s, o) = total.addingReportingOverflow(p)
            total = s
            return !o
        }
        let k = training ? 1 : 0
        // qkv (shared, or kept by the last block) and its dense per-head copy (qkvHeads, float32 at most); the kept
        // probabilities and their bf16 copy (probs16, counted as floats).
        guard add(rows, w, 4 + 3 * k), add(rows, 3 * inner, 2), add(rows, inner), add(rows, mlp, 1 + k), add(rows, 4),
            add(batch, heads, tokens, tokens, 2 * k)
        else { return nil }
        for r in ranks { guard add(rows, r, 2) else { return nil } }
        return total
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
    /// Attention probabilities in eval mode: per worker for the class-only block, per image group otherwise.
    let probsScratch = FloatBuffer(count: 0)
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

    /// `classOnlyLastBlock`: the last block will run on the class rows only (and, in training, keep its qkv rows).
    func size(
        config c: ModelConfig, batch b: Int, ranks: [Int], training: Bool, classOnlyLastBlock: Bool, keepWeightInputs: Bool = true
    ) throws {
        let inner = c.heads * c.headDim, t = c.numTokens
        let (rows, o1) = b.multipliedReportingOverflow(by: t)
        // In eval the attention probabilities live in a scratch for up to `evalAttentionImages` images (and a bf16
        // copy of it), outside the per-block count.
        let (evalProbs, o2) = (max(Parallel.workers, min(b, ViT.evalAttentionImages) * c.heads) * 2).multipliedReportingOverflow(by: t * t)
        guard !o1, !o2,
            let perBlock = BlockActivations.floats(
                rows: rows, batch: b, width: c.width, inner: inner, mlp: c.mlpWidth,
                tokens: t, heads: c.heads, ranks: ranks, training: training),
            perBlock <= ViTActivations.capFloats, (training ? c.depth : 1) * perBlock <= ViTActivations.capFloats,
            training || perBlock + evalProbs <= ViTActivations.capFloats
        else {
            throw ModelError.tooLarge("batch \(b) needs more than \(ViTActivations.capFloats * 4 >> 30) GiB of activations")
        }
        self.batch = b
        self.training = training
        let w = c.width, n = b * c.numPatches
        patches.reserve(n * c.patchDim)
        patchEmbed.reserve(n * w)
        tokens.reserve(rows * w)
        stream.reserve(rows * w)
        scratch.reserve(rows * w)
        qkv.reserve(rows * 3 * inner)
        probsScratch.reserve(training ? 0 : max(Parallel.workers, min(b, ViT.evalAttentionImages) * c.heads) * c.numTokens * c.numTokens)
        let count = training ? c.depth : 1
        while blocks.count < count { blocks.append(BlockActivations()) }
        blocks.removeLast(blocks.count - count)
        for (l, a) in blocks.enumerated() {
            a.share(training && !keepWeightInputs && l > 0 ? blocks[0] : nil)
            a.size(
                rows: rows, batch: b, width: w, inner: inner, mlp: c.mlpWidth, tokens: c.numTokens, heads: c.heads,
                ranks: ranks, training: training, keepQKV: training && classOnlyLastBlock && l == c.depth - 1)
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
}
