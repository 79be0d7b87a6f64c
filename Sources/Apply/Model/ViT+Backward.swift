import Dispatch
import GSLoRAFormat

/// Scratch of the backward pass, reused across calls.
final class BackwardScratch {
    let dStream = FloatBuffer(count: 0) // ∂L/∂residual stream [rows, width]
    let dBranch = FloatBuffer(count: 0) // a branch output's gradient after dropout [rows, width]
    let dNormOut = FloatBuffer(count: 0) // ∂L/∂(LayerNorm output) [rows, width]
    let dHidden = FloatBuffer(count: 0) // [rows, mlp]
    let geluDerivative = FloatBuffer(count: 0) // GELU′(v)·mask of the block being run [rows, mlp]
    let dQKV = FloatBuffer(count: 0) // [rows, 3·inner]
    let dAttnOut = FloatBuffer(count: 0) // [rows, inner]
    let dDown = FloatBuffer(count: 0) // ∂L/∂(x·Aᵀ) of fc1 and fc2 per adapter [rows, rank] each
    let partials = FloatBuffer(count: 0) // per-row-range partial sums of LoRA gradients
    let dProbs = FloatBuffer(count: 0) // [batch, heads, tokens, tokens]
    let dAttnOutHeads = ScratchBytes() // dAttnOut gathered per head, float32 or bf16
    let dQKVParts = FloatBuffer(count: 0) // dQ | dK | dV, each [rows, inner]
    let dProbs16 = ScratchBytes() // dS rounded to bf16 in precision bf16
    let dPooled = FloatBuffer(count: 0) // [batch, width]
}

extension BackwardScratch {
    /// Floats the backward pass reserves for a batch in float32 (the LoRA partial sums, a few rank × width rows per
    /// core, are not counted). Double, so hostile sizes saturate rather than overflow.
    static func floats(_ c: ModelConfig, batch: Int, ranks: [Int]) -> Double {
        let b = Double(batch), t = Double(c.numTokens), rows = b * t, w = Double(c.width), m = Double(c.mlpWidth)
        let inner = Double(c.heads * c.headDim), rank = Double(ranks.reduce(0, +))
        // dStream, dBranch, dNormOut; dHidden, geluDerivative; dQKV, dAttnOut, dAttnOutHeads, dQKVParts; dDown; dPooled.
        let rowBuffers = rows * (3 * w + 2 * m + 8 * inner + 2 * rank) + b * w
        return rowBuffers + max(Double(Parallel.workers), b * Double(c.heads)) * t * t
    }
}

extension ViT {
    /// Backpropagates ∂L/∂embedding (batch × width, the output of the final LayerNorm) through the last
    /// training-mode forward and ADDS the gradients to `gradients` (LoRA factors of every adapter and, when
    /// `gradients.parameters` exists, every backbone parameter except the head, whose gradient comes from the
    /// loss side). With LoRA only, propagation stops at the lowest layer carrying LoRA. `stream` adds a loss's gradient
    /// with respect to the residual stream entering block `stream.block` (all tokens, [batch·tokens, width]), for a loss
    /// on an intermediate representation (LIRF's attention transfer).
    public func backward(gradEmbeddings: [Float], into gradients: ViTGradients, stream: (block: Int, gradient: [Float])? = nil) throws {
        try withPrecisionThreads { try runBackward(gradEmbeddings: gradEmbeddings, into: gradients, stream: stream) }
    }

