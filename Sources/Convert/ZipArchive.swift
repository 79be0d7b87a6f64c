import CGSLoRAZlib
import GSLoRAFormat

/// Little-endian reads that return nil instead of reading outside the buffer.
extension UnsafeRawBufferPointer {
    func le<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T? {
        let n = MemoryLayout<T>.size
        guard at >= 0, at <= count - n else { return nil }
        var v: T = 0
        for i in 0..<n { v |= T(truncatingIfNeeded: self[at + i]) << (8 * i) }
        return v
    }
}

/// One record of a zip archive, with sizes from the central directory (torch streams its local headers with zero
/// sizes and a data descriptor, so local sizes are never trusted).
public struct ZipRecord: Sendable {
    /// Full name, including the archive's top folder.
    public let name: String
    /// 0 stored, 8 deflated.
    public let method: Int
    public let compressedSize: Int
    public let uncompressedSize: Int
    public let crc32: UInt32
    /// Where the record's bytes start in the file.
    public let dataOffset: Int
}

/// A read-only zip archive over a memory-mapped file, as PyTorch writes them: every record lives under one top
/// folder ("archive/", or the file's stem). Stored records are returned as views into the mapping; deflated ones
/// are inflated within a budget. Every offset and size from the file is checked before use.
public final class ZipArchive {
    public let path: String
    /// The shared top folder, without the trailing "/".
    public let prefix: String
    /// Records in central-directory order.
    public let records: [ZipRecord]
    private let bytes: Bytes
    private let byName: [String: Int]
    private let maxInflated: Int

    /// Most bytes one deflated record may inflate to, and its largest allowed compression ratio.
    public static let defaultMaxInflatedBytes = 4 << 30
    public static let maxCompressionRatio = 1000

    public convenience init(path: String, maxInflatedBytes: Int = ZipArchive.defaultMaxInflatedBytes) throws {
        let file: MappedFile
        do { file = try MappedFile(path) } catch { throw ConvertError.unreadable(file: path, reason: "\(error)") }
        try self.init(path: path, bytes: file.bytes, maxInflatedBytes: maxInflatedBytes)
    }

    public init(path: String, bytes: Bytes, maxInflatedBytes: Int = ZipArchive.defaultMaxInflatedBytes) throws {
        self.path = path
        self.bytes = bytes
        self.maxInflated = maxInflatedBytes
        let records = try Self.readDirectory(bytes.buffer, path)
        guard let first = records.first, let slash = first.name.firstIndex(of: "/") else {
            throw ConvertError.badZip(
                file: path, reason: records.isEmpty ? "the archive has no records" : "record '\(records[0].name)' is not inside a top folder")
        }
        let prefix = String(first.name[..<slash])
        var byName: [String: Int] = [:]
        for (i, r) in records.enumerated() {
            try Self.checkName(r.name, prefix: prefix, path)
            guard byName.updateValue(i, forKey: r.name) == nil else {
                throw ConvertError.badZip(file: path, reason: "record '\(r.name)' appears twice")
            }
        }
        self.prefix = prefix
        self.records = records
        self.byName = byName
    }

    /// Whether a record exists, by its name inside the top folder (e.g. "data.pkl").
    public func contains(_ name: String) -> Bool { byName[prefix + "/" + name] != nil }

    /// The bytes of a record named inside the top folder, CRC-checked (unless `claim` deferred the check to the
    /// caller). Stored records are zero-copy views; their pages are released from the resident set once checked
    /// (using the bytes faults them back from the page cache).
    public func read(_ name: String) throws -> Bytes {
        guard let i = byName[prefix + "/" + name] else {
            throw ConvertError.badZip(file: path, reason: "record '\(prefix)/\(name)' is missing")
        }
        let r = records[i]
        switch r.method {
        case 0:
            let out = try storedView(r)
            if !verified.contains(i), !claimed.contains(i) {
                try accept(CRC32.of(out.buffer), of: out, record: i)
            }
            return out
        case 8:
            let raw = UnsafeRawBufferPointer(rebasing: bytes.buffer[r.dataOffset..<(r.dataOffset + r.compressedSize)])
            let out = try inflate(raw, r)
            try check(CRC32.of(out.buffer), r)
            return out
        default:
            throw ConvertError.badZip(file: path, reason: "record '\(r.name)' uses compression method \(r.method); only stored and deflate are supported")
        }
    }

