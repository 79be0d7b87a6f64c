import Foundation
import GSLoRAFormat

/// Everything that can go wrong while reading or writing a foreign checkpoint. Each case names the file and says
/// what is wrong; `description` adds what the user can do about it.
public enum ConvertError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// The file could not be opened, read or mapped.
    case unreadable(file: String, reason: String)
    /// Detection found something that is not a checkpoint at all (an LFS pointer, a web page, a GGUF model, ...).
    case notACheckpoint(file: String, what: String, hint: String)
    /// A checkpoint in a format this loader deliberately refuses or that needs another reader.
    case unsupportedFormat(file: String, format: String, hint: String)
    /// The zip container is malformed or hostile (bad directory, offsets outside the file, bad names, CRC mismatch).
    case badZip(file: String, reason: String)
    /// A zip record exceeds the inflate budget (possible deflate bomb).
    case zipBudget(file: String, record: String, reason: String)
    /// The pickle stream is malformed: unknown opcode, truncated argument, stack underflow, limits exceeded.
    case badPickle(file: String, record: String, offset: Int, reason: String)
    /// The pickle names a global outside the closed allow-list; nothing was called.
    case forbiddenGlobal(file: String, record: String, offset: Int, name: String)
    /// A tensor or storage record is inconsistent (shape, strides, offset beyond the storage, missing storage).
    case badTensor(file: String, tensor: String, reason: String)
    /// The pre-1.6 legacy layout is malformed (magic, protocol, sys_info, storage section).
    case badLegacy(file: String, reason: String)
    /// Writing an output file failed.
    case writeFailed(file: String, reason: String)

    // Model import and conversion (Safetensors*, ModelFamilies*, LoRAImport*, Converter).
    /// A .safetensors file breaks the format (header length, JSON, dtype, offsets); nothing was read from it.
    case badSafetensors(file: String, reason: String)
    /// A checkpoint with a recognised model layout has a tensor of the wrong shape or is missing one.
    case badModel(file: String, tensor: String, reason: String)
    /// A model setting cannot be read off the tensor shapes.
    case cannotInfer(file: String, what: String, hint: String)
    /// LoRA factors do not fit their weights, or the weights are neither base nor base + s·B·A.
    case badLoRA(file: String, reason: String)
    /// A config file beside a checkpoint that cannot be read or that contradicts the checkpoint's tensors.
    case badConfigFile(file: String, reason: String)
    /// The output path or extension cannot be used.
    case badOutput(file: String, reason: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .unreadable(f, r):
            return "\(f): cannot read the file: \(r). Check the path and permissions."
        case let .notACheckpoint(f, what, hint):
            return "\(f): not a checkpoint: \(what). \(hint)"
        case let .unsupportedFormat(f, format, hint):
            return "\(f): \(format) is not supported here. \(hint)"
        case let .badZip(f, r):
            return "\(f): malformed zip archive: \(r). The file is corrupt or truncated; re-download or re-save it."
        case let .zipBudget(f, rec, r):
            return "\(f): record '\(rec)' refused: \(r). The file may be a decompression bomb; re-save it with torch.save."
        case let .badPickle(f, rec, off, r):
            return "\(f): malformed pickle in '\(rec)' at byte \(off): \(r). The file is corrupt or not a PyTorch checkpoint."
        case let .forbiddenGlobal(f, rec, off, name):
            return "\(f): refused unsupported GLOBAL \(name) in '\(rec)' at byte \(off); nothing was executed. "
                + "Only tensors, storages and plain containers are loaded (like torch.load(weights_only=True)); "
                + "if you trust the file, re-save its state_dict() with plain tensors."
        case let .badTensor(f, t, r):
            return "\(f): tensor '\(t)': \(r). The file is corrupt or was written by an unsupported tool."
        case let .badLegacy(f, r):
            return "\(f): malformed legacy (pre-1.6) checkpoint: \(r). Re-save it with a recent torch.save."
        case let .writeFailed(f, r):
            return "\(f): cannot write: \(r). Check free space and permissions."
        case let .badSafetensors(f, r):
            return "\(f): invalid safetensors file: \(r). The file is corrupt or truncated; re-download or re-export it."
        case let .badModel(f, t, r):
            return
                "\(f): tensor '\(t)': \(r). The checkpoint does not match its model layout; convert it with \(Setting("raw")) to keep the tensors as they are."
        case let .cannotInfer(f, what, hint):
            return "\(f): cannot infer \(what) from the tensor shapes. \(hint)"
        case let .badLoRA(f, r):
            return "\(f): \(r)"
        case let .badConfigFile(f, r):
            return "\(f): \(r). Fix or move the config file."
        case let .badOutput(f, r):
            return "\(f): \(r)"
        }
    }
}

extension ConvertError {
    /// A stored zip record whose bytes do not match the CRC-32 its central directory states.
    static func recordCRC(file: String, record: String, stated: UInt32, computed: UInt32) -> ConvertError {
        .badZip(file: file, reason: "record '\(record)' fails its CRC-32 check (stored \(CRC32.hex(stated)), computed \(CRC32.hex(computed)))")
    }

    /// A writer's error: a record CRC claimed by the input (`TorchLoadOptions.claimStoredRecordCRCs`) that failed
    /// as the record was copied is reported as the reader reports it; anything else means `output` could not be
    /// written.
    static func writing(_ output: String, _ e: FormatError) -> ConvertError {
        switch e {
        case let .crcMismatch(input, record, stated, computed): return recordCRC(file: input, record: record, stated: stated, computed: computed)
        case .outputIsInput: return .badOutput(file: output, reason: "the output is also an input; choose another output path")
        default: return .writeFailed(file: output, reason: "\(e)")
        }
    }
}
