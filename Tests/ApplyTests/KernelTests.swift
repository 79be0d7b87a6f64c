import Foundation
import GSLoRAModel
import XCTest

/// The vectorized kernels against Double references, with tight tolerances.
final class KernelTests: XCTestCase {
    func grid(_ lo: Float, _ hi: Float, _ n: Int) -> [Float] { (0...n).map { lo + (hi - lo) * Float($0) / Float(n) } }

    func testErfAbsoluteErrorBelow1e7() {
        var worst = 0.0
        for x in grid(-8, 8, 400_000) + [0, -0, .infinity, -.infinity, 1e-30, -1e-30] {
            worst = max(worst, abs(Double(FastMath.erf(x)) - Foundation.erf(Double(x))))
        }
        XCTAssertLessThanOrEqual(worst, 1e-7)
    }

    func testGELUMatchesErfFormInDouble() {
        var worst = 0.0
        for x in grid(-12, 12, 240_000) {
            let d = Double(x), ref = 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot()))
            worst = max(worst, abs(Double(FastMath.gelu(x)) - ref) / max(1, abs(ref)))
        }
        XCTAssertLessThanOrEqual(worst, 2e-7)
    }

    func testGELUDerivativeMatchesFiniteDifference() {
        for x in grid(-6, 6, 1200) {
            let d = Double(x), h = 1e-4
            func g(_ v: Double) -> Double { 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot())) }
            let ref = (g(d + h) - g(d - h)) / (2 * h)
            let both = FastMath.geluWithDerivative(x)
            XCTAssertEqual(Double(both.derivative), ref, accuracy: 1e-6, "x = \(x)")
            XCTAssertEqual(both.value, FastMath.gelu(x), "x = \(x)")
        }
    }

    /// Where 1 + erf(x/√2) would cancel, GELU keeps a small relative error: 4.3e-7 measured over every float in
    /// [−9, −1] (about 7 units of 2^-24: the rounding of 1/(|x| + 2.875), amplified up to 2.3× by the fit's slope,
    /// plus the polynomial's and e^{−x²/2}'s roundings).
    func testGELUNegativeTailRelativeError() {
        var worst = 0.0
        for x in grid(-9, -1, 400_000) {
            let d = Double(x), ref = 0.5 * d * Foundation.erfc(-d / 2.0.squareRoot())
            worst = max(worst, abs(Double(FastMath.gelu(x)) - ref) / abs(ref))
        }
        XCTAssertLessThanOrEqual(worst, 5e-7)
    }

    func testGELUAtInfinitiesAndNaN() {
        XCTAssertEqual(FastMath.gelu(.infinity), .infinity)
        XCTAssertEqual(FastMath.gelu(-.infinity), 0)
        XCTAssertEqual(FastMath.gelu(-.greatestFiniteMagnitude), 0)
        XCTAssertEqual(FastMath.gelu(.greatestFiniteMagnitude), .greatestFiniteMagnitude)
        XCTAssertEqual(FastMath.geluWithDerivative(.infinity).derivative, 1)
        XCTAssertEqual(FastMath.geluWithDerivative(-.infinity).derivative, 0)
        XCTAssertEqual(FastMath.geluWithDerivative(-.infinity).value, 0)
        XCTAssertTrue(FastMath.gelu(.nan).isNaN)
        XCTAssertTrue(FastMath.geluWithDerivative(.nan).derivative.isNaN)
    }

    func testExpRelativeError() {
        var worst = 0.0
        for x in grid(-87, 88, 350_000) {
            let ref = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(FastMath.exp(x)) - ref) / ref)
        }
        XCTAssertLessThanOrEqual(worst, 3e-7)
        XCTAssertEqual(FastMath.exp(0), 1)
        XCTAssertLessThan(FastMath.exp(-1000), 1e-37)
    }

    func testLayerNormAgainstDouble() {
        var rng = SplitMix64(seed: 1)
        let rows = 7, cols = 133
        let x = (0..<(rows * cols)).map { _ in rng.nextUnitFloat() * 8 - 3 }
        let g = (0..<cols).map { _ in rng.nextUnitFloat() + 0.5 }, b = (0..<cols).map { _ in rng.nextUnitFloat() - 0.5 }
        var out = [Float](repeating: 0, count: rows * cols), mean = [Float](repeating: 0, count: rows), rstd = mean
        Kernels.layerNorm(x, rows: rows, cols: cols, gamma: g, beta: b, eps: 1e-5, out: &out, mean: &mean, rstd: &rstd)
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let mu = row.reduce(0, +) / Double(cols)
            let v = row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(cols)
            let inv = 1 / (v + 1e-5).squareRoot()
            XCTAssertEqual(Double(mean[r]), mu, accuracy: 1e-6)
            XCTAssertEqual(Double(rstd[r]), inv, accuracy: 1e-6 * inv)
            for j in 0..<cols {
                XCTAssertEqual(Double(out[r * cols + j]), (row[j] - mu) * inv * Double(g[j]) + Double(b[j]), accuracy: 2e-6)
            }
        }
    }

    func testSoftmaxAgainstDouble() {
        var rng = SplitMix64(seed: 2)
        let rows = 5, cols = 197
        var s = (0..<(rows * cols)).map { _ in rng.nextUnitFloat() * 40 - 20 }
        let x = s
        Kernels.softmaxRows(&s, rows: rows, cols: cols)
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let m = row.max()!, e = row.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
            for j in 0..<cols { XCTAssertEqual(Double(s[r * cols + j]), e[j] / z, accuracy: 1e-7 + 1e-6 * e[j] / z) }
        }
    }

    func testGEMMWrapperAgainstNaive() {
        var rng = SplitMix64(seed: 3)
        let m = 9, n = 7, k = 13
        let a = (0..<(m * k)).map { _ in rng.nextUnitFloat() - 0.5 }, b = (0..<(n * k)).map { _ in rng.nextUnitFloat() - 0.5 }
        var c = [Float](repeating: 1, count: m * n)
        BLAS.gemm(transB: true, m: m, n: n, k: k, alpha: 2, a: a, lda: k, b: b, ldb: k, beta: 0.5, c: &c, ldc: n)
        for i in 0..<m {
            for j in 0..<n {
                let dot = (0..<k).reduce(0.0) { $0 + Double(a[i * k + $1]) * Double(b[j * k + $1]) }
                XCTAssertEqual(Double(c[i * n + j]), 2 * dot + 0.5, accuracy: 1e-5)
            }
        }
    }

    func testDropoutMaskIsInvertedAndReproducible() {
        let n = 200_000
        var d1 = Dropout(probability: 0.1, seed: 42), d2 = Dropout(probability: 0.1, seed: 42)
        func draw(_ d: inout Dropout) -> [Float] { let m = d.nextMask(); return (0..<n).map { m.value(at: $0) } }
        let m1 = draw(&d1)
        XCTAssertEqual(m1, draw(&d2))
        let keep = Float(1) / 0.9
        XCTAssertTrue(m1.allSatisfy { $0 == 0 || $0 == keep })
        let dropped = Double(m1.filter { $0 == 0 }.count) / Double(n)
        XCTAssertEqual(dropped, 0.1, accuracy: 0.005)
        XCTAssertNotEqual(m1, draw(&d1), "a second call must draw a fresh mask")
    }
}
