import Foundation
import GSLoRAFormat

/// Hugging Face PEFT LoRA folders, both ways: `adapter_config.json` (peft_type "LORA", r, lora_alpha,
/// target_modules …) beside `adapter_model.safetensors`, whose keys are `base_model.model.<module>.lora_A.weight`
/// ([r, in]) and `….lora_B.weight` ([out, r]) under the family's own module names. PEFT's scaling is lora_alpha / r
/// (lora_alpha / √r with use_rslora). A folder written here also carries the whole adapter record (groups, norms,
/// task, base fingerprint) in the safetensors `__metadata__`, which PEFT does not read, so it converts back without loss.
public enum PeftFolder {
    public static let configName = "adapter_config.json"
    public static let weightsName = "adapter_model.safetensors"
    /// Older PEFT versions (and `safe_serialization=False`) write a pickle instead.
    public static let legacyWeightsName = "adapter_model.bin"
    static let keyPrefix = "base_model.model."
    static let maxConfigBytes = 1 << 20
    static let rsloraRule = "alpha/sqrt(rank)"

    /// A path names a PEFT folder when it is a directory or ends in "/".
    public static func isFolder(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return path.hasSuffix("/") || (FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue)
    }

    /// The model a PEFT folder belongs to: its family names the modules, its config checks the shapes, and its
    /// fingerprint is the adapter's base when the folder records none.
    public struct Base: Sendable {
        public var config: ModelConfig
        public var fingerprint: String
        /// Written as `base_model_name_or_path`.
        public var name: String

        public init(config: ModelConfig, fingerprint: String, name: String) {
            self.config = config
            self.fingerprint = fingerprint
            self.name = name
        }

        /// A backbone file: a .gslr keeps its table's fingerprint; a .pth/.safetensors gets the one its converted
        /// .gslr would have.
        public static func load(_ path: String, heads: Int? = nil) throws -> Base {
            let name = (path as NSString).lastPathComponent
            if (try? detectFormat(path: path)) == .gslr {
                let f = try GSLRFile.open(path)
                guard f.kind == .backbone, let c = f.header.model else {
                    throw ConvertError.badLoRA(
                        file: path, reason: "\(Setting("base")) must be a backbone (a model), but this .gslr file is a \(f.kind.rawValue) file")
                }
                return Base(config: c, fingerprint: f.fingerprint, name: name)
            }
            let m = try ModelImport.load(path, options: ImportOptions(heads: heads))
            guard let c = m.config else {
                throw ConvertError.badLoRA(file: path, reason: "\(Setting("base")) must be a ViT backbone; no model layout was recognised in it")
            }
            return Base(config: c, fingerprint: Fingerprint.of(m.weights + m.extra, binding: .model(c)), name: name)
        }
    }

    /// A PEFT folder in gslora's terms: the adapter record and its factors under canonical names.
    public struct Adapter {
        public var info: AdapterInfo
        public var tensors: [Tensor]
        public var classes: [String]?
        public var metadata: [String: JSONValue]
        /// The folder records no base fingerprint (PEFT's own folders): the adapter was bound to the given base.
        public var boundToBase: Bool
        public var notices: [String]
    }

    // MARK: Reading

