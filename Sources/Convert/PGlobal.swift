import GSLoRAFormat

/// The closed table of globals the unpickler resolves, mirroring what `torch.load(weights_only=True)` allows for
/// plain checkpoints. Anything else is refused by name before any REDUCE could reach it; nothing is ever imported
/// or executed, each entry only builds data.
enum PGlobal: Equatable {
    case orderedDict
    case rebuildTensorV2, rebuildTensor, rebuildParameter, rebuildParameterWithState
    case storageType(DType, String)
    case size, device
    case codecsEncode
    case set, frozenset, bytearray

    var name: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case let .storageType(_, n): return n
        case .size: return "torch.Size"
        case .device: return "torch.device"
        case .codecsEncode: return "_codecs.encode"
        case .set: return "builtins.set"
        case .frozenset: return "builtins.frozenset"
        case .bytearray: return "builtins.bytearray"
        }
    }

    /// Legacy typed-storage classes and the dtype each holds.
    static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool
    ]

    /// torch dtype globals (`torch.float32`, aliases like `torch.float`) by attribute name.
    static let dtypeNames: [String: DType] = [
        "float32": .f32, "float": .f32, "float16": .f16, "half": .f16, "bfloat16": .bf16,
        "float64": .f64, "double": .f64, "int64": .i64, "long": .i64, "int32": .i32, "int": .i32,
        "int16": .i16, "short": .i16, "int8": .i8, "uint8": .u8, "bool": .bool
    ]

    /// What GLOBAL `module name` pushes, or nil when the global is not allowed.
    static func resolve(module: String, name: String) -> PValue? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .global(.orderedDict)
        case ("torch._utils", "_rebuild_tensor_v2"): return .global(.rebuildTensorV2)
        case ("torch._utils", "_rebuild_tensor"): return .global(.rebuildTensor)
        case ("torch._utils", "_rebuild_parameter"): return .global(.rebuildParameter)
        case ("torch._utils", "_rebuild_parameter_with_state"): return .global(.rebuildParameterWithState)
        case ("torch", "Size"): return .global(.size)
        case ("torch", "device"): return .global(.device)
        case ("torch.storage", "UntypedStorage"): return .global(.storageType(.u8, "torch.storage.UntypedStorage"))
        case ("_codecs", "encode"): return .global(.codecsEncode)
        case ("builtins", "set"), ("__builtin__", "set"): return .global(.set)
        case ("builtins", "frozenset"), ("__builtin__", "frozenset"): return .global(.frozenset)
        case ("builtins", "bytearray"), ("__builtin__", "bytearray"): return .global(.bytearray)
        case ("torch", _):
            if let dt = storageTypes[name] { return .global(.storageType(dt, "torch." + name)) }
            if let dt = dtypeNames[name] { return .symbol("torch." + dt.torchName) }
            return nil
        default:
            return nil
        }
    }
}