    private func runBackward(gradEmbeddings: [Float], into gradients: ViTGradients, stream: (block: Int, gradient: [Float])?) throws {
        let c = config, acts = activations, batch = acts.batch
        guard acts.training, batch > 0 else {
            throw ModelError.badInput("backward needs the activations of a forward call in .train mode")
        }
        guard gradEmbeddings.count == batch * c.width else {
            throw ModelError.badInput("\(gradEmbeddings.count) embedding gradients for a batch of \(batch) × \(c.width)")
        }
        guard gradients.lora.count == adapters.count,
            zip(gradients.lora, adapters).allSatisfy({ $0.fc1.count == $1.fc1.count && $0.fc1.first?.rank == $1.fc1.first?.rank })
        else {
            throw ModelError.badAdapter("the gradient holder does not match the model's adapters; make it with ViTGradients(model:)")
        }
        guard activations.keptWeightInputs || gradients.parameters == nil else {
            throw ModelError.badInput(
                "weight gradients need the inputs the forward pass did not keep; set keepsWeightGradientInputs before the forward")
        }
        guard precision == .float32 || gradients.parameters == nil else {
            throw ModelError.badInput(
                "precision \(precision.rawValue) needs frozen weights (its packed copies would go stale); all-parameter training runs in float32")
        }
        let w = c.width, t = c.numTokens, rows = batch * t, inner = c.heads * c.headDim, m = c.mlpWidth
        let s = backwardScratch, pg = gradients.parameters
        s.dStream.reserve(rows * w)
        s.dBranch.reserve(rows * w)
        s.dNormOut.reserve(rows * w)
        s.dHidden.reserve(rows * m)
        s.geluDerivative.reserve(rows * m)
        s.dQKV.reserve(rows * 3 * inner)
        s.dAttnOut.reserve(rows * inner)
        s.dProbs.reserve(max(Parallel.workers, batch * c.heads) * t * t)
        s.dPooled.reserve(batch * w)

        // Final LayerNorm on the pooled rows, then into the stream gradient: row 0 of each image (class token), or
        // 1/(tokens − 1) of it on every patch row (mean pooling).
        gradEmbeddings.withUnsafeBufferPointer { g in
            Kernels.layerNormBackward(
                g.baseAddress!, x: acts.pooled.pointer, mean: acts.normMean.pointer, rstd: acts.normRstd.pointer,
                gamma: parameters.norm.weight.pointer, rows: batch, cols: w, dx: s.dPooled.pointer,
                accumulate: false, dGamma: pg?.norm.weight.pointer, dBeta: pg?.norm.bias.pointer)
        }
        if c.pooling == "avg" {
            s.dStream.fill(0)
            let scale = 1 / Float(t - 1)
            for b in 0..<batch {
                let g = s.dPooled.pointer + b * w, rowsOut = s.dStream.pointer + b * t * w
                for i in 1..<t { for j in 0..<w { rowsOut[i * w + j] = scale * g[j] } }
            }
        } else if !acts.classOnlyLastBlock {
            s.dStream.fill(0)
            for b in 0..<batch { (s.dStream.pointer + b * t * w).update(from: s.dPooled.pointer + b * w, count: w) }
        }

        let lowest = pg != nil ? 0 : (adapters.isEmpty ? c.depth : 0)
        if let stream {
            guard pg != nil, (0..<c.depth).contains(stream.block), stream.gradient.count == rows * w else {
                throw ModelError.badInput(
                    "a stream gradient needs all-parameter gradients, a block in 0..<\(c.depth) and \(rows * w) values (got block \(stream.block), \(stream.gradient.count) values)"
                )
            }
        }
        for l in stride(from: c.depth - 1, through: lowest, by: -1) {
            let stop = pg == nil && l == lowest
            if l == c.depth - 1 && acts.classOnlyLastBlock {
                try classBlockBackward(l, batch: batch, scratch: s, gradients: gradients, stopAfterFFN: stop)
            } else {
                try blockBackward(l, batch: batch, scratch: s, gradients: gradients, stopAfterFFN: stop)
            }
            if let stream, stream.block == l {
                stream.gradient.withUnsafeBufferPointer { g in for i in 0..<(rows * w) { s.dStream.pointer[i] += g[i] } }
            }
        }
        if let pg { try embedBackward(batch: batch, scratch: s, into: pg) }
    }

