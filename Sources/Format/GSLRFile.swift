/// A validated, memory-mapped .gslr. `open` checks the preamble, the header and every table entry before returning;
/// tensors are then zero-copy views into the mapping. Data CRCs are checked only by `verify()`.
public final class GSLRFile: @unchecked Sendable {
    public let path: String
    public let header: GSLRHeader
    public let majorVersion: Int
    public let minorVersion: Int
    /// Byte position of the data section in the file.
    public let dataStart: Int
    public let mapping: MappedFile
    private let index: [[UInt8]: Int]

    public var tensors: [TensorInfo] { header.tensors }
    public var kind: FileKind { header.kind }
    public var fileSize: Int { mapping.count }

    public static func open(_ path: String) throws -> GSLRFile { try GSLRFile(path: path) }

    private init(path: String) throws {
        self.path = path
        mapping = try MappedFile(path)
        let buf = mapping.bytes.buffer
        let size = buf.count
        let magicLen = min(size, GSLR.magic.count)
        guard magicLen > 0, zip(buf.prefix(magicLen), GSLR.magic).allSatisfy({ $0 == $1 }) else {
            throw FormatError.notGSLR(file: path)
        }
        guard size >= GSLR.preambleSize else {
            throw FormatError.truncated(file: path, what: "32-byte preamble", needed: GSLR.preambleSize, available: size)
        }
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: buf.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        majorVersion = u16(8)
        minorVersion = u16(10)
        guard majorVersion == GSLR.majorVersion else {
            throw FormatError.unsupportedVersion(file: path, major: majorVersion, minor: minorVersion)
        }
        let bom = u32(12)
        guard bom == GSLR.byteOrderMark else {
            throw FormatError.badPreamble(file: path, problem: "byte-order mark is 0x\(String(bom, radix: 16)), expected 0x01020304 stored little-endian")
        }
        guard u32(28) == 0 else { throw FormatError.badPreamble(file: path, problem: "reserved word at byte 28 is not zero") }
        let rawLength = UInt64(littleEndian: buf.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        guard rawLength <= UInt64(GSLR.maxHeaderLength) else {
            throw FormatError.limitExceeded(
                file: path, what: "header length", value: rawLength > UInt64(Int.max) ? Int.max : Int(rawLength), limit: GSLR.maxHeaderLength)
        }
        let headerLength = Int(rawLength)
        guard GSLR.preambleSize + headerLength <= size else {
            throw FormatError.truncated(file: path, what: "header of \(headerLength) bytes", needed: GSLR.preambleSize + headerLength, available: size)
        }
        let json = UnsafeRawBufferPointer(rebasing: buf[GSLR.preambleSize..<(GSLR.preambleSize + headerLength)])
        let stored = u32(24), actual = CRC32.of(json)
        guard stored == actual else { throw FormatError.headerChecksum(file: path, expected: stored, actual: actual) }
        let h = try HeaderValidation.decode(json, file: path)
        guard GSLR.isValidAlignment(h.alignment) else {
            throw FormatError.badHeader(file: path, problem: "alignment \(h.alignment) is not a power of two in [\(GSLR.minAlignment), \(GSLR.maxAlignment)]")
        }
        let start = GSLR.alignUp(GSLR.preambleSize + headerLength, h.alignment)!
        guard start <= size else {
            throw FormatError.truncated(file: path, what: "padding before the data section", needed: start, available: size)
        }
        let (dataLength, index) = try HeaderValidation.check(h, file: path, fileDataBytes: size - start)
        guard start + dataLength == size else {
            throw FormatError.badLayout(
                file: path, tensor: h.tensors.last?.name ?? "(none)",
                problem: "the file has \(size - start - dataLength) bytes after the end of the last tensor; a .gslr ends exactly there")
        }
        header = h
        dataStart = start
        self.index = index
    }

    /// Table entry by name.
    public func info(_ name: String) throws -> TensorInfo {
        guard let i = index[Array(name.utf8)] else { throw FormatError.noSuchTensor(file: path, tensor: name) }
        return header.tensors[i]
    }

    public func contains(_ name: String) -> Bool { index[Array(name.utf8)] != nil }

    /// The tensor's bytes in place; the view keeps the mapping alive.
    public func tensor(_ name: String) throws -> Tensor { view(try info(name)) }

    /// Every tensor, in table order.
    public func allTensors() -> [Tensor] { header.tensors.map(view) }

    private func view(_ t: TensorInfo) -> Tensor {
        let buf = mapping.bytes.buffer
        let slice =
            t.length == 0
            ? UnsafeRawBufferPointer(start: buf.baseAddress.map { $0 + dataStart + t.offset }, count: 0)
            : UnsafeRawBufferPointer(rebasing: buf[(dataStart + t.offset)..<(dataStart + t.offset + t.length)])
        return Tensor(name: t.name, dtype: t.dtype, shape: t.shape, data: Bytes(owner: mapping.bytes.owner, buffer: slice))
    }

    /// Recomputes every tensor's CRC32 on all cores. `progress` gets (bytes done, bytes total), possibly from
    /// worker threads, one call at a time.
    public func verify(progress: ((Int, Int) -> Void)? = nil) -> [CRCMismatch] {
        mapping.adviseSequential()
        let total = header.tensors.reduce(0) { $0 + $1.length }
        let crcs = CRC32.ofEach(header.tensors.map { view($0).data.buffer }, progress: progress.map { p in { p($0, total) } })
        return zip(header.tensors, crcs).compactMap { t, crc in
            crc == t.crc32 ? nil : CRCMismatch(name: t.name, expected: t.crc32, actual: crc)
        }
    }

    /// `Fingerprint.of` the table and the header's binding: names this exact set of weights, and what decides the
    /// numbers they produce, without reading them.
    public var fingerprint: String { Fingerprint.of(header.tensors, binding: Fingerprint.Binding(header)) }
}

/// A tensor whose bytes do not match the CRC32 in the table, as found by `GSLRFile.verify()`.
public struct CRCMismatch: Equatable, Sendable {
    public let name: String
    public let expected: UInt32
    public let actual: UInt32

    public init(name: String, expected: UInt32, actual: UInt32) {
        self.name = name
        self.expected = expected
        self.actual = actual
    }
}
