import Foundation

/// Everything that can go wrong reading or writing a .gslr (or mapping/writing any file through this module).
/// Each case names the file and the problem; `description` adds what to do about it.
public enum FormatError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// A system call failed (open, mmap, write, fsync, rename...).
    case io(file: String, operation: String, errno: Int32)
    /// The first 8 bytes are not the .gslr magic.
    case notGSLR(file: String)
    /// The file ends before `what` does.
    case truncated(file: String, what: String, needed: Int, available: Int)
    /// Written by a newer, incompatible major version.
    case unsupportedVersion(file: String, major: Int, minor: Int)
    /// The byte-order mark or the reserved preamble word is wrong.
    case badPreamble(file: String, problem: String)
    /// The header bytes do not match the preamble's CRC.
    case headerChecksum(file: String, expected: UInt32, actual: UInt32)
    /// The header is not valid JSON or breaks the schema (spec/FORMAT.md §4).
    case badHeader(file: String, problem: String)
    /// A count or size is beyond the format's hard caps (spec/FORMAT.md §3).
    case limitExceeded(file: String, what: String, value: Int, limit: Int)
    /// A table entry is inconsistent on its own (name, dtype, shape, length).
    case badTensor(file: String, tensor: String, problem: String)
    /// A table entry is misplaced: misaligned, overlapping, leaving a gap or beyond the end of the file.
    case badLayout(file: String, tensor: String, problem: String)
    case duplicateName(file: String, tensor: String)
    case noSuchTensor(file: String, tensor: String)
    /// Tensor bytes do not match their stored CRC (only found by verify).
    case crcMismatch(file: String, tensor: String, expected: UInt32, actual: UInt32)
    /// The output path is one of the inputs; writing it would replace the file being read.
    case outputIsInput(file: String)
    /// A caller handed the writer something it cannot store.
    case invalidInput(file: String, problem: String)
    /// A tensor cannot be converted as asked (e.g. integers read as floats).
    case conversion(tensor: String, problem: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .io(f, op, e):
            let hint =
                ["write", "fsync", "rename into place"].contains(op) || op.hasPrefix("create")
                ? "Check that the folder is writable and the disk has room." : "Check that the path exists and is a readable file."
            return "\(f): \(op) failed: \(errnoText(e)). \(hint)"
        case let .notGSLR(f):
            return "\(f): not a .gslr file (wrong magic bytes). Convert .pth/.safetensors files with gslora-convert first."
        case let .truncated(f, what, need, have):
            return
                "\(f): file is truncated: the \(what) needs \(need) bytes but only \(have) are there. The file was cut short (interrupted copy or download); fetch it again."
        case let .unsupportedVersion(f, major, minor) where major < GSLR.majorVersion:
            return
                "\(f): the preamble says format version \(major).\(minor), but no .gslr version below \(GSLR.majorVersion).0 exists. The file is damaged or was not written by a .gslr writer."
        case let .unsupportedVersion(f, major, minor):
            return
                "\(f): written by format version \(major).\(minor), but this build reads major version \(GSLR.majorVersion) only. A newer reader is needed: upgrade gslora to read it."
        case let .badPreamble(f, p):
            return "\(f): corrupt preamble: \(p). The file is damaged or was not written by a .gslr writer."
        case let .headerChecksum(f, e, a):
            return "\(f): header CRC32 mismatch (stored \(CRC32.hex(e)), computed \(CRC32.hex(a))). The header was damaged; fetch the file again."
        case let .badHeader(f, p):
            return "\(f): invalid header: \(p). The file was written by a broken writer or edited by hand."
        case let .limitExceeded(f, what, v, l):
            return "\(f): \(what) is \(v), above the format's limit of \(l). The file is corrupt or hostile."
        case let .badTensor(f, t, p):
            return "\(f): tensor '\(t)': \(p). The tensor table is corrupt."
        case let .badLayout(f, t, p):
            return "\(f): tensor '\(t)': \(p). The tensor table is corrupt."
        case let .duplicateName(f, t):
            return "\(f): tensor name '\(t)' appears twice. Names must be unique; the file is corrupt."
        case let .noSuchTensor(f, t):
            return "\(f): no tensor named '\(t)'. List the names with gslora-inspect \(Setting("tensors")) \(f)."
        case let .crcMismatch(f, t, e, a):
            return "\(f): tensor '\(t)': data CRC32 mismatch (stored \(CRC32.hex(e)), computed \(CRC32.hex(a))). Its bytes are damaged; fetch the file again."
        case let .outputIsInput(f):
            return "\(f): the output is also an input; choose a different output path."
        case let .invalidInput(f, p):
            return "\(f): cannot write: \(p)."
        case let .conversion(t, p):
            return "tensor '\(t)': \(p)."
        }
    }
}

extension FormatError {
    /// A reader's complaint restated for a writer: the header being written is at fault, not a file on disk.
    func asWriterError(file: String) -> FormatError {
        switch self {
        case let .badHeader(_, p): return .invalidInput(file: file, problem: p)
        case let .badTensor(_, t, p), let .badLayout(_, t, p): return .invalidInput(file: file, problem: "tensor '\(t)': \(p)")
        case let .duplicateName(_, t): return .invalidInput(file: file, problem: "tensor name '\(t)' appears twice")
        case let .limitExceeded(_, what, v, l): return .invalidInput(file: file, problem: "\(what) is \(v), above the format's limit of \(l)")
        default: return self
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

func errnoText(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return "\(String(cString: s)) (errno \(e))"
}
