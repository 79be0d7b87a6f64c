import GSLoRAFormat

/// Float-to-float conversion of whole tensors with round-to-nearest-even, for `ConvertOptions.dtype`.
/// Integer and bool tensors are never touched; a float tensor already in the target dtype is returned as is (no copy).
public enum DTypeCast {
    /// What `ConvertOptions.dtype` asks for.
    public enum Target: String, CaseIterable, Sendable {
        case f32, f16, bf16, keep

        public var dtype: DType? {
            switch self {
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            case .keep: return nil
            }
        }
    }

    /// `t` converted to `target` when it is a float tensor; otherwise `t` unchanged.
    public static func apply(_ target: Target, to t: Tensor) -> Tensor {
        guard let to = target.dtype else { return t }
        return cast(t, to: to)
    }

    public static func cast(_ t: Tensor, to: DType) -> Tensor {
        guard t.dtype.isFloatingPoint, to.isFloatingPoint, t.dtype != to else { return t }
        let n = t.count
        let out = ByteOwner.allocate(n * to.size)
        let dst = UnsafeMutableRawPointer(mutating: out.base.baseAddress!)
        let src = t.data.buffer.baseAddress
        if n > 0, let src {
            convert(src, t.dtype, dst, to, n)
        }
        return Tensor(name: t.name, dtype: to, shape: t.shape, data: Bytes(owner: out))
    }

    /// Element loops over raw buffers. Reads go through `loadUnaligned` because mapped tensors may sit at any offset.
    private static func convert(_ src: UnsafeRawPointer, _ from: DType, _ dst: UnsafeMutableRawPointer, _ to: DType, _ n: Int) {
        switch (from, to) {
        case (.f64, _):
            let s = UnsafeRawBufferPointer(start: src, count: n * 8)
            for i in 0..<n {
                let d = s.loadUnaligned(fromByteOffset: i * 8, as: Double.self)
                switch to {
                case .f32: dst.storeBytes(of: Float(d), toByteOffset: i * 4, as: Float.self)
                case .f16: dst.storeBytes(of: Float16(d).bitPattern, toByteOffset: i * 2, as: UInt16.self)
                default: dst.storeBytes(of: Tensor.bfloat16Bits(roundToOddFloat(d)), toByteOffset: i * 2, as: UInt16.self)
                }
            }
        default:
            // Every other source widens exactly to Float first; only the final narrowing rounds.
            let f = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { f.deallocate() }
            widen(src, from, f, n)
            switch to {
            case .f32: dst.copyMemory(from: f, byteCount: n * 4)
            case .f64:
                let d = dst.assumingMemoryBound(to: Double.self)
                for i in 0..<n { d[i] = Double(f[i]) }
            case .f16:
                let h = dst.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { h[i] = Float16(f[i]).bitPattern }
            default:
                let h = dst.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { h[i] = Tensor.bfloat16Bits(f[i]) }
            }
        }
    }

    private static func widen(_ src: UnsafeRawPointer, _ from: DType, _ f: UnsafeMutablePointer<Float>, _ n: Int) {
        let s = UnsafeRawBufferPointer(start: src, count: n * from.size)
        switch from {
        case .f32:
            UnsafeMutableRawPointer(f).copyMemory(from: src, byteCount: n * 4)
        case .f16:
            for i in 0..<n { f[i] = Float(Float16(bitPattern: s.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
        case .bf16:
            for i in 0..<n { f[i] = Float(bitPattern: UInt32(s.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16) }
        default:
            preconditionFailure("widen called for non-float dtype \(from)")
        }
    }

    /// Double → Float rounded to odd, so that a later round-to-nearest-even to bf16 equals a single correct rounding.
    static func roundToOddFloat(_ d: Double) -> Float {
        var f = Float(d)
        guard f.isFinite, Double(f) != d else { return f }
        if abs(Double(f)) > abs(d) { f = Float(bitPattern: f.bitPattern - 1) } // truncate toward zero
        return Float(bitPattern: f.bitPattern | 1)
    }
}
