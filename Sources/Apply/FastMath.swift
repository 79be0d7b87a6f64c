/// Branch-free float approximations that auto-vectorize inside plain loops (libm `expf`/`erff` per element
/// stop vectorization, bench/README.md "Code generation notes"). Select-by-ternary and wrapping integer ops only.
public enum FastMath {
    /// e^x, within ~2 ulp for x in [-87, 88] (Cephes expf: range reduction by ln 2 in two parts, degree-6
    /// polynomial, 2^n assembled from the exponent bits). Inputs outside are clamped; NaN is not propagated.
    @inline(__always)
    public static func exp(_ v: Float) -> Float {
        var x = v < -87.3 ? -87.3 : v
        x = x > 88.3 ? 88.3 : x
        // Round x·log2(e) to the nearest integer: adding 1.5·2^23 leaves it in the low mantissa bits.
        let shifted = x * 1.44269504088896341 + 12582912.0
        let n = shifted - 12582912.0
        let r = fma(n, 2.12194440e-4, fma(n, -0.693359375, x))
        var p: Float = 1.9875691500e-4
        p = fma(p, r, 1.3981999507e-3)
        p = fma(p, r, 8.3334519073e-3)
        p = fma(p, r, 4.1665795894e-2)
        p = fma(p, r, 1.6666665459e-1)
        p = fma(p, r, 5.0000001201e-1)
        p = fma(p, r * r, r) + 1
        let ni = Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000
        let scale = Float(bitPattern: UInt32(bitPattern: (ni &+ 127) &<< 23))
        return p * scale
    }

    /// erf(x) with absolute error below 1e-7 over all floats (measured against Double erf): an odd polynomial
    /// for |x| < 1 and a Chebyshev-fitted polynomial in |x| on [1, 3.92]; erf is ±1 in float beyond that.
    @inline(__always)
    public static func erf(_ x: Float) -> Float {
        let ax = x < 0 ? -x : x
        // |x| < 1: erf(x) = x·P1(s), s = 2x² − 1.
        let s1 = fma(x * x, 2, -1)
        var p1: Float = -7.554787373464933e-08
        p1 = fma(p1, s1, 1.231088617714704e-06)
        p1 = fma(p1, s1, -1.753686592564918e-05)
        p1 = fma(p1, s1, 0.00021751270105596632)
        p1 = fma(p1, s1, -0.0022854856215417385)
        p1 = fma(p1, s1, 0.019852496683597565)
        p1 = fma(p1, s1, -0.1405360847711563)
        p1 = fma(p1, s1, 0.9654687643051147)
        let small = x * p1
        // 1 ≤ |x| ≤ 3.92: erf(|x|) = P2(u), u = |x| mapped linearly onto [-1, 1].
        let c = ax > 3.92 ? 3.92 : ax
        let u = fma(c, 2 / 2.92, -(4.92 / 2.92))
        var p2: Float = 0.00021937955170869827
        p2 = fma(p2, u, 2.6614299713401124e-05)
        p2 = fma(p2, u, -0.0016276390524581075)
        p2 = fma(p2, u, 0.0015457500703632832)
        p2 = fma(p2, u, 0.003339302260428667)
        p2 = fma(p2, u, -0.008982433006167412)
        p2 = fma(p2, u, 0.007346183992922306)
        p2 = fma(p2, u, 0.006468124687671661)
        p2 = fma(p2, u, -0.02844717726111412)
        p2 = fma(p2, u, 0.04511430859565735)
        p2 = fma(p2, u, -0.0450473353266716)
        p2 = fma(p2, u, 0.030599113553762436)
        p2 = fma(p2, u, -0.013928979635238647)
        p2 = fma(p2, u, 0.0038781326729804277)
        p2 = fma(p2, u, 0.9994966387748718)
        let big: Float = ax >= 3.92 ? 1 : p2
        let signedBig = x < 0 ? -big : big
        return ax < 1 ? small : signedBig
    }

    /// a·b + c in one rounding. Written out so the polynomials compile to vfmadd (LLVM does not contract a·b + c
    /// by itself), which halves their instruction count in the vectorized loops.
    @inline(__always)
    static func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { c.addingProduct(a, b) }

