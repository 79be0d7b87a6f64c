import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole file mapped read-only (private to this process). Views (`bytes` and slices of it) keep the mapping alive
/// after this object is gone. `bytes.owner.makeWritable()` turns the mapping copy-on-write (model weights used in
/// place: a stray write then costs the page it touches, never a crash, and never reaches the file).
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
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw FormatError.io(file: path, operation: "stat", errno: e)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { close(fd); throw FormatError.io(file: path, operation: "map (not a regular file)", errno: EINVAL) }
        identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        let size = Int(st.st_size)
        if size == 0 {
            close(fd)
            // mmap refuses length 0; an empty buffer needs no owner memory.
            bytes = Bytes(owner: ByteOwner(base: UnsafeRawBufferPointer(start: nil, count: 0)) {})
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            let e = errno
            close(fd)
            throw FormatError.io(file: path, operation: "mmap", errno: e)
        }
        // The descriptor stays open with the mapping, so writers can copy views file to file (`FileSink.write`).
        let base = UnsafeRawPointer(p)
        MappingRegistry.shared.add(base, size: size, fd: fd)
        bytes = Bytes(
            owner: ByteOwner(
                base: UnsafeRawBufferPointer(start: p, count: size), writable: false,
                unprotect: {
                    // Marked first, so `releasePages` never drops a page that may be written from here on.
                    MappingRegistry.shared.setCopyOnWrite(base, true)
                    guard mprotect(p, size, PROT_READ | PROT_WRITE) == 0 else {
                        MappingRegistry.shared.setCopyOnWrite(base, false)
                        return false
                    }
                    return true
                }
            ) {
                MappingRegistry.shared.remove(base)
                munmap(p, size)
                close(fd)
            })
    }

    /// Tell the kernel the whole file will be read front to back (read-ahead for verify and copies).
    public func adviseSequential() {
        if let p = bytes.buffer.baseAddress { _ = madvise(UnsafeMutableRawPointer(mutating: p), bytes.count, MADV_SEQUENTIAL) }
    }

    /// Drops the pages behind `bytes` from this process's resident set when they are part of a live, read-only
    /// `MappedFile` (for anything else, a copy-on-write mapping included, it does nothing). No data is lost: a later
    /// read faults the pages back in from the page cache. Writers call it after copying a tensor out, so converting a
    /// file does not keep the whole input resident.
    public static func releasePages(of bytes: Bytes) {
        guard bytes.count > 0, let start = bytes.buffer.baseAddress, let map = MappingRegistry.shared.mapping(of: bytes.owner),
            !map.copyOnWrite
        else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Whole pages overlapping the range, clamped to the mapping (which starts on a page boundary).
        let lo = max(Int(bitPattern: start) & ~(page - 1), Int(bitPattern: map.base))
        let hi = min(Int(bitPattern: start) + bytes.count, Int(bitPattern: map.base) + map.size)
        guard hi > lo, let p = UnsafeMutableRawPointer(bitPattern: lo) else { return }
        _ = madvise(p, hi - lo, MADV_DONTNEED)
    }

    /// Records that a reader verified the CRC-32 of exactly the bytes of `bytes` (e.g. a stored zip record), so a
    /// writer copying them unchanged can reuse it instead of hashing them again. Kept only while the mapping lives,
    /// and only for views of a `MappedFile`; for other bytes it does nothing.
    public static func noteChecksum(_ crc: UInt32, of bytes: Bytes) {
        MappingRegistry.shared.note(crc, of: bytes)
    }

    /// The CRC-32 a reader recorded with `noteChecksum` for exactly this range of a live mapping, else nil.
    public static func knownChecksum(of bytes: Bytes) -> UInt32? {
        MappingRegistry.shared.checksum(of: bytes)
    }

    /// Records the CRC-32 a file *states* for exactly the bytes of `bytes` (a stored zip record's central-directory
    /// CRC) without checking it. Only a converter that settles every claim before its output is kept may do this:
    /// a `FileSink` that writes exactly these bytes checks the claim before its file is renamed into place, and
    /// `verifyClaimedChecksums` checks the rest. `file` and `record` name the input in the mismatch error.
    public static func noteClaimedChecksum(_ crc: UInt32, of bytes: Bytes, file: String, record: String) {
        MappingRegistry.shared.claim(ClaimedChecksum(crc: crc, file: file, record: record), of: bytes)
    }

    /// The unchecked CRC-32 claimed with `noteClaimedChecksum` for exactly this range of a live mapping, else nil.
    public static func claimedChecksum(of bytes: Bytes) -> UInt32? {
        MappingRegistry.shared.claimed(bytes)?.crc
    }

    /// Checks every claim still open in the mapping that `bytes` views, except those for exactly one of `except`
    /// (which a writer will check as it copies them), on all cores. A claim that holds becomes a known checksum;
    /// the first that does not throws `FormatError.crcMismatch` naming the claiming file and record.
    public static func verifyClaimedChecksums(in bytes: Bytes, except: [Bytes] = []) throws {
        let skip = Set(except.map(MappingRegistry.Range.init))
        try MappingRegistry.shared.verifyClaims(MappingRegistry.shared.openClaims(in: bytes).filter { !skip.contains(MappingRegistry.Range($0)) })
    }
}

