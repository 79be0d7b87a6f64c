import Foundation
import GSLoRAFormat

@testable import GSLoRAData

/// The PNG and JPEG decoders (libpng, libturbojpeg behind ImageDecoder's size caps).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? DecodedImage.decode(UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.img")
    return 0
}
