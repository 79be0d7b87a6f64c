/// A float32 array in 64-byte-aligned unsafe memory: the storage of weights, LoRA factors and activations.
/// Reference type so a workspace can hand out the same buffer to many layers and reuse it across calls;
/// `reserve` grows it only when a bigger batch arrives (first touch of fresh pages is slow, reuse is not).
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    /// Elements in use.
    public private(set) var count: Int
    private var capacity: Int

    /// `count` zeros.
    public init(count: Int) {
        precondition(count >= 0, "negative buffer size \(count)")
        capacity = max(count, 1)
        pointer = FloatBuffer.allocate(capacity)
        self.count = count
    }

    /// A copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { pointer.update(from: s, count: values.count) }
        }
    }

    /// A copy of another buffer.
    public convenience init(copying other: FloatBuffer) {
        self.init(count: other.count)
        pointer.update(from: other.pointer, count: other.count)
    }

    deinit { pointer.deallocate() }

    /// Sets the element count to `n`, growing (and zeroing) the storage only when `n` exceeds the capacity.
    /// Contents are kept when the buffer does not grow; after growth they are zero.
    public func reserve(_ n: Int) {
        precondition(n >= 0, "negative buffer size \(n)")
        if n > capacity {
            pointer.deallocate()
            capacity = n
            pointer = FloatBuffer.allocate(n)
        }
        count = n
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)"); return pointer[i] }
        set { precondition(i >= 0 && i < count, "index \(i) out of 0..<\(count)"); pointer[i] = newValue }
    }

    /// The elements as an array (copied).
    public var array: [Float] { Array(buffer) }

    public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }

    private static func allocate(_ n: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: n)
        p.initialize(repeating: 0, count: n)
        return p
    }
}

/// Raw pointers handed to `DispatchQueue.concurrentPerform` closures (Swift 6 rejects capturing them directly).
struct SendablePointer: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>
    init(_ p: UnsafeMutablePointer<Float>) { self.p = p }
}

/// 64-byte-aligned bytes that grow to the largest size asked for (sizes are checked by their callers first).
final class ScratchBytes {
    private(set) var pointer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
    private(set) var byteCount = 64

    deinit { pointer.deallocate() }

    func reserve(_ n: Int) -> UnsafeMutableRawPointer {
        if n > byteCount {
            pointer.deallocate()
            pointer = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
            byteCount = n
        }
        return pointer
    }
}

/// A raw pointer handed to `Parallel.rows` closures.
/// bf16 values (as UInt16 bit patterns) that cross into concurrent closures.
struct SendableBF16: @unchecked Sendable {
    let p: UnsafeMutablePointer<UInt16>
    init(_ p: UnsafeMutablePointer<UInt16>) { self.p = p }
}

struct SendableRaw: @unchecked Sendable {
    let p: UnsafeRawPointer
    init(_ p: UnsafeRawPointer) { self.p = p }
}
