import GSLoRAFormat

/// A float32 array in 64-byte-aligned unsafe memory: the storage of weights, LoRA factors and activations.
/// Reference type so a workspace can hand out the same buffer to many layers and reuse it across calls;
/// `reserve` grows it only when a bigger batch arrives (first touch of fresh pages is slow, reuse is not).
///
/// A buffer either owns its memory or is a view of a float32 tensor's bytes (`init?(viewing:)`): a weight used in
/// place in the model file's mapping, so a loaded model is held once. A view keeps the tensor's memory alive; that
/// memory is writable (a mapping made copy-on-write), so a write never faults, but it changes what the tensor reads:
/// code that updates parameters calls `detach()` first.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    /// Elements in use.
    public private(set) var count: Int
    private var capacity: Int
    /// The memory a view reads (nil: this buffer owns `pointer`).
    private var owner: ByteOwner?

    /// Whether the elements are a view of a tensor's bytes rather than memory of this buffer's own.
    public var isView: Bool { owner != nil }

    /// The alignment of every buffer's first element: a cache line, which the kernels' rows start on.
    public static let alignment = 64

    /// `count` zeros.
    public init(count: Int) {
        precondition(count >= 0, "negative buffer size \(count)")
        capacity = max(count, 1)
        pointer = FloatBuffer.allocate(capacity)
        self.count = count
    }

    /// A view of `tensor`'s values in place, or nil when they cannot be used so: the tensor must be float32 (its bytes
    /// are little-endian and contiguous by definition), hold exactly its elements, start on a 64-byte boundary like
    /// every buffer, and lie in memory that can be made writable (`ByteOwner.makeWritable`: an allocation, or a mapped
    /// file made copy-on-write). A .gslr's tensors all start on such a boundary (its alignment is at least 64).
    public init?(viewing tensor: Tensor) {
        let n = tensor.count, bytes = tensor.data
        guard tensor.dtype == .f32, n > 0, bytes.count == n * MemoryLayout<Float>.stride, let start = bytes.buffer.baseAddress,
            Int(bitPattern: start) % FloatBuffer.alignment == 0, bytes.owner.makeWritable()
        else { return nil }
        pointer = UnsafeMutableRawPointer(mutating: start).bindMemory(to: Float.self, capacity: n)
        count = n
        capacity = n
        owner = bytes.owner
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

    deinit { if owner == nil { pointer.deallocate() } }

    /// Makes a view a buffer with memory of its own holding the same values (for a buffer that owns its memory it
    /// does nothing). Code that writes parameters calls it first, so its writes do not change the tensor the view
    /// reads (and do not fault copy-on-write pages in one by one). `pointer` changes: not while a pass reads it.
    public func detach() {
        guard owner != nil else { return }
        // A view holds at least one element (`init?(viewing:)`).
        let p = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: FloatBuffer.alignment)
            .bindMemory(to: Float.self, capacity: count)
        p.initialize(from: pointer, count: count)
        pointer = p
        capacity = count
        owner = nil
    }

    /// Sets the element count to `n`, growing (and zeroing) the storage only when `n` exceeds the capacity.
    /// Contents are kept when the buffer does not grow; after growth they are zero. A view that grows becomes a
    /// buffer with memory of its own (its tensor's memory is left as it is).
    public func reserve(_ n: Int) {
        precondition(n >= 0, "negative buffer size \(n)")
        if n > capacity {
            if owner == nil { pointer.deallocate() }
            owner = nil
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
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: alignment)
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
