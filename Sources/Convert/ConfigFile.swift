import Foundation
import GSLoRAFormat

/// Model settings read from the config files that ship beside checkpoints (spec/MODELS.md §Config files): a timm or
/// Hugging Face `config.json`, and the official GS-LoRA results folder's `config.txt` (`str(cfg)` of its scripts).
public struct ConfigFile: Sendable {
    /// One value and the key it was read under, so a contradiction names both.
    public struct Setting: Sendable, Equatable {
        public var value: Int
        public var key: String

        public init(value: Int, key: String) {
            self.value = value
            self.key = key
        }
    }

    public var path: String
    /// By gslora field: "heads", "channels", "width", "depth", "mlp_width", "patch_size", "image_size", "num_classes".
    public var settings: [String: Setting] = [:]
    /// The classifier the file names (config.txt's HEAD_NAME).
    public var head: ModelConfig.Head?
    /// The table entry of the architecture the file names, when it has one.
    public var architecture: Architecture?
    /// timm's pooling as the file states it: `model_args.global_pool`, else the root `global_pool` (timm writes the
    /// model's current pooling there), with the key it was read under.
    public var globalPool: (value: String, key: String)?
    /// timm's `model_args.fc_norm`: nil when not stated (timm then norms after pooling exactly for 'avg', 'avgmax', 'max').
    public var fcNorm: Bool?

    static let names = ["config.json", "config.txt"]
    /// Larger files are not config files; refusing them keeps a hostile folder from costing memory.
    static let maxBytes = 1 << 20

