import CGSLoRAKernels

/// Branch-free float approximations. Their code is CGSLoRAKernels' (`gk_exp`, `gk_erf`, `gk_gelu_value`, …), shared with
/// the vectorised kernels that inline them, so these scalar entry points compute exactly what those kernels do.
public enum FastMath {
    /// e^x, within ~2 ulp for x in [-87, 88] (Cephes expf: range reduction by ln 2 in two parts, degree-6
    /// polynomial, 2^n assembled from the exponent bits). Inputs outside are clamped; NaN is not propagated.
    @inline(__always)
    public static func exp(_ v: Float) -> Float { gk_exp(v) }

    /// erf(x) with absolute error below 1e-7 over all floats (measured against Double erf): an odd polynomial
    /// for |x| < 1 and a Chebyshev-fitted polynomial in |x| on [1, 3.92]; erf is ±1 in float beyond that.
    @inline(__always)
    public static func erf(_ x: Float) -> Float { gk_erf(x) }

    /// GELU(x) = x·Φ(x) in the erfc form: within 1.3e-7 of the Double erf form relative to max(1, |GELU|), and within
    /// 4.3e-7 relative for x in [−9, −1], where 1 + erf(x/√2) would cancel (measured over every float).
    /// GELU(+∞) = +∞, GELU(−∞) = −0, NaN gives NaN. Φ(−a) = w·P(w)·e^{−a²/2} with w = 1/(a + 2.875) and P a degree-8
    /// relative-minimax fit; e^{−a²/2} is computed so that the rounding of a² never enters it.
    @inline(__always)
    public static func gelu(_ x: Float) -> Float { gk_gelu_value(x) }

    /// GELU(x) and its derivative Φ(x) + x·φ(x), sharing one e^{−x²/2}: the training forward keeps the derivative
    /// for the backward pass. `value` is bit-identical to `gelu(x)`; the derivative is 0 at −∞ and 1 at +∞.
    @inline(__always)
    public static func geluWithDerivative(_ x: Float) -> (value: Float, derivative: Float) {
        var value: Float = 0
        let derivative = gk_gelu_derivative_value(x, &value)
        return (value, derivative)
    }
}
