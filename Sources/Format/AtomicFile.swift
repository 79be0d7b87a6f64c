import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a file all-or-nothing: the body streams into a temporary file in the target's folder, which is fsynced and
/// renamed over the target only when the body returns. On any error the temporary file is removed and the target
/// (if it existed) is untouched. The temporary name carries the writer's pid (`.NAME.tmp-PID-RANDOM`), so the next
/// write of the same target removes what a killed writer left behind (and keeps a live writer's file).
public enum AtomicFile {
    /// Runs `body` on a sink for a temporary file beside `path`, then renames it over `path`.
    ///
    /// - Parameters:
    ///   - path: the file to create or replace.
    ///   - inputs: paths the body reads from; writing to one of them is refused (``FormatError/outputIsInput(file:)``).
    ///   - body: writes the file's bytes through the ``FileSink``; if it throws, nothing is renamed.
    public static func write(_ path: String, inputs: [String] = [], _ body: (FileSink) throws -> Void) throws {
        if let out = FileIdentity.of(path), inputs.contains(where: { FileIdentity.of($0) == out }) {
            throw FormatError.outputIsInput(file: path)
        }
        let dir = directory(of: path)
        removeStaleTemporaries(of: path)
        // A fresh name beside the target (same file system, so rename is atomic). Created with O_EXCL and mode 0666,
        // so the umask gives the output the usual permissions.
        var fd: Int32 = -1
        var tmp = ""
        for _ in 0..<16 {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
            tmp = dir + "/." + baseName(of: path) + ".tmp-\(getpid())-" + suffix
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw FormatError.io(file: path, operation: "create temporary file in \(dir)", errno: errno) }
        let sink = FileSink(fd: fd, path: path)
        do {
            try body(sink)
            // Stated input CRCs of what was copied are checked now, while the writes drain to disk, and before the
            // rename: a mismatch leaves nothing behind.
            try sink.checkClaims()
            try sink.flush()
            guard fsync(fd) == 0 else { throw FormatError.io(file: path, operation: "fsync", errno: errno) }
            sink.closeFile()
            guard rename(tmp, path) == 0 else { throw FormatError.io(file: path, operation: "rename into place", errno: errno) }
        } catch {
            sink.closeFile()
            unlink(tmp)
            throw error
        }
        // Make the rename itself durable.
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    /// Deletes `.NAME.tmp-PID-…` files beside `path` whose writer process no longer exists. Best effort: a folder that
    /// cannot be listed, or a file that cannot be removed, is left as it is (the write itself reports real problems).
    static func removeStaleTemporaries(of path: String) {
        let dir = directory(of: path)
        let prefix = "." + baseName(of: path) + ".tmp-"
        guard let d = opendir(dir) else { return }
        defer { closedir(d) }
        var stale: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0, pid != getpid() else { continue }
            // ESRCH: no such process. EPERM means it exists under another user: keep its file.
            if kill(pid, 0) != 0 && errno == ESRCH { stale.append(dir + "/" + name) }
        }
        for f in stale { unlink(f) }
    }

    /// Whether two paths name the same existing file (device + inode).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        guard let x = FileIdentity.of(a), let y = FileIdentity.of(b) else { return false }
        return x == y
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    static func baseName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}

