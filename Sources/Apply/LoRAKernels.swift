/// One adapter's LoRA on one linear layer as the fused kernels read it: y += scale·(x·Aᵀ)·Bᵀ with A [rank, in] and
/// Bᵀ [rank, out] (B transposed once per call, so every loop runs along contiguous rows).
struct LoRAView: @unchecked Sendable {
    let rank: Int
    let scale: Float
    let a: UnsafeMutablePointer<Float>
    let bt: UnsafeMutablePointer<Float>
    /// x·Aᵀ [rows, rank]: written by the forward call, read by the backward pass.
    let down: UnsafeMutablePointer<Float>
}

/// A LoRA view with what its backward pass writes: ∂(x·Aᵀ) [rows, rank] (scratch), and ∂A [rank, in] and
/// ∂B [out, rank], which are added to.
struct LoRAGradView: @unchecked Sendable {
    let view: LoRAView
    let dDown: UnsafeMutablePointer<Float>
    let dA: UnsafeMutablePointer<Float>
    let dB: UnsafeMutablePointer<Float>
}

/// LoRA's rank-r products as single passes over the activation rows, fused with the elementwise work around them.
/// A BLAS call for a [rows × 2048]·[2048 × 8] product packs the big operand first (a copy as large as the
/// activation), and the bias, GELU, dropout and LoRA passes each stream the whole [rows × mlp] buffer again; here
/// each row is read once while it sits in L1, the cores split the rows, and gradient sums over rows go to
/// per-range partials reduced in range order (deterministic for a given core count).
enum LoRAKernels {
    /// down[r, k] = x[r]·A[k] for every adapter; x [rows, cols] with row stride ldx.
    static func down(_ x: UnsafePointer<Float>, ldx: Int, rows: Int, cols: Int, _ terms: [LoRAView]) {
        guard !terms.isEmpty else { return }
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x))
        Parallel.rows(rows, elementsPerRow: cols * terms.count) { range in
            for r in range { rowDown(xs.p + r * ldx, row: r, cols: cols, terms) }
        }
    }

    /// y[r] += Σ scale·down[r, k]·Bᵀ[k] over every adapter: the up-projection of one output row.
    @inline(__always)
    static func addUp(_ y: UnsafeMutablePointer<Float>, row r: Int, cols: Int, _ terms: [LoRAView]) {
        for t in terms {
            for k in 0..<t.rank {
                let c = t.scale * t.down[r * t.rank + k], b = t.bt + k * cols
                for j in 0..<cols { y[j] += c * b[j] }
            }
        }
    }

    @inline(__always)
    static func rowDown(_ x: UnsafePointer<Float>, row r: Int, cols: Int, _ terms: [LoRAView]) {
        for t in terms {
            for k in 0..<t.rank { t.down[r * t.rank + k] = Kernels.dot(x, t.a + k * cols, cols) }
        }
    }

    /// The FFN's middle, one pass per row of fc1's product h [rows, cols] (W·x only): v = h + bias + fc1's LoRA,
    /// hidden = GELU(v)·mask and, with `keepDerivative`, GELU′(v)·mask written over h (all the backward pass needs
    /// of v and the mask); then fc2's LoRA down-projection of the hidden row while it is in cache. The mask element
    /// of row r, column j is `mask.value(at: r·maskRowStride + j)`. Without `keepDerivative`, `hidden` may be `h`.
    static func ffnMiddle(_ h: UnsafeMutablePointer<Float>, rows: Int, cols: Int, bias: UnsafePointer<Float>?, fc1: [LoRAView],
                          mask: DropoutMask?, maskRowStride: Int, hidden: UnsafeMutablePointer<Float>, keepDerivative: Bool,
                          fc2: [LoRAView]) {
        precondition(!keepDerivative || hidden != h, "the GELU derivative needs its own buffer")
        let hs = SendablePointer(h), os = SendablePointer(hidden)
        let bs = bias.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
        Parallel.rows(rows, elementsPerRow: cols * (4 + fc1.count + fc2.count)) { range in
            for r in range {
                let v = hs.p + r * cols, out = os.p + r * cols
                if let bs { for j in 0..<cols { v[j] += bs.p[j] } }
                addUp(v, row: r, cols: cols, fc1)
                switch (keepDerivative, mask) {
                case (true, let m?):
                    let base = r * maskRowStride
                    for j in 0..<cols {
                        let g = FastMath.geluWithDerivative(v[j]), keep = m.value(at: base &+ j)
                        out[j] = g.value * keep
                        v[j] = g.derivative * keep
                    }
                case (true, nil):
                    for j in 0..<cols { let g = FastMath.geluWithDerivative(v[j]); out[j] = g.value; v[j] = g.derivative }
                case (false, let m?):
                    let base = r * maskRowStride
                    for j in 0..<cols { out[j] = FastMath.gelu(v[j]) * m.value(at: base &+ j) }
                case (false, nil):
                    // In place through one pointer: two pointers that may alias make LLVM add an overlap check,
                    // which fails when they are equal and sends the loop down its scalar path (≈4× slower).
                    if out == v { for j in 0..<cols { v[j] = FastMath.gelu(v[j]) } } else { for j in 0..<cols { out[j] = FastMath.gelu(v[j]) } }
                }
                rowDown(out, row: r, cols: cols, fc2)
            }
        }
    }

    /// From a LoRA linear's output gradient dy [rows, cols]: ∂(x·Aᵀ) = scale·dy·B, and ∂B += scale·dyᵀ·(x·Aᵀ).
    static func outputGradient(_ dy: UnsafePointer<Float>, rows: Int, cols: Int, _ terms: [LoRAGradView], partials: FloatBuffer) {
        guard !terms.isEmpty else { return }
        let work = cols * terms.count
        let sums = PartialSums(terms, cols: cols, rows: rows, elementsPerRow: work, buffer: partials)
        let dys = SendablePointer(UnsafeMutablePointer(mutating: dy))
        Parallel.chunkedRows(rows, elementsPerRow: work) { chunk, range in
            let acc = sums.chunk(chunk)
            for r in range { rowOutputGradient(dys.p + r * cols, row: r, cols: cols, terms, acc) }
        }
        sums.reduceTransposedInto(terms.map(\.dB), ranks: terms.map(\.view.rank))
    }

    /// From x [rows, cols] (row stride ldx) and ∂(x·Aᵀ): ∂A += ∂(x·Aᵀ)ᵀ·x, and dx += ∂(x·Aᵀ)·A when dx is given.
    static func inputGradient(_ x: UnsafePointer<Float>, ldx: Int, rows: Int, cols: Int, _ terms: [LoRAGradView],
                              dx: UnsafeMutablePointer<Float>?, partials: FloatBuffer) {
        guard !terms.isEmpty else { return }
        let work = cols * terms.count
        let sums = PartialSums(terms, cols: cols, rows: rows, elementsPerRow: work, buffer: partials)
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), dxs = dx.map(SendablePointer.init)
        Parallel.chunkedRows(rows, elementsPerRow: work) { chunk, range in
            let acc = sums.chunk(chunk)
            for r in range { rowInputGradient(xs.p + r * ldx, row: r, cols: cols, terms, dx: dxs.map { $0.p + r * cols }, acc) }
        }
        sums.reduceInto(terms.map(\.dA), ranks: terms.map(\.view.rank))
    }

    /// The FFN middle's backward, one pass per row of ∂hidden [rows, cols] (fc2's input gradient through W₂ alone):
    /// fc2's LoRA adds ∂(x₂·A₂ᵀ)·A₂ and takes ∂A₂ += ∂(x₂·A₂ᵀ)ᵀ·hidden; the row times GELU′(v)·mask is ∂v, written
    /// over ∂hidden; from it fc1's LoRA takes ∂(x₁·A₁ᵀ) = scale·∂v·B₁ and ∂B₁ += scale·∂vᵀ·(x₁·A₁ᵀ).
    static func ffnMiddleBackward(_ dHidden: UnsafeMutablePointer<Float>, derivative: UnsafePointer<Float>, hidden: UnsafePointer<Float>,
                                  rows: Int, cols: Int, fc2: [LoRAGradView], fc1: [LoRAGradView], partials: FloatBuffer) {
        let work = cols * (2 + 2 * (fc1.count + fc2.count))
        let sums = PartialSums(fc2 + fc1, cols: cols, rows: rows, elementsPerRow: work, buffer: partials)
        let gs = SendablePointer(dHidden), ds = SendablePointer(UnsafeMutablePointer(mutating: derivative))
        let hs = SendablePointer(UnsafeMutablePointer(mutating: hidden))
        let fc2Size = fc2.reduce(0) { $0 + $1.view.rank * cols }
        Parallel.chunkedRows(rows, elementsPerRow: work) { chunk, range in
            let acc = sums.chunk(chunk)
            for r in range {
                let g = gs.p + r * cols, d = ds.p + r * cols
                rowInputGradient(hs.p + r * cols, row: r, cols: cols, fc2, dx: g, acc)
                for j in 0..<cols { g[j] *= d[j] }
                rowOutputGradient(g, row: r, cols: cols, fc1, acc + fc2Size)
            }
        }
        sums.reduceInto(fc2.map(\.dA), ranks: fc2.map(\.view.rank))
        sums.reduceTransposedInto(fc1.map(\.dB), ranks: fc1.map(\.view.rank), skipping: fc2Size)
    }

    @inline(__always)
    static func rowOutputGradient(_ dy: UnsafePointer<Float>, row r: Int, cols: Int, _ terms: [LoRAGradView], _ acc: UnsafeMutablePointer<Float>) {
        var off = 0
        for t in terms {
            let v = t.view
            for k in 0..<v.rank {
                t.dDown[r * v.rank + k] = v.scale * Kernels.dot(dy, v.bt + k * cols, cols)
                let c = v.scale * v.down[r * v.rank + k], s = acc + off + k * cols
                for j in 0..<cols { s[j] += c * dy[j] }
            }
            off += v.rank * cols
        }
    }

    @inline(__always)
    static func rowInputGradient(_ x: UnsafePointer<Float>, row r: Int, cols: Int, _ terms: [LoRAGradView],
                                 dx: UnsafeMutablePointer<Float>?, _ acc: UnsafeMutablePointer<Float>) {
        var off = 0
        for t in terms {
            let v = t.view
            for k in 0..<v.rank {
                let d = t.dDown[r * v.rank + k], s = acc + off + k * cols
                for j in 0..<cols { s[j] += d * x[j] }
                if let dx { let a = v.a + k * cols; for j in 0..<cols { dx[j] += d * a[j] } }
            }
            off += v.rank * cols
        }
    }

    /// B [out, rank] into Bᵀ [rank, out].
    static func transpose(_ b: UnsafePointer<Float>, rows: Int, rank: Int, into bt: UnsafeMutablePointer<Float>) {
        for j in 0..<rows { for k in 0..<rank { bt[k * rows + j] = b[j * rank + k] } }
    }
}

