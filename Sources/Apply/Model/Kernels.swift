import CGSLoRAKernels

/// Elementwise and row-wise kernels over row-major float32 matrices. The arithmetic-heavy ones (reductions, LayerNorm,
/// softmax, GELU, LoRA's rank-r products, bf16 rounding) are CGSLoRAKernels' C kernels, built per instruction set and chosen
/// at run time (`KernelLevel`); the memory-bound rest are plain loops over unsafe pointers that auto-vectorize.
public enum Kernels {
    /// Σ a[i]·b[i].
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float { gk_dot(a, b, n) }

    /// Σ (p[i] − c)².
    static func sumSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Float { gk_sum_squared_deviation(p, n, c) }

    /// out = (x − mean)·rstd·gamma + beta per row (biased variance, as PyTorch). `mean`/`rstd` receive the
    /// per-row statistics the backward pass needs when given; `rounded` receives out rounded to bf16 (bit patterns,
    /// [rows, cols]). `out` may alias `x`.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, rows: Int, cols: Int, gamma: UnsafePointer<Float>,
        beta: UnsafePointer<Float>, eps: Float, out: UnsafeMutablePointer<Float>,
        mean: UnsafeMutablePointer<Float>? = nil, rstd: UnsafeMutablePointer<Float>? = nil,
        rounded: UnsafeMutablePointer<UInt16>? = nil
    ) {
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), os = SendablePointer(out)
        let ms = mean.map(SendablePointer.init), rs = rstd.map(SendablePointer.init), hs = rounded.map(SendableBF16.init)
        let g = SendablePointer(UnsafeMutablePointer(mutating: gamma)), b = SendablePointer(UnsafeMutablePointer(mutating: beta))
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                let orow = os.p + r * cols
                var mu: Float = 0, inv: Float = 0
                gk_layer_norm_row(xs.p + r * cols, cols, g.p, b.p, eps, orow, &mu, &inv)
                ms?.p[r] = mu
                rs?.p[r] = inv
                if let hs { BF16Matmul.round(orow, count: cols, into: hs.p + r * cols) }
            }
        }
    }

    /// Dense rows [rows, cols] into rows `ldc` floats apart, split over the cores.
    static func copyRows(_ src: UnsafePointer<Float>, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>, ldc: Int) {
        let from = SendablePointer(UnsafeMutablePointer(mutating: src)), to = SendablePointer(dst)
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range { (to.p + r * ldc).update(from: from.p + r * cols, count: cols) }
        }
    }

    /// y[r, j] += bias[j], rows `ld` floats apart (default: packed).
    public static func addBias(_ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int? = nil, bias: UnsafePointer<Float>) {
        let ys = SendablePointer(y), bs = SendablePointer(UnsafeMutablePointer(mutating: bias)), stride = ld ?? cols
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                let row = ys.p + r * stride
                for j in 0..<cols { row[j] += bs.p[j] }
            }
        }
    }

    /// x += (y + bias)·mask: a residual branch with its output bias and dropout; `lora` adds its up-projection to y
    /// first (y is changed). The mask of row r, column j is element r·rowStride + j of its draw.
    static func residualAdd(
        _ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
        bias: UnsafePointer<Float>?, mask: RowDropout? = nil, lora: [LoRAView] = []
    ) {
        let xs = SendablePointer(x), ys = SendablePointer(y)
        let bs = bias.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                let xr = xs.p + r * cols, yr = ys.p + r * cols
                LoRAKernels.addUp(yr, row: r, cols: cols, lora)
                switch (bs, mask) {
                case let (b?, m?): let base = m.start(of: r); for j in 0..<cols { xr[j] += (yr[j] + b.p[j]) * m.mask.value(at: base &+ j) }
                case let (b?, nil): for j in 0..<cols { xr[j] += yr[j] + b.p[j] }
                case let (nil, m?): let base = m.start(of: r); for j in 0..<cols { xr[j] += yr[j] * m.mask.value(at: base &+ j) }
                case (nil, nil): for j in 0..<cols { xr[j] += yr[j] }
                }
            }
        }
    }

    /// Row softmax of scale·s in place (max-subtracted, fast exp), on the calling thread.
    public static func softmaxRows(_ s: UnsafeMutablePointer<Float>, rows: Int, cols: Int, scale: Float = 1) {
        for r in 0..<rows { gk_softmax_row(s + r * cols, cols, scale) }
    }

    /// x[r, j] *= mask (dropout on a [rows, cols] buffer), in place.
    static func applyDropout(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, _ mask: RowDropout) {
        let xs = SendablePointer(x)
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                let row = xs.p + r * cols, base = mask.start(of: r)
                for j in 0..<cols { row[j] *= mask.mask.value(at: base &+ j) }
            }
        }
    }
}
