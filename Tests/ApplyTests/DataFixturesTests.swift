import CGSLoRATurboJPEG
import CGSLoRAZlib
import Foundation
import XCTest

/// A temporary folder for data tests, removed when released.
final class DataTemp {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "gslora-data-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ relative: String) -> String { path + "/" + relative }

    /// Writes `bytes` at `relative`, creating folders on the way.
    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8]) -> String {
        let p = file(relative)
        try! FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    func mkdir(_ relative: String) {
        try! FileManager.default.createDirectory(atPath: file(relative), withIntermediateDirectories: true)
    }
}

/// Encoders for test inputs with known pixels: PNG built chunk by chunk (so bit depth, colour type, palette and
/// transparency are exactly what the test asks for), JPEG through libturbojpeg, gzip through zlib.
enum TestImages {
    /// PNG colour types.
    static let gray: UInt8 = 0, rgb: UInt8 = 2, palette: UInt8 = 3, grayAlpha: UInt8 = 4, rgba: UInt8 = 6

    static func png(
        width: Int, height: Int, colorType: UInt8, bitDepth: UInt8 = 8, samples: [Int],
        palette plte: [UInt8]? = nil, transparency: [UInt8]? = nil
    ) -> [UInt8] {
        let perPixel = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]!
        precondition(samples.count == width * height * perPixel, "sample count")
        var raw: [UInt8] = []
        for y in 0..<height {
            raw.append(0) // filter: none
            for v in samples[(y * width * perPixel)..<((y + 1) * width * perPixel)] {
                if bitDepth == 16 { raw += [UInt8(v >> 8), UInt8(v & 0xFF)] } else { raw.append(UInt8(v)) }
            }
        }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
        if let plte { out += chunk("PLTE", plte) }
        if let transparency { out += chunk("tRNS", transparency) }
        out += chunk("IDAT", zlibCompress(raw))
        out += chunk("IEND", [])
        return out
    }

    static func jpeg(width: Int, height: Int, channels: Int, pixels: [UInt8], quality: Int32 = 100) -> [UInt8] {
        let tj = tjInitCompress()!
        defer { tjDestroy(tj) }
        var buf: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let format = channels == 1 ? TJPF_GRAY : TJPF_RGB
        let samp = channels == 1 ? TJSAMP_GRAY : TJSAMP_444
        let rc = pixels.withUnsafeBufferPointer {
            tjCompress2(
                tj, $0.baseAddress, Int32(width), 0, Int32(height), Int32(format.rawValue), &buf, &size,
                Int32(samp.rawValue), quality, 0)
        }
        precondition(rc == 0, String(cString: tjGetErrorStr2(tj)))
        defer { tjFree(buf) }
        return Array(UnsafeBufferPointer(start: buf, count: Int(size)))
    }

    /// A gzip member (zlib deflate with a gzip header: windowBits 15 + 16).
    static func gzip(_ data: [UInt8]) -> [UInt8] {
        let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        s.initialize(to: z_stream())
        defer { deflateEnd(s); s.deallocate() }
        precondition(deflateInit2_(s, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
        var out = [UInt8](repeating: 0, count: data.count + 1024)
        var input = data
        let produced: Int = input.withUnsafeMutableBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                s.pointee.next_in = inp.baseAddress
                s.pointee.avail_in = UInt32(inp.count)
                s.pointee.next_out = o.baseAddress
                s.pointee.avail_out = UInt32(o.count)
                precondition(deflate(s, Z_FINISH) == Z_STREAM_END)
                return o.count - Int(s.pointee.avail_out)
            }
        }
        return Array(out[0..<produced])
    }

    static func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }

    private static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBufferPointer { CGSLoRAZlib.crc32(0, $0.baseAddress, UInt32($0.count)) }
        return be32(data.count) + body + be32(Int(crc))
    }

    private static func zlibCompress(_ data: [UInt8]) -> [UInt8] {
        var size = compressBound(UInt(data.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        precondition(compress2(&out, &size, data, UInt(data.count), 9) == Z_OK)
        return Array(out[0..<Int(size)])
    }
}

final class DataFixturesTests: XCTestCase {
    /// The encoders themselves: a PNG must carry the signature and a valid IHDR CRC, a JPEG the SOI marker,
    /// gzip its magic, or every other data test would be testing nothing.
    func testEncodersProduceWellFormedFiles() {
        let p = TestImages.png(width: 2, height: 1, colorType: TestImages.gray, samples: [0, 255])
        XCTAssertEqual(Array(p[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(Array(p[12..<16]), Array("IHDR".utf8))
        let j = TestImages.jpeg(width: 8, height: 8, channels: 3, pixels: [UInt8](repeating: 128, count: 192))
        XCTAssertEqual(Array(j[0..<3]), [0xFF, 0xD8, 0xFF])
        XCTAssertEqual(Array(TestImages.gzip([1, 2, 3])[0..<2]), [0x1f, 0x8b])
    }
}
