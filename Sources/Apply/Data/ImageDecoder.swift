import CGSLoRAPNG
import CGSLoRATurboJPEG
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An 8-bit image decoded from a file: rows top to bottom, pixels interleaved (HWC), 1 (gray) or 3 (RGB) channels.
public struct DecodedImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(channels == 1 || channels == 3, "an image has 1 or 3 channels, not \(channels)")
        precondition(
            width > 0 && height > 0 && pixels.count == width * height * channels,
            "\(pixels.count) bytes do not make a \(width)×\(height)×\(channels) image")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Decodes a JPEG or PNG held in memory; `path` only names the file in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> DecodedImage {
        let decoder = ImageDecoder()
        do {
            try decoder.decode(bytes)
        } catch let failure as DecodeFailure {
            throw DataError.badImage(path: path, reason: failure.reason)
        }
        return DecodedImage(
            width: decoder.width, height: decoder.height, channels: decoder.channels,
            pixels: Array(decoder.pixels[0..<(decoder.width * decoder.height * decoder.channels)]))
    }

    /// Reads and decodes a JPEG or PNG file.
    public static func load(path: String) throws -> DecodedImage {
        var buffer: [UInt8] = []
        let n = try readFile(path, into: &buffer, limit: ImageDecoder.maxFileBytes)
        return try buffer.withUnsafeBytes { try decode(UnsafeRawBufferPointer(rebasing: $0[0..<n]), path: path) }
    }
}

/// Why one image could not be decoded (turned into `DataError.badImage` or a skipped-file entry by the caller).
struct DecodeFailure: Error {
    let reason: String
}

/// Decodes JPEG (libjpeg-turbo) and PNG (libpng's simplified API) into a reusable 8-bit buffer.
/// One decoder per thread: the TurboJPEG handle and the buffer are not shareable.
///
/// What matches PIL (torchvision's ImageFolder loader opens files with PIL and calls `convert("RGB")`):
/// - JPEG: ISLOW DCT with fancy upsampling (TurboJPEG's defaults, as in PIL); gray JPEGs decode to 1 channel.
///   Any libjpeg warning (e.g. "premature end of data" in a truncated file) fails the image, as PIL raises on
///   truncated files. CMYK JPEGs are refused.
/// - PNG: alpha is dropped without compositing (as `convert("RGB")` does); palette images expand to RGB.
///   16-bit samples are scaled to 8 bits (PIL keeps the high byte: values may differ by 1). 8-bit files with a
///   gAMA/iCCP chunk are converted to sRGB by libpng, which PIL does not do.
/// libpng's low-level API reports errors by longjmp, which Swift cannot catch, hence the simplified API.
final class ImageDecoder {
    /// PIL's decompression-bomb limit (2 × `Image.MAX_IMAGE_PIXELS`).
    static let maxPixels = 178_956_970
    /// Larger files are refused before reading.
    static let maxFileBytes = 1 << 30

    private(set) var pixels: [UInt8] = []
    private(set) var width = 0
    private(set) var height = 0
    private(set) var channels = 0
    private var tj: tjhandle?

    deinit {
        if let tj { tjDestroy(tj) }
    }

    func decode(_ data: UnsafeRawBufferPointer) throws {
        if data.count == 0 { throw DecodeFailure(reason: "empty file (0 bytes)") }
        if ImageDecoder.isJPEG(data) {
            try decodeJPEG(data)
        } else if ImageDecoder.isPNG(data) {
            try decodePNG(data)
        } else {
            let head = data.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw DecodeFailure(reason: "not a JPEG or PNG file (wrong magic bytes: \(head))")
        }
    }

    static func isJPEG(_ d: UnsafeRawBufferPointer) -> Bool {
        d.count >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF
    }

    static func isPNG(_ d: UnsafeRawBufferPointer) -> Bool {
        let magic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        return d.count >= 8 && zip(d.prefix(8), magic).allSatisfy { $0 == $1 }
    }

    /// Checks the size and makes room for `w × h × c` bytes.
    private func prepare(width w: Int, height h: Int, channels c: Int) throws {
        guard w > 0, h > 0 else { throw DecodeFailure(reason: "image has no pixels (\(w)×\(h))") }
        let (px, overflow) = w.multipliedReportingOverflow(by: h)
        guard !overflow, px <= ImageDecoder.maxPixels else {
            throw DecodeFailure(reason: "image is \(w)×\(h) pixels, above the limit of \(ImageDecoder.maxPixels) (decompression bomb?)")
        }
        let need = px * c
        if pixels.count < need { pixels = [UInt8](repeating: 0, count: need) }
        width = w
        height = h
        channels = c
    }

