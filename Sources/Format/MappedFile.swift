#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only. Views (`bytes` and slices of it) keep the mapping alive after this object is gone.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: Bytes
    /// Device and inode of the mapped file, to tell whether an output path names it.
    public let identity: FileIdentity

    public var count: Int { bytes.count }

    public init(_ path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError.io(file: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError.io(file: path, operation: "stat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FormatError.io(file: path, operation: "map (not a regular file)", errno: EINVAL) }
        identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        let size = Int(st.st_size)
        if size == 0 {
            // mmap refuses length 0; an empty buffer needs no owner memory.
            bytes = Bytes(owner: ByteOwner(base: UnsafeRawBufferPointer(start: nil, count: 0)) {})
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw FormatError.io(file: path, operation: "mmap", errno: errno)
        }
        bytes = Bytes(owner: ByteOwner(base: UnsafeRawBufferPointer(start: p, count: size)) { munmap(p, size) })
    }

    /// Tell the kernel the whole file will be read front to back (read-ahead for verify and copies).
    public func adviseSequential() {
        if let p = bytes.buffer.baseAddress { _ = madvise(UnsafeMutableRawPointer(mutating: p), bytes.count, MADV_SEQUENTIAL) }
    }
}

/// Device + inode: two paths name the same file exactly when these are equal.
public struct FileIdentity: Equatable, Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// The identity of the file at `path` (following symlinks), or nil if it does not exist.
    public static func of(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}