    /// Reads a PEFT LoRA folder for `base`. Configurations gslora cannot represent (LoRA outside the FFN linears,
    /// DoRA, trained biases, per-module ranks or alphas, modules_to_save …) are refused with the reason.
    public static func read(_ dir: String, base: Base) throws -> Adapter {
        let configPath = (dir as NSString).appendingPathComponent(configName)
        func bad(_ r: String, file: String? = nil) -> ConvertError { .badLoRA(file: file ?? configPath, reason: r) }
        let config = try readConfig(configPath)
        func value(_ k: String) -> StrictJSON? { config.first { $0.key == k }?.value }
        func isOff(_ k: String) -> Bool {
            switch value(k) {
            case nil, .null?, .bool(false)?: return true
            case let .array(a)?: return a.isEmpty
            case let .object(o)?: return o.isEmpty
            case let .string(s)?: return s.isEmpty
            default: return false
            }
        }

        guard case .string("LORA")? = value("peft_type") else {
            throw bad("peft_type is \(describe(value("peft_type"))), not \"LORA\"; only LoRA adapters can be read")
        }
        guard case let .number(rs)? = value("r"), let r = Int(rs), r >= 1 else { throw bad("r is \(describe(value("r"))), not a positive integer") }
        guard case let .number(als)? = value("lora_alpha"), let alpha = Double(als), alpha.isFinite, alpha > 0 else {
            throw bad("lora_alpha is \(describe(value("lora_alpha"))), not a positive number")
        }
        if let b = value("bias"), b != .string("none") { throw bad("bias is \(describe(b)); gslora adapters train no biases (needs \"none\")") }
        let unsupported: [(String, String)] = [
            ("use_dora", "DoRA adapters"), ("lora_bias", "LoRA biases"), ("fan_in_fan_out", "transposed (Conv1D) weights"),
            ("modules_to_save", "fully trained modules"), ("rank_pattern", "per-module ranks"),
            ("alpha_pattern", "per-module alphas"), ("layer_replication", "replicated layers"),
            ("target_parameters", "LoRA on parameters"), ("trainable_token_indices", "trainable tokens")
        ]
        for (k, what) in unsupported where !isOff(k) {
            throw bad("\(k) is \(describe(value(k))): \(what) cannot be represented in a gslora adapter, which holds LoRA factors of the FFN linears only")
        }
        let rslora = !isOff("use_rslora")
        let scaling = rslora ? alpha / Double(r).squareRoot() : alpha / Double(r)

        let (weightsPath, tensors, meta) = try readWeights(dir)
        let map = ModelFamilies.map(for: base.config.family)
        var lora: [Tensor] = []
        for t in tensors {
            var key = t.name
            guard key.hasPrefix(keyPrefix) else {
                throw bad("tensor '\(t.name)' does not start with '\(keyPrefix)'; it is not a PEFT LoRA factor", file: weightsPath)
            }
            key.removeFirst(keyPrefix.count)
            let factor: String
            if key.hasSuffix(".lora_A.weight") {
                factor = "lora_A"
            } else if key.hasSuffix(".lora_B.weight") {
                factor = "lora_B"
            } else {
                throw bad("tensor '\(t.name)' is not a lora_A/lora_B weight; only plain LoRA factors can be read", file: weightsPath)
            }
            let module = String(key.dropLast(".\(factor).weight".count))
            guard let canonical = map.canonical(module + "." + factor) else {
                throw bad(
                    "'\(module)' carries LoRA but is not an FFN linear of a \(base.config.family.rawValue) model "
                        + "(\(map.original("blocks.0.mlp.fc1.lora_A").map { String($0.dropLast(".lora_A".count)) } ?? "mlp.fc1"), …); "
                        + "gslora adapters hold LoRA on the FFN linears only", file: weightsPath)
            }
            var c = t
            c.name = canonical
            lora.append(c)
        }
        let factors = try LoRAImport.check(lora, config: base.config, file: weightsPath)
        guard factors.rank == r else {
            throw bad("the factors have rank \(factors.rank), but adapter_config.json says r = \(r)", file: weightsPath)
        }

        var notices: [String] = []
        var info: AdapterInfo
        if let record = meta[SafetensorsMetadata.adapter] {
            info = try SafetensorsMetadata.decode(AdapterInfo.self, record, key: SafetensorsMetadata.adapter, file: weightsPath)
            guard info.rank == r, abs(info.scaling - scaling) <= 1e-12 * max(1, abs(scaling)) else {
                throw bad(
                    "adapter_config.json (r \(r), scaling \(scaling)) disagrees with the gslora record in \(weightsName) (rank \(info.rank), scaling \(info.scaling)); the folder was edited by hand"
                )
            }
            if info.baseFingerprint != base.fingerprint {
                notices.append(
                    "\(dir): the adapter was trained on \(info.baseFingerprint.prefix(19))…, not on \(base.name) (\(base.fingerprint.prefix(19))…); its recorded base is kept"
                )
            }
        } else {
            info = try LoRAImport.adapterInfo(
                factors, alpha: alpha, baseFingerprint: base.fingerprint,
                scaling: scaling, scalingRule: rslora ? rsloraRule : "alpha/rank")
            notices.append("\(dir): a PEFT folder records no base fingerprint; bound to \(base.name) (\(base.fingerprint.prefix(19))…)")
        }
        let classes = try meta[SafetensorsMetadata.classes].map {
            try SafetensorsMetadata.decode([String].self, $0, key: SafetensorsMetadata.classes, file: weightsPath)
        }
        return Adapter(
            info: info, tensors: factors.tensors, classes: classes,
            metadata: meta[SafetensorsMetadata.metadata].map(SafetensorsMetadata.decodeMetadata) ?? [:],
            boundToBase: meta[SafetensorsMetadata.adapter] == nil, notices: notices)
    }

