import CGSLoRAKernels
import Foundation
import GSLoRAModel
import TestSupport
import XCTest

/// The per-instruction-set kernels (CGSLoRAKernels): every level this CPU runs gives the baseline kernels' results bit for
/// bit, the vectorised GELU/exp equal the scalar FastMath functions (tested against Double in KernelTests), and the
/// level is chosen as spec/PLATFORM.md says (GSLORA_KERNELS, cpuid).
final class KernelLevelTests: XCTestCase {
    /// Sizes that exercise the 16-lane main loops, the 8-lane steps and the scalar tails.
    static let sizes = [1, 7, 8, 15, 16, 17, 31, 64, 100, 197, 1100]

    func values(_ n: Int, seed: UInt64, spread: Float = 8) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in (rng.nextUnitFloat() * 2 - 1) * spread }
    }

    /// Every kernel's outputs, as bit patterns, at the active level.
    func outputs() -> [UInt32] {
        var out: [UInt32] = []
        func keep(_ a: [Float]) { out += a.map(\.bitPattern) }
        let mask = gk_mask(key: 0x1234_5678, key2: 0x9ABC_DEF0, threshold: 1 << 22, keep: 1 / 0.75)
        for n in Self.sizes {
            let x = values(n, seed: UInt64(n)), y = values(n, seed: UInt64(n) + 100), g = values(n, seed: UInt64(n) + 200, spread: 2)
            keep([gk_sum(x, n), gk_dot(x, y, n), gk_sum_squared_deviation(x, n, 0.3), gk_maximum(x, n)])
            var ln = [Float](repeating: 0, count: n), mean: Float = 0, rstd: Float = 0
            gk_layer_norm_row(x, n, g, y, 1e-5, &ln, &mean, &rstd)
            keep(ln + [mean, rstd])
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { gk_layer_norm_row($0.baseAddress!, n, g, y, 1e-5, $0.baseAddress!, &mean, &rstd) }
            XCTAssertEqual(inPlace.map(\.bitPattern), ln.map(\.bitPattern), "in-place LayerNorm, n = \(n)")
            for accumulate in [0, 1] as [Int32] {
                var dx = y
                gk_layer_norm_backward_row(g, x, mean, rstd, y, n, &dx, accumulate)
                keep(dx)
            }
            var s = x
            gk_softmax_row(&s, n, 0.125)
            keep(s)
            var d = y
            gk_softmax_backward_row(&d, s, n, 0.5)
            keep(d)
            for masked in [false, true] {
                var v = x, o = [Float](repeating: 0, count: n), same = x
                if masked {
                    gk_gelu_masked(&v, &o, n, mask, 5)
                    same.withUnsafeMutableBufferPointer { gk_gelu_masked($0.baseAddress!, $0.baseAddress!, n, mask, 5) }
                } else {
                    gk_gelu(&v, &o, n)
                    same.withUnsafeMutableBufferPointer { gk_gelu($0.baseAddress!, $0.baseAddress!, n) }
                }
                XCTAssertEqual(same.map(\.bitPattern), o.map(\.bitPattern), "in-place GELU, n = \(n)")
                keep(o)
                var dv = x, value = [Float](repeating: 0, count: n)
                if masked { gk_gelu_derivative_masked(&dv, &value, n, mask, 5) } else { gk_gelu_derivative(&dv, &value, n) }
                XCTAssertEqual(value.map(\.bitPattern), o.map(\.bitPattern), "GELU with derivative, n = \(n)")
                keep(dv)
            }
            var half = [UInt16](repeating: 0, count: n)
            gk_bf16_round(x, n, &half)
            out += half.map(UInt32.init)
            // Rank-r products: 1…9 rows (every mix of the four-row groups and their remainders), rows `n + 3` apart.
            for count in 1...9 {
                let m = values(count * (n + 3), seed: UInt64(1000 + n * 10 + count))
                var dots = values(count, seed: 7)
                gk_dots(x, m, n + 3, count, n, 0.7, &dots, 1)
                keep(dots)
                var acc = y
                gk_add_combination(&acc, m, n + 3, count, n, dots, 1, 0.3)
                keep(acc)
            }
        }
        return out
    }

    func testEveryLevelThisCPURunsMatchesTheBaselineBitForBit() throws {
        let original = KernelLevel.active
        defer { XCTAssertNoThrow(try KernelLevel.use(original)) }
        let baselineLevel: KernelLevel = KernelLevel.compiled.contains(.baseline) ? .baseline : .neon
        try KernelLevel.use(baselineLevel)
        let reference = outputs()
        var checked: [String] = []
        for level in KernelLevel.compiled where level.runsHere && level != baselineLevel {
            try KernelLevel.use(level)
            let got = outputs()
            XCTAssertEqual(got.count, reference.count)
            let differing = zip(got, reference).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(level.rawValue): \(differing) of \(got.count) outputs differ from \(baselineLevel.rawValue)")
            checked.append(level.rawValue)
        }
        print(
            "KernelLevelTests: compared \(checked.isEmpty ? "no other level (this CPU runs only \(baselineLevel.rawValue))" : checked.joined(separator: ", ")) "
                + "with \(baselineLevel.rawValue) over \(reference.count) outputs")
    }

    /// The vectorised loops compute exactly the scalar functions KernelTests measures against Double.
    func testVectorisedGELUAndExpEqualTheScalarFunctions() throws {
        let original = KernelLevel.active
        defer { XCTAssertNoThrow(try KernelLevel.use(original)) }
        let grid: [Float] = (0...40_000).map { (i: Int) -> Float in Float(-20 + 40 * Double(i) / 40_000) }
        let special: [Float] = [0, -0, .infinity, -.infinity, .nan, 1e-30, -1e-30]
        let x = grid + special
        for level in KernelLevel.compiled where level.runsHere {
            try KernelLevel.use(level)
            var v = x, out = [Float](repeating: 0, count: x.count)
            gk_gelu(&v, &out, x.count)
            var d = x, value = [Float](repeating: 0, count: x.count)
            gk_gelu_derivative(&d, &value, x.count)
            for i in x.indices {
                let scalar = FastMath.geluWithDerivative(x[i])
                XCTAssertEqual(out[i].bitPattern, FastMath.gelu(x[i]).bitPattern, "\(level.rawValue) GELU(\(x[i]))")
                XCTAssertEqual(d[i].bitPattern, scalar.derivative.bitPattern, "\(level.rawValue) GELU′(\(x[i]))")
            }
            // Softmax of a two-element row [t, 0] is [e^t, 1]/(e^t + 1): its first entry pins e^t (max 0 subtracted for t ≤ 0).
            for t in stride(from: Float(-80), through: 0, by: 0.37) {
                var row: [Float] = [t, 0]
                gk_softmax_row(&row, 2, 1)
                let e = FastMath.exp(t)
                XCTAssertEqual(row[0], e * (1 / (e + 1)), "\(level.rawValue) softmax([\(t), 0])")
            }
        }
    }

    func testLevelChoiceFollowsCPUFeaturesAndRequest() {
        let avx2 = UInt32(GK_FEATURE_AVX2 | GK_FEATURE_FMA | GK_FEATURE_F16C)
        let avx512 = avx2 | UInt32(GK_FEATURE_AVX512F | GK_FEATURE_AVX512BW | GK_FEATURE_AVX512DQ | GK_FEATURE_AVX512VL)
        #if arch(x86_64)
            XCTAssertEqual(gk_best_level(avx512), Int32(GK_LEVEL_AVX512))
            XCTAssertEqual(gk_best_level(avx512 & ~UInt32(GK_FEATURE_AVX512VL)), Int32(GK_LEVEL_AVX2))
            XCTAssertEqual(gk_best_level(avx2), Int32(GK_LEVEL_AVX2))
            XCTAssertEqual(gk_best_level(avx2 & ~UInt32(GK_FEATURE_FMA)), Int32(GK_LEVEL_BASELINE))
            XCTAssertEqual(gk_best_level(0), Int32(GK_LEVEL_BASELINE))
            XCTAssertEqual(KernelLevel.choose(best: .avx512, request: nil), .avx512)
            XCTAssertEqual(KernelLevel.choose(best: .avx512, request: "best"), .avx512)
            XCTAssertEqual(KernelLevel.choose(best: .avx512, request: "avx2"), .avx2)
            XCTAssertEqual(KernelLevel.choose(best: .avx512, request: "baseline"), .baseline)
            XCTAssertNil(KernelLevel.choose(best: .avx2, request: "avx512"))
            XCTAssertNil(KernelLevel.choose(best: .baseline, request: "avx2"))
            XCTAssertNil(KernelLevel.choose(best: .avx2, request: "neon"))
            XCTAssertEqual(Set(KernelLevel.compiled), [.baseline, .avx2, .avx512])
        #elseif arch(arm64)
            XCTAssertEqual(gk_best_level(UInt32(GK_FEATURE_NEON)), Int32(GK_LEVEL_NEON))
            XCTAssertEqual(KernelLevel.choose(best: .neon, request: "baseline"), .neon)
            XCTAssertNil(KernelLevel.choose(best: .neon, request: "avx2"))
        #endif
        XCTAssertNil(KernelLevel.choose(best: .avx2, request: "fastest"))
    }

    /// What the process loaded with: GSLORA_KERNELS's level when set (CI runs the suite once with "baseline"), else the
    /// CPU's best.
    func testActiveLevelIsWhatTheEnvironmentAsked() {
        let request = ProcessInfo.processInfo.environment["GSLORA_KERNELS"]
        XCTAssertNil(KernelLevel.environmentProblem)
        XCTAssertEqual(KernelLevel.active, KernelLevel.choose(best: KernelLevel.best, request: request))
        print("KernelLevelTests: kernels \(KernelLevel.active.rawValue) (GSLORA_KERNELS=\(request ?? "unset"), best here \(KernelLevel.best.rawValue))")
    }

    /// A GSLORA_KERNELS value the build or CPU cannot follow stops a command with exit 2 and says why.
    func testCommandsRefuseAKernelRequestTheyCannotFollow() throws {
        let infer = try CommandRunner.binary("gslora-infer")
        var r = try CommandRunner.run(executable: infer, ["/nonexistent.gslr", "/nonexistent.npy"], environment: ["GSLORA_KERNELS": "fastest"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("GSLORA_KERNELS=fastest names no kernel level"), r.err)
        #if arch(x86_64)
            let above: String = "neon"
        #else
            let above: String = "avx2"
        #endif
        r = try CommandRunner.run(executable: infer, ["/nonexistent.gslr", "/nonexistent.npy"], environment: ["GSLORA_KERNELS": above])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("this CPU lacks") && r.err.contains("GSLORA_KERNELS=\(above)"), r.err)
        if KernelLevel.best != .avx512, KernelLevel.compiled.contains(.avx512) {
            r = try CommandRunner.run(executable: infer, ["/nonexistent.gslr", "/nonexistent.npy"], environment: ["GSLORA_KERNELS": "avx512"])
            XCTAssertEqual(r.code, 2, r.err)
            XCTAssertTrue(r.err.contains("AVX-512 F, BW, DQ and VL"), r.err)
        }
    }
}