    private func blockBackward(_ l: Int, batch: Int, scratch s: BackwardScratch, gradients: ViTGradients, stopAfterFFN: Bool) throws {
        let c = config, w = c.width, rows = batch * c.numTokens
        let a = activations.blocks[l], prm = parameters.blocks[l], pg = gradients.parameters?.blocks[l]
        let dX = s.dStream.pointer

        // FFN branch: x_out = mid + Drop(fc2(hidden) + b2).
        if try !ffnBackward(l, rows: rows, dX: dX, scratch: s, gradients: gradients, stopAfterFFN: stopAfterFFN) { return }

        // Attention branch: mid = input + Drop(proj(attn) + bp).
        let dBranchRounded = roundedInputSlot(rows: rows, cols: w)
        Kernels.masked(dX, a.attnDropout, rows: rows, cols: w, out: s.dBranch.pointer, rounded: dBranchRounded)
        try linearBackward(
            prm.proj, input: a.attnOut.pointer, dOut: s.dBranch.pointer, rows: rows, dInput: s.dAttnOut.pointer,
            grad: pg?.proj, inputRounded: dBranchRounded != nil)
        let dQKVRounded = try attentionBackward(batch: batch, a: a, scratch: s)
        try linearBackward(
            prm.qkv, input: a.ln1Out.pointer, dOut: s.dQKV.pointer, rows: rows, dInput: s.dNormOut.pointer,
            grad: pg?.qkv, inputRounded: dQKVRounded)
        Kernels.layerNormBackward(
            s.dNormOut.pointer, x: a.input.pointer, mean: a.ln1Mean.pointer, rstd: a.ln1Rstd.pointer,
            gamma: prm.norm1.weight.pointer, rows: rows, cols: w, dx: dX, accumulate: true,
            dGamma: pg?.norm1.weight.pointer, dBeta: pg?.norm1.bias.pointer)
    }

    /// The FFN branch's backward over `rows` rows of block l whose output gradient is dX (every token, or the packed
    /// class rows): LoRA and weight gradients, then LN2's backward added into dX. Returns false when it stopped
    /// after the FFN (the blocks below need nothing more).
    private func ffnBackward(
        _ l: Int, rows: Int, dX: UnsafeMutablePointer<Float>, scratch s: BackwardScratch, gradients: ViTGradients,
        stopAfterFFN: Bool
    ) throws -> Bool {
        let w = config.width, m = config.mlpWidth
        let a = activations.blocks[l], prm = parameters.blocks[l], pg = gradients.parameters?.blocks[l]
        let lora = loraGradViews(l, a: a, rows: rows, gradients: gradients, dDown: s.dDown)
        let hidden = activations.hidden.pointer
        LoRAKernels.recomputeGELU(
            a.fc1Out.pointer, rows: rows, cols: m, mask: a.hiddenDropout, hidden: hidden, derivative: s.geluDerivative.pointer)
        let dBranchRounded = roundedInputSlot(rows: rows, cols: w)
        Kernels.masked(dX, a.fc2Dropout, rows: rows, cols: w, out: s.dBranch.pointer, rounded: dBranchRounded)
        try linearBackward(
            prm.fc2, input: hidden, dOut: s.dBranch.pointer, rows: rows, dInput: s.dHidden.pointer, grad: pg?.fc2,
            inputRounded: dBranchRounded != nil)
        LoRAKernels.outputGradient(s.dBranch.pointer, rows: rows, cols: w, lora.fc2, partials: s.partials)
        let dNorm = stopAfterFFN ? nil : s.dNormOut.pointer
        let dHiddenRounded = dNorm == nil ? nil : roundedInputSlot(rows: rows, cols: m)
        LoRAKernels.ffnMiddleBackward(
            s.dHidden.pointer, derivative: s.geluDerivative.pointer, hidden: hidden, rows: rows, cols: m,
            fc2: lora.fc2, fc1: lora.fc1, partials: s.partials, rounded: dHiddenRounded)
        try linearBackward(
            prm.fc1, input: a.ln2Out.pointer, dOut: s.dHidden.pointer, rows: rows, dInput: dNorm, grad: pg?.fc1,
            inputRounded: dHiddenRounded != nil)
        LoRAKernels.inputGradient(a.ln2Out.pointer, ldx: w, rows: rows, cols: w, lora.fc1, dx: dNorm, partials: s.partials)
        guard let dNorm else { return false }
        Kernels.layerNormBackward(
            dNorm, x: a.mid.pointer, mean: a.ln2Mean.pointer, rstd: a.ln2Rstd.pointer,
            gamma: prm.norm2.weight.pointer, rows: rows, cols: w, dx: dX, accumulate: true,
            dGamma: pg?.norm2.weight.pointer, dBeta: pg?.norm2.bias.pointer)
        return true
    }