    /// CRC-checks the stored records among `names` (named inside the top folder) on all cores, so `read` need not
    /// hash them again. Rounds of about 32 MB are released from the resident set before the next one starts.
    /// Missing and deflated records are left to `read`.
    public func verify(_ names: [String]) throws {
        var seen = Set<Int>()
        let todo = names.compactMap { byName[prefix + "/" + $0] }
            .filter { records[$0].method == 0 && !verified.contains($0) && seen.insert($0).inserted }
            .sorted { records[$0].dataOffset < records[$1].dataOffset }
        var next = 0
        while next < todo.count {
            var end = next, size = 0
            while end < todo.count, end == next || size + records[todo[end]].compressedSize <= Self.verifyRound {
                size += records[todo[end]].compressedSize
                end += 1
            }
            let round = Array(todo[next..<end])
            let views = try round.map { try storedView(records[$0]) }
            let crcs = CRC32.ofEach(views.map(\.buffer))
            for (k, i) in round.enumerated() { try accept(crcs[k], of: views[k], record: i) }
            next = end
        }
    }

    private static let verifyRound = 32 << 20

    /// For a converter only: instead of hashing the stored records among `names` up front, attaches each one's CRC
    /// from the central directory to its bytes as a claim (`MappedFile.noteClaimedChecksum`), and `read` returns
    /// them unchecked. The caller must settle every claim before it keeps anything made from them: a `FileSink`
    /// checks the views it writes, `verify` or `MappedFile.verifyClaimedChecksums` the rest.
    public func claim(_ names: [String]) throws {
        for i in names.compactMap({ byName[prefix + "/" + $0] }) where records[i].method == 0 && !verified.contains(i) {
            let r = records[i]
            MappedFile.noteClaimedChecksum(r.crc32, of: try storedView(r), file: path, record: r.name)
            claimed.insert(i)
        }
    }

    /// Stored records whose CRC is only claimed (`claim`), until `verify` checks them.
    private var claimed = Set<Int>()

    /// Stored records whose CRC has been checked.
    private var verified = Set<Int>()

    private func storedView(_ r: ZipRecord) throws -> Bytes {
        guard r.compressedSize == r.uncompressedSize else {
            throw ConvertError.badZip(file: path, reason: "stored record '\(r.name)' has different compressed and uncompressed sizes")
        }
        return Bytes(owner: bytes.owner, buffer: UnsafeRawBufferPointer(rebasing: bytes.buffer[r.dataOffset..<(r.dataOffset + r.compressedSize)]))
    }

    /// A stored record that passed its check: remembered, its CRC offered to writers that copy it unchanged, its
    /// pages released (they were touched only to be hashed).
    private func accept(_ crc: UInt32, of view: Bytes, record i: Int) throws {
        try check(crc, records[i])
        verified.insert(i)
        claimed.remove(i)
        MappedFile.noteChecksum(crc, of: view)
        MappedFile.releasePages(of: view)
    }

    private func check(_ crc: UInt32, _ r: ZipRecord) throws {
        guard crc == r.crc32 else {
            throw ConvertError.recordCRC(file: path, record: r.name, stated: r.crc32, computed: crc)
        }
    }

