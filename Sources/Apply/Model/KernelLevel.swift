import CGSLoRAKernels
import Foundation

/// The instruction set the vectorised kernels (CGSLoRAKernels) run with. Each level's kernels give bit-identical results;
/// the process picks the best level its CPU runs when it loads, or the one the environment variable GSLORA_KERNELS
/// names ("baseline", "avx2", "avx512", "neon"; spec/PLATFORM.md).
public enum KernelLevel: String, CaseIterable, Sendable {
    /// x86-64 SSE2 (any x86-64 CPU), or portable C on other architectures.
    case baseline
    /// AVX2 with FMA and F16C (x86-64-v3).
    case avx2
    /// AVX-512 F, BW, DQ and VL, with AVX2, FMA and F16C.
    case avx512
    /// arm64 Advanced SIMD (every arm64 CPU).
    case neon

    var code: Int32 {
        switch self {
        case .baseline: return Int32(GK_LEVEL_BASELINE)
        case .avx2: return Int32(GK_LEVEL_AVX2)
        case .avx512: return Int32(GK_LEVEL_AVX512)
        case .neon: return Int32(GK_LEVEL_NEON)
        }
    }

    init?(code: Int32) {
        guard let level = KernelLevel.allCases.first(where: { $0.code == code }) else { return nil }
        self = level
    }

    /// The level in use.
    public static var active: KernelLevel { KernelLevel(code: gk_active_level()) ?? .baseline }

    /// The best level this CPU runs.
    public static var best: KernelLevel { KernelLevel(code: gk_best_level(gk_cpu_features())) ?? .baseline }

    /// The levels this build has kernels for (its architecture's).
    public static var compiled: [KernelLevel] { allCases.filter { gk_level_compiled($0.code) != 0 } }

    /// Whether this CPU runs `self`'s kernels (and the build has them).
    public var runsHere: Bool { KernelLevel.choose(best: KernelLevel.best, request: rawValue) == self }

    /// What a request (nil or "best": `best`) selects on a CPU whose best level is `best`: the level, or nil when the
    /// name is unknown or that CPU cannot run it. The same rule picks the level at load from GSLORA_KERNELS.
    public static func choose(best: KernelLevel, request: String?) -> KernelLevel? {
        let code = request.map { gk_choose(best.code, $0) } ?? gk_choose(best.code, nil)
        return KernelLevel(code: code)
    }

    /// Switches every later kernel call to `level`. Not for use while kernels run on other threads.
    public static func use(_ level: KernelLevel) throws {
        guard level.runsHere, gk_use_level(level.code) == 0 else { throw ModelError.cpuLacks(level.requirement) }
    }

    /// The CPU features `self` needs, for messages.
    public var requirement: String {
        switch self {
        case .baseline: return "x86-64 baseline kernels"
        case .avx2: return "AVX2, FMA and F16C (kernels \"avx2\")"
        case .avx512: return "AVX-512 F, BW, DQ and VL (kernels \"avx512\")"
        case .neon: return "arm64 NEON (kernels \"neon\")"
        }
    }

    /// Why the GSLORA_KERNELS value this process loaded with was not followed (the best level runs instead), or nil.
    public static var environmentProblem: ModelError? {
        let request = getenv("GSLORA_KERNELS").map { String(cString: $0) } ?? ""
        switch gk_environment_problem() {
        case Int32(GK_CHOICE_UNKNOWN_NAME):
            let names = compiled.map(\.rawValue).joined(separator: ", ")
            return .badKernelRequest("GSLORA_KERNELS=\(request) names no kernel level of this build; use one of \(names), or unset it")
        case Int32(GK_CHOICE_CPU_LACKS):
            let level = KernelLevel(rawValue: request)
            let here = compiled.filter(\.runsHere).map(\.rawValue).joined(separator: ", ")
            return .cpuLacks((level?.requirement ?? request) + ", asked for by GSLORA_KERNELS=\(request); unset it or use one of \(here)")
        default:
            return nil
        }
    }
}