/// Per-row-range partial sums of [rank, cols] blocks, one per term, zeroed on creation and summed in range order.
private struct PartialSums: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    let perChunk: Int
    let chunks: Int
    let cols: Int

    /// For a `Parallel.chunkedRows(rows, elementsPerRow:)` pass over the same sizes.
    init(_ terms: [LoRAGradView], cols: Int, rows: Int, elementsPerRow: Int, buffer: FloatBuffer) {
        self.cols = cols
        perChunk = terms.reduce(0) { $0 + $1.view.rank * cols }
        chunks = Parallel.chunks(rows: rows, elementsPerRow: elementsPerRow)
        buffer.reserve(max(perChunk, 1) * chunks)
        buffer.fill(0)
        base = buffer.pointer
    }

    func chunk(_ c: Int) -> UnsafeMutablePointer<Float> { base + c * perChunk }

    /// targets[i] [rank, cols] += Σ chunks of block i, blocks laid out from `skipping` floats on.
    func reduceInto(_ targets: [UnsafeMutablePointer<Float>], ranks: [Int], skipping: Int = 0) {
        var off = skipping
        for (t, rank) in zip(targets, ranks) {
            let n = rank * cols
            for c in 0..<chunks { let p = chunk(c) + off; for i in 0..<n { t[i] += p[i] } }
            off += n
        }
    }

    /// targets[i] [cols, rank] += (Σ chunks of block i)ᵀ.
    func reduceTransposedInto(_ targets: [UnsafeMutablePointer<Float>], ranks: [Int], skipping: Int = 0) {
        var off = skipping
        for (t, rank) in zip(targets, ranks) {
            for c in 0..<chunks {
                let p = chunk(c) + off
                for k in 0..<rank { for j in 0..<cols { t[j * rank + k] += p[k * cols + j] } }
            }
            off += rank * cols
        }
    }
}
