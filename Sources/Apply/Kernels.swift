/// Elementwise and row-wise kernels over row-major float32 matrices, written as plain loops over unsafe
/// pointers so they auto-vectorize; reductions use explicit SIMD accumulators.
public enum Kernels {
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        let raw = UnsafeRawPointer(p)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            a1 += raw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            i += 16
        }
        var s = (a0 + a1).sum()
        while i < n { s += p[i]; i += 1 }
        return s
    }

    /// Σ a[i]·b[i].
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            a1 += ra.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            i += 16
        }
        var s = (a0 + a1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// Σ (p[i] − c)².
    @inline(__always)
    static func sumSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Float {
        let raw = UnsafeRawPointer(p)
        let cv = SIMD8<Float>(repeating: c)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            let d0 = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - cv
            let d1 = raw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self) - cv
            a0 += d0 * d0
            a1 += d1 * d1
            i += 16
        }
        var s = (a0 + a1).sum()
        while i < n { let d = p[i] - c; s += d * d; i += 1 }
        return s
    }

    @inline(__always)
    static func maximum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        let raw = UnsafeRawPointer(p)
        var m = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        // `replace(with:where:)` compiles to a compare and blend; `pointwiseMax` is ~3× slower.
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            m.replace(with: v, where: v .> m)
            i += 8
        }
        var s = m.max()
        while i < n { s = p[i] > s ? p[i] : s; i += 1 }
        return s
    }

    /// out = (x − mean)·rstd·gamma + beta per row (biased variance, as PyTorch). `mean`/`rstd` receive the
    /// per-row statistics the backward pass needs when given; `rounded` receives out rounded to bf16 (bit patterns,
    /// [rows, cols]). `out` may alias `x`.
    public static func layerNorm(_ x: UnsafePointer<Float>, rows: Int, cols: Int, gamma: UnsafePointer<Float>,
                                 beta: UnsafePointer<Float>, eps: Float, out: UnsafeMutablePointer<Float>,
                                 mean: UnsafeMutablePointer<Float>? = nil, rstd: UnsafeMutablePointer<Float>? = nil,
                                 rounded: UnsafeMutablePointer<UInt16>? = nil) {
        let xs = SendablePointer(UnsafeMutablePointer(mutating: x)), os = SendablePointer(out)
        let ms = mean.map(SendablePointer.init), rs = rstd.map(SendablePointer.init), hs = rounded.map(SendableBF16.init)
        let g = SendablePointer(UnsafeMutablePointer(mutating: gamma)), b = SendablePointer(UnsafeMutablePointer(mutating: beta))
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                let xr = xs.p + r * cols, orow = os.p + r * cols
                let mu = sum(xr, cols) / Float(cols)
                let variance = sumSquaredDeviation(xr, cols, mu) / Float(cols)
                let inv = 1 / (variance + eps).squareRoot()
                ms?.p[r] = mu
                rs?.p[r] = inv
                for j in 0..<cols { orow[j] = (xr[j] - mu) * inv * g.p[j] + b.p[j] }
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
    static func residualAdd(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                            bias: UnsafePointer<Float>?, mask: RowDropout? = nil, lora: [LoRAView] = []) {
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
        for r in 0..<rows {
            let row = s + r * cols
            if scale != 1 { for j in 0..<cols { row[j] *= scale } }
            let m = maximum(row, cols)
            for j in 0..<cols { row[j] = FastMath.exp(row[j] - m) }
            let inv = 1 / sum(row, cols)
            for j in 0..<cols { row[j] *= inv }
        }
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
