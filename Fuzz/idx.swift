import Foundation
import GSLoRAFormat

@testable import GSLoRAData

/// IDX (MNIST) image and label files, gzip or not.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = FuzzFile.write(data, size)
    _ = try? IDX.readImages(path: path)
    _ = try? IDX.readLabels(path: path)
    return 0
}
