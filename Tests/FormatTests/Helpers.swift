import Foundation
import GSLoRAFormat
import XCTest

/// A fresh temporary folder per test, removed afterwards.
final class TempDir {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "gslr-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    /// Names of everything in the folder (to spot leftover temporary files).
    var contents: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

/// Deterministic bytes for a tensor of any dtype.
func sampleTensor(_ name: String, _ dtype: DType, _ shape: [Int], seed: UInt64 = 1) -> Tensor {
    let n = shape.reduce(1, *) * dtype.size
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var bytes = [UInt8](repeating: 0, count: n)
    for i in 0..<n {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        bytes[i] = UInt8(truncatingIfNeeded: x)
    }
    if dtype == .bool { for i in 0..<n { bytes[i] &= 1 } }
    return Tensor(name: name, dtype: dtype, shape: shape, data: Bytes(copying: bytes))
}

func bytesOf(_ t: Tensor) -> [UInt8] { Array(t.data.buffer) }

func readFile(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path)!) }

func writeFile(_ path: String, _ bytes: [UInt8]) {
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
}

/// A small face-ViT-like config.
let tinyConfig = ModelConfig(
    family: .faceViT, imageSize: 40, patchSize: 8, width: 64, depth: 2, heads: 4, headDim: 16,
    mlpWidth: 128, numClasses: 3, head: .cosface, attentionScale: 1 / 512.0.squareRoot(), layerNormEps: 1e-5,
    qkvBias: false)

/// Builds a .gslr by hand from header JSON and a data section, independent of the writer: the spec's layout, so
/// tests can make files the writer would refuse to make.
func handMadeFile(headerJSON: [UInt8], data: [UInt8], alignment: Int = 64, major: UInt16 = 1, minor: UInt16 = 0) -> [UInt8] {
    var out = GSLR.magic
    func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    le(major); le(minor); le(UInt32(0x0102_0304)); le(UInt64(headerJSON.count)); le(CRC32.of(headerJSON)); le(UInt32(0))
    out += headerJSON
    while out.count % alignment != 0 { out.append(0) }
    return out + data
}

/// The pieces of a valid file: header as a JSON object and the data section.
func splitFile(_ bytes: [UInt8]) -> (header: [String: Any], data: [UInt8]) {
    let hlen = Int(bytes[16..<24].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    let json = Array(bytes[32..<(32 + hlen)])
    let header = try! JSONSerialization.jsonObject(with: Data(json)) as! [String: Any]
    let align = header["alignment"] as! Int
    let start = (32 + hlen + align - 1) / align * align
    return (header, Array(bytes[start...]))
}

func jsonBytes(_ obj: Any) -> [UInt8] {
    [UInt8](try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]))
}
