import Foundation

extension BLAS {
    /// OpenBLAS 0.3.21 (Debian 12) falls back to its generic "Prescott" kernel on CPUs newer than it knows —
    /// about 10 GFLOP/s instead of 120–450 (../shared/PLATFORM.md). It reads OPENBLAS_CORETYPE once, when the
    /// library loads, so the only fix from inside is to run the process again with the variable set. Commands call
    /// this first thing: when the variable is unset and OpenBLAS chose a generic kernel, the process re-executes
    /// itself with OPENBLAS_CORETYPE=Haswell (AVX2+FMA, which this build already requires). A user's own setting
    /// always wins, and GSLORA_KEEP_BLAS_KERNEL=1 turns the re-exec off.
    public static func ensureFastKernel() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["GSLORA_KEEP_BLAS_KERNEL"] == nil else { return }
        let generic: Set<String> = ["prescott", "core2", "katmai", "coppermine", "northwood", "banias", "atom", "nehalem", "unknown"]
        guard generic.contains(coreName.lowercased()) else { return }
        setenv("OPENBLAS_CORETYPE", "Haswell", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // exec failed (no /proc?): carry on with the slow kernel rather than not at all.
        unsetenv("OPENBLAS_CORETYPE")
    }
}
