import GSLoRAFormat

/// Multi-head self-attention over every token, forward and backward, as batched products over all images and heads
/// (`BatchedMatmul`) with the row softmax split over the cores between them. The products read their operands
/// dense and head-major ([batch, heads, tokens, head_dim], gathered from the qkv rows in one pass): oneDNN runs
/// dense batched products on its brgemm kernels (AMX in bf16), strided ones on a slower gemm. In precision bf16
/// the gathered operands (Q, K, V, P, dO, dS) are rounded to bf16 and the products sum in float32; the softmax
/// and everything else stay float32.
extension ViT {
    /// Per image and head: Q, K, V and dO gathered dense [tokens, head_dim]; the probabilities [tokens, tokens]; the
    /// head's columns of the attention output (and of each dense part of its gradient) [tokens, inner].
    struct AttentionLayouts {
        let heads, probs, out: BatchedMatmul.Layout

        init(_ c: ModelConfig) {
            let t = c.numTokens, hd = c.headDim, inner = c.heads * hd
            heads = .init(rows: t, cols: hd, imageStride: c.heads * t * hd, headStride: t * hd, rowStride: hd, colStride: 1)
            probs = .init(rows: t, cols: t, imageStride: c.heads * t * t, headStride: t * t, rowStride: t, colStride: 1)
            out = .init(rows: t, cols: hd, imageStride: t * inner, headStride: hd, rowStride: inner, colStride: 1)
        }
    }

    /// Images per attention call in eval mode, which bounds the probability buffer (training runs the whole batch at
    /// once, so that its backward pass can recompute the probabilities by the same calls).
    static let evalAttentionImages = 8

    /// From the qkv rows [batch·tokens, 3·inner]: S = scale·Q·Kᵀ, row softmax P, O = P·V written head-major into
    /// attnOut; Q, K and V stay gathered in `a.qkvHeads` for the backward pass, P only in `activations.probs` until
    /// the next block.
    func attention(_ qkv: UnsafePointer<Float>, batch: Int, a: BlockActivations) throws {
        let c = config, t = c.numTokens, heads = c.heads, inner = heads * c.headDim, l = AttentionLayouts(c)
        let group = activations.training ? batch : min(batch, ViT.evalAttentionImages)
        let half = precision == .bf16, part = batch * t * inner
        a.attentionInBF16 = half
        let q = gatherHeads(qkv, ld: 3 * inner, parts: 3, batch: batch, bf16: half, into: a.qkvHeads)
        for first in stride(from: 0, to: batch, by: group) {
            let n = min(group, batch - first), o = first * t * inner
            let probs = try probabilities(q + o, q + part + o, images: n, bf16: half)
            try attentionProducts.run(images: n, heads: heads, a: l.probs, probs, b: l.heads, q + 2 * part + o, c: l.out, a.attnOut.pointer + o)
        }
    }

    /// P = softmax(scale·Q·Kᵀ) of `images` images into `activations.probs`, and in bf16 rounded into `probs16`, which
    /// is then the returned operand. The backward pass recomputes P by this same call on the same operands, bit for bit.
    private func probabilities(_ q: BatchedMatmul.Operand, _ k: BatchedMatmul.Operand, images n: Int, bf16 half: Bool) throws -> BatchedMatmul.Operand {
        let c = config, t = c.numTokens, heads = c.heads, l = AttentionLayouts(c), scale = Float(c.attentionScale)
        let p = activations.probs.pointer
        try attentionProducts.run(images: n, heads: heads, a: l.heads, q, b: l.heads.transposed, k, c: l.probs, p)
        let ps = SendablePointer(p), p16 = half ? SendableBF16(roundedCopy(activations.probs16, count: n * heads * t * t)) : nil
        Parallel.rows(n * heads * t, elementsPerRow: t) { range in
            let o = range.lowerBound * t
            Kernels.softmaxRows(ps.p + o, rows: range.count, cols: t, scale: scale)
            if let p16 { BF16Matmul.round(ps.p + o, count: range.count * t, into: p16.p + o) }
        }
        return p16.map { .init(bf16: $0.p) } ?? .init(p)
    }

