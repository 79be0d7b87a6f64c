import CGSLoRAZlib

/// Reads bytes held in memory that may be gzip-compressed (detected by the 1f 8b magic), so IDX files load the
/// same way whether or not they end in .gz. Gzip data is inflated on demand into the caller's buffer; nothing
/// is allocated from sizes found in the data. Concatenated gzip members are read as one stream, as gunzip does.
final class ByteStream {
    let path: String
    let isGzip: Bool
    private let input: UnsafeRawBufferPointer
    private var position = 0 // raw mode: next byte to hand out
    private var zs: UnsafeMutablePointer<z_stream>?
    private var consumed = 0 // gzip mode: input bytes handed to zlib so far
    private var ended = false

    /// The most a deflate stream expands (zlib's technical report: 1032:1), to bound claims about gzip content.
    static let maxInflateRatio = 1032

    init(_ input: UnsafeRawBufferPointer, path: String) throws {
        self.input = input
        self.path = path
        isGzip = input.count >= 2 && input[0] == 0x1f && input[1] == 0x8b
        guard isGzip else { return }
        let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        s.initialize(to: z_stream())
        // 15 + 32: a 32 KiB window, and accept a zlib or gzip header.
        guard inflateInit2_(s, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            s.deallocate()
            throw DataError.badGzip(path: path, problem: "cannot start zlib")
        }
        zs = s
    }

    deinit {
        if let zs {
            inflateEnd(zs)
            zs.deallocate()
        }
    }

    /// The most bytes this stream can possibly produce.
    var maxOutput: Int {
        guard isGzip else { return input.count }
        let (m, overflow) = input.count.multipliedReportingOverflow(by: ByteStream.maxInflateRatio)
        return overflow ? Int.max : m
    }

    /// Fills `buffer` and returns its size, or fewer bytes if the data ends first.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        guard let s = zs else {
            let n = min(buffer.count, input.count - position)
            if n > 0 { buffer.baseAddress!.copyMemory(from: input.baseAddress! + position, byteCount: n) }
            position += n
            return n
        }
        var done = 0
        while done < buffer.count && !ended {
            if s.pointee.avail_in == 0 && consumed < input.count {
                let chunk = min(input.count - consumed, Int(UInt32.max))
                s.pointee.next_in = UnsafeMutablePointer(mutating: (input.baseAddress! + consumed).assumingMemoryBound(to: UInt8.self))
                s.pointee.avail_in = UInt32(chunk)
                consumed += chunk
            }
            let want = min(buffer.count - done, Int(UInt32.max))
            s.pointee.next_out = (buffer.baseAddress! + done).assumingMemoryBound(to: UInt8.self)
            s.pointee.avail_out = UInt32(want)
            let rc = inflate(s, Z_NO_FLUSH)
            done += want - Int(s.pointee.avail_out)
            switch rc {
            case Z_OK:
                continue
            case Z_STREAM_END:
                let left = Int(s.pointee.avail_in) + (input.count - consumed)
                if left == 0 {
                    ended = true
                } else {
                    let next = input.count - left
                    guard left >= 2, input[next] == 0x1f, input[next + 1] == 0x8b else {
                        throw DataError.badGzip(path: path, problem: "\(left) bytes of non-gzip data after the end of the compressed stream")
                    }
                    inflateReset(s)
                }
            case Z_BUF_ERROR where s.pointee.avail_in == 0 && consumed == input.count:
                throw DataError.badGzip(path: path, problem: "compressed data ends early (truncated file)")
            case Z_BUF_ERROR:
                continue
            default:
                let why = s.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw DataError.badGzip(path: path, problem: why)
            }
        }
        return done
    }

    /// Whether the data is exhausted (reads ahead by one byte in gzip mode).
    func atEnd() throws -> Bool {
        guard isGzip else { return position == input.count }
        if ended { return true }
        var probe: UInt8 = 0
        let n = try withUnsafeMutableBytes(of: &probe) { try read(into: $0) }
        return n == 0
    }
}
