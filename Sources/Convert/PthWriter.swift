import GSLoRAFormat

/// Writes a `CheckpointValue` as a `torch.save` zip checkpoint that `torch.load(weights_only=True)` reads:
/// `NAME/data.pkl` (protocol 2), `.format_version`, `.storage_alignment`, `byteorder`, one stored record per
/// storage under `NAME/data/`, `version` and `.data/serialization_id`, in torch's order, each record's data
/// 64-byte aligned. The file is written atomically (temporary file, fsync, rename).
public enum PthWriter {
    /// - Parameter archiveName: the records' top folder; defaults to the file's stem like torch.save does.
    public static func write(_ path: String, _ value: CheckpointValue, archiveName: String? = nil) throws {
        var pickle = PickleWriter()
        pickle.write(value)
        let prefix = archiveName ?? defaultArchiveName(path)
        // torch writes 40 decimal digits; derive them from the pickle so equal checkpoints give equal files.
        let digest = SHA256.hash(pickle.out) + SHA256.hash(Array(prefix.utf8))
        let serialization = String(digest.prefix(40).map { Character(String($0 % 10)) })
        do {
            try AtomicFile.write(path) { sink in
                let zip = ZipWriter(sink: sink)
                func text(_ name: String, _ s: String) throws {
                    try Array(s.utf8).withUnsafeBytes { try zip.add(prefix + "/" + name, $0) }
                }
                try pickle.out.withUnsafeBytes { try zip.add(prefix + "/data.pkl", $0) }
                try text(".format_version", "1")
                try text(".storage_alignment", String(ZipWriter.alignment))
                try text("byteorder", "little")
                for (key, t) in pickle.storages {
                    try zip.add(prefix + "/data/" + key, t.data)
                }
                try text("version", "3\n")
                try text(".data/serialization_id", serialization)
                try zip.finish()
            }
        } catch let e as FormatError {
            throw ConvertError.writing(path, e)
        }
    }

    /// The file name without folders and extension, reduced to characters torch's own names use.
    static func defaultArchiveName(_ path: String) -> String {
        let base = path.split(separator: "/").last.map(String.init) ?? ""
        let stem = base.contains(".") ? String(base[..<base.lastIndex(of: ".")!]) : base
        let clean = String(
            stem.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") }.map(Character.init))
        return clean.isEmpty ? "archive" : clean
    }
}
