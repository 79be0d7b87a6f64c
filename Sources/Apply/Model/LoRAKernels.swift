import CGSLoRAKernels

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
/// each block of rows is read once, a column tile at a time while it sits in L1, the cores split the rows, and
/// gradient sums over rows go to per-range partials reduced in range order (deterministic for a given core count).
enum LoRAKernels {
    /// down[r, k] = x[r]·A[k] for every adapter; x [rows, cols] with row stride ldx.
    static func down(_ x: UnsafePointer<Float>, ldx: Int, rows: Int, cols: Int, _ terms: [LoRAView]) {
        guard !terms.isEmpty else { return }
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x))
        Parallel.rows(rows, elementsPerRow: cols * terms.count) { range in
            forEachBlock(of: range) { block in
                forEachTile(of: cols) { c0, n in
                    for r in block { rowDown(xs.p + r * ldx + c0, row: r, columns: c0, count: n, cols: cols, terms) }
                }
            }
        }
    }

    /// y[r] += Σ scale·down[r, k]·Bᵀ[k] over every adapter: the up-projection of one output row.
    @inline(__always)
    static func addUp(_ y: UnsafeMutablePointer<Float>, row r: Int, cols: Int, _ terms: [LoRAView]) {
        addUp(y, row: r, columns: 0, count: cols, cols: cols, terms)
    }

    /// `addUp` on columns c0..<c0+n of a row of length cols; y points at column c0.
    @inline(__always)
    static func addUp(_ y: UnsafeMutablePointer<Float>, row r: Int, columns c0: Int, count n: Int, cols: Int, _ terms: [LoRAView]) {
        for t in terms {
            gk_add_combination(y, t.bt + c0, cols, t.rank, n, t.down + r * t.rank, 1, t.scale)
        }
    }

    /// down[r, k] = x·A[k] from columns c0..<c0+n (x points at column c0), added to the earlier tiles' part.
    @inline(__always)
    static func rowDown(_ x: UnsafePointer<Float>, row r: Int, columns c0: Int, count n: Int, cols: Int, _ terms: [LoRAView]) {
        for t in terms {
            gk_dots(x, t.a + c0, cols, t.rank, n, 1, t.down + r * t.rank, c0 > 0 ? 1 : 0)
        }
    }

    /// The FFN's middle, one pass over fc1's product h [rows, cols] (W·x only) by row blocks and column tiles:
    /// v = h + bias + fc1's LoRA (left in h), hidden = GELU(v)·mask (`hidden` may be h: in place); then fc2's LoRA
    /// down-projection of the hidden tile while it is in cache. The mask of row r, column j is element
    /// r·rowStride + j of its draw. `rounded` receives hidden rounded to bf16 [rows, cols] (fc2's product input in
    /// precision bf16).
    static func ffnMiddle(
        _ h: UnsafeMutablePointer<Float>, rows: Int, cols: Int, bias: UnsafePointer<Float>?, fc1: [LoRAView],
        mask: RowDropout?, hidden: UnsafeMutablePointer<Float>, fc2: [LoRAView], rounded: UnsafeMutablePointer<UInt16>?
    ) {
        let hs = SendablePointer(h), os = SendablePointer(hidden), hb = rounded.map(SendableBF16.init)
        let bs = bias.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
        Parallel.rows(rows, elementsPerRow: cols * (4 + fc1.count + fc2.count)) { range in
            forEachBlock(of: range) { block in
                forEachTile(of: cols) { c0, n in
                    for r in block {
                        let v = hs.p + r * cols + c0, out = os.p + r * cols + c0
                        if let bs { let b = bs.p + c0; for j in 0..<n { v[j] += b[j] } }
                        addUp(v, row: r, columns: c0, count: n, cols: cols, fc1)
                        if let m = mask { gk_gelu_masked(v, out, n, m.mask.c, m.start(of: r) &+ c0) } else { gk_gelu(v, out, n) }
                        rowDown(out, row: r, columns: c0, count: n, cols: cols, fc2)
                        if let hb { BF16Matmul.round(out, count: n, into: hb.p + r * cols + c0) }
                    }
                }
            }
        }
    }

    /// From the GELU input v [rows, cols] that `ffnMiddle` left: hidden = GELU(v)·mask, bit-identical to the
    /// forward's, and derivative = GELU′(v)·mask, what the backward pass needs of v and the mask (v is kept).
    static func recomputeGELU(
        _ v: UnsafePointer<Float>, rows: Int, cols: Int, mask: RowDropout?, hidden: UnsafeMutablePointer<Float>,
        derivative: UnsafeMutablePointer<Float>
    ) {
        let vs = SendablePointer(UnsafeMutablePointer(mutating: v)), hs = SendablePointer(hidden), ds = SendablePointer(derivative)
        Parallel.rows(rows, elementsPerRow: 4 * cols) { range in
            for r in range {
                let d = ds.p + r * cols, h = hs.p + r * cols
                d.update(from: vs.p + r * cols, count: cols)
                if let m = mask { gk_gelu_derivative_masked(d, h, cols, m.mask.c, m.start(of: r)) } else { gk_gelu_derivative(d, h, cols) }
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
            forEachBlock(of: range) { block in
                forEachTile(of: cols) { c0, n in
                    for r in block { rowOutputGradient(dys.p + r * cols + c0, row: r, columns: c0, count: n, cols: cols, terms) }
                    addOutputSums(dys.p + c0, rows: block, columns: c0, count: n, cols: cols, terms, acc)
                }
            }
        }
        sums.reduceTransposedInto(terms.map(\.dB), ranks: terms.map(\.view.rank))
    }

    /// From x [rows, cols] (row stride ldx) and ∂(x·Aᵀ): ∂A += ∂(x·Aᵀ)ᵀ·x, and dx += ∂(x·Aᵀ)·A when dx is given.
    static func inputGradient(
        _ x: UnsafePointer<Float>, ldx: Int, rows: Int, cols: Int, _ terms: [LoRAGradView],
        dx: UnsafeMutablePointer<Float>?, partials: FloatBuffer
    ) {
        guard !terms.isEmpty else { return }
        let work = cols * terms.count
        let sums = PartialSums(terms, cols: cols, rows: rows, elementsPerRow: work, buffer: partials)
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), dxs = dx.map(SendablePointer.init)
        Parallel.chunkedRows(rows, elementsPerRow: work) { chunk, range in
            let acc = sums.chunk(chunk)
            forEachBlock(of: range) { block in
                forEachTile(of: cols) { c0, n in
                    if let dxs { for r in block { rowInputGradient(dxs.p + r * cols + c0, row: r, columns: c0, count: n, cols: cols, terms) } }
                    addInputSums(xs.p + c0, ldx: ldx, rows: block, columns: c0, count: n, cols: cols, terms, acc)
                }
            }
        }
        sums.reduceInto(terms.map(\.dA), ranks: terms.map(\.view.rank))
    }

    /// The FFN middle's backward over ∂hidden [rows, cols] (fc2's input gradient through W₂ alone), by blocks of rows
    /// and tiles of columns: fc2's LoRA adds ∂(x₂·A₂ᵀ)·A₂ and takes ∂A₂ += ∂(x₂·A₂ᵀ)ᵀ·hidden; the row times GELU′(v)·mask
    /// is ∂v, written over ∂hidden (and, given `rounded`, rounded to bf16 there [rows, cols]: fc1's input-gradient
    /// product input); from it fc1's LoRA takes ∂(x₁·A₁ᵀ) = scale·∂v·B₁ and ∂B₁ += scale·∂vᵀ·(x₁·A₁ᵀ).
    static func ffnMiddleBackward(
        _ dHidden: UnsafeMutablePointer<Float>, derivative: UnsafePointer<Float>, hidden: UnsafePointer<Float>,
        rows: Int, cols: Int, fc2: [LoRAGradView], fc1: [LoRAGradView], partials: FloatBuffer,
        rounded: UnsafeMutablePointer<UInt16>?
    ) {
        let work = cols * (2 + 2 * (fc1.count + fc2.count))
        let sums = PartialSums(fc2 + fc1, cols: cols, rows: rows, elementsPerRow: work, buffer: partials)
        let gs = SendablePointer(dHidden), ds = SendablePointer(UnsafeMutablePointer(mutating: derivative))
        let hs = SendablePointer(UnsafeMutablePointer(mutating: hidden)), gb = rounded.map(SendableBF16.init)
        let fc2Size = fc2.reduce(0) { $0 + $1.view.rank * cols }
        Parallel.chunkedRows(rows, elementsPerRow: work) { chunk, range in
            let acc = sums.chunk(chunk)
            forEachBlock(of: range) { block in
                forEachTile(of: cols) { c0, n in
                    for r in block {
                        let g = gs.p + r * cols + c0, d = ds.p + r * cols + c0
                        rowInputGradient(g, row: r, columns: c0, count: n, cols: cols, fc2)
                        for j in 0..<n { g[j] *= d[j] }
                        if let gb { BF16Matmul.round(g, count: n, into: gb.p + r * cols + c0) }
                        rowOutputGradient(g, row: r, columns: c0, count: n, cols: cols, fc1)
                    }
                    addInputSums(hs.p + c0, ldx: cols, rows: block, columns: c0, count: n, cols: cols, fc2, acc)
                    addOutputSums(gs.p + c0, rows: block, columns: c0, count: n, cols: cols, fc1, acc + fc2Size)
                }
            }
        }
        sums.reduceInto(fc2.map(\.dA), ranks: fc2.map(\.view.rank))
        sums.reduceTransposedInto(fc1.map(\.dB), ranks: fc1.map(\.view.rank), skipping: fc2Size)
    }

    /// Rows per block and columns per tile of the row passes. A block walks the columns tile by tile, so the factor
    /// rows' tile (rank × tile floats) and the partial sums' tile are read from L2 once per block and then from L1;
    /// row by row over whole rows, [8 × 2048] factors do not fit L1 and every row streams them from L2.
    static let rowBlock = 4, columnTile = 512

    /// Calls `body` on consecutive blocks of at most `rowBlock` rows that cover `range` in order.
    @inline(__always)
    static func forEachBlock(of range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var r = range.lowerBound
        while r < range.upperBound {
            let end = min(r + rowBlock, range.upperBound)
            body(r..<end)
            r = end
        }
    }

    /// Calls `body(c0, n)` on consecutive column tiles c0..<c0+n covering 0..<cols in order (once, empty, for cols = 0,
    /// so the dots are still written).
    @inline(__always)
    static func forEachTile(of cols: Int, _ body: (_ c0: Int, _ n: Int) -> Void) {
        var c0 = 0
        repeat {
            let n = min(columnTile, cols - c0)
            body(c0, n)
            c0 += n
        } while c0 < cols
    }

    /// ∂(x·Aᵀ)[r] = scale·dy·B from columns c0..<c0+n (dy points at column c0), added to the earlier tiles' part.
    @inline(__always)
    static func rowOutputGradient(_ dy: UnsafePointer<Float>, row r: Int, columns c0: Int, count n: Int, cols: Int, _ terms: [LoRAGradView]) {
        for t in terms {
            let v = t.view
            gk_dots(dy, v.bt + c0, cols, v.rank, n, v.scale, t.dDown + r * v.rank, c0 > 0 ? 1 : 0)
        }
    }

    /// dx += ∂(x·Aᵀ)[r]·A on columns c0..<c0+n (dx points at column c0).
    @inline(__always)
    static func rowInputGradient(_ dx: UnsafeMutablePointer<Float>, row r: Int, columns c0: Int, count n: Int, cols: Int, _ terms: [LoRAGradView]) {
        for t in terms {
            let v = t.view
            gk_add_combination(dx, v.a + c0, cols, v.rank, n, t.dDown + r * v.rank, 1, 1)
        }
    }

    /// ∂B's partial sums (blocks [rank, cols] from acc on) += scale·(x·Aᵀ)ᵀ·dy over a block of rows of dy [·, cols],
    /// on columns c0..<c0+n (dy points at column c0 of the first row).
    @inline(__always)
    static func addOutputSums(
        _ dy: UnsafePointer<Float>, rows block: Range<Int>, columns c0: Int, count n: Int, cols: Int,
        _ terms: [LoRAGradView], _ acc: UnsafeMutablePointer<Float>
    ) {
        var off = c0
        for t in terms {
            let v = t.view
            addOuterProducts(
                acc + off, rank: v.rank, cols: cols, count: n, rows: dy + block.lowerBound * cols, stride: cols,
                rowCount: block.count, coefficients: v.down + block.lowerBound * v.rank, scale: v.scale)
            off += v.rank * cols
        }
    }

    /// ∂A's partial sums (blocks [rank, cols] from acc on) += ∂(x·Aᵀ)ᵀ·x over a block of rows of x (stride ldx), on
    /// columns c0..<c0+n (x points at column c0 of row 0).
    @inline(__always)
    static func addInputSums(
        _ x: UnsafePointer<Float>, ldx: Int, rows block: Range<Int>, columns c0: Int, count n: Int, cols: Int,
        _ terms: [LoRAGradView], _ acc: UnsafeMutablePointer<Float>
    ) {
        var off = c0
        for t in terms {
            let v = t.view
            addOuterProducts(
                acc + off, rank: v.rank, cols: cols, count: n, rows: x + block.lowerBound * ldx, stride: ldx,
                rowCount: block.count, coefficients: t.dDown + block.lowerBound * v.rank, scale: 1)
            off += v.rank * cols
        }
    }

    /// acc[k] += scale·Σᵢ c[i, k]·xᵢ for k < rank over n columns: acc's rows `cols` apart, `rowCount` rows xᵢ
    /// (`stride` apart), coefficients c [rowCount, rank].
    @inline(__always)
    static func addOuterProducts(
        _ acc: UnsafeMutablePointer<Float>, rank: Int, cols: Int, count n: Int, rows x: UnsafePointer<Float>,
        stride: Int, rowCount: Int, coefficients c: UnsafePointer<Float>, scale: Float
    ) {
        for k in 0..<rank {
            gk_add_combination(acc + k * cols, x, stride, rowCount, n, c + k, rank, scale)
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