    private func decodeJPEG(_ data: UnsafeRawBufferPointer) throws {
        if tj == nil { tj = tjInitDecompress() }
        guard let tj else { throw DecodeFailure(reason: "cannot start the JPEG decoder") }
        let src = data.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var w: Int32 = 0, h: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        guard tjDecompressHeader3(tj, src, UInt(data.count), &w, &h, &subsamp, &colorspace) == 0 else {
            throw DecodeFailure(reason: "corrupt JPEG header: \(String(cString: tjGetErrorStr2(tj)))")
        }
        guard w > 0, h > 0 else { throw DecodeFailure(reason: "corrupt or truncated JPEG: the header holds no image") }
        if colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue) {
            throw DecodeFailure(reason: "CMYK JPEGs are not supported; convert the file to RGB")
        }
        let gray = colorspace == Int32(TJCS_GRAY.rawValue)
        try prepare(width: Int(w), height: Int(h), channels: gray ? 1 : 3)
        let format = gray ? TJPF_GRAY : TJPF_RGB
        let rc = pixels.withUnsafeMutableBufferPointer { dst in
            tjDecompress2(tj, src, UInt(data.count), dst.baseAddress, w, 0, h, Int32(format.rawValue), TJFLAG_STOPONWARNING)
        }
        guard rc == 0 else {
            throw DecodeFailure(reason: "corrupt or truncated JPEG data: \(String(cString: tjGetErrorStr2(tj)))")
        }
    }

    private func decodePNG(_ data: UnsafeRawBufferPointer) throws {
        // libpng keeps a pointer to the control structure (its error handler writes the message into it),
        // so it lives at a fixed heap address rather than in a Swift local that may be moved between calls.
        let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
        image.initialize(to: png_image())
        defer {
            png_image_free(image)
            image.deallocate()
        }
        image.pointee.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_memory(image, data.baseAddress, data.count) != 0 else {
            throw DecodeFailure(reason: "corrupt PNG header: \(ImageDecoder.message(image.pointee))")
        }
        // Without this, libpng treats 16-bit samples as linear light and gamma-encodes them on the way to 8 bits.
        image.pointee.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let color = image.pointee.format & PNG_FORMAT_FLAG_COLOR != 0
        let alpha = image.pointee.format & PNG_FORMAT_FLAG_ALPHA != 0
        image.pointee.format = (color ? PNG_FORMAT_FLAG_COLOR : 0) | (alpha ? PNG_FORMAT_FLAG_ALPHA : 0)
        let inChannels = (color ? 3 : 1) + (alpha ? 1 : 0)
        let outChannels = color ? 3 : 1
        try prepare(width: Int(image.pointee.width), height: Int(image.pointee.height), channels: outChannels)
        // Room for the alpha channel while reading; it is squeezed out in place below.
        let need = width * height * inChannels
        if pixels.count < need { pixels = [UInt8](repeating: 0, count: need) }
        let ok = pixels.withUnsafeMutableBufferPointer { dst in
            png_image_finish_read(image, nil, dst.baseAddress, 0, nil)
        }
        guard ok != 0 else { throw DecodeFailure(reason: "corrupt or truncated PNG data: \(ImageDecoder.message(image.pointee))") }
        if alpha {
            let n = width * height
            pixels.withUnsafeMutableBufferPointer { p in
                for i in 0..<n {
                    for c in 0..<outChannels { p[i * outChannels + c] = p[i * inChannels + c] }
                }
            }
        }
    }

    private static func message(_ image: png_image) -> String {
        var m = image.message
        return withUnsafeBytes(of: &m) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// Reads a whole regular file into `buffer` (grown only when too small) and returns its length.
func readFile(_ path: String, into buffer: inout [UInt8], limit: Int) throws -> Int {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw DataError.io(path: path, operation: "open", errno: errno) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw DataError.io(path: path, operation: "stat", errno: errno) }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw DataError.io(path: path, operation: "read (not a regular file)", errno: EINVAL) }
    let size = Int(st.st_size)
    guard size <= limit else { throw DataError.badImage(path: path, reason: "file is \(size) bytes, above the limit of \(limit)") }
    if buffer.count < size { buffer = [UInt8](repeating: 0, count: size) }
    var done = 0
    try buffer.withUnsafeMutableBytes { dst in
        while done < size {
            let n = read(fd, dst.baseAddress! + done, size - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError.io(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break } // the file shrank while reading; decode what is there
            done += n
        }
    }
    return done
}
