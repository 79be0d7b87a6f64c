import Foundation
import GSLoRAFormat

@testable import GSLoRAConvert

/// PyTorch checkpoints: format detection, the zip reader (and inflate), the pickle machine, legacy files, the
/// tensor builder.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = FuzzFile.write(data, size)
    _ = try? TorchCheckpoint.load(path)
    return 0
}
