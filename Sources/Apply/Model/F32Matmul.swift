import CGSLoRADNNL

/// float32 products for frozen linear layers through oneDNN's matmul (brgemm on AVX-512): the same
/// `out = in · W[rows]ᵀ` (forward) and `out = in · W[rows]` (input gradient) as `BF16Matmul`, on float32 W read in
/// place as PyTorch stores it, so nothing is packed or kept and weights may change between calls (all-parameter
/// training). Besides brgemm's speed, running these on oneDNN's threads like attention's products keeps OpenBLAS's
/// pool (the head, LoRA's small products) idle instead of spinning against them on the same cores.
/// Not thread-safe (one product at a time; oneDNN's own threads run inside each product).
public final class F32Matmul {
    private struct Shape: Hashable { let rows, k, n: Int; let direction: BF16Matmul.Direction }

    private var primitives: [Shape: MatmulPrimitive] = [:]
    /// The product [rows, n] when the caller's output is strided (brgemm wants a destination without gaps).
    private let outputScratch = ScratchBytes()
    private let stream = OneDNNStream()

    public init() {}

    deinit { primitives.removeAll() }

    /// The oneDNN implementations the products so far ran on (e.g. "brg:avx512_core"), distinct, sorted.
    public var implementations: [String] { Array(Set(primitives.values.map(\.implementation))).sorted() }

    /// `out` [rows, n] (row stride ldc) = `input` [rows, k] (dense) · W[firstRow ..< firstRow + outFeatures]ᵀ,
    /// k = inFeatures, n = outFeatures; for `.inputGradient`, k = outFeatures and n = inFeatures, times W itself.
    public func product(
        weight: FloatBuffer, firstRow: Int = 0, outFeatures outF: Int, inFeatures inF: Int,
        input: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, ldc: Int,
        direction: BF16Matmul.Direction = .forward
    ) throws {
        guard rows > 0 else { return }
        let (k, n) = direction == .forward ? (inF, outF) : (outF, inF)
        try BF16Matmul.checkSizes(
            weightCount: weight.count, firstRow: firstRow, outF: outF, inF: inF, k: k, n: n, lda: k,
            rows: rows, ldc: ldc)
        let shape = Shape(rows: rows, k: k, n: n, direction: direction)
        let p = try primitives[shape] ?? makePrimitive(shape)
        let dnnl = try OneDNN.shared()
        let src = try dnnl.memory(
            try OneDNN.matrix(rows: rows, cols: k, type: dnnl_f32, tag: dnnl_ab),
            handle: UnsafeMutableRawPointer(mutating: input))
        defer { dnnl_memory_destroy(src) }
        let wei = try dnnl.memory(p.weights, handle: UnsafeMutableRawPointer(weight.pointer + firstRow * inF))
        defer { dnnl_memory_destroy(wei) }
        let dense = ldc == n ? UnsafeMutableRawPointer(out) : outputScratch.reserve(rows * n * 4)
        let dst = try dnnl.memory(try OneDNN.matrix(rows: rows, cols: n, type: dnnl_f32, tag: dnnl_ab), handle: dense)
        defer { dnnl_memory_destroy(dst) }
        try p.run(src: src, weights: wei, dst: dst, on: stream)
        if ldc != n { Kernels.copyRows(dense.assumingMemoryBound(to: Float.self), rows: rows, cols: n, into: out, ldc: ldc) }
    }

    /// The primitive for a shape, with W's rows as they lie in memory: [outF, inF] row-major is the K×N weight
    /// [inF, outF] with strides (1, inF) forward, and [outF, inF] itself with strides (inF, 1) for the input gradient.
    private func makePrimitive(_ s: Shape) throws -> MatmulPrimitive {
        var weights = dnnl_memory_desc_t()
        var dims: [dnnl_dim_t] = [dnnl_dim_t(s.k), dnnl_dim_t(s.n)]
        var strides: [dnnl_dim_t] = s.direction == .forward ? [1, dnnl_dim_t(s.k)] : [dnnl_dim_t(s.n), 1]
        try OneDNN.check(dnnl_memory_desc_init_by_strides(&weights, 2, &dims, dnnl_f32, &strides), "dnnl_memory_desc_init_by_strides (weight)")
        let p = try MatmulPrimitive(
            src: try OneDNN.matrix(rows: s.rows, cols: s.k, type: dnnl_f32, tag: dnnl_ab), weights: weights,
            dst: try OneDNN.matrix(rows: s.rows, cols: s.n, type: dnnl_f32, tag: dnnl_ab),
            what: "f32 matmul \(s.rows)×\(s.k) · \(s.k)×\(s.n)")
        primitives[s] = p
        return p
    }
}
