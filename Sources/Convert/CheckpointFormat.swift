import GSLoRAFormat

/// What a file is, decided from its first bytes (and, for zips, its record names).
public enum CheckpointFormat: String, Equatable, Sendable, CaseIterable {
    /// `torch.save` since 1.6: a zip whose records sit under one folder, with `<folder>/data.pkl`.
    case torchZip = "PyTorch zip checkpoint"
    /// `torch.save(_use_new_zipfile_serialization=False)` and torch < 1.6: pickles followed by raw storages.
    case torchLegacy = "PyTorch legacy (pre-1.6) checkpoint"
    /// The pre-1.0 tar layout; refused, as `torch.load(weights_only=True)` refuses it.
    case torchTar = "PyTorch tar checkpoint"
    /// This project's own format.
    case gslr = ".gslr file"
    case safetensors = "safetensors file"
}

/// The pickle that opens every legacy file: PROTO 2, LONG1 with 10 bytes, the magic 0x1950a86a20f9469cfc6c.
let legacyMagic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

/// Identifies a checkpoint file from its first bytes. Anything that is not a checkpoint is refused with a message
/// that says what it looks like (a git-LFS pointer, a web page, a GGUF model, an empty file) and what to do.
public func detectFormat(path: String) throws -> CheckpointFormat {
    let file: MappedFile
    do { file = try MappedFile(path) } catch { throw ConvertError.unreadable(file: path, reason: "\(error)") }
    return try detectFormat(path: path, bytes: file.bytes)
}

func detectFormat(path: String, bytes: Bytes) throws -> CheckpointFormat {
    let b = bytes.buffer
    func starts(_ s: [UInt8], at: Int = 0) -> Bool { b.count >= at + s.count && zip(s.indices, s).allSatisfy { b[at + $0.0] == $0.1 } }
    func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }
    func notCheckpoint(_ what: String, _ hint: String) -> ConvertError { .notACheckpoint(file: path, what: what, hint: hint) }

    guard b.count > 0 else { throw notCheckpoint("the file is empty", "The download or copy probably failed; fetch it again.") }
    if starts([0x50, 0x4b, 0x03, 0x04]) || starts([0x50, 0x4b, 0x05, 0x06]) {
        let archive = try ZipArchive(path: path, bytes: bytes)
        guard archive.contains("data.pkl") else {
            throw notCheckpoint(
                "a zip archive without a '<folder>/data.pkl' record",
                "PyTorch checkpoints are zips with data.pkl inside one folder; this zip holds something else.")
        }
        return .torchZip
    }
    // Legacy: an optional PROTO opcode, then LONG1 of the 10-byte magic number.
    let protoSkip = starts([0x80]) ? 2 : 0
    if starts([0x8a, 0x0a], at: protoSkip), starts(legacyMagic, at: protoSkip + 2) { return .torchLegacy }
    if starts(ascii("ustar"), at: 257) { return .torchTar }
    // A file shorter than the magic whose bytes begin it is a truncated .gslr (spec/FORMAT.md §2), for the reader to say so.
    if starts(Array(GSLR.magic.prefix(min(6, b.count)))) { return .gslr }
    if b.count >= 9, let n = b.le(0, UInt64.self), n > 0, n <= UInt64(b.count - 8), b[8] == UInt8(ascii: "{") { return .safetensors }

    if starts(ascii("version https://git-lfs")) {
        throw notCheckpoint("a git-LFS pointer file, not the data it points to", "Run `git lfs pull` (or download the file itself) and try again.")
    }
    let head = String(decoding: UnsafeRawBufferPointer(rebasing: b[0..<min(b.count, 512)]), as: UTF8.self)
        .drop(while: { $0.isWhitespace }).lowercased()
    if head.hasPrefix("<!doctype") || head.hasPrefix("<html") {
        throw notCheckpoint("an HTML page", "The download saved a web page (a login or error page?); use the direct file URL.")
    }
    if starts(ascii("GGUF")) {
        throw notCheckpoint("a GGUF model (llama.cpp)", "GGUF files are not PyTorch checkpoints; convert from the original .pth or .safetensors.")
    }
    if starts([0x80]) {
        throw notCheckpoint("a plain pickle without PyTorch's magic number", "Save the weights with torch.save(model.state_dict(), path).")
    }
    throw notCheckpoint("unrecognized content", "Expected a PyTorch .pth/.pt (zip or legacy), a safetensors file or a .gslr file.")
}
