import CGSLoRAOpenBLAS

/// Row-major cblas_sgemm with Int sizes: C = alpha·op(A)·op(B) + beta·C, C is m×n, op(A) m×k, op(B) k×n.
/// Sizes come from validated configs and workspaces (each fits Int32, checked here).
public enum BLAS {
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        precondition(
            m <= Int32.max && n <= Int32.max && k <= Int32.max && lda <= Int32.max && ldb <= Int32.max
                && ldc <= Int32.max, "GEMM size beyond CBLAS's Int32")
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// OpenBLAS's own thread count (its default is the core count).
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// The kernel OpenBLAS picked at load time (e.g. "Haswell", "Cooperlake").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Runs `body` with OpenBLAS single-threaded, so Swift threads can each run their own GEMMs
    /// (per-head attention is faster that way than with BLAS threads, bench/README.md "Code generation notes").
    static func singleThreaded<R>(_ body: () throws -> R) rethrows -> R {
        let saved = threads
        if saved != 1 { threads = 1 }
        defer { if saved != 1 { threads = saved } }
        return try body()
    }
}
