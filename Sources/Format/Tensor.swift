import Foundation

/// Memory that outlives every view into it: a memory-mapped file or an owned allocation.
/// Views hold a reference to their owner, so a mapping is unmapped only when nothing points into it.
public final class ByteOwner: @unchecked Sendable {
    public let base: UnsafeRawBufferPointer
    private let release: () -> Void
    /// Makes the memory writable; nil when it never may be.
    private let unprotect: (() -> Bool)?
    private let lock = NSLock()
    private var writable: Bool

    /// Memory at `base`, freed by `release`; it is read-only to every user of it (`isWritable` is false).
    public convenience init(base: UnsafeRawBufferPointer, release: @escaping () -> Void) {
        self.init(base: base, writable: false, unprotect: nil, release: release)
    }

    init(base: UnsafeRawBufferPointer, writable: Bool, unprotect: (() -> Bool)?, release: @escaping () -> Void) {
        self.base = base
        self.release = release
        self.writable = writable
        self.unprotect = unprotect
    }

    /// A zero-filled, 64-byte-aligned allocation of `count` bytes (writable).
    public static func allocate(_ count: Int) -> ByteOwner {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        return ByteOwner(base: UnsafeRawBufferPointer(start: p, count: count), writable: true, unprotect: nil) { p.deallocate() }
    }

    /// Whether the memory may be written: an allocation, or a mapping after `makeWritable()`.
    public var isWritable: Bool { lock.withLock { writable } }

    /// Makes the memory writable if it can be, and says whether it is. A `MappedFile` becomes copy-on-write: a write
    /// copies the page it lands on into this process's memory and never reaches the file. Such a write does change
    /// what this mapping's views read (but not what `FileSink` copies of them, which come from the file), so code
    /// that updates values it got from a view should copy them instead; making the memory writable only keeps a
    /// stray write from crashing. Memory given to the public initialiser stays read-only (false).
    public func makeWritable() -> Bool {
        lock.withLock {
            if !writable, let unprotect { writable = unprotect() }
            return writable
        }
    }

    deinit { release() }
}

/// A borrowed, bounds-checked window of bytes that keeps its owner alive.
public struct Bytes: @unchecked Sendable {
    public let owner: ByteOwner
    public let buffer: UnsafeRawBufferPointer

    public init(owner: ByteOwner, buffer: UnsafeRawBufferPointer) {
        self.owner = owner
        self.buffer = buffer
    }

    public init(owner: ByteOwner) { self.init(owner: owner, buffer: owner.base) }

    public var count: Int { buffer.count }

    /// A copy of `data` in a fresh aligned allocation.
    public init(copying data: UnsafeRawBufferPointer) {
        let o = ByteOwner.allocate(data.count)
        if data.count > 0 { UnsafeMutableRawPointer(mutating: o.base.baseAddress!).copyMemory(from: data.baseAddress!, byteCount: data.count) }
        self.init(owner: o)
    }

    public init(copying array: [UInt8]) {
        self = array.withUnsafeBytes { Bytes(copying: $0) }
    }

    /// The bytes of a float array, copied.
    public init(floats: [Float]) {
        self = floats.withUnsafeBytes { Bytes(copying: $0) }
    }
}

/// A named tensor: dtype, shape and its bytes (row-major, little-endian, contiguous).
public struct Tensor: @unchecked Sendable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var data: Bytes

    public init(name: String, dtype: DType, shape: [Int], data: Bytes) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// Number of elements (1 for a 0-d tensor). Shapes reaching here were validated, so this cannot overflow.
    public var count: Int { shape.reduce(1, *) }

    /// A float32 tensor made from an array (copied).
    public init(name: String, shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        self.init(name: name, dtype: .f32, shape: shape, data: Bytes(floats: floats))
    }
}
