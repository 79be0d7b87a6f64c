import CGSLoRAKernels

/// Row-wise kernels of the backward pass (same conventions as `Kernels`).
extension Kernels {
    /// LayerNorm backward from the saved input and statistics. dx (+)= rstd·(g − mean(g) − x̂·mean(g·x̂)) with
    /// g = dy·gamma, x̂ = (x − mean)·rstd; with `accumulate` the result is added to `dx`, else written.
    /// When `dGamma`/`dBeta` are given, Σ_rows dy·x̂ and Σ_rows dy are added to them.
    public static func layerNormBackward(
        _ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>, rows: Int, cols: Int,
        dx: UnsafeMutablePointer<Float>, accumulate: Bool,
        dGamma: UnsafeMutablePointer<Float>? = nil, dBeta: UnsafeMutablePointer<Float>? = nil
    ) {
        let dys = SendablePointer(UnsafeMutablePointer(mutating: dy)), xs = SendablePointer(UnsafeMutablePointer(mutating: x))
        let ms = SendablePointer(UnsafeMutablePointer(mutating: mean)), rs = SendablePointer(UnsafeMutablePointer(mutating: rstd))
        let gs = SendablePointer(UnsafeMutablePointer(mutating: gamma)), dxs = SendablePointer(dx)
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                gk_layer_norm_backward_row(
                    dys.p + r * cols, xs.p + r * cols, ms.p[r], rs.p[r], gs.p, cols, dxs.p + r * cols,
                    accumulate ? 1 : 0)
            }
        }
        if let dGamma, let dBeta {
            for r in 0..<rows {
                let dyr = dy + r * cols, xr = x + r * cols, mu = mean[r], inv = rstd[r]
                for j in 0..<cols {
                    dGamma[j] += dyr[j] * (xr[j] - mu) * inv
                    dBeta[j] += dyr[j]
                }
            }
        }
    }

    /// Softmax backward in place: dS = scale·P ⊙ (dP − rowsum(dP ⊙ P)), `dp` becomes dS (the gradient of the softmax
    /// input when the softmax was taken of scale·S, with respect to S).
    public static func softmaxBackwardRows(
        _ dp: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>, rows: Int, cols: Int,
        scale: Float = 1
    ) {
        for r in 0..<rows { gk_softmax_backward_row(dp + r * cols, probs + r * cols, cols, scale) }
    }

    /// out = a ⊙ mask over [rows, cols] (dropout backward), or a copy without a mask; `rounded` receives out rounded
    /// to bf16 [rows, cols].
    static func masked(
        _ a: UnsafePointer<Float>, _ mask: RowDropout?, rows: Int, cols: Int, out: UnsafeMutablePointer<Float>,
        rounded: UnsafeMutablePointer<UInt16>? = nil
    ) {
        let src = SendablePointer(UnsafeMutablePointer(mutating: a)), dst = SendablePointer(out), hs = rounded.map(SendableBF16.init)
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                let ar = src.p + r * cols, o = dst.p + r * cols
                if let mask {
                    let base = mask.start(of: r)
                    for j in 0..<cols { o[j] = ar[j] * mask.mask.value(at: base &+ j) }
                } else {
                    o.update(from: ar, count: cols)
                }
                if let hs { BF16Matmul.round(o, count: cols, into: hs.p + r * cols) }
            }
        }
    }

    /// db[j] += Σ_rows dy[r, j], rows `ld` floats apart (default: packed).
    public static func addColumnSums(_ dy: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int? = nil, into db: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let row = dy + r * (ld ?? cols)
            for j in 0..<cols { db[j] += row[j] }
        }
    }
}
