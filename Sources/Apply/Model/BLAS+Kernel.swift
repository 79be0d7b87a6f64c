extension BLAS {
    /// What the process environment should hold before OpenBLAS and libgomp load, given the current one: both read
    /// their variables once, at load, so a command sets them by running itself again (CommandSupport does, before a
    /// command that runs the model starts; this library never re-executes anything).
    ///
    /// - OPENBLAS_CORETYPE: OpenBLAS 0.3.21 (Debian 12) falls back to its generic "Prescott" kernel on CPUs newer than
    ///   it knows — about 10 GFLOP/s instead of 100–450 (spec/PLATFORM.md). When it did, the best kernel this CPU runs:
    ///   SkylakeX with AVX-512 (F, BW, DQ, VL), Haswell with AVX2 and FMA; below that OpenBLAS's own choice stays, as
    ///   forcing either would stop the process with an illegal instruction. A user's own value always wins;
    ///   GSLORA_KEEP_BLAS_KERNEL=1 turns this off.
    /// - OMP_WAIT_POLICY=passive when unset: oneDNN (attention's products in every precision, the linear layers in
    ///   bf16) runs on libgomp, whose idle threads otherwise spin after every product and take a core from our own
    ///   worker threads (spec/PLATFORM.md).
    public static func preferredEnvironment(_ env: [String: String]) -> [String: String] {
        var changes: [String: String] = [:]
        let generic: Set<String> = ["prescott", "core2", "katmai", "coppermine", "northwood", "banias", "atom", "nehalem", "unknown"]
        if env["OPENBLAS_CORETYPE"] == nil, env["GSLORA_KEEP_BLAS_KERNEL"] == nil, generic.contains(coreName.lowercased()),
            let kernel = fastKernel(for: KernelLevel.best)
        {
            changes["OPENBLAS_CORETYPE"] = kernel
        }
        if env["OMP_WAIT_POLICY"] == nil { changes["OMP_WAIT_POLICY"] = "passive" }
        return changes
    }

    /// The OpenBLAS kernel a CPU whose best kernel level is `level` runs fastest, or nil to keep OpenBLAS's choice.
    static func fastKernel(for level: KernelLevel) -> String? {
        switch level {
        case .avx512: return "SkylakeX"
        case .avx2: return "Haswell"
        case .baseline, .neon: return nil
        }
    }
}
