import Foundation

/// Writes .gslr files: validates, lays the tensors out in the given order, streams them into a temporary file while
/// computing CRCs, then fills in the header and renames the file into place (`AtomicFile`).
public enum GSLRWriter {
    /// Writes `tensors` with `header` (whose `tensors` table is replaced). `inputs` are files the tensors were read
    /// from; the output may not be one of them.
    public static func write(_ path: String, header: GSLRHeader, tensors: [Tensor], inputs: [String] = []) throws {
        var h = try plan(header, tensors: tensors, file: path)
        let placeholder = try encode(h, file: path)
        let dataStart = GSLR.alignUp(GSLR.preambleSize + placeholder.count, h.alignment)!
        // CRCs a reader already verified for exactly these bytes (a stored zip record copied unchanged) are reused;
        // so are CRCs an input only claims: the sink checks those before the file is kept (`AtomicFile`).
        let known = tensors.map { MappedFile.knownChecksum(of: $0.data) ?? MappedFile.claimedChecksum(of: $0.data) }
        try AtomicFile.write(path, inputs: inputs) { sink in
            try sink.writeZeros(GSLR.preambleSize)
            try sink.write(placeholder)
            try sink.writeZeros(dataStart - sink.offset)
            for (i, t) in tensors.enumerated() {
                try sink.writeZeros(dataStart + h.tensors[i].offset - sink.offset)
                try sink.write(t.data)
            }
            // The sink has already started writeback, so hashing (on all cores) overlaps the disk writes that the
            // final fsync waits for. (Hashing on a second thread during the writes measured slower: they compete.)
            let crcs = checksums(tensors, known: known)
            for i in h.tensors.indices { h.tensors[i].crc32 = crcs[i] }
            // CRCs are fixed-width hex, so the final header has exactly the placeholder's length.
            let final = try encode(h, file: path)
            precondition(final.count == placeholder.count, "header length changed when CRCs were filled in")
            try sink.pwrite(preamble(headerLength: final.count, headerCRC: CRC32.of(final)) + final, at: 0)
        }
    }

    /// Each tensor's CRC: `known` where given, else hashed on all cores in rounds of about `round` bytes; a round's
    /// mapped input pages are released before the next, so a large mapped input never becomes resident all at once.
    static func checksums(_ tensors: [Tensor], known: [UInt32?], piece: Int = 32 << 20, round: Int = 64 << 20) -> [UInt32] {
        struct Piece { let tensor: Int; let bytes: Bytes }
        var pieces: [Piece] = []
        for (i, t) in tensors.enumerated() where known[i] == nil {
            let b = t.data.buffer
            var at = 0
            repeat {
                let n = min(piece, b.count - at)
                pieces.append(Piece(tensor: i, bytes: Bytes(owner: t.data.owner, buffer: UnsafeRawBufferPointer(rebasing: b[at..<(at + n)]))))
                at += n
            } while at < b.count
        }
        var crcs = known.map { $0 ?? 0 }
        var started = Set<Int>()
        var next = 0
        while next < pieces.count {
            var end = next, bytes = 0
            while end < pieces.count, end == next || bytes + pieces[end].bytes.count <= round {
                bytes += pieces[end].bytes.count
                end += 1
            }
            let batch = pieces[next..<end]
            let results = CRC32.ofEach(batch.map(\.bytes.buffer), piece: piece)
            for (p, c) in zip(batch, results) {
                // Pieces of one tensor come in order, so combining appends each to the CRC of those before it.
                crcs[p.tensor] = started.insert(p.tensor).inserted ? c : CRC32.combine(crcs[p.tensor], c, lengthOfB: p.bytes.count)
                MappedFile.releasePages(of: p.bytes)
            }
            next = end
        }
        return crcs
    }

    /// The header with its table laid out for `tensors` (CRCs zero), after every check a reader would make.
    public static func plan(_ header: GSLRHeader, tensors: [Tensor], file: String = "(output)") throws -> GSLRHeader {
        var h = header
        guard GSLR.isValidAlignment(h.alignment) else {
            throw FormatError.invalidInput(
                file: file, problem: "alignment \(h.alignment) is not a power of two in [\(GSLR.minAlignment), \(GSLR.maxAlignment)]")
        }
        var infos: [TensorInfo] = []
        infos.reserveCapacity(tensors.count)
        var offset = 0
        for t in tensors {
            guard t.shape.count <= GSLR.maxRank, let len = GSLR.byteLength(shape: t.shape, dtype: t.dtype) else {
                throw FormatError.invalidInput(file: file, problem: "tensor '\(t.name)' has an unstorable shape \(t.shape)")
            }
            guard len == t.data.count else {
                throw FormatError.invalidInput(
                    file: file, problem: "tensor '\(t.name)' holds \(t.data.count) bytes, shape \(t.shape) × \(t.dtype.rawValue) needs \(len)")
            }
            if let last = infos.last {
                guard let next = GSLR.alignUp(last.offset + last.length, h.alignment) else {
                    throw FormatError.invalidInput(file: file, problem: "data section exceeds 64-bit offsets")
                }
                offset = next
            }
            infos.append(TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, offset: offset, length: len, crc32: 0))
        }
        h.tensors = infos
        do {
            try HeaderValidation.check(h, file: file)
        } catch let e as FormatError {
            throw e.asWriterError(file: file)
        }
        return h
    }

    static func encode(_ h: GSLRHeader, file: String) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try enc.encode(h))
        } catch let EncodingError.invalidValue(v, c) {
            let at = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            throw FormatError.invalidInput(
                file: file, problem: "header value \(v) at \(at.isEmpty ? "top level" : at) cannot be stored in JSON (NaN and infinity are not JSON numbers)")
        }
        guard bytes.count <= GSLR.maxHeaderLength else {
            throw FormatError.invalidInput(file: file, problem: "header would be \(bytes.count) bytes, above the \(GSLR.maxHeaderLength)-byte limit")
        }
        return bytes
    }

    /// The 32-byte preamble (spec/FORMAT.md §2).
    public static func preamble(headerLength: Int, headerCRC: UInt32, major: Int = GSLR.majorVersion, minor: Int = GSLR.minorVersion) -> [UInt8] {
        var p = GSLR.magic
        func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { p += $0 } }
        le(UInt16(major))
        le(UInt16(minor))
        le(GSLR.byteOrderMark)
        le(UInt64(headerLength))
        le(headerCRC)
        le(UInt32(0))
        return p
    }
}
