/// Branch-free float approximations that auto-vectorize inside plain loops (libm `expf`/`erff` per element
/// stop vectorization, ../shared/PLATFORM.md). Select-by-ternary and wrapping integer ops only.
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

    /// GELU in its exact erf form: x·Φ(x) = ½·x·(1 + erf(x/√2)).
    @inline(__always)
    public static func gelu(_ x: Float) -> Float {
        0.5 * x * (1 + erf(x * 0.70710678118654752))
    }

    /// GELU(x) and its derivative Φ(x) + x·φ(x) from one erf: the training forward keeps the derivative for the
    /// backward pass.
    @inline(__always)
    public static func geluWithDerivative(_ x: Float) -> (value: Float, derivative: Float) {
        let phi = 0.5 * (1 + erf(x * 0.70710678118654752))
        return (x * phi, phi + x * 0.39894228040143268 * exp(-0.5 * x * x))
    }
}