    private func inflate(_ src: UnsafeRawBufferPointer, _ r: ZipRecord) throws -> Bytes {
        let ratioCap = max(r.compressedSize, 1).multipliedReportingOverflow(by: Self.maxCompressionRatio)
        guard r.uncompressedSize <= maxInflated else {
            throw ConvertError.zipBudget(
                file: path, record: r.name, reason: "declares \(r.uncompressedSize) inflated bytes, over the \(maxInflated)-byte limit")
        }
        guard ratioCap.overflow || r.uncompressedSize <= ratioCap.partialValue else {
            throw ConvertError.zipBudget(
                file: path, record: r.name,
                reason: "declares \(r.uncompressedSize) bytes from \(r.compressedSize) compressed (more than \(Self.maxCompressionRatio)x)")
        }
        let owner = ByteOwner.allocate(r.uncompressedSize)
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ConvertError.badZip(file: path, reason: "zlib could not start inflating '\(r.name)'")
        }
        defer { inflateEnd(&stream) }
        let total = r.uncompressedSize
        let out = UnsafeMutablePointer(mutating: owner.base.baseAddress!.assumingMemoryBound(to: Bytef.self))
        // One spare output byte catches a stream that inflates to more than it declared.
        var spare: Bytef = 0
        var status = Z_OK
        while true {
            if stream.avail_in == 0, Int(stream.total_in) < src.count {
                let done = Int(stream.total_in)
                stream.next_in = UnsafeMutablePointer(mutating: (src.baseAddress! + done).assumingMemoryBound(to: Bytef.self))
                stream.avail_in = UInt32(min(src.count - done, Int(UInt32.max)))
            }
            let produced = Int(stream.total_out)
            status = withUnsafeMutablePointer(to: &spare) { sp in
                if produced < total {
                    stream.next_out = out + produced
                    stream.avail_out = UInt32(min(total - produced, Int(UInt32.max)))
                } else {
                    stream.next_out = sp
                    stream.avail_out = 1
                }
                return CGSLoRAZlib.inflate(&stream, Z_NO_FLUSH)
            }
            if Int(stream.total_out) > total {
                throw ConvertError.zipBudget(file: path, record: r.name, reason: "inflates to more than its declared \(total) bytes")
            }
            if status != Z_OK { break }
        }
        guard status == Z_STREAM_END, Int(stream.total_out) == total else {
            throw ConvertError.badZip(
                file: path, reason: "record '\(r.name)' does not inflate to its declared \(total) bytes (got \(stream.total_out), zlib status \(status))")
        }
        return Bytes(owner: owner)
    }

    // MARK: directory

    private static func checkName(_ name: String, prefix: String, _ path: String) throws {
        func bad(_ why: String) -> ConvertError { .badZip(file: path, reason: "record name '\(name)' \(why)") }
        guard !name.hasPrefix("/"), !name.contains("\\"), !name.contains("\0") else { throw bad("is an absolute or non-portable path") }
        if name.count >= 2, Array(name.utf8)[1] == UInt8(ascii: ":") { throw bad("is an absolute path") }
        var parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.contains(where: { $0 == ".." || $0 == "." }) else { throw bad("contains '..' or '.'") }
        if parts.count >= 2, parts.last!.isEmpty { parts.removeLast() } // a folder entry, "top/" or "top/data/"
        guard parts[0] == prefix, parts.count >= 2 || name.hasSuffix("/") else {
            throw bad("is outside the archive's top folder '\(prefix)/'")
        }
        guard !parts.contains(where: \.isEmpty) else { throw bad("has an empty path component") }
    }

    private static func readDirectory(_ buf: UnsafeRawBufferPointer, _ path: String) throws -> [ZipRecord] {
        func bad(_ why: String) -> ConvertError { .badZip(file: path, reason: why) }
        let size = buf.count
        guard size >= 22 else { throw bad("the file is \(size) bytes, too short for a zip end record") }
        // The end record sits in the last 22 bytes plus at most a 65535-byte comment.
        var eocd = -1
        var p = size - 22
        let lowest = max(0, size - 22 - 65535)
        while p >= lowest {
            if buf.le(p, UInt32.self) == 0x0605_4b50, let c = buf.le(p + 20, UInt16.self), p + 22 + Int(c) <= size {
                eocd = p
                break
            }
            p -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record (truncated or not a zip)") }
        var count = Int(buf.le(eocd + 10, UInt16.self)!)
        var cdSize = Int(buf.le(eocd + 12, UInt32.self)!)
        var cdOffset = Int(buf.le(eocd + 16, UInt32.self)!)
        if count == 0xffff || cdSize == 0xffff_ffff || cdOffset == 0xffff_ffff {
            // ZIP64: a locator right before the end record points at the ZIP64 end record.
            guard eocd >= 20, buf.le(eocd - 20, UInt32.self) == 0x0706_4b50, let at64 = buf.le(eocd - 12, UInt64.self),
                let r64 = Int(exactly: at64), r64 <= eocd - 20 - 56, buf.le(r64, UInt32.self) == 0x0606_4b50
            else {
                throw bad("the ZIP64 end record is missing or points outside the file")
            }
            guard let c = Int(exactly: buf.le(r64 + 32, UInt64.self)!), let s = Int(exactly: buf.le(r64 + 40, UInt64.self)!),
                let o = Int(exactly: buf.le(r64 + 48, UInt64.self)!)
            else { throw bad("ZIP64 end record sizes overflow") }
            count = c
            cdSize = s
            cdOffset = o
        }
        guard cdOffset <= size, cdSize <= size - cdOffset else {
            throw bad("central directory (offset \(cdOffset), \(cdSize) bytes) lies outside the \(size)-byte file")
        }
        guard count <= cdSize / 46 else { throw bad("central directory claims \(count) records in \(cdSize) bytes") }
        var records: [ZipRecord] = []
        records.reserveCapacity(count)
        var q = cdOffset
        let cdEnd = cdOffset + cdSize
        for _ in 0..<count {
            guard q <= cdEnd - 46, buf.le(q, UInt32.self) == 0x0201_4b50 else { throw bad("central directory entry at \(q) is malformed") }
            let flags = buf.le(q + 8, UInt16.self)!
            let method = Int(buf.le(q + 10, UInt16.self)!)
            let crc = buf.le(q + 16, UInt32.self)!
            var csize = UInt64(buf.le(q + 20, UInt32.self)!)
            var usize = UInt64(buf.le(q + 24, UInt32.self)!)
            let nameLen = Int(buf.le(q + 28, UInt16.self)!)
            let extraLen = Int(buf.le(q + 30, UInt16.self)!)
            let commentLen = Int(buf.le(q + 32, UInt16.self)!)
            var local = UInt64(buf.le(q + 42, UInt32.self)!)
            let entryEnd = q + 46 + nameLen + extraLen + commentLen
            guard entryEnd <= cdEnd else { throw bad("central directory entry at \(q) runs past the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: buf[(q + 46)..<(q + 46 + nameLen)]), as: UTF8.self)
            guard flags & 1 == 0 else { throw bad("record '\(name)' is encrypted") }
            // ZIP64 extra field: the 64-bit values of whichever 32-bit fields are saturated, in this order.
            var e = q + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = buf.le(e, UInt16.self)!
                let len = Int(buf.le(e + 2, UInt16.self)!)
                guard e + 4 + len <= extraEnd else { throw bad("record '\(name)' has a malformed extra field") }
                if id == 0x0001 {
                    var f = e + 4
                    for field in [0, 1, 2] {
                        let saturated = [usize, csize, local][field] == 0xffff_ffff
                        guard saturated else { continue }
                        guard f + 8 <= e + 4 + len, let v = buf.le(f, UInt64.self) else { throw bad("record '\(name)' has a short ZIP64 field") }
                        switch field {
                        case 0: usize = v
                        case 1: csize = v
                        default: local = v
                        }
                        f += 8
                    }
                }
                e += 4 + len
            }
            guard let cs = Int(exactly: csize), let us = Int(exactly: usize), let lo = Int(exactly: local),
                lo <= size - 30, buf.le(lo, UInt32.self) == 0x0403_4b50
            else {
                throw bad("record '\(name)' has no local header at its recorded offset")
            }
            let dataStart = lo + 30 + Int(buf.le(lo + 26, UInt16.self)!) + Int(buf.le(lo + 28, UInt16.self)!)
            guard dataStart <= size, cs <= size - dataStart else {
                throw bad("record '\(name)' (\(cs) bytes at \(dataStart)) runs past the end of the \(size)-byte file")
            }
            records.append(ZipRecord(name: name, method: method, compressedSize: cs, uncompressedSize: us, crc32: crc, dataOffset: dataStart))
            q = entryEnd
        }
        return records
    }
}
