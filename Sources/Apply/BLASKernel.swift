import Foundation

extension BLAS {
    /// OpenBLAS 0.3.21 (Debian 12) falls back to its generic "Prescott" kernel on CPUs newer than it knows —
    /// about 10 GFLOP/s instead of 100–450 (../shared/PLATFORM.md). It reads OPENBLAS_CORETYPE once, when the
    /// library loads, so the only fix from inside is to run the process again with the variable set. Commands call
    /// this first thing: when the variable is unset and OpenBLAS chose a generic kernel, the process re-executes
    /// itself with the best kernel the CPU runs — SkylakeX where it has AVX-512 (F, BW, DQ, VL), else Haswell
    /// (AVX2+FMA, which this build already requires). Measured on the Intel AVX-512 machine this project runs on:
    /// sgemm 6304×2048×512 at 214 GFLOP/s (SkylakeX) vs 100 (Haswell) vs 11 (Prescott), with the PyTorch parity tests
    /// passing under each. A user's own OPENBLAS_CORETYPE always wins; GSLORA_KEEP_BLAS_KERNEL=1 turns this off.
    ///
    /// The same re-execution sets OMP_WAIT_POLICY=passive when it is unset: oneDNN (attention's products in every
    /// precision, the linear layers in bf16) runs on libgomp, whose idle threads otherwise spin after every product
    /// and take a core from our own worker threads (+10–25 % bf16 throughput measured on 2 cores; in a later
    /// interleaved series of GS-LoRA bf16 steps, passive 0.43–0.46 s against active 0.51–0.54 s); libgomp too reads
    /// it only when it loads.
    ///
    /// Under an MPI launcher the process is not re-executed (Open MPI's MPI_Init then fails in the new image): set
    /// both variables for mpirun/srun instead (README "More than one machine").
    public static func ensureFastKernel() {
        if Cluster.launched() { return }
        let env = ProcessInfo.processInfo.environment
        var changed = false
        let generic: Set<String> = ["prescott", "core2", "katmai", "coppermine", "northwood", "banias", "atom", "nehalem", "unknown"]
        if env["OPENBLAS_CORETYPE"] == nil, env["GSLORA_KEEP_BLAS_KERNEL"] == nil, generic.contains(coreName.lowercased()) {
            setenv("OPENBLAS_CORETYPE", cpuHasAVX512() ? "SkylakeX" : "Haswell", 1)
            changed = true
        }
        if env["OMP_WAIT_POLICY"] == nil {
            setenv("OMP_WAIT_POLICY", "passive", 1)
            changed = true
        }
        guard changed else { return }
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // exec failed (no /proc?): carry on with the slow kernel rather than not at all.
        if env["OPENBLAS_CORETYPE"] == nil { unsetenv("OPENBLAS_CORETYPE") }
        if env["OMP_WAIT_POLICY"] == nil { unsetenv("OMP_WAIT_POLICY") }
    }

    /// Whether /proc/cpuinfo lists the AVX-512 subsets OpenBLAS's SkylakeX kernels use.
    private static func cpuHasAVX512() -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let have = Set(flags.split(separator: " ").map(String.init))
        return ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(have.contains)
    }
}
