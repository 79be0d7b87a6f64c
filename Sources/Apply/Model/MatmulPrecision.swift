/// The arithmetic of a model's large matrix products: the frozen linear layers (patch embedding, qkv, proj, fc1,
/// fc2) and attention's Q·Kᵀ and P·V, forward and, in training with frozen weights (GS-LoRA), backward (the input
/// gradients through the frozen layers, attention's four gradient products). LoRA's rank-r products and their
/// gradients, the softmax, LayerNorm, GELU and the head always run in float32.
public enum MatmulPrecision: String, CaseIterable, Codable, Sendable {
    /// float32 products (oneDNN's matmul for the linear layers and attention; OpenBLAS for the few with strided
    /// inputs): what parity with PyTorch is tested on (1e-4).
    case float32
    /// oneDNN bf16 matmul (AMX / AVX512-BF16): about 2× the throughput where the CPU has them, about 1e-3 relative
    /// error per product (both operands rounded to an 8-bit significand, sums in float32), as PyTorch's bf16 autocast. Not for training
    /// the weights themselves (all-parameter training), whose packed copies would go stale.
    case bf16
}

extension ViT {
    /// Where a kernel producing the next frozen product's input [rows, cols] also writes it rounded to bf16, or nil in
    /// precision float32. Pass `inputRounded: true` to that product when the kernel did.
    func roundedInputSlot(rows: Int, cols: Int) -> UnsafeMutablePointer<UInt16>? {
        precision == .bf16 ? bf16.inputSlot(rows: rows, cols: cols) : nil
    }

    /// out (row stride ldc) = input (row stride lda) · W[firstRow ..< firstRow + outF]ᵀ for a frozen weight, in the
    /// model's precision. `inputRounded`: in bf16, the input's rounded copy is in `roundedInputSlot` already.
    func frozenProduct(
        _ weight: FloatBuffer, firstRow: Int = 0, outF: Int, inF: Int, input: UnsafePointer<Float>, lda: Int,
        rows: Int, out: UnsafeMutablePointer<Float>, ldc: Int, inputRounded: Bool = false
    ) throws {
        switch precision {
        case .float32 where lda == inF:
            try f32.product(
                weight: weight, firstRow: firstRow, outFeatures: outF, inFeatures: inF, input: input, rows: rows,
                out: out, ldc: ldc)
        case .float32:
            BLAS.gemm(
                transB: true, m: rows, n: outF, k: inF, a: input, lda: lda, b: weight.pointer + firstRow * inF, ldb: inF,
                c: out, ldc: ldc)
        case .bf16:
            try bf16.product(
                weight: weight, firstRow: firstRow, outFeatures: outF, inFeatures: inF, input: input, lda: lda,
                rows: rows, out: out, ldc: ldc, rounded: inputRounded)
        }
    }

    /// Runs a forward or backward call with OpenBLAS single-threaded when the frozen products go to oneDNN: what
    /// OpenBLAS still does then (LoRA's rank-r products, per-head attention, the head) is small, and its idle worker
    /// would spin (sched_yield, ≈18 % of a bench profile) against oneDNN's and our own threads on the same cores.
    /// bf16 GS-LoRA step with OPENBLAS_NUM_THREADS=1 against 2: 0.509 against 0.578 s (five pairs); this switch
    /// against the build before it: 0.600 against 0.626 s (three pairs, inside this VM's noise).
    func withPrecisionThreads<R>(_ body: () throws -> R) rethrows -> R {
        precision == .float32 ? try body() : try BLAS.singleThreaded(body)
    }

    /// out [rows, inF] = dOut (row stride ldd) [rows, outF] · W[firstRow ..< firstRow + outF]: the input gradient
    /// through a frozen weight, in the model's precision (`inputRounded` as for `frozenProduct`).
    func frozenInputGradient(
        _ weight: FloatBuffer, firstRow: Int = 0, outF: Int, inF: Int, dOut: UnsafePointer<Float>, ldd: Int,
        rows: Int, out: UnsafeMutablePointer<Float>, inputRounded: Bool = false
    ) throws {
        switch precision {
        case .float32 where ldd == outF:
            try f32.product(
                weight: weight, firstRow: firstRow, outFeatures: outF, inFeatures: inF, input: dOut, rows: rows, out: out,
                ldc: inF, direction: .inputGradient)
        case .float32:
            BLAS.gemm(m: rows, n: inF, k: outF, a: dOut, lda: ldd, b: weight.pointer + firstRow * inF, ldb: inF, c: out, ldc: inF)
        case .bf16:
            try bf16.product(
                weight: weight, firstRow: firstRow, outFeatures: outF, inFeatures: inF, input: dOut, lda: ldd,
                rows: rows, out: out, ldc: inF, direction: .inputGradient, rounded: inputRounded)
        }
    }
}
