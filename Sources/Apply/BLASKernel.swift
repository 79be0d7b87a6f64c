import Foundation

extension BLAS {
    /// OpenBLAS 0.3.21 (Debian 12) falls back to its generic "Prescott" kernel on CPUs newer than it knows, an order of
    /// magnitude slower (bench/README.md "The OpenBLAS kernel"), and reads OPENBLAS_CORETYPE only when it loads. So
    /// commands call this first thing: when the variable is unset and OpenBLAS chose a generic kernel, the process
    /// re-executes itself with SkylakeX where the CPU has AVX-512 (F, BW, DQ, VL), else Haswell (AVX2+FMA). A user's
    /// own OPENBLAS_CORETYPE always wins; GSLORA_KEEP_BLAS_KERNEL=1 turns this off.
    ///
    /// The same re-execution sets OMP_WAIT_POLICY=passive when it is unset: oneDNN runs on libgomp, whose idle threads
    /// otherwise spin after every product and take a core from our own worker threads; libgomp too reads it only when
    /// it loads. Measurements of both: bench/RESULTS.md.
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