/// The open temporary file an `AtomicFile` body writes into. Small writes are buffered; large ones go straight
/// through. `offset` is the logical end of what was written so far.
public final class FileSink {
    /// The final path (for error messages); the bytes go to a temporary file beside it.
    public let path: String
    public private(set) var offset = 0
    private var fd: Int32
    private var buffer: UnsafeMutableRawPointer
    private var buffered = 0
    private static let capacity = 1 << 20

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer = UnsafeMutableRawPointer.allocate(byteCount: FileSink.capacity, alignment: 4096)
    }

    deinit {
        buffer.deallocate()
        closeFile()
    }

    func closeFile() {
        writeback.sync {} // no writeback request may outlive the descriptor
        if fd >= 0 { close(fd) }
        fd = -1
    }

    public func write(_ p: UnsafeRawBufferPointer) throws {
        guard p.count > 0 else { return }
        if p.count >= FileSink.capacity / 2 {
            try flush()
            try writeAll(p, at: offset)
            offset += p.count
            startWriteback(upTo: offset)
            return
        }
        if buffered + p.count > FileSink.capacity { try flush() }
        (buffer + buffered).copyMemory(from: p.baseAddress!, byteCount: p.count)
        buffered += p.count
        offset += p.count
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Writes `bytes`, like `write(_: UnsafeRawBufferPointer)`. A large view of a live `MappedFile` is copied file to
    /// file by the kernel (copy_file_range, as cp does), so its pages never enter this process's resident set; a
    /// small one is copied from memory and its pages are released afterwards.
    ///
    /// When the bytes carry a CRC their input file claimed but nobody checked (`MappedFile.noteClaimedChecksum`),
    /// they are hashed on another thread during the copies and checked before the file is kept (`checkClaims`); a
    /// mismatch fails the whole write.
    public func write(_ bytes: Bytes) throws {
        claims.add(bytes)
        if bytes.count >= FileSink.directCopyMinimum, let src = MappingRegistry.shared.fileRange(of: bytes) {
            try flush()
            let copied = try copyFileRange(from: src.fd, at: src.offset, count: bytes.count)
            // Whatever the kernel would not copy (another file system, an old kernel) is written from memory.
            try writeAll(UnsafeRawBufferPointer(rebasing: bytes.buffer[copied...]), at: offset + copied)
            offset += bytes.count
            startWriteback(upTo: offset)
        } else {
            try write(bytes.buffer)
        }
        MappedFile.releasePages(of: bytes)
    }

    /// Hashes the views written with an open claimed CRC, in the background while the copies go on.
    private let claims = ClaimCheck()

    /// Checks the claimed CRCs of the views written; throws `FormatError.crcMismatch` naming the input file and
    /// record on the first that does not hold.
    func checkClaims() throws {
        try claims.finish()
    }

    /// Views below this size go through the buffer: one syscall per tiny tensor would cost more than the copy.
    private static let directCopyMinimum = 64 << 10

    /// Copies up to `count` bytes from `src` at `position` to the end of what was written; returns how many were
    /// copied before the kernel declined (0 when copy_file_range is unavailable for this pair of files).
    private func copyFileRange(from src: Int32, at position: Int, count: Int) throws -> Int {
        guard let copyRange = FileSink.copyFileRange else { return 0 }
        var done = 0
        while done < count {
            var inOff = Int64(position + done), outOff = Int64(offset + done)
            let n = copyRange(src, &inOff, fd, &outOff, min(count - done, 1 << 30), 0)
            if n > 0 {
                done += n
                continue
            }
            if n == 0 {
                // End of the input: it shrank since it was mapped (reading the mapping there would crash), or the
                // file system copies nothing for this file (then memory has it).
                var st = stat()
                if fstat(src, &st) == 0, Int(st.st_size) >= position + count { return done }
                throw FormatError.invalidInput(file: path, problem: "an input file became shorter while it was being copied")
            }
            switch errno {
            case EINTR: continue
            case EXDEV, ENOSYS, EINVAL, EOPNOTSUPP, EBADF, ETXTBSY, EPERM: return done
            default: throw FormatError.io(file: path, operation: "copy_file_range", errno: errno)
            }
        }
        return done
    }

    /// Linux's copy_file_range, looked up at run time like `syncFileRange`.
    private static let copyFileRange: (@convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int)? = {
        guard let sym = dlsym(nil, "copy_file_range") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int).self)
    }()

    /// `n` zero bytes (alignment padding).
    public func writeZeros(_ n: Int) throws {
        var left = n
        let zeros = [UInt8](repeating: 0, count: min(n, 1 << 16))
        while left > 0 {
            let k = min(left, zeros.count)
            try zeros.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<k])) }
            left -= k
        }
    }

    /// Overwrites bytes already written (e.g. a header reserved before the data), without moving `offset`.
    public func pwrite(_ p: UnsafeRawBufferPointer, at position: Int) throws {
        guard position >= 0, position + p.count <= offset else {
            throw FormatError.invalidInput(file: path, problem: "pwrite of \(p.count) bytes at \(position) is past the \(offset) bytes written")
        }
        try flush()
        try writeAll(p, at: position)
    }

    public func pwrite(_ bytes: [UInt8], at position: Int) throws { try bytes.withUnsafeBytes { try pwrite($0, at: position) } }

    /// Start of the range not yet handed to writeback.
    private var writebackStart = 0

    /// Bytes written between early-writeback requests (sync_file_range); 0 turns them off, leaving all of it to the
    /// final fsync. Process-wide; the benchmarks change it to measure both ways.
    public nonisolated(unsafe) static var writebackStep = 16 << 20

    /// Asks the kernel to start writing finished ranges to disk now, so the final fsync has less left to wait for.
    private func startWriteback(upTo end: Int) {
        let step = FileSink.writebackStep
        guard step > 0, end - writebackStart >= step, let start = FileSink.syncFileRange else { return }
        let (fd, from, count) = (fd, Int64(writebackStart), Int64(end - writebackStart))
        let syncFileRangeWrite: UInt32 = 2 // SYNC_FILE_RANGE_WRITE
        writeback.async { _ = start(fd, from, count, syncFileRangeWrite) }
        writebackStart = end
    }

    /// Writeback requests can block while the disk queue is full; a thread of their own keeps the copies going.
    private let writeback = DispatchQueue(label: "gslora.writeback")

    /// Linux's sync_file_range, looked up at run time: Swift's Glibc module does not export it (it is a GNU extension).
    private static let syncFileRange: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32)? = {
        guard let sym = dlsym(nil, "sync_file_range") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32).self)
    }()

    /// Hands buffered bytes to the kernel.
    public func flush() throws {
        guard buffered > 0 else { return }
        try writeAll(UnsafeRawBufferPointer(start: buffer, count: buffered), at: offset - buffered)
        buffered = 0
    }

    private func writeAll(_ p: UnsafeRawBufferPointer, at position: Int) throws {
        var done = 0
        while done < p.count {
            let n = systemPwrite(fd, p.baseAddress! + done, min(p.count - done, 1 << 30), off_t(position + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError.io(file: path, operation: "write", errno: errno)
            }
            done += n
        }
    }
}

/// The C pwrite, which FileSink's own `pwrite` methods shadow inside the class.
private func systemPwrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int, _ at: off_t) -> Int { pwrite(fd, p, n, at) }
