import GSLoRAFormat

/// Limits for loading an untrusted checkpoint.
public struct TorchLoadOptions: Sendable {
    /// Most bytes one deflated zip record may inflate to.
    public var maxInflatedBytes: Int
    /// Most bytes all strided (non-view) tensors may be copied into together; nil means max(2 × file size, 256 MiB).
    public var maxCopiedBytes: Int?
    /// For a converter that copies tensors to an atomically written file, and no one else: a stored record that some
    /// tensor views whole is not hashed here; its stated CRC is attached to the tensor's bytes as a claim
    /// (`MappedFile.noteClaimedChecksum`), which the writer's `FileSink` checks as it copies them, before the output
    /// is kept. Other records are checked here as usual. The caller must settle every claim still open before it
    /// keeps an output (`MappedFile.verifyClaimedChecksums`). Off by default: readers never see unchecked bytes.
    public var claimStoredRecordCRCs: Bool

    public init(maxInflatedBytes: Int = ZipArchive.defaultMaxInflatedBytes, maxCopiedBytes: Int? = nil, claimStoredRecordCRCs: Bool = false) {
        self.maxInflatedBytes = maxInflatedBytes
        self.maxCopiedBytes = maxCopiedBytes
        self.claimStoredRecordCRCs = claimStoredRecordCRCs
    }

    func copyBudget(fileSize: Int) -> Int {
        maxCopiedBytes ?? max(fileSize.multipliedReportingOverflow(by: 2).partialValue, 256 << 20)
    }
}

/// Loads PyTorch checkpoints (`torch.save` zip files and the legacy pre-1.6 layout) without executing anything:
/// a restricted unpickler with a closed table of constructors rebuilds containers and tensors, like
/// `torch.load(weights_only=True)`. Tensors come back contiguous; most are zero-copy views into the mapped file.
public enum TorchCheckpoint {
    public static func load(_ path: String, options: TorchLoadOptions = TorchLoadOptions()) throws -> CheckpointValue {
        let file: MappedFile
        do { file = try MappedFile(path) } catch { throw ConvertError.unreadable(file: path, reason: "\(error)") }
        switch try detectFormat(path: path, bytes: file.bytes) {
        case .torchZip:
            // Records are read about in file order; this also keeps the pages from looking recently used.
            file.adviseSequential()
            return try loadZip(path: path, bytes: file.bytes, options: options)
        case .torchLegacy:
            return try LegacyFormat.load(path: path, bytes: file.bytes, options: options)
        case .torchTar:
            throw ConvertError.unsupportedFormat(
                file: path, format: "the PyTorch tar format (torch < 0.4)",
                hint: "Like torch.load(weights_only=True), this loader refuses it; load it with an old torch and re-save with torch.save.")
        case .gslr:
            throw ConvertError.unsupportedFormat(file: path, format: "a .gslr file", hint: "It is already converted; open it with the .gslr reader.")
        case .safetensors:
            throw ConvertError.unsupportedFormat(file: path, format: "a safetensors file", hint: "Use the safetensors reader for it.")
        }
    }

    static func loadZip(path: String, bytes: Bytes, options: TorchLoadOptions) throws -> CheckpointValue {
        let archive = try ZipArchive(path: path, bytes: bytes, maxInflatedBytes: options.maxInflatedBytes)
        if archive.contains("constants.pkl") {
            throw ConvertError.unsupportedFormat(
                file: path, format: "a TorchScript archive (torch.jit.save)",
                hint: "Load it in Python with torch.jit.load and save model.state_dict() with torch.save.")
        }
        if archive.contains("byteorder") {
            let record = try archive.read("byteorder")
            let order = withExtendedLifetime(record) { String(decoding: record.buffer, as: UTF8.self) }
            guard order == "little" else {
                throw ConvertError.unsupportedFormat(
                    file: path, format: "a checkpoint with byte order '\(order.prefix(16))'",
                    hint: "Only little-endian checkpoints are supported; re-save it on a little-endian machine.")
            }
        }
        let record = archive.prefix + "/data.pkl"
        let pickle = try archive.read("data.pkl")
        let storages = StorageTable()
        // The machine reads the pickle's buffer, so the record (an inflated copy, if deflated) must outlive it.
        let vm = PickleVM(data: pickle.buffer, file: path, record: record, storages: storages)
        defer { vm.dismantle() }
        let (root, _) = try withExtendedLifetime(pickle) { try vm.run() }
        // Check every storage record's CRC up front on all cores; the tensor builder's reads then skip it. Or, when
        // asked, only claim them, and after building check those no tensor views whole.
        let storageRecords = storages.roots.map { "data/" + $0.key }
        if options.claimStoredRecordCRCs { try archive.claim(storageRecords) } else { try archive.verify(storageRecords) }
        let builder = TensorBuilder(file: path, storages: storages, copyBudget: options.copyBudget(fileSize: bytes.count)) { s, tensor in
            let name = "data/" + s.key
            guard archive.contains(name) else {
                throw ConvertError.badTensor(file: path, tensor: tensor, reason: "its storage record '\(archive.prefix)/\(name)' is missing")
            }
            let b = try archive.read(name)
            let (n, o) = s.numel.multipliedReportingOverflow(by: s.dtype.size)
            guard !o, b.count == n else {
                throw ConvertError.badTensor(
                    file: path, tensor: tensor,
                    reason: "storage record '\(archive.prefix)/\(name)' holds \(b.count) bytes, the pickle declares \(s.numel) × \(s.dtype.size)")
            }
            return b
        }
        let value = try PickleToCheckpoint.convert(root, file: path, record: record) { try builder.tensor($0, name: $1) }
        if options.claimStoredRecordCRCs {
            try archive.verify(storages.roots.filter { !builder.wholeViews.contains($0.key) }.map { "data/" + $0.key })
        }
        return value
    }
}
