import Foundation
import GSLoRAFormat

@testable import GSLoRAData

/// .npy headers and data.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = FuzzFile.write(data, size)
    _ = try? NPY.read(path: path)
    return 0
}
