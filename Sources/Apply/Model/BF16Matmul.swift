import CGSLoRADNNL
import CGSLoRAKernels

/// bfloat16 matrix products for linear layers through oneDNN's matmul (AMX / AVX512-BF16):
/// `out[rows, outF] = in[rows, inF] · W[firstRow ..< firstRow + outF]ᵀ` (forward), or the input gradient of a frozen
/// layer, `out[rows, inF] = in[rows, outF] · W[firstRow ..< firstRow + outF]`; W float32 row-major [*, inF] as
/// PyTorch stores it, float32 in and out, products in bf16 (8-bit significand) accumulated in float32.
///
/// Each weight (row range) is packed to bf16 once, in the layout the primitive chose, and kept while this object
/// lives; primitives are kept by shape. The packed copy is not refreshed: after changing a weight in place, make a
/// new `BF16Matmul`. Not thread-safe (one product at a time; oneDNN's own threads run inside each product).
public final class BF16Matmul {
    /// Which product of W: the forward's x·Wᵀ, or the backward's ∂y·W (∂x through a frozen layer).
    public enum Direction: Hashable, Sendable { case forward, inputGradient }

    /// [rows, k] · [k, n].
    private struct Shape: Hashable { let rows, k, n: Int }
    private struct WeightKey: Hashable { let buffer: ObjectIdentifier; let firstRow, outF, inF: Int; let direction: Direction }

    /// A weight's bf16 copy in one layout. Holds the source buffer so its identity (the cache key) stays unique.
    private final class Packed {
        let source: FloatBuffer
        var layout: dnnl_memory_desc_t
        let memory: dnnl_memory_t
        let bytes: Int
        init(source: FloatBuffer, layout: dnnl_memory_desc_t, memory: dnnl_memory_t) {
            self.source = source
            self.layout = layout
            self.memory = memory
            self.bytes = dnnl_memory_desc_get_size(&self.layout)
        }
        deinit { dnnl_memory_destroy(memory) }
    }

    private var primitives: [Shape: MatmulPrimitive] = [:]
    private var packed: [WeightKey: [Packed]] = [:]
    /// Activations converted to bf16 [rows, k].
    private let inputScratch = ScratchBytes()
    /// The product [rows, n] when the caller's output is strided: oneDNN 2.6 runs a strided destination on its
    /// gemm:jit path, ≈3× slower than AMX into a dense buffer plus a copy.
    private let outputScratch = ScratchBytes()

    private let stream = OneDNNStream()

    public init() {}

    deinit {
        // Primitives and packed weights first; the stream goes with the stored properties after this.
        primitives.removeAll()
        packed.removeAll()
    }

    /// The oneDNN implementations the products so far ran on (e.g. "brg:avx512_core_amx_bf16"), distinct, sorted.
    public var implementations: [String] { Array(Set(primitives.values.map(\.implementation))).sorted() }

    /// Bytes held by packed bf16 weights (every layout of every weight).
    public var packedWeightBytes: Int { packed.values.joined().reduce(0) { $0 + $1.bytes } }

    /// `out` (row stride `ldc`) = `input` (row stride `lda`) · W[firstRow ..< firstRow + outFeatures]ᵀ with
    /// W = `weight` viewed as float32 [*, inFeatures] — or, for `.inputGradient`, `input` [rows, outFeatures] · W
    /// into `out` [rows, inFeatures]. No bias: callers fuse it into their next elementwise pass.
    public func product(
        weight: FloatBuffer, firstRow: Int = 0, outFeatures outF: Int, inFeatures inF: Int,
        input: UnsafePointer<Float>, lda: Int, rows: Int,
        out: UnsafeMutablePointer<Float>, ldc: Int, direction: Direction = .forward
    ) throws {
        try product(
            weight: weight, firstRow: firstRow, outFeatures: outF, inFeatures: inF, input: input, lda: lda, rows: rows,
            out: out, ldc: ldc, direction: direction, rounded: false)
    }

    /// Where a kernel that produces a product's input writes it rounded to bf16 [rows, cols] (dense) as it goes, for
    /// the next `product(…, rounded: true)`: that call then skips its own rounding pass over the input.
    func inputSlot(rows: Int, cols: Int) -> UnsafeMutablePointer<UInt16> {
        inputScratch.reserve(rows * cols * 2).assumingMemoryBound(to: UInt16.self)
    }

