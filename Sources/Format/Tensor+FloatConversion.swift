/// Float views of tensors: any floating dtype to and from `[Float]` (F16 through Float16, BF16 by bit shift with
/// round-to-nearest-even, F64 by rounding).
extension Tensor {
    /// The values as Float32, converted from F32/F16/BF16/F64. Integer and bool tensors throw.
    public func floats() throws -> [Float] {
        let n = count
        guard data.count == n * dtype.size else {
            throw FormatError.conversion(tensor: name, problem: "holds \(data.count) bytes, shape \(shape) × \(dtype.rawValue) needs \(n * dtype.size)")
        }
        guard n > 0 else { return [] }
        let src = data.buffer.baseAddress!
        switch dtype {
        case .f32:
            return [Float](unsafeUninitializedCapacity: n) { out, k in
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: src, byteCount: n * 4)
                k = n
            }
        case .f16:
            let s = src.assumingMemoryBound(to: Float16.self)
            return [Float](unsafeUninitializedCapacity: n) { out, k in
                for i in 0..<n { out[i] = Float(s[i]) }
                k = n
            }
        case .bf16:
            let s = src.assumingMemoryBound(to: UInt16.self)
            return [Float](unsafeUninitializedCapacity: n) { out, k in
                for i in 0..<n { out[i] = Float(bitPattern: UInt32(s[i]) << 16) }
                k = n
            }
        case .f64:
            let s = src.assumingMemoryBound(to: Double.self)
            return [Float](unsafeUninitializedCapacity: n) { out, k in
                for i in 0..<n { out[i] = Float(s[i]) }
                k = n
            }
        default:
            throw FormatError.conversion(tensor: name, problem: "\(dtype.rawValue) is not a floating-point dtype; cannot read it as floats")
        }
    }

    /// A tensor of a floating dtype made from Float32 values (rounded to nearest even for F16/BF16).
    public init(name: String, shape: [Int], floats: [Float], dtype: DType) {
        precondition(dtype.isFloatingPoint, "Tensor(floats:dtype:) needs a floating dtype, got \(dtype.rawValue)")
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        let n = floats.count
        let owner = ByteOwner.allocate(n * dtype.size)
        let dst = UnsafeMutableRawPointer(mutating: owner.base.baseAddress!)
        floats.withUnsafeBufferPointer { s in
            switch dtype {
            case .f32:
                if n > 0 { dst.copyMemory(from: s.baseAddress!, byteCount: n * 4) }
            case .f16:
                let d = dst.assumingMemoryBound(to: Float16.self)
                for i in 0..<n { d[i] = Float16(s[i]) }
            case .bf16:
                let d = dst.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { d[i] = Tensor.bfloat16Bits(s[i]) }
            default:
                let d = dst.assumingMemoryBound(to: Double.self)
                for i in 0..<n { d[i] = Double(s[i]) }
            }
        }
        self.init(name: name, dtype: dtype, shape: shape, data: Bytes(owner: owner))
    }

    /// bfloat16 bits of `x`, rounded to nearest even; NaN stays a (quiet) NaN.
    @inline(__always)
    public static func bfloat16Bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: b >> 16) | 0x0040 }
        let round = 0x7FFF &+ ((b >> 16) & 1)
        return UInt16(truncatingIfNeeded: (b &+ round) >> 16)
    }
}