/// Checks claimed CRCs while a `FileSink` copies the claimed views: one background thread hashes each view as it is
/// handed over (the copy itself is kernel work waiting on the disk, so the second core is free), and `finish` waits
/// for it and compares. Each view's pages are released once hashed.
final class ClaimCheck: @unchecked Sendable {
    private let queue = DispatchQueue(label: "gslora.claimed-crc")
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var hashed: [(bytes: Bytes, crc: UInt32)] = []
    private var handed = Set<MappingRegistry.Range>()

    /// Starts hashing `bytes` if they carry an open claim (and were not handed over already).
    func add(_ bytes: Bytes) {
        guard MappedFile.claimedChecksum(of: bytes) != nil, handed.insert(MappingRegistry.Range(bytes)).inserted else { return }
        queue.async(group: group) { [self] in
            let crc = CRC32.of(bytes.buffer)
            MappedFile.releasePages(of: bytes)
            lock.withLock { hashed.append((bytes, crc)) }
        }
    }

    /// Waits for the hashing; throws `FormatError.crcMismatch` on the first claim that does not hold.
    func finish() throws {
        group.wait()
        let results = lock.withLock { hashed }
        for r in results { try MappingRegistry.shared.settle(r.bytes, computed: r.crc) }
    }
}

/// A CRC-32 an input file states for a range of itself, not yet checked.
struct ClaimedChecksum {
    let crc: UInt32
    let file: String
    let record: String
}

/// The live `MappedFile` mappings by base address, each with its open file and the checksums readers verified for
/// ranges of it. An entry goes away (before munmap) with its mapping, so an address reused later starts clean.
final class MappingRegistry: @unchecked Sendable {
    static let shared = MappingRegistry()

    struct Range: Hashable {
        let start: Int
        let count: Int

        init(_ bytes: Bytes) {
            start = Int(bitPattern: bytes.buffer.baseAddress)
            count = bytes.count
        }
    }

    struct Mapping {
        let base: UnsafeRawPointer
        let size: Int
        let fd: Int32
        /// Made writable (`ByteOwner.makeWritable`): its pages may hold writes that dropping them would lose.
        var copyOnWrite = false
        var checksums: [Range: UInt32] = [:]
        /// Stated but unchecked CRCs (`MappedFile.noteClaimedChecksum`). Ranges, not views: a view would keep the
        /// mapping, and so this entry, alive forever.
        var claims: [Range: ClaimedChecksum] = [:]
    }

    private let lock = NSLock()
    private var live: [UnsafeRawPointer: Mapping] = [:]

    func add(_ base: UnsafeRawPointer, size: Int, fd: Int32) {
        lock.withLock { live[base] = Mapping(base: base, size: size, fd: fd) }
    }

    func remove(_ base: UnsafeRawPointer) {
        lock.withLock { _ = live.removeValue(forKey: base) }
    }

