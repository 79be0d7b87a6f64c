import CGSLoRADNNL

/// The CPU engine every oneDNN product runs on: one per process, created on first use and kept for the process's
/// lifetime (an engine and primitives may be shared across threads; each product holder has its own stream).
final class OneDNN: @unchecked Sendable {
    let engine: dnnl_engine_t

    private init() throws {
        var e: dnnl_engine_t? = nil
        try OneDNN.check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
        guard let engine = e else { throw ModelError.oneDNN(call: "dnnl_engine_create", status: "no engine returned") }
        self.engine = engine
    }

    private static let made = Result { try OneDNN() }

    /// The shared engine; rethrows the creation error on every call if there is none.
    static func shared() throws -> OneDNN { try made.get() }

    /// A new execution stream on the engine (the caller destroys it).
    func makeStream() throws -> dnnl_stream_t {
        var s: dnnl_stream_t? = nil
        try OneDNN.check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
        guard let s else { throw ModelError.oneDNN(call: "dnnl_stream_create", status: "no stream returned") }
        return s
    }

    static func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws {
        if status != dnnl_success { throw ModelError.oneDNN(call: call(), status: name(status)) }
    }

    static func name(_ s: dnnl_status_t) -> String {
        switch s {
        case dnnl_success: return "success"
        case dnnl_out_of_memory: return "out_of_memory"
        case dnnl_invalid_arguments: return "invalid_arguments"
        case dnnl_unimplemented: return "unimplemented"
        case dnnl_iterator_ends: return "iterator_ends"
        case dnnl_runtime_error: return "runtime_error"
        case dnnl_not_required: return "not_required"
        default: return "status \(s.rawValue)"
        }
    }

    /// A 2-D memory descriptor [rows, cols] with the given format tag (`dnnl_format_tag_any` lets a primitive choose).
    static func matrix(rows: Int, cols: Int, type: dnnl_data_type_t, tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var dims: [dnnl_dim_t] = [dnnl_dim_t(rows), dnnl_dim_t(cols)]
        try check(dnnl_memory_desc_init_by_tag(&md, 2, &dims, type, tag), "dnnl_memory_desc_init_by_tag [\(rows), \(cols)]")
        return md
    }

    /// A memory object over `handle` (not owned), or library-allocated storage when `handle` is nil.
    func memory(_ md: dnnl_memory_desc_t, handle: UnsafeMutableRawPointer?) throws -> dnnl_memory_t {
        var md = md
        var m: dnnl_memory_t? = nil
        // DNNL_MEMORY_ALLOCATE is ((void *)(size_t)-1), a macro Swift does not import.
        let h = handle ?? UnsafeMutableRawPointer(bitPattern: UInt.max)
        try OneDNN.check(dnnl_memory_create(&m, &md, engine, h), "dnnl_memory_create")
        guard let m else { throw ModelError.oneDNN(call: "dnnl_memory_create", status: "no memory returned") }
        return m
    }

    /// The implementation name oneDNN picked for a primitive descriptor (e.g. "brg:avx512_core_amx_bf16").
    static func implementation(_ pd: const_dnnl_primitive_desc_t) -> String {
        var s: UnsafePointer<CChar>? = nil
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) == dnnl_success, let s else { return "unknown" }
        return String(cString: s)
    }
}

/// A matmul primitive with its descriptor, destroyed together; callers make one per shape and keep it.
final class MatmulPrimitive {
    let pd: dnnl_primitive_desc_t
    let primitive: dnnl_primitive_t
    /// The weights' descriptor as the primitive chose it (a blocked layout when asked with `dnnl_format_tag_any`).
    let weights: dnnl_memory_desc_t
    /// oneDNN's name for the implementation it picked, e.g. "brg:avx512_core_amx_bf16".
    let implementation: String
    /// Names the product in errors, e.g. "bf16 matmul 788×512 · 512×2048".
    let what: String

    init(src: dnnl_memory_desc_t, weights: dnnl_memory_desc_t, dst: dnnl_memory_desc_t, what: String) throws {
        var src = src, wei = weights, dst = dst
        let dnnl = try OneDNN.shared()
        var desc = dnnl_matmul_desc_t()
        try OneDNN.check(dnnl_matmul_desc_init(&desc, &src, &wei, nil, &dst), "dnnl_matmul_desc_init (\(what))")
        var made: dnnl_primitive_desc_t? = nil
        try OneDNN.check(dnnl_primitive_desc_create(&made, &desc, nil, dnnl.engine, nil), "dnnl_primitive_desc_create (\(what))")
        guard let pd = made else { throw ModelError.oneDNN(call: "dnnl_primitive_desc_create (\(what))", status: "no descriptor returned") }
        guard let chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)?.pointee else {
            dnnl_primitive_desc_destroy(pd)
            throw ModelError.oneDNN(call: "dnnl_primitive_desc_query_md (weights of \(what))", status: "no descriptor returned")
        }
        var prim: dnnl_primitive_t? = nil
        let status = dnnl_primitive_create(&prim, pd)
        guard status == dnnl_success, let prim else {
            dnnl_primitive_desc_destroy(pd)
            throw ModelError.oneDNN(call: "dnnl_primitive_create (\(what))", status: OneDNN.name(status))
        }
        self.pd = pd
        self.primitive = prim
        self.weights = chosen
        self.implementation = OneDNN.implementation(pd)
        self.what = what
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(pd)
    }

    /// Runs the product on `stream` with these memories and waits for it.
    func run(src: dnnl_memory_t, weights: dnnl_memory_t, dst: dnnl_memory_t, on stream: OneDNNStream) throws {
        let args = [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: src), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weights),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dst)
        ]
        let s = try stream.get()
        try OneDNN.check(dnnl_primitive_execute(primitive, s, Int32(args.count), args), "dnnl_primitive_execute (\(what))")
        try OneDNN.check(dnnl_stream_wait(s), "dnnl_stream_wait")
    }
}

/// An execution stream made on first use and destroyed with its owner (after the owner's primitives and memories).
final class OneDNNStream {
    private var made: dnnl_stream_t? = nil

    func get() throws -> dnnl_stream_t {
        if let made { return made }
        let s = try OneDNN.shared().makeStream()
        made = s
        return s
    }

    deinit { if let made { dnnl_stream_destroy(made) } }
}
