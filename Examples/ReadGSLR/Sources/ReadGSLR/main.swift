// read-gslr: opens a .gslr file with the GSLoRAFormat library alone, verifies every tensor's CRC32, and prints the
// header and the tensors. Exit codes: 0 the file is good, 1 it is not (the message says why), 2 wrong usage.
import Foundation
import GSLoRAFormat

/// Without an argument: a small backbone from gslora's conformance corpus, found from where this source file sits.
let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../../Tests/Fixtures/gslr-invalid/valid-backbone-cosface.gslr").standardizedFileURL.path

let usage = """
    usage: read-gslr [FILE.gslr]
      Checks FILE (default: \(fixture)) and prints its header and tensors.
    examples:
      read-gslr model.gslr
      read-gslr task1.lora.gslr
    """

func fail(_ message: String, exitCode: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("read-gslr: \(message)\n".utf8))
    exit(exitCode)
}

/// The first `n` values of a tensor as text: floating dtypes through `Tensor.floats()`, integers read from the bytes
/// (little-endian, as the format stores them).
func firstValues(_ t: Tensor, _ n: Int = 4) throws -> String {
    let k = min(n, t.count)
    func integers<T: FixedWidthInteger>(_: T.Type) -> [String] {
        (0..<k).map { String(T(littleEndian: t.data.buffer.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
    }
    let values: [String]
    switch t.dtype {
    case .f32, .f16, .bf16, .f64: values = try t.floats().prefix(k).map { "\($0)" }
    case .i64: values = integers(Int64.self)
    case .i32: values = integers(Int32.self)
    case .i16: values = integers(Int16.self)
    case .i8: values = integers(Int8.self)
    case .u8, .bool: values = integers(UInt8.self)
    }
    return "[" + values.joined(separator: ", ") + (t.count > k ? ", …]" : "]")
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("-h") || arguments.contains("--help") {
    print(usage)
    exit(0)
}
guard arguments.count <= 1 else { fail("expected one file, got \(arguments.count)\n\(usage)", exitCode: 2) }
let path = arguments.first ?? fixture

do {
    // Open: maps the file and checks the preamble, the header (its CRC32 and schema) and every table entry.
    // Tensor data is not read yet.
    let file = try GSLRFile.open(path)

    // Verify: recompute each tensor's CRC32 and compare it with the table.
    let mismatches = file.verify()
    guard mismatches.isEmpty else {
        for m in mismatches {
            let error = FormatError.crcMismatch(file: path, tensor: m.name, expected: m.expected, actual: m.actual)
            FileHandle.standardError.write(Data("read-gslr: \(error)\n".utf8))
        }
        exit(1)
    }

    // The header: what the file holds, and the fingerprint that names these weights.
    let header = file.header
    print("\(path): gslr \(file.majorVersion).\(file.minorVersion), \(header.kind.rawValue), \(file.fileSize) bytes")
    print("verified: the CRC32 of each of the \(file.tensors.count) tensors matches")
    print("fingerprint: \(file.fingerprint)")
    if let m = header.model {
        print(
            "model: \(m.family.rawValue), image \(m.imageSize), patch \(m.patchSize), width \(m.width), depth \(m.depth), heads \(m.heads),"
                + " MLP \(m.mlpWidth), classes \(m.numClasses), head \(m.head.kind.rawValue)")
    }
    if let a = header.adapter {
        let pruned = a.groups.filter { $0.state == .pruned }.count
        print(
            "adapter: task \(a.task.index), rank \(a.rank), alpha \(a.alpha), scaling \(a.scaling) (\(a.scalingRule)),"
                + " targets \(a.targets.joined(separator: ", ")), groups \(a.groups.count) (\(pruned) pruned)")
        // An adapter applies only to the backbone whose fingerprint this is.
        print("base: \(a.baseFingerprint)")
    }
    for m in header.merged ?? [] {
        print("merged: task \(m.task), adapter \(m.adapterFingerprint), scale \(m.scale)")
    }

    // The tensors: zero-copy views into the mapping, in table order.
    print("tensors:")
    for t in file.allTensors() {
        print("  \(t.name)  \(t.dtype.rawValue) \(t.shape)  \(try firstValues(t))")
    }
} catch {
    // Every error from the library names the file and what is wrong.
    fail("\(error)")
}
