import Format

/// Multi-head self-attention over every token, forward and backward, as batched products over all images and heads
/// (`BatchedMatmul`) with the row softmax split over the cores between them.
extension ViT {
    /// Per image and head: Q, K and V inside the qkv rows [tokens, 3·inner] (K and V at offsets inner and 2·inner),
    /// the probabilities [tokens, tokens] (heads·tokens² per image), and the head's columns of the attention output
    /// [tokens, inner].
    struct AttentionLayouts {
        let qkv, probs, out: BatchedMatmul.Layout

        init(_ c: ModelConfig) {
            let t = c.numTokens, hd = c.headDim, inner = c.heads * hd
            qkv = .init(rows: t, cols: hd, imageStride: t * 3 * inner, headStride: hd, rowStride: 3 * inner, colStride: 1)
            probs = .init(rows: t, cols: t, imageStride: c.heads * t * t, headStride: t * t, rowStride: t, colStride: 1)
            out = .init(rows: t, cols: hd, imageStride: t * inner, headStride: hd, rowStride: inner, colStride: 1)
        }
    }

    /// Images per attention call in eval mode, which bounds the probability scratch (training keeps every block's
    /// probabilities anyway and runs the whole batch at once).
    static let evalAttentionImages = 8

    /// S = scale·Q·Kᵀ, row softmax P, O = P·V written head-major into attnOut; P is kept in `a.probs` in training.
    func attention(batch: Int, a: BlockActivations, scratch: FloatBuffer) throws {
        let c = config, t = c.numTokens, heads = c.heads, inner = heads * c.headDim, l = AttentionLayouts(c)
        let keep = a.probs.count > 0, group = keep ? batch : min(batch, ViT.evalAttentionImages)
        let scale = Float(c.attentionScale)
        for first in stride(from: 0, to: batch, by: group) {
            let n = min(group, batch - first), q = a.qkv.pointer + first * t * 3 * inner
            let p = keep ? a.probs.pointer + first * heads * t * t : scratch.pointer
            try attentionProducts.run(images: n, heads: heads, a: l.qkv, q, b: l.qkv.transposed, q + inner, c: l.probs, p)
            let ps = SendablePointer(p)
            Parallel.rows(n * heads * t, elementsPerRow: t) { range in
                Kernels.softmaxRows(ps.p + range.lowerBound * t, rows: range.count, cols: t, scale: scale)
            }
            try attentionProducts.run(images: n, heads: heads, a: l.probs, p, b: l.qkv, q + 2 * inner, c: l.out,
                                      a.attnOut.pointer + first * t * inner)
        }
    }

    /// From dO (`dAttnOut`) and the kept probabilities: dP = dO·Vᵀ, dV = Pᵀ·dO, dS = scale·softmax′(dP),
    /// dQ = dS·K, dK = dSᵀ·Q, written into their columns of dQKV.
    func attentionBackward(batch: Int, a: BlockActivations, dOut: UnsafePointer<Float>, dProbs: FloatBuffer,
                           dQKV: UnsafeMutablePointer<Float>) throws {
        let c = config, t = c.numTokens, heads = c.heads, inner = heads * c.headDim, l = AttentionLayouts(c)
        let q = a.qkv.pointer, p = a.probs.pointer, dp = dProbs.pointer, scale = Float(c.attentionScale)
        try attentionProducts.run(images: batch, heads: heads, a: l.out, dOut, b: l.qkv.transposed, q + 2 * inner, c: l.probs, dp)
        try attentionProducts.run(images: batch, heads: heads, a: l.probs.transposed, p, b: l.out, dOut, c: l.qkv, dQKV + 2 * inner)
        let dps = SendablePointer(dp), ps = SendablePointer(p)
        Parallel.rows(batch * heads * t, elementsPerRow: 2 * t) { range in
            let o = range.lowerBound * t
            Kernels.softmaxBackwardRows(dps.p + o, probs: ps.p + o, rows: range.count, cols: t, scale: scale)
        }
        try attentionProducts.run(images: batch, heads: heads, a: l.probs, dp, b: l.qkv, q + inner, c: l.qkv, dQKV)
        try attentionProducts.run(images: batch, heads: heads, a: l.probs.transposed, dp, b: l.qkv, q, c: l.qkv, dQKV + inner)
    }
}