    /// `product`, where `rounded` says the input's bf16 copy is in `inputSlot` already (`input` is then not read).
    func product(
        weight: FloatBuffer, firstRow: Int = 0, outFeatures outF: Int, inFeatures inF: Int,
        input: UnsafePointer<Float>, lda: Int, rows: Int,
        out: UnsafeMutablePointer<Float>, ldc: Int, direction: Direction = .forward, rounded: Bool
    ) throws {
        guard rows > 0 else { return }
        let (k, n) = direction == .forward ? (inF, outF) : (outF, inF)
        try BF16Matmul.checkSizes(
            weightCount: weight.count, firstRow: firstRow, outF: outF, inF: inF, k: k, n: n, lda: lda,
            rows: rows, ldc: ldc)
        let p = try primitive(Shape(rows: rows, k: k, n: n))
        let w = try packedWeight(weight, firstRow: firstRow, outF: outF, inF: inF, direction: direction, layout: p.weights)
        let src = rounded ? UnsafeMutableRawPointer(inputSlot(rows: rows, cols: k)) : convert(input, rows: rows, cols: k, ld: lda)
        let dnnl = try OneDNN.shared()
        let srcMemory = try dnnl.memory(try OneDNN.matrix(rows: rows, cols: k, type: dnnl_bf16, tag: dnnl_ab), handle: src)
        defer { dnnl_memory_destroy(srcMemory) }
        let dst = ldc == n ? UnsafeMutableRawPointer(out) : outputScratch.reserve(rows * n * 4)
        let dstMemory = try dnnl.memory(try OneDNN.matrix(rows: rows, cols: n, type: dnnl_f32, tag: dnnl_ab), handle: dst)
        defer { dnnl_memory_destroy(dstMemory) }
        try p.run(src: srcMemory, weights: w.memory, dst: dstMemory, on: stream)
        if ldc != n { Kernels.copyRows(dst.assumingMemoryBound(to: Float.self), rows: rows, cols: n, into: out, ldc: ldc) }
    }

    /// Every size positive, strides at least the row length, the weight rows inside the buffer, and every extent
    /// representable (oneDNN takes int64 dimensions; the products here are Int byte counts).
    /// `k` and `n` are the product's inner and output widths (inF and outF forward, swapped for the input gradient).
    static func checkSizes(weightCount: Int, firstRow: Int, outF: Int, inF: Int, k: Int, n: Int, lda: Int, rows: Int, ldc: Int) throws {
        guard outF > 0, inF > 0, firstRow >= 0, lda >= k, ldc >= n else {
            throw ModelError.badInput("bf16 product: out \(outF), in \(inF), first row \(firstRow), lda \(lda), ldc \(ldc) are not valid sizes")
        }
        let (endRow, o1) = firstRow.addingReportingOverflow(outF)
        let (weightEnd, o2) = endRow.multipliedReportingOverflow(by: inF)
        guard !o1, !o2, weightEnd <= weightCount else {
            throw ModelError.badInput("bf16 product: weight rows \(firstRow)..<\(firstRow &+ outF) of \(inF) values exceed its \(weightCount) values")
        }
        let (srcCount, o3) = rows.multipliedReportingOverflow(by: k)
        let (dstCount, o4) = rows.multipliedReportingOverflow(by: n)
        let (dstSpan, o5) = (rows - 1).multipliedReportingOverflow(by: ldc)
        let (inSpan, o6) = (rows - 1).multipliedReportingOverflow(by: lda)
        guard !o3, !o4, !o5, !o6, !dstSpan.addingReportingOverflow(n).overflow, !inSpan.addingReportingOverflow(k).overflow,
            !srcCount.multipliedReportingOverflow(by: 2).overflow, !dstCount.multipliedReportingOverflow(by: 4).overflow
        else {
            throw ModelError.tooLarge("a bf16 product of \(rows) rows × \(inF) inputs × \(outF) outputs overflows the address range")
        }
    }

    private func primitive(_ s: Shape) throws -> MatmulPrimitive {
        if let p = primitives[s] { return p }
        let p = try MatmulPrimitive(
            src: try OneDNN.matrix(rows: s.rows, cols: s.k, type: dnnl_bf16, tag: dnnl_ab),
            weights: try OneDNN.matrix(rows: s.k, cols: s.n, type: dnnl_bf16, tag: dnnl_format_tag_any),
            dst: try OneDNN.matrix(rows: s.rows, cols: s.n, type: dnnl_f32, tag: dnnl_ab),
            what: "bf16 matmul \(s.rows)×\(s.k) · \(s.k)×\(s.n)")
        primitives[s] = p
        return p
    }

