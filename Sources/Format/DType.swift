/// Element types a tensor may hold. Raw values are the names written in .gslr headers (spec/FORMAT.md).
public enum DType: String, Codable, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .f64 }

    /// PyTorch's dtype name (`torch.float32` → "float32"), as pickles and the fixture sidecars spell it.
    public var torchName: String {
        switch self {
        case .f32: return "float32"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        case .f64: return "float64"
        case .i64: return "int64"
        case .i32: return "int32"
        case .i16: return "int16"
        case .i8: return "int8"
        case .u8: return "uint8"
        case .bool: return "bool"
        }
    }

    public init?(torchName: String) {
        guard let t = DType.allCases.first(where: { $0.torchName == torchName }) else { return nil }
        self = t
    }
}
