import Foundation

@testable import GSLoRAFormat

/// The .gslr reader: preamble, header scan and decode, table checks, then every tensor CRC and the fingerprint.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGSLR(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = FuzzFile.write(data, size)
    if let f = try? GSLRFile.open(path) {
        _ = f.verify()
        _ = f.fingerprint
        for t in f.allTensors() where t.dtype.isFloatingPoint && t.count < 1 << 16 { _ = try? t.floats() }
    }
    return 0
}