    /// The weight rows in `layout`, packed by a oneDNN reorder on first use.
    private func packedWeight(
        _ weight: FloatBuffer, firstRow: Int, outF: Int, inF: Int, direction: Direction,
        layout: dnnl_memory_desc_t
    ) throws -> Packed {
        let key = WeightKey(buffer: ObjectIdentifier(weight), firstRow: firstRow, outF: outF, inF: inF, direction: direction)
        var want = layout
        if let hit = packed[key]?.first(where: { dnnl_memory_desc_equal(&$0.layout, &want) != 0 }) { return hit }
        let dnnl = try OneDNN.shared()
        // Forward, the matmul's weights are K×N = [inF, outF]: PyTorch's [outF, inF] rows with strides (1, inF). For the
        // input gradient they are [outF, inF] itself, strides (inF, 1).
        var from = dnnl_memory_desc_t()
        let forward = direction == .forward
        var dims: [dnnl_dim_t] = forward ? [dnnl_dim_t(inF), dnnl_dim_t(outF)] : [dnnl_dim_t(outF), dnnl_dim_t(inF)]
        var strides: [dnnl_dim_t] = forward ? [1, dnnl_dim_t(inF)] : [dnnl_dim_t(inF), 1]
        try OneDNN.check(dnnl_memory_desc_init_by_strides(&from, 2, &dims, dnnl_f32, &strides), "dnnl_memory_desc_init_by_strides (weight)")
        let source = try dnnl.memory(from, handle: UnsafeMutableRawPointer(weight.pointer + firstRow * inF))
        defer { dnnl_memory_destroy(source) }
        let target = try dnnl.memory(layout, handle: nil)
        do {
            var pd: dnnl_primitive_desc_t? = nil
            try OneDNN.check(
                dnnl_reorder_primitive_desc_create(&pd, &from, dnnl.engine, &want, dnnl.engine, nil),
                "dnnl_reorder_primitive_desc_create (weight \(outF)×\(inF) to bf16)")
            guard let pd else { throw ModelError.oneDNN(call: "dnnl_reorder_primitive_desc_create", status: "no descriptor returned") }
            defer { dnnl_primitive_desc_destroy(pd) }
            var reorder: dnnl_primitive_t? = nil
            try OneDNN.check(dnnl_primitive_create(&reorder, pd), "dnnl_primitive_create (weight reorder)")
            guard let reorder else { throw ModelError.oneDNN(call: "dnnl_primitive_create (weight reorder)", status: "no primitive returned") }
            defer { dnnl_primitive_destroy(reorder) }
            let args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: source), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: target)]
            let s = try stream.get()
            try OneDNN.check(dnnl_primitive_execute(reorder, s, Int32(args.count), args), "dnnl_primitive_execute (weight reorder)")
            try OneDNN.check(dnnl_stream_wait(s), "dnnl_stream_wait")
        } catch {
            dnnl_memory_destroy(target)
            throw error
        }
        let p = Packed(source: weight, layout: layout, memory: target)
        packed[key, default: []].append(p)
        return p
    }

    /// `src` [rows, cols] (row stride ld) rounded to bf16 (nearest, ties to even) into the packed scratch.
    private func convert(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) -> UnsafeMutableRawPointer {
        let scratch = inputScratch.reserve(rows * cols * 2)
        let s = SendableRaw(UnsafeRawPointer(src)), d = SendableRaw(UnsafeRawPointer(scratch))
        Parallel.rows(rows, elementsPerRow: cols) { range in
            for r in range {
                BF16Matmul.round(
                    s.p.assumingMemoryBound(to: Float.self) + r * ld, count: cols,
                    into: UnsafeMutablePointer(mutating: d.p.assumingMemoryBound(to: UInt16.self)) + r * cols)
            }
        }
        return scratch
    }

    /// float32 → bfloat16, round to nearest even: add 0x7FFF plus the kept part's lowest bit, keep the top 16 bits.
    /// NaNs stay (quiet) NaNs instead of carrying into the exponent; overflow rounds to ∞ as IEEE says.
    static func round(_ src: UnsafePointer<Float>, count: Int, into dst: UnsafeMutablePointer<UInt16>) {
        gk_bf16_round(src, count, dst)
    }
}
