import CGSLoRADNNL

/// Products of strided matrices batched over images × heads, one oneDNN matmul call each: float32 operands (gemm:jit,
/// float32 sums like sgemm) or bf16 ones (AMX, float32 sums), always a float32 result. Attention's products per head
/// are small (197×64 by 64×197 for the face model), and one call over every image and head runs several times faster
/// than per-head OpenBLAS calls (bench/RESULTS.md). Primitives are kept per shape. Not thread-safe (oneDNN's own threads run inside each call).
final class BatchedMatmul {
    /// One rows × cols matrix per (image, head), addressed by element strides from a base pointer.
    struct Layout: Hashable {
        let rows, cols: Int
        let imageStride, headStride, rowStride, colStride: Int

        /// The same elements read as the transposed matrix.
        var transposed: Layout {
            Layout(rows: cols, cols: rows, imageStride: imageStride, headStride: headStride, rowStride: colStride, colStride: rowStride)
        }
    }

    /// An operand's first element and element type (float32, or bf16 bit patterns).
    struct Operand {
        let pointer: UnsafeRawPointer
        let isBF16: Bool

        init(_ p: UnsafePointer<Float>) { pointer = UnsafeRawPointer(p); isBF16 = false }
        init(bf16 p: UnsafePointer<UInt16>) { pointer = UnsafeRawPointer(p); isBF16 = true }

        /// The operand `elements` elements further on.
        static func + (o: Operand, elements: Int) -> Operand {
            o.isBF16
                ? Operand(bf16: o.pointer.assumingMemoryBound(to: UInt16.self) + elements)
                : Operand(o.pointer.assumingMemoryBound(to: Float.self) + elements)
        }
    }

    private struct Key: Hashable { let images, heads: Int; let a, b, c: Layout; let bf16: Bool }

    /// Each with the operand descriptors it was made for.
    private var primitives: [Key: (MatmulPrimitive, [dnnl_memory_desc_t])] = [:]
    private let stream = OneDNNStream()

    init() {}

    deinit {
        // Primitives first; the stream goes with the stored properties after this.
        primitives.removeAll()
    }

    /// c[i, h] = a[i, h] · b[i, h] for every image i < images and head h < heads (c is overwritten, float32); a and b
    /// are both float32 or both bf16.
    func run(images: Int, heads: Int, a: Layout, _ pa: Operand, b: Layout, _ pb: Operand, c: Layout, _ pc: UnsafeMutablePointer<Float>) throws {
        precondition(
            a.cols == b.rows && a.rows == c.rows && b.cols == c.cols && pa.isBF16 == pb.isBF16,
            "batched product of mismatched shapes or types")
        guard images > 0, heads > 0 else { return }
        let dnnl = try OneDNN.shared()
        let (p, descriptors) = try primitive(Key(images: images, heads: heads, a: a, b: b, c: c, bf16: pa.isBF16))
        var memories: [dnnl_memory_t] = []
        defer { memories.forEach { dnnl_memory_destroy($0) } }
        for (md, handle) in zip(
            descriptors,
            [
                UnsafeMutableRawPointer(mutating: pa.pointer), UnsafeMutableRawPointer(mutating: pb.pointer),
                UnsafeMutableRawPointer(pc)
            ])
        {
            memories.append(try dnnl.memory(md, handle: handle))
        }
        try p.run(src: memories[0], weights: memories[1], dst: memories[2], on: stream)
    }

    private func primitive(_ key: Key) throws -> (MatmulPrimitive, [dnnl_memory_desc_t]) {
        if let p = primitives[key] { return p }
        func descriptor(_ l: Layout, _ type: dnnl_data_type_t) throws -> dnnl_memory_desc_t {
            var md = dnnl_memory_desc_t()
            var dims: [dnnl_dim_t] = [key.images, key.heads, l.rows, l.cols].map { dnnl_dim_t($0) }
            var strides: [dnnl_dim_t] = [l.imageStride, l.headStride, l.rowStride, l.colStride].map { dnnl_dim_t($0) }
            try OneDNN.check(
                dnnl_memory_desc_init_by_strides(&md, 4, &dims, type, &strides),
                "dnnl_memory_desc_init_by_strides [\(key.images), \(key.heads), \(l.rows), \(l.cols)]")
            return md
        }
        let input = key.bf16 ? dnnl_bf16 : dnnl_f32
        let descriptors = [try descriptor(key.a, input), try descriptor(key.b, input), try descriptor(key.c, dnnl_f32)]
        let what = "batched \(key.bf16 ? "bf16" : "float32") matmul \(key.images)×\(key.heads) × \(key.a.rows)×\(key.a.cols) · \(key.b.rows)×\(key.b.cols)"
        let p = (try MatmulPrimitive(src: descriptors[0], weights: descriptors[1], dst: descriptors[2], what: what), descriptors)
        primitives[key] = p
        return p
    }
}