    /// From dO (`dAttnOut`) and the forward's kept operands (P recomputed from Q and K): dP = dO·Vᵀ, dV = Pᵀ·dO, dS = scale·softmax′(dP),
    /// dQ = dS·K, dK = dSᵀ·Q, written into their columns of dQKV. Runs in the precision the forward ran in. dQ, dK
    /// and dV land in dense [rows, inner] parts first (oneDNN's brgemm needs a destination without gaps) and are then
    /// copied into the qkv rows: in precision bf16 only rounded, into `roundedInputSlot` for the qkv input-gradient
    /// product (then the result is true and dQKV is not written; that precision trains no weights, which would read it).
    func attentionBackward(batch: Int, a: BlockActivations, scratch s: BackwardScratch) throws -> Bool {
        let c = config, t = c.numTokens, heads = c.heads, inner = heads * c.headDim, l = AttentionLayouts(c)
        let scale = Float(c.attentionScale), dp = s.dProbs.pointer, n = batch * heads * t * t
        let half = a.attentionInBF16, part = batch * t * inner
        let q = headsOperand(a.qkvHeads, bf16: half)
        let p = try probabilities(q, q + part, images: batch, bf16: half)
        let dOut = gatherHeads(s.dAttnOut.pointer, ld: inner, parts: 1, batch: batch, bf16: half, into: s.dAttnOutHeads)
        s.dQKVParts.reserve(3 * part)
        let parts = s.dQKVParts.pointer
        try attentionProducts.run(images: batch, heads: heads, a: l.heads, dOut, b: l.heads.transposed, q + 2 * part, c: l.probs, dp)
        try attentionProducts.run(images: batch, heads: heads, a: l.probs.transposed, p, b: l.heads, dOut, c: l.out, parts + 2 * part)
        let dps = SendablePointer(dp), ps = SendablePointer(activations.probs.pointer), dS16 = half ? SendableBF16(roundedCopy(s.dProbs16, count: n)) : nil
        Parallel.rows(batch * heads * t, elementsPerRow: 2 * t) { range in
            let o = range.lowerBound * t
            Kernels.softmaxBackwardRows(dps.p + o, probs: ps.p + o, rows: range.count, cols: t, scale: scale)
            if let dS16 { BF16Matmul.round(dps.p + o, count: range.count * t, into: dS16.p + o) }
        }
        let dS: BatchedMatmul.Operand = dS16.map { .init(bf16: $0.p) } ?? .init(dp)
        try attentionProducts.run(images: batch, heads: heads, a: l.probs, dS, b: l.heads, q + part, c: l.out, parts)
        try attentionProducts.run(images: batch, heads: heads, a: l.probs.transposed, dS, b: l.heads, q, c: l.out, parts + part)
        let from = SendablePointer(parts), to = SendablePointer(s.dQKV.pointer)
        let rounded = roundedInputSlot(rows: batch * t, cols: 3 * inner).map(SendableBF16.init)
        Parallel.rows(batch * t, elementsPerRow: 3 * inner) { range in
            for row in range {
                for k in 0..<3 {
                    let src = from.p + k * part + row * inner, o = row * 3 * inner + k * inner
                    if let rounded { BF16Matmul.round(src, count: inner, into: rounded.p + o) } else { (to.p + o).update(from: src, count: inner) }
                }
            }
        }
        return rounded != nil
    }

    /// Room for `count` bf16 values in `copy`, which the softmax passes fill as they go (the products' operands).
    private func roundedCopy(_ copy: ScratchBytes, count: Int) -> UnsafeMutablePointer<UInt16> {
        copy.reserve(count * 2).assumingMemoryBound(to: UInt16.self)
    }

    private func headsOperand(_ buffer: ScratchBytes, bf16: Bool) -> BatchedMatmul.Operand {
        bf16 ? .init(bf16: buffer.pointer.assumingMemoryBound(to: UInt16.self)) : .init(buffer.pointer.assumingMemoryBound(to: Float.self))
    }

    /// The heads of `parts` column blocks of the rows [batch·tokens, ld] (part p, head h at columns p·inner + h·hd),
    /// gathered dense into `into` as [parts][batch, heads, tokens, hd], float32 or rounded to bf16.
    private func gatherHeads(_ src: UnsafePointer<Float>, ld: Int, parts: Int, batch: Int, bf16: Bool, into buffer: ScratchBytes) -> BatchedMatmul.Operand {
        let c = config, t = c.numTokens, hd = c.headDim, heads = c.heads, inner = heads * hd, part = batch * t * inner
        let base = SendableRaw(UnsafeRawPointer(buffer.reserve(parts * part * (bf16 ? 2 : 4)))), from = SendablePointer(UnsafeMutablePointer(mutating: src))
        Parallel.rows(batch * t, elementsPerRow: parts * inner) { range in
            for row in range {
                let b = row / t, token = row % t
                for p in 0..<parts {
                    for h in 0..<heads {
                        let s = from.p + row * ld + p * inner + h * hd, d = p * part + ((b * heads + h) * t + token) * hd
                        if bf16 {
                            BF16Matmul.round(s, count: hd, into: UnsafeMutablePointer(mutating: base.p.assumingMemoryBound(to: UInt16.self)) + d)
                        } else {
                            (UnsafeMutablePointer(mutating: base.p.assumingMemoryBound(to: Float.self)) + d).update(from: s, count: hd)
                        }
                    }
                }
            }
        }
        return headsOperand(buffer, bf16: bf16)
    }
}