    /// GELU(x) = x·Φ(x) in the erfc form (`normal`): within 1.3e-7 of the Double erf form relative to max(1, |GELU|),
    /// and within 4.3e-7 relative for x in [−9, −1], where 1 + erf(x/√2) would cancel (measured over every float).
    /// GELU(+∞) = +∞, GELU(−∞) = −0, NaN gives NaN.
    @inline(__always)
    public static func gelu(_ x: Float) -> Float {
        // max(x, −13.25): −13.25·0 rather than −∞·0 = NaN; Φ is exactly 0 below −13.25 anyway.
        (x < -13.25 ? -13.25 : x) * normal(x).cdf
    }

    /// GELU(x) and its derivative Φ(x) + x·φ(x), sharing one e^{−x²/2}: the training forward keeps the derivative
    /// for the backward pass. `value` is bit-identical to `gelu(x)`; the derivative is 0 at −∞ and 1 at +∞.
    @inline(__always)
    public static func geluWithDerivative(_ x: Float) -> (value: Float, derivative: Float) {
        let n = normal(x)
        let low = x < -13.25 ? -13.25 : x
        // x·φ(x) with x clamped to ±13.25, where e^{−x²/2} is already exactly 0: ±∞·0 would be NaN.
        let clamped = low > 13.25 ? 13.25 : low
        return (low * n.cdf, fma(clamped * 0.39894228040143268, n.gauss, n.cdf))
    }

    /// Φ(x) and e^{−x²/2}, one division and one exponential. For a = |x|: Φ(−a) = ½·erfc(a/√2) = w·P(w)·e^{−a²/2}
    /// with w = 1/(a + 2.875), P a degree-8 relative-minimax fit of ½·erfcx(a/√2)/w on a ∈ [0, 13.25] (3e-8; ≈3e-7
    /// after float rounding, mostly the rounding of w), and Φ(a) = 1 − Φ(−a). Beyond a = 13.25 e^{−a²/2} is exactly
    /// 0, so a is clamped there and Φ is exactly 0 or 1.
    @inline(__always)
    static func normal(_ x: Float) -> (cdf: Float, gauss: Float) {
        let ax = x.magnitude
        let a = ax > 13.25 ? 13.25 : ax
        let w = 1 / (a + 2.875)
        var p: Float = -386.9980163574219
        p = fma(p, w, 675.2136840820312)
        p = fma(p, w, -426.3068542480469)
        p = fma(p, w, 96.72869110107422)
        p = fma(p, w, -5.738410472869873)
        p = fma(p, w, 7.38779878616333)
        p = fma(p, w, 2.821789503097534)
        p = fma(p, w, 1.1493825912475586)
        p = fma(p, w, 0.39890992641448975)
        let gauss = expOfNegativeHalfSquare(a)
        let tail = w * p * gauss
        return (x.sign == .minus ? tail : 1 - tail, gauss)
    }

    /// e^{−a²/2} for 0 ≤ a ≤ 13.25, within 1e-7 relative: a² enters the reduced argument through an fma, so its
    /// rounding (up to 4e-6 near a = 13) never does. Cephes-style reduction by ln 2 in two parts; e^r = 1 + r + r²·P(r)
    /// with P a degree-4 relative-minimax fit on |r| ≤ ln2/2 (3e-9). a ≤ 13.25 keeps n ≥ −127, and n = −127 builds
    /// the scale's bit pattern as +0: the result is exactly 0 below about e^{−87.7} instead of a denormal.
    @inline(__always)
    static func expOfNegativeHalfSquare(_ a: Float) -> Float {
        let h = a * -0.5
        // n = round(−a²/2 · log2 e) by the 1.5·2^23 shift; the extra 127 puts the biased exponent n + 127 in the
        // low bits, so shifting the bit pattern left by 23 gives 2^n's (the 0x4B40_0000 part shifts out).
        let shifted = fma(h * a, 1.44269504088896341, 12583039.0)
        let n = shifted - 12583039.0
        // r = −a²/2 − n·ln 2: n·ln2hi is exact (ln2hi has 10 significant bits), and the fma forms −a²/2 − n·ln2hi
        // from the exact product a·h with one rounding.
        let r = fma(n, 2.12194440e-4, fma(h, a, n * -0.693359375))
        var p: Float = 0.0013814528938382864
        p = fma(p, r, 0.008368750102818012)
        p = fma(p, r, 0.04166839271783829)
        p = fma(p, r, 0.1666651964187622)
        p = fma(p, r, 0.4999999403953552)
        let scale = Float(bitPattern: shifted.bitPattern &<< 23)
        return fma(fma(p, r * r, r), scale, scale)
    }
}
