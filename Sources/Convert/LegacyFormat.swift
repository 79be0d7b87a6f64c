import GSLoRAFormat

/// The pre-1.6 layout (`_use_new_zipfile_serialization=False`): five pickles in a row — the magic number, the
/// protocol version (1001), sys_info, the object, the storage keys — then, for each key in that order, an 8-byte
/// little-endian element count and the storage's raw bytes.
enum LegacyFormat {
    static func load(path: String, bytes: Bytes, options: TorchLoadOptions) throws -> CheckpointValue {
        let buf = bytes.buffer
        let storages = StorageTable()
        func bad(_ why: String) -> ConvertError { .badLegacy(file: path, reason: why) }
        // The machines stay alive until the end: the containers they built are read below, then emptied flat.
        var machines: [PickleVM] = []
        defer { machines.forEach { $0.dismantle() } }
        func pickle(_ at: Int, _ record: String) throws -> (PValue, Int) {
            let vm = PickleVM(data: buf, start: at, file: path, record: record, storages: storages)
            machines.append(vm)
            return try vm.run()
        }

        let (magic, p1) = try pickle(0, "magic number pickle")
        guard case let .bigInt(m) = magic, m == legacyMagic else { throw bad("the first pickle is not PyTorch's magic number") }
        let (version, p2) = try pickle(p1, "protocol version pickle")
        guard case .int(1001) = version else { throw bad("protocol version is \(PValue.printed(version)), expected 1001") }
        let (sysInfo, p3) = try pickle(p2, "sys_info pickle")
        guard case let .container(info) = sysInfo, info.isDict else { throw bad("sys_info is not a dict") }
        guard let le = info.index[.string("little_endian")] else { throw bad("sys_info has no 'little_endian' entry") }
        guard case .bool(true) = info.items[le] else {
            throw bad("the file was written on a big-endian machine; re-save it on a little-endian one (x86, ARM)")
        }
        let (root, p4) = try pickle(p3, "object pickle")
        let (keyList, p5) = try pickle(p4, "storage keys pickle")
        guard case let .container(keys) = keyList, keys.kind == .list else { throw bad("the storage key list is not a list") }

        var data: [String: Bytes] = [:]
        var pos = p5
        for k in keys.items {
            guard case let .string(key) = k else { throw bad("a storage key is a \(k.typeName), not a string") }
            guard let s = storages.lookup(key), s.viewOf == nil else { throw bad("storage key '\(key)' is not referenced by the object") }
            guard data[key] == nil else { throw bad("storage key '\(key)' is listed twice") }
            guard let count = buf.le(pos, UInt64.self) else { throw bad("storage '\(key)' header at byte \(pos) is truncated") }
            guard count == UInt64(s.numel) else {
                throw bad("storage '\(key)' at byte \(pos) holds \(count) elements, its pickle declares \(s.numel)")
            }
            let (n, o) = s.numel.multipliedReportingOverflow(by: s.dtype.size)
            guard !o, n <= buf.count - pos - 8 else {
                throw bad("storage '\(key)' at byte \(pos) needs \(s.numel) × \(s.dtype.size) bytes but the file ends at \(buf.count)")
            }
            data[key] = Bytes(owner: bytes.owner, buffer: UnsafeRawBufferPointer(rebasing: buf[(pos + 8)..<(pos + 8 + n)]))
            pos += 8 + n
        }
        let builder = TensorBuilder(file: path, storages: storages, copyBudget: options.copyBudget(fileSize: buf.count)) { s, tensor in
            guard let b = data[s.key] else {
                throw ConvertError.badLegacy(file: path, reason: "storage '\(s.key)' of tensor '\(tensor)' has no data after the key list")
            }
            return b
        }
        return try PickleToCheckpoint.convert(root, file: path, record: "object pickle") { try builder.tensor($0, name: $1) }
    }
}