    /// The class-only last block (see `classBlock`): proj and FFN on the packed class rows, starting from dPooled;
    /// the class query's attention gives dQ for the class rows and dK, dV for every token; the stream gradient is
    /// the class rows passed straight through plus LN1's backward over every row.
    private func classBlockBackward(_ l: Int, batch: Int, scratch s: BackwardScratch, gradients: ViTGradients, stopAfterFFN: Bool) throws {
        let c = config, w = c.width, t = c.numTokens, rows = batch * t, inner = c.heads * c.headDim, ld = 3 * inner
        let a = activations.blocks[l], prm = parameters.blocks[l], pg = gradients.parameters?.blocks[l]
        let dX = s.dPooled.pointer

        if try !ffnBackward(l, rows: batch, dX: dX, scratch: s, gradients: gradients, stopAfterFFN: stopAfterFFN) { return }

        let dBranchRounded = roundedInputSlot(rows: batch, cols: w)
        Kernels.masked(dX, a.attnDropout, rows: batch, cols: w, out: s.dBranch.pointer, rounded: dBranchRounded)
        try linearBackward(
            prm.proj, input: a.attnOut.pointer, dOut: s.dBranch.pointer, rows: batch, dInput: s.dAttnOut.pointer,
            grad: pg?.proj, inputRounded: dBranchRounded != nil)
        classAttentionBackward(batch: batch, a: a, scratch: s)

        // qkv: K | V columns over every row, Q columns over the class rows (row b·t), both into ∂(LN1 output).
        let dq = s.dQKV.pointer, wq = prm.qkv.weight.pointer, x = a.ln1Out.pointer
        try frozenInputGradient(
            prm.qkv.weight, firstRow: inner, outF: 2 * inner, inF: w, dOut: dq + inner, ldd: ld, rows: rows,
            out: s.dNormOut.pointer)
        BLAS.gemm(m: batch, n: w, k: inner, a: dq, lda: t * ld, b: wq, ldb: w, beta: 1, c: s.dNormOut.pointer, ldc: t * w)
        if let g = pg?.qkv {
            BLAS.gemm(
                transA: true, m: 2 * inner, n: w, k: rows, a: dq + inner, lda: ld, b: x, ldb: w, beta: 1,
                c: g.weight.pointer + inner * w, ldc: w)
            BLAS.gemm(transA: true, m: inner, n: w, k: batch, a: dq, lda: t * ld, b: x, ldb: t * w, beta: 1, c: g.weight.pointer, ldc: w)
            if let gb = g.bias {
                Kernels.addColumnSums(dq + inner, rows: rows, cols: 2 * inner, ld: ld, into: gb.pointer + inner)
                Kernels.addColumnSums(dq, rows: batch, cols: inner, ld: t * ld, into: gb.pointer)
            }
        }
        s.dStream.fill(0)
        for b in 0..<batch { (s.dStream.pointer + b * t * w).update(from: dX + b * w, count: w) }
        Kernels.layerNormBackward(
            s.dNormOut.pointer, x: a.input.pointer, mean: a.ln1Mean.pointer, rstd: a.ln1Rstd.pointer,
            gamma: prm.norm1.weight.pointer, rows: rows, cols: w, dx: s.dStream.pointer, accumulate: true,
            dGamma: pg?.norm1.weight.pointer, dBeta: pg?.norm1.bias.pointer)
    }

