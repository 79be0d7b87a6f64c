import GSLoRAFormat

/// Writes a stored (uncompressed) zip the way PyTorch's writer does: each record's data starts on a 64-byte
/// boundary, padded with an "FB" extra field in the local header; ZIP64 fields appear only when sizes or offsets
/// need them. Sizes and CRCs go in the local header directly (no data descriptors).
final class ZipWriter {
    private let sink: FileSink
    private var entries: [(name: [UInt8], crc: UInt32, size: Int, offset: Int)] = []
    static let alignment = 64
    private static let max32 = 0xffff_ffff

    init(sink: FileSink) { self.sink = sink }

    private func le<T: FixedWidthInteger>(_ v: T, into b: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { b += $0 }
    }

    func add(_ name: String, _ data: UnsafeRawBufferPointer) throws {
        try add(name, count: data.count, crc: CRC32.of(data)) { try sink.write(data) }
    }

    /// A record from tensor bytes: a CRC a reader verified for exactly these bytes is reused, as is one the input only
    /// claims (the sink checks it before the file is kept), and a view of a mapped input is copied file to file
    /// (`FileSink.write(_: Bytes)`).
    func add(_ name: String, _ data: Bytes) throws {
        let crc = MappedFile.knownChecksum(of: data) ?? MappedFile.claimedChecksum(of: data) ?? CRC32.of(data.buffer)
        try add(name, count: data.count, crc: crc) { try sink.write(data) }
    }

    private func add(_ name: String, count: Int, crc: UInt32, writeData: () throws -> Void) throws {
        let nameBytes = Array(name.utf8)
        let offset = sink.offset
        let zip64 = count >= Self.max32
        var h: [UInt8] = []
        le(UInt32(0x0403_4b50), into: &h)
        le(UInt16(zip64 ? 45 : 20), into: &h) // version needed
        le(UInt16(0x0800), into: &h) // UTF-8 names
        le(UInt16(0), into: &h) // stored
        le(UInt16(0), into: &h) // time
        le(UInt16(0x21), into: &h) // date 1980-01-01
        le(crc, into: &h)
        le(UInt32(zip64 ? Self.max32 : count), into: &h)
        le(UInt32(zip64 ? Self.max32 : count), into: &h)
        le(UInt16(nameBytes.count), into: &h)
        let extraAt = h.count
        le(UInt16(0), into: &h) // extra length, patched below
        h += nameBytes
        if zip64 {
            le(UInt16(1), into: &h)
            le(UInt16(16), into: &h)
            le(UInt64(count), into: &h)
            le(UInt64(count), into: &h)
        }
        let pad = (Self.alignment - (offset + h.count + 4) % Self.alignment) % Self.alignment
        le(UInt16(0x4246), into: &h) // "FB"
        le(UInt16(pad), into: &h)
        h += [UInt8](repeating: UInt8(ascii: "Z"), count: pad)
        let extraLen = h.count - extraAt - 2 - nameBytes.count
        h[extraAt] = UInt8(extraLen & 0xff)
        h[extraAt + 1] = UInt8(extraLen >> 8)
        try sink.write(h)
        if count > 0 { try writeData() }
        entries.append((nameBytes, crc, count, offset))
    }

    func finish() throws {
        let cdStart = sink.offset
        for e in entries {
            var z64: [UInt8] = []
            if e.size >= Self.max32 {
                le(UInt64(e.size), into: &z64)
                le(UInt64(e.size), into: &z64)
            }
            if e.offset >= Self.max32 { le(UInt64(e.offset), into: &z64) }
            var h: [UInt8] = []
            le(UInt32(0x0201_4b50), into: &h)
            le(UInt16(z64.isEmpty ? 20 : 45), into: &h) // made by
            le(UInt16(z64.isEmpty ? 20 : 45), into: &h) // needed
            le(UInt16(0x0800), into: &h)
            le(UInt16(0), into: &h)
            le(UInt16(0), into: &h)
            le(UInt16(0x21), into: &h)
            le(e.crc, into: &h)
            le(UInt32(min(e.size, Self.max32)), into: &h)
            le(UInt32(min(e.size, Self.max32)), into: &h)
            le(UInt16(e.name.count), into: &h)
            le(UInt16(z64.isEmpty ? 0 : z64.count + 4), into: &h)
            le(UInt16(0), into: &h) // comment
            le(UInt16(0), into: &h) // disk
            le(UInt16(0), into: &h) // internal attributes
            le(UInt32(0), into: &h) // external attributes
            le(UInt32(min(e.offset, Self.max32)), into: &h)
            h += e.name
            if !z64.isEmpty {
                le(UInt16(1), into: &h)
                le(UInt16(z64.count), into: &h)
                h += z64
            }
            try sink.write(h)
        }
        let cdSize = sink.offset - cdStart
        var t: [UInt8] = []
        let needs64 = entries.count >= 0xffff || cdStart >= Self.max32 || cdSize >= Self.max32
        if needs64 {
            let rec64 = sink.offset
            le(UInt32(0x0606_4b50), into: &t)
            le(UInt64(44), into: &t)
            le(UInt16(45), into: &t)
            le(UInt16(45), into: &t)
            le(UInt32(0), into: &t)
            le(UInt32(0), into: &t)
            le(UInt64(entries.count), into: &t)
            le(UInt64(entries.count), into: &t)
            le(UInt64(cdSize), into: &t)
            le(UInt64(cdStart), into: &t)
            le(UInt32(0x0706_4b50), into: &t) // locator
            le(UInt32(0), into: &t)
            le(UInt64(rec64), into: &t)
            le(UInt32(1), into: &t)
        }
        le(UInt32(0x0605_4b50), into: &t)
        le(UInt16(0), into: &t)
        le(UInt16(0), into: &t)
        le(UInt16(min(entries.count, 0xffff)), into: &t)
        le(UInt16(min(entries.count, 0xffff)), into: &t)
        le(UInt32(min(cdSize, Self.max32)), into: &t)
        le(UInt32(min(cdStart, Self.max32)), into: &t)
        le(UInt16(0), into: &t)
        try sink.write(t)
    }
}