    func setCopyOnWrite(_ base: UnsafeRawPointer, _ on: Bool) {
        lock.withLock { live[base]?.copyOnWrite = on }
    }

    func mapping(of owner: ByteOwner) -> (base: UnsafeRawPointer, size: Int, copyOnWrite: Bool)? {
        guard let base = owner.base.baseAddress else { return nil }
        return lock.withLock { live[base].map { ($0.base, $0.size, $0.copyOnWrite) } }
    }

    /// The mapped file's descriptor and the file offset where `bytes` start, when they are a view of a live mapping.
    func fileRange(of bytes: Bytes) -> (fd: Int32, offset: Int)? {
        guard let base = bytes.owner.base.baseAddress, let start = bytes.buffer.baseAddress else { return nil }
        return lock.withLock { live[base].map { ($0.fd, start - $0.base) } }
    }

    /// A verified CRC; it settles any claim for the same range.
    func note(_ crc: UInt32, of bytes: Bytes) {
        guard let base = bytes.owner.base.baseAddress, bytes.buffer.baseAddress != nil else { return }
        lock.withLock {
            live[base]?.checksums[Range(bytes)] = crc
            live[base]?.claims[Range(bytes)] = nil
        }
    }

    func checksum(of bytes: Bytes) -> UInt32? {
        guard let base = bytes.owner.base.baseAddress, bytes.buffer.baseAddress != nil else { return nil }
        return lock.withLock { live[base]?.checksums[Range(bytes)] }
    }

    /// An already verified range needs no claim.
    func claim(_ c: ClaimedChecksum, of bytes: Bytes) {
        guard let base = bytes.owner.base.baseAddress, bytes.buffer.baseAddress != nil else { return }
        lock.withLock {
            guard live[base] != nil, live[base]!.checksums[Range(bytes)] == nil else { return }
            live[base]!.claims[Range(bytes)] = c
        }
    }

    func claimed(_ bytes: Bytes) -> ClaimedChecksum? {
        guard let base = bytes.owner.base.baseAddress, bytes.buffer.baseAddress != nil else { return nil }
        return lock.withLock { live[base]?.claims[Range(bytes)] }
    }

    /// The views with open claims in the mapping `bytes` belong to, in file order.
    func openClaims(in bytes: Bytes) -> [Bytes] {
        guard let base = bytes.owner.base.baseAddress else { return [] }
        let ranges = lock.withLock { live[base]?.claims.keys.sorted { $0.start < $1.start } ?? [] }
        return ranges.map { Bytes(owner: bytes.owner, buffer: UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: $0.start), count: $0.count)) }
    }

    /// Hashes the claimed views among `views` (others are skipped) on all cores, in rounds of about 64 MB whose
    /// pages are released before the next round; each claim that holds becomes a known checksum.
    func verifyClaims(_ views: [Bytes]) throws {
        var seen = Set<Range>()
        let todo = views.filter { claimed($0) != nil && seen.insert(Range($0)).inserted }
        var next = 0
        while next < todo.count {
            var end = next, size = 0
            while end < todo.count, end == next || size + todo[end].count <= Self.verifyRound {
                size += todo[end].count
                end += 1
            }
            let round = todo[next..<end]
            let crcs = CRC32.ofEach(round.map(\.buffer))
            for (c, v) in zip(crcs, round) {
                MappedFile.releasePages(of: v)
                try settle(v, computed: c)
            }
            next = end
        }
    }

    /// Compares the CRC computed for `bytes` with their open claim: a match makes it a known checksum, a mismatch
    /// throws `FormatError.crcMismatch` naming the claiming file and record. Without an open claim, nothing to do.
    func settle(_ bytes: Bytes, computed crc: UInt32) throws {
        guard let claim = claimed(bytes) else { return }
        guard crc == claim.crc else {
            throw FormatError.crcMismatch(file: claim.file, tensor: claim.record, expected: claim.crc, actual: crc)
        }
        note(crc, of: bytes)
    }

    private static let verifyRound = 64 << 20
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