    /// Per (image, head) of the class query, from its kept probabilities p [tokens]: dp = dO·Vᵀ, dV = p ⊗ dO,
    /// ds = softmax′, dq = scale·ds·K, dK = scale·ds ⊗ q, into the class row's Q columns and every row's K, V columns.
    private func classAttentionBackward(batch: Int, a: BlockActivations, scratch s: BackwardScratch) {
        let c = config, t = c.numTokens, hd = c.headDim, heads = c.heads, inner = heads * hd, ld = 3 * inner
        let scale = Float(c.attentionScale), jobs = batch * heads
        let qkv = SendablePointer(a.qkv.pointer), probs = SendablePointer(a.probs.pointer)
        let dO = SendablePointer(s.dAttnOut.pointer), dQKV = SendablePointer(s.dQKV.pointer), dP = SendablePointer(s.dProbs.pointer)
        Parallel.jobs(jobs) { job, worker in
            let b = job / heads, h = job % heads
            let q = qkv.p + b * t * ld + h * hd, dq = dQKV.p + b * t * ld + h * hd
            let p = probs.p + job * t, dp = dP.p + worker * t, dout = dO.p + b * inner + h * hd
            for j in 0..<t {
                dp[j] = Kernels.dot(dout, q + j * ld + 2 * inner, hd)
                let dv = dq + j * ld + 2 * inner, pj = p[j]
                for d in 0..<hd { dv[d] = pj * dout[d] }
            }
            Kernels.softmaxBackwardRows(dp, probs: p, rows: 1, cols: t)
            dq.update(repeating: 0, count: hd)
            for j in 0..<t {
                let k = q + j * ld + inner, dk = dq + j * ld + inner, g = scale * dp[j]
                for d in 0..<hd { dq[d] += g * k[d] }
                for d in 0..<hd { dk[d] = g * q[d] }
            }
        }
    }

    /// For out = input·Wᵀ + b (LoRA's part is the LoRA kernels'): adds ∂W, ∂b (when `grad`), and writes ∂input
    /// (when asked). `inputRounded`: dOut's bf16 copy is in `roundedInputSlot` already (dOut is then read only for ∂W).
    private func linearBackward(
        _ layer: Linear, input: UnsafePointer<Float>, dOut: UnsafePointer<Float>, rows: Int,
        dInput: UnsafeMutablePointer<Float>?, grad: Linear?, inputRounded: Bool = false
    ) throws {
        let inF = layer.inFeatures, outF = layer.outFeatures
        if let grad {
            BLAS.gemm(
                transA: true, m: outF, n: inF, k: rows, a: dOut, lda: outF, b: input, ldb: inF, beta: 1,
                c: grad.weight.pointer, ldc: inF)
            if let gb = grad.bias { Kernels.addColumnSums(dOut, rows: rows, cols: outF, into: gb.pointer) }
        }
        if let dInput {
            try frozenInputGradient(layer.weight, outF: outF, inF: inF, dOut: dOut, ldd: outF, rows: rows, out: dInput, inputRounded: inputRounded)
        }
    }

    /// Embedding dropout, class token, position embeddings and the patch projection.
    private func embedBackward(batch: Int, scratch s: BackwardScratch, into pg: ViTParameters) throws {
        let c = config, w = c.width, t = c.numTokens, n = c.numPatches, acts = activations
        let dTok = s.dBranch.pointer
        Kernels.masked(s.dStream.pointer, acts.tokensDropout, rows: batch * t, cols: w, out: dTok)
        for b in 0..<batch {
            Kernels.addColumnSums(dTok + b * t * w, rows: 1, cols: w, into: pg.clsToken.pointer)
            Kernels.addColumnSums(dTok + b * t * w, rows: 1, cols: t * w, into: pg.posEmbed.pointer)
        }
        // Patch rows of the token gradient, packed [batch·patches, width], are the patch projection's output gradient.
        let dPatch = s.dNormOut.pointer
        for b in 0..<batch { (dPatch + b * n * w).update(from: dTok + (b * t + 1) * w, count: n * w) }
        try linearBackward(
            parameters.patchEmbed, input: acts.patches.pointer, dOut: dPatch, rows: batch * n, dInput: nil,
            grad: pg.patchEmbed)
    }
}
