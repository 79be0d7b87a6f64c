import Foundation
import GSLoRAFormat

@testable import GSLoRAConvert

/// The restricted pickle machine on raw pickle bytes (what data.pkl holds).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPickle(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let vm = PickleVM(data: UnsafeRawBufferPointer(start: data, count: size), file: "fuzz.pkl", record: "data.pkl", storages: StorageTable())
    defer { vm.dismantle() }
    _ = try? vm.run()
    return 0
}