    static func readConfig(_ path: String) throws -> [(key: String, value: StrictJSON)] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConvertError.unreadable(file: path, reason: "no such file: a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors")
        }
        let m: MappedFile
        do { m = try MappedFile(path) } catch { throw ConvertError.unreadable(file: path, reason: "\(error)") }
        guard m.bytes.count <= maxConfigBytes else {
            throw ConvertError.badLoRA(file: path, reason: "\(m.bytes.count) bytes is above the 1 MiB an adapter config may have")
        }
        do {
            guard case let .object(items) = try StrictJSON.parse(m.bytes.buffer) else {
                throw ConvertError.badLoRA(file: path, reason: "not a JSON object")
            }
            return items
        } catch let f as StrictJSON.Failure {
            throw ConvertError.badLoRA(file: path, reason: "invalid JSON at byte \(f.offset): \(f.reason)")
        }
    }

    static func readWeights(_ dir: String) throws -> (String, [Tensor], [String: String]) {
        let st = (dir as NSString).appendingPathComponent(weightsName)
        if FileManager.default.fileExists(atPath: st) {
            let f = try SafetensorsFile.open(st)
            return (st, f.tensors, f.metadata)
        }
        let bin = (dir as NSString).appendingPathComponent(legacyWeightsName)
        guard FileManager.default.fileExists(atPath: bin) else {
            throw ConvertError.unreadable(file: st, reason: "no such file (nor \(legacyWeightsName)): the PEFT folder holds no weights")
        }
        return (bin, CheckpointShape.flattenAll(try TorchCheckpoint.load(bin)).stateDict, [:])
    }

    static func describe(_ v: StrictJSON?) -> String {
        switch v {
        case nil: return "missing"
        case let .string(s)?: return "\"\(s.prefix(80))\""
        case let .number(n)?: return n
        case let .bool(b)?: return String(b)
        case .null?: return "null"
        case .array?: return "a list"
        case .object?: return "an object"
        }
    }

    // MARK: Writing

    /// Writes `tensors` (canonical names) as a PEFT LoRA folder for `base`'s family; returns the bytes written.
    /// Each file is written atomically. Existing files are replaced only with `force`.
    @discardableResult
    public static func write(
        _ dir: String, info: AdapterInfo, tensors: [Tensor], base: Base, classes: [String]?,
        metadata: [String: JSONValue], force: Bool, inputs: [String] = []
    ) throws -> Int {
        let configPath = (dir as NSString).appendingPathComponent(configName)
        let weightsPath = (dir as NSString).appendingPathComponent(weightsName)
        func bad(_ r: String) -> ConvertError { .badOutput(file: dir, reason: r) }
        if !force {
            for p in [configPath, weightsPath] where FileManager.default.fileExists(atPath: p) {
                throw ConvertError.badOutput(file: p, reason: "the file exists; pass \(Setting("force")) to replace it")
            }
        }
        let map = ModelFamilies.map(for: base.config.family)
        var byName: [String: Tensor] = [:]
        for t in tensors { byName[t.name] = t }
        var out: [Tensor] = []
        var modules: [String] = []
        for t in tensors where t.name.hasSuffix(".lora_A") {
            let layer = String(t.name.dropLast(".lora_A".count))
            guard let b = byName[layer + ".lora_B"] else { continue }
            guard let oa = map.original(t.name), let ob = map.original(b.name) else {
                throw bad("'\(layer)' has no \(base.config.family.rawValue) module name; only FFN LoRA can be written for PEFT")
            }
            out.append(renamed(t, keyPrefix + oa + ".weight"))
            out.append(renamed(b, keyPrefix + ob + ".weight"))
            modules.append(String(oa.dropLast(".lora_A".count)))
        }
        if let lone = tensors.first(where: { t in
            guard let p = LoRAImport.layer(of: t.name) else { return true }
            return byName[p + ".lora_A"] == nil || byName[p + ".lora_B"] == nil
        }) {
            throw bad("'\(lone.name)' has no partner factor (its group was pruned alone); PEFT stores whole A/B pairs only. Merge the adapter instead")
        }
        guard !modules.isEmpty else { throw bad("the adapter holds no LoRA pair (every group is pruned); it changes nothing") }

        let rslora = info.scalingRule == rsloraRule
        let r = Double(info.rank)
        // PEFT recomputes the scaling from lora_alpha; write the alpha that gives this adapter's own scaling.
        let alpha =
            rslora
            ? (info.alpha / r.squareRoot() == info.scaling ? info.alpha : info.scaling * r.squareRoot())
            : (info.alpha / r == info.scaling ? info.alpha : info.scaling * r)
        let config: [String: JSONValue] = [
            "peft_type": .string("LORA"), "r": .int(info.rank), "lora_alpha": .number(alpha), "use_rslora": .bool(rslora),
            "target_modules": .array(modules.map(JSONValue.string)), "base_model_name_or_path": .string(base.name),
            "bias": .string("none"), "fan_in_fan_out": .bool(false), "use_dora": .bool(false), "lora_dropout": .number(0),
            "modules_to_save": .null, "init_lora_weights": .bool(true), "inference_mode": .bool(true), "task_type": .null,
            "rank_pattern": .object([:]), "alpha_pattern": .object([:])
        ]
        var meta: [String: String] = [SafetensorsMetadata.format: "pt", SafetensorsMetadata.adapter: SafetensorsMetadata.encode(info)]
        if let classes { meta[SafetensorsMetadata.classes] = SafetensorsMetadata.encode(classes) }
        if !metadata.isEmpty { meta[SafetensorsMetadata.metadata] = SafetensorsMetadata.encode(metadata) }

        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw ConvertError.writeFailed(file: dir, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        let size = try SafetensorsWriter.write(weightsPath, tensors: out, metadata: meta, inputs: inputs)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let json = [UInt8]((try? enc.encode(config)) ?? Data()) + [0x0A]
        do {
            try AtomicFile.write(configPath, inputs: inputs) { try $0.write(json) }
        } catch let e as FormatError {
            throw ConvertError.writing(configPath, e)
        }
        return size + json.count
    }

    static func renamed(_ t: Tensor, _ name: String) -> Tensor {
        var c = t
        c.name = name
        return c
    }
}
