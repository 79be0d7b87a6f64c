import Foundation
import GSLoRAFormat

@testable import GSLoRAConvert

/// The safetensors header (its strict JSON parser) and table checks.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Bytes(copying: UnsafeRawBufferPointer(start: data, count: size))
    _ = try? SafetensorsFile.parse(bytes, path: "fuzz.safetensors")
    return 0
}
