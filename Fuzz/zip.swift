import Foundation
import GSLoRAFormat

@testable import GSLoRAConvert

/// The zip reader alone: central directory, local headers, names, stored and deflated records with their CRCs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZip(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Bytes(copying: UnsafeRawBufferPointer(start: data, count: size))
    guard let archive = try? ZipArchive(path: "fuzz.zip", bytes: bytes, maxInflatedBytes: 64 << 20) else { return 0 }
    for name in ["data.pkl", "byteorder", "version", "data/0", "data/1"] where archive.contains(name) {
        _ = try? archive.read(name)
    }
    return 0
}
