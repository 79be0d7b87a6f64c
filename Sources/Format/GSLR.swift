/// Fixed numbers of the .gslr layout (spec/FORMAT.md §2-3).
public enum GSLR {
    /// "GSLORA", NUL, SUB (0x1A stops `type`/`cat` on some systems from dumping binary).
    public static let magic: [UInt8] = [0x47, 0x53, 0x4C, 0x4F, 0x52, 0x41, 0x00, 0x1A]
    public static let majorVersion = 1
    public static let minorVersion = 2
    /// Written little-endian: bytes 04 03 02 01.
    public static let byteOrderMark: UInt32 = 0x0102_0304
    public static let preambleSize = 32
    public static let defaultAlignment = 64

    // Hard caps: a reader refuses anything beyond them before allocating for it.
    public static let maxHeaderLength = 100 << 20
    public static let maxTensors = 1_000_000
    public static let maxRank = 8
    public static let maxNameBytes = 1024
    public static let minAlignment = 64
    public static let maxAlignment = 1 << 20
    /// Nesting of JSON arrays/objects in the header; the schema needs 6 (metadata may use the rest).
    public static let maxHeaderDepth = 64

    /// `x` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
    public static func alignUp(_ x: Int, _ alignment: Int) -> Int? {
        let (s, o) = x.addingReportingOverflow(alignment - 1)
        return o ? nil : s & ~(alignment - 1)
    }

    /// Elements × dtype size for a shape, or nil if a dim is negative or the product overflows.
    public static func byteLength(shape: [Int], dtype: DType) -> Int? {
        var n = dtype.size
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    static func isValidAlignment(_ a: Int) -> Bool {
        a >= minAlignment && a <= maxAlignment && a & (a - 1) == 0
    }
}