    /// The config files in the checkpoint's folder, read; none when there are none.
    public static func beside(_ checkpoint: String) throws -> [ConfigFile] {
        let dir = (checkpoint as NSString).deletingLastPathComponent
        var out: [ConfigFile] = []
        for name in names {
            let path = dir.isEmpty ? name : (dir as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
            out.append(try read(path))
        }
        return out
    }

    public static func read(_ path: String) throws -> ConfigFile {
        func bad(_ r: String) -> ConvertError { .badConfigFile(file: path, reason: r) }
        guard let h = FileHandle(forReadingAtPath: path) else { throw bad("cannot open it") }
        defer { try? h.close() }
        let data = try h.read(upToCount: maxBytes + 1) ?? Data()
        guard data.count <= maxBytes else { throw bad("larger than \(maxBytes) bytes; not a model config file") }
        if path.hasSuffix(".json") { return try parseJSON(data, path: path) }
        guard let text = String(data: data, encoding: .utf8) else { throw bad("not UTF-8 text") }
        return try parseOfficial(text, path: path)
    }

    mutating func set(_ field: String, _ value: Int, key: String) throws {
        guard value > 0 else { throw ConvertError.badConfigFile(file: path, reason: "'\(key)' is \(value); expected a positive integer") }
        settings[field] = Setting(value: value, key: key)
    }

    mutating func take(_ a: Architecture, key: String) throws {
        architecture = a
        let k = "\(key) \(a.name)"
        try set("heads", a.heads, key: k)
        try set("width", a.width, key: k)
        try set("mlp_width", a.mlpWidth, key: k)
        try set("patch_size", a.patchSize, key: k)
        try set("channels", a.channels, key: k)
        if let d = a.depth { try set("depth", d, key: k) }
    }

    /// timm's hub config (`architecture`, `num_classes`, `num_features`, optional `model_args`) or a Hugging Face
    /// `ViTConfig` (`hidden_size`, `num_attention_heads`, ...). Values the file does not hold stay unset.
    static func parseJSON(_ data: Data, path: String) throws -> ConfigFile {
        func bad(_ r: String) -> ConvertError { .badConfigFile(file: path, reason: r) }
        let parsed: StrictJSON
        do { parsed = try data.withUnsafeBytes { try StrictJSON.parse($0) } } catch { throw bad("not valid JSON: \(error)") }
        guard case let .object(rootPairs) = parsed else { throw bad("not a JSON object") }
        var c = ConfigFile(path: path)
        func int(_ pairs: [(key: String, value: StrictJSON)], _ key: String, _ label: String) throws -> Int? {
            guard let v = pairs.last(where: { $0.key == key })?.value else { return nil }
            switch v {
            case .null: return nil
            case let .number(n):
                guard let x = Int(n) else { throw bad("'\(label)' is \(n), not an integer") }
                return x
            // timm accepts a size as an int or a square [h, w] pair.
            case let .array(a) where a.count == 2:
                guard case let .number(h) = a[0], case let .number(w) = a[1], let x = Int(h), let y = Int(w) else {
                    throw bad("'\(label)' is not a pair of integers")
                }
                guard x == y else { throw bad("'\(label)' is \(x)×\(y); gslora runs square images and patches") }
                return x
            default: throw bad("'\(label)' is not an integer")
            }
        }
        if let v = rootPairs.last(where: { $0.key == "architecture" })?.value, case let .string(name) = v,
            let a = Architectures.named(name)
        {
            try c.take(a, key: "architecture")
        }
        let fields: [(String, String)] = [
            ("num_classes", "num_classes"), ("num_features", "width"),
            ("hidden_size", "width"), ("num_attention_heads", "heads"), ("num_hidden_layers", "depth"),
            ("intermediate_size", "mlp_width"), ("patch_size", "patch_size"), ("image_size", "image_size"),
            ("num_channels", "channels")
        ]
        for (key, field) in fields { if let v = try int(rootPairs, key, key) { try c.set(field, v, key: key) } }
        func string(_ pairs: [(key: String, value: StrictJSON)], _ key: String, _ label: String) throws -> (value: String, key: String)? {
            guard let v = pairs.last(where: { $0.key == key })?.value else { return nil }
            switch v {
            case .null: return nil
            case let .string(s): return (s, label)
            default: throw bad("'\(label)' is not a string")
            }
        }
        c.globalPool = try string(rootPairs, "global_pool", "global_pool")
        if let v = rootPairs.last(where: { $0.key == "model_args" })?.value, case let .object(args) = v {
            if let pool = try string(args, "global_pool", "model_args.global_pool") { c.globalPool = pool }
            switch args.last(where: { $0.key == "fc_norm" })?.value {
            case nil, .null?: break
            case let .bool(b)?: c.fcNorm = b
            default: throw bad("'model_args.fc_norm' is not true, false or null")
            }
            let argFields: [(String, String)] = [
                ("num_heads", "heads"), ("embed_dim", "width"), ("depth", "depth"),
                ("patch_size", "patch_size"), ("img_size", "image_size"), ("in_chans", "channels"),
                ("num_classes", "num_classes")
            ]
            for (key, field) in argFields { if let v = try int(args, key, "model_args.\(key)") { try c.set(field, v, key: "model_args.\(key)") } }
            // timm builds the MLP as int(embed_dim · mlp_ratio), model_args overriding the architecture's own values.
            var ratio: Double?
            if let v = args.last(where: { $0.key == "mlp_ratio" })?.value {
                guard case let .number(text) = v, let r = Double(text), r > 0, r.isFinite else {
                    throw bad("'model_args.mlp_ratio' is not a positive number")
                }
                ratio = r
            }
            let changesWidth = args.contains { $0.key == "embed_dim" }
            if ratio != nil || changesWidth, let width = c.settings["width"]?.value,
                let r = ratio ?? c.architecture.map({ Double($0.mlpWidth) / Double($0.width) })
            {
                try c.set("mlp_width", Int(Double(width) * r), key: ratio != nil ? "model_args.mlp_ratio" : "model_args.embed_dim")
            }
        }
        return c
    }

    /// The pooling gslora runs for what the file states, with the words that state it: "cls" for timm's 'token' and
    /// for an architecture of the table (class-token models only), "avg" for 'avg' with its norm after pooling; nil
    /// when the file says nothing of pooling. A pooling gslora does not run is refused, naming the key.
    public func statedPooling() throws -> (pooling: String, says: String)? {
        func bad(_ r: String) -> ConvertError { .badConfigFile(file: path, reason: r) }
        guard let pool = globalPool else { return architecture.map { ("cls", "architecture \($0.name) (class-token pooling)") } }
        let says = "\(pool.key) '\(pool.value)'" + (fcNorm.map { " with model_args.fc_norm \($0)" } ?? "")
        switch (pool.value, fcNorm) {
        case ("token", nil), ("token", false?): return ("cls", says)
        case ("avg", nil), ("avg", true?): return ("avg", says)
        case ("token", true?), ("avg", false?):
            throw bad(
                "it says \(says): a norm \(pool.value == "avg" ? "before mean" : "after class-token") pooling; gslora runs the final norm "
                    + "after the blocks with class-token pooling, or after mean pooling (fc_norm)")
        default:
            throw bad("it says \(says); gslora runs 'token' (class-token) and 'avg' (mean) pooling")
        }
    }

    /// The official scripts write `str(cfg)`, a Python dict. BACKBONE_NAME 'VIT' is `ViT_face` as every official
    /// script builds it (the table's ViT-P8S8); HEAD_NAME names the classifier; INPUT_SIZE and EMBEDDING_SIZE are
    /// checked against the tensors.
    static func parseOfficial(_ text: String, path: String) throws -> ConfigFile {
        func bad(_ r: String) -> ConvertError { .badConfigFile(file: path, reason: r) }
        var c = ConfigFile(path: path)
        guard text.contains("'BACKBONE_NAME'") else {
            throw bad("not the official GS-LoRA config.txt (no 'BACKBONE_NAME' key)")
        }
        switch pythonValue(text, key: "BACKBONE_NAME") {
        case "'VIT'":
            guard let a = Architectures.named("ViT-P8S8") else { throw bad("the architecture table has no ViT-P8S8") }
            try c.take(a, key: "BACKBONE_NAME 'VIT' =")
        case let other:
            throw bad("BACKBONE_NAME is \(other ?? "unreadable"); gslora runs the official 'VIT' (ViT_face) only")
        }
        if let v = pythonValue(text, key: "EMBEDDING_SIZE") {
            guard let w = Int(v) else { throw bad("EMBEDDING_SIZE is \(v), not an integer") }
            try c.set("width", w, key: "EMBEDDING_SIZE")
        }
        if let v = pythonValue(text, key: "INPUT_SIZE") {
            let parts = v.trimmingCharacters(in: CharacterSet(charactersIn: "[]() ")).split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let h = parts[0], let w = parts[1], h == w else { throw bad("INPUT_SIZE is \(v); expected [n, n]") }
            try c.set("image_size", h, key: "INPUT_SIZE")
        }
        switch pythonValue(text, key: "HEAD_NAME") {
        case nil: break
        case "'CosFace'": c.head = .cosface
        case "'ArcFace'": c.head = ModelConfig.Head(kind: .arcface, s: 64, m: 0.5)
        case "'Softmax'": c.head = .linear
        case let other?: throw bad("HEAD_NAME is \(other); gslora runs CosFace, ArcFace and Softmax heads")
        }
        return c
    }

    /// The source text of `'KEY': value` up to the next top-level ',' or '}'; nil when the key is absent.
    static func pythonValue(_ text: String, key: String) -> String? {
        guard let r = text.range(of: "'\(key)':") else { return nil }
        var depth = 0, quote: Character? = nil
        var out = ""
        for ch in text[r.upperBound...] {
            if let q = quote {
                if ch == q { quote = nil }
            } else if ch == "'" || ch == "\"" {
                quote = ch
            } else if ch == "[" || ch == "(" || ch == "{" {
                depth += 1
            } else if ch == "]" || ch == ")" || ch == "}" {
                if depth == 0 { break }
                depth -= 1
            } else if ch == "," && depth == 0 {
                break
            }
            out.append(ch)
        }
        return out.trimmingCharacters(in: .whitespaces)
    }
}
