import GSLoRAFormat

/// Reading a full `ModelConfig` off the canonical tensor shapes, and the shapes a config implies.
extension ModelFamilies {
    /// What the caller knows that the shapes cannot say.
    public struct Hints: Sendable {
        /// Attention heads (`ImportOptions.heads`).
        public var heads: Int?
        /// Image channels of the face model, whose patch embedding is a Linear over patch·patch·channels (`ImportOptions.channels`).
        public var channels: Int?
        /// Config files found beside the checkpoint; each value they hold is checked against the tensors.
        public var files: [ConfigFile]

        public init(heads: Int? = nil, channels: Int? = nil, files: [ConfigFile] = []) {
            self.heads = heads
            self.channels = channels
            self.files = files
        }
    }

    /// Face-model channel counts considered when only the shapes speak: those of image files (gray, gray+alpha, RGB,
    /// RGBA). A 1-channel p×p patch and a 4-channel (p/2)×(p/2) one have the same length, so those two need the `channels` setting.
    static let channelCandidates = [1, 2, 3, 4]

    /// The config of a model given its canonical weights (LoRA factors excluded), plus notices. Shapes fix most
    /// values; heads (and a face model's channels) come from `heads`/`channels` in `hints`, a config file, or the
    /// architecture table, in that order, and are refused, naming the option and the candidates, when none decides.
    /// `config.provenance` records where each came from. Every tensor is then checked against the shape the config
    /// implies, so a config returned here fits the weights.
    public static func inferConfig(
        family: ModelConfig.Family, weights: [Tensor], hints: Hints = Hints(),
        file: String
    ) throws -> (config: ModelConfig, notices: [String]) {
        var byName: [String: Tensor] = [:]
        for t in weights { byName[t.name] = t }
        func shape(_ name: String) throws -> [Int] {
            guard let t = byName[name] else { throw ConvertError.badModel(file: file, tensor: name, reason: "missing") }
            return t.shape
        }
        func need(_ ok: Bool, _ name: String, _ reason: @autoclosure () -> String) throws {
            if !ok { throw ConvertError.badModel(file: file, tensor: name, reason: reason()) }
        }
        var notices: [String] = []
        var provenance: [String: String] = [:]

        let cls = try shape("cls_token")
        try need(cls.count == 3 && cls[0] == 1 && cls[1] == 1 && cls[2] > 0, "cls_token", "shape \(cls), expected [1, 1, width]")
        let width = cls[2]

        // Depth: the block indices present, which must be 0..<depth without holes.
        var indices = Set<Int>()
        for t in weights {
            if let (i, _) = FamilyKeyMap.splitBlock(t.name, prefix: FamilyKeyMap.canonicalBlockPrefix) { indices.insert(i) }
        }
        let depth = indices.count
        try need(depth > 0 && indices.max() == depth - 1, "blocks", "block indices \(indices.sorted()) are not 0..<\(depth)")

        let qkv = try shape("blocks.0.attn.qkv.weight")
        try need(
            qkv.count == 2 && qkv[1] == width && qkv[0] % 3 == 0 && qkv[0] > 0, "blocks.0.attn.qkv.weight",
            "shape \(qkv), expected [3·inner, \(width)]")
        let inner = qkv[0] / 3

        let fc1 = try shape("blocks.0.mlp.fc1.weight")
        try need(fc1.count == 2 && fc1[1] == width && fc1[0] > 0, "blocks.0.mlp.fc1.weight", "shape \(fc1), expected [mlp, \(width)]")
        let mlp = fc1[0]

        let headW = try shape("head.weight")
        try need(headW.count == 2 && headW[1] == width && headW[0] > 0, "head.weight", "shape \(headW), expected [classes, \(width)]")
        let classes = headW[0]
        let qkvBias = byName["blocks.0.attn.qkv.bias"] != nil
        // Pooling: timm's mean-pooling models (global_pool='avg', fc_norm on) norm after pooling, in `fc_norm`, and
        // have no final `norm`; both at once (a norm before and after pooling) is not a model gslora runs.
        let fcNorm = ["fc_norm.weight", "fc_norm.bias"].filter { byName[$0] != nil }
        let pooling = fcNorm.isEmpty ? "cls" : "avg"
        if let first = fcNorm.first {
            try need(
                family == .timmViT, first, "mean pooling (fc_norm) is a timm layout, not one of a \(family.rawValue) model")
            if let norm = ["norm.weight", "norm.bias"].first(where: { byName[$0] != nil }) {
                throw ConvertError.badModel(
                    file: file, tensor: first,
                    reason:
                        "the file has both \(norm) (a norm before pooling) and \(first) (a norm after it); gslora runs one or the other: norm.* with class-token pooling, fc_norm.* with mean pooling (timm global_pool='avg')"
                )
            }
        }
        // A config file beside the checkpoint that states the pooling must agree: the weights alone cannot tell
        // timm's 'token' from 'avg' with fc_norm=False (both have norm.*), nor 'avg' from 'token' with fc_norm=True.
        for f in hints.files {
            if let stated = try f.statedPooling(), stated.pooling != pooling {
                let has = pooling == "avg" ? "fc_norm.* and no norm.* (mean pooling)" : "norm.* and no fc_norm.* (class-token pooling)"
                throw ConvertError.badConfigFile(file: f.path, reason: "it says \(stated.says), but \(file) has \(has)")
            }
        }
        let pe = try shape("patch_embed.weight")
        // The architecture table lists class-token models only (spec/MODELS.md §3.1).
        let matches =
            pooling == "cls"
            ? Architectures.matching(family: family, width: width, depth: depth, mlpWidth: mlp, qkvBias: qkvBias, patchEmbed: pe) : []

        // A value set by a config file: the last file that sets it, and the label for provenance and messages.
        func fromFile(_ field: String) -> (value: Int, file: ConfigFile, key: String)? {
            for f in hints.files.reversed() { if let s = f.settings[field] { return (s.value, f, s.key) } }
            return nil
        }
        func fileSays(_ f: (value: Int, file: ConfigFile, key: String)) -> String { "\(f.key) \(f.value) in \(f.file.path)" }

        // A value the shapes do not fix: the option, else the last config file stating it, else the table entries
        // when they agree; nil when none decides. `misfit` says why a value cannot be the tensors' (nil: it fits).
        func decide(_ field: String, option: Setting, entry: (Architecture) -> Int, misfit: (Int) -> String?) throws -> Int? {
            if let v = field == "heads" ? hints.heads : hints.channels {
                if let why = misfit(v) { throw ConvertError.cannotInfer(file: file, what: "the \(field)", hint: "\(option) \(v) does not fit: \(why).") }
                provenance[field] = "given"
                return v
            }
            if let f = fromFile(field) {
                if let why = misfit(f.value) {
                    throw ConvertError.badConfigFile(
                        file: f.file.path, reason: "it says \(f.key) \(f.value), but in \(file) \(why); \(option) N overrides it")
                }
                provenance[field] = "file:\(f.file.path)"
                return f.value
            }
            if let a = matches.first, matches.allSatisfy({ entry($0) == entry(a) }) {
                provenance[field] = "architecture:" + matches.map(\.name).joined(separator: ",")
                return entry(a)
            }
            return nil
        }

        guard
            let heads = try decide(
                "heads", option: Setting("heads"), entry: \.heads,
                misfit: { $0 > 0 && inner % $0 == 0 ? nil : "the attention width \(inner) is not a multiple of \($0)" })
        else {
            let listed =
                matches.isEmpty
                ? (pooling == "cls" ? "it matches no architecture of spec/MODELS.md" : "mean-pooling models are not in the architecture table")
                    + "; head counts up to 64 that divide it (heads×size): "
                    + divisors(inner).map { "\($0)×\(inner / $0)" }.joined(separator: ", ")
                : "it matches architectures that disagree: " + matches.map { "\($0.name) (\($0.heads)×\(inner / $0.heads))" }.joined(separator: ", ")
            throw ConvertError.cannotInfer(
                file: file, what: "the number of attention heads",
                hint:
                    "The attention width is \(inner); \(listed). Pass \(Setting("heads")) N (the model's num_heads), or put its config file beside the checkpoint."
            )
        }

        let patch: Int, channels: Int
        if family == .faceViT {
            try need(pe.count == 2 && pe[0] == width && pe[1] > 0, "patch_embed.weight", "shape \(pe), expected [\(width), patch·patch·channels]")
            func fits(_ c: Int) -> Bool { c > 0 && pe[1] % c == 0 && exactSqrt(pe[1] / c) != nil }
            if let c = try decide(
                "channels", option: Setting("channels"), entry: \.channels,
                misfit: { fits($0) ? nil : "the patch embedding takes \(pe[1]) values per patch, not patch·patch·\($0)" })
            {
                channels = c
            } else {
                let fitting = channelCandidates.filter(fits)
                guard fitting.count == 1 else {
                    let listed =
                        fitting.isEmpty
                        ? "no channel count of 1–4 fits"
                        : "it fits "
                            + fitting.map { "\($0) channel\($0 == 1 ? "" : "s") of \(exactSqrt(pe[1] / $0)!)×\(exactSqrt(pe[1] / $0)!) patches" }.joined(
                                separator: " or ")
                    throw ConvertError.cannotInfer(
                        file: file, what: "the image channels",
                        hint: "The face model's patch embedding takes \(pe[1]) values per patch; \(listed). Pass \(Setting("channels")) N.")
                }
                channels = fitting[0]
                provenance["channels"] = "shapes"
            }
            patch = exactSqrt(pe[1] / channels)!
        } else {
            try need(
                pe.count == 4 && pe[0] == width && pe[1] > 0 && pe[2] > 0 && pe[2] == pe[3], "patch_embed.weight",
                "shape \(pe), expected [\(width), channels, patch, patch]")
            if let c = hints.channels, c != pe[1] {
                throw ConvertError.cannotInfer(
                    file: file, what: "the channels",
                    hint: "\(Setting("channels")) \(c) contradicts the patch convolution, which takes \(pe[1]) channels.")
            }
            channels = pe[1]
            patch = pe[2]
            provenance["channels"] = "shapes"
        }

        let pos = try shape("pos_embed")
        try need(pos.count == 3 && pos[0] == 1 && pos[2] == width && pos[1] >= 2, "pos_embed", "shape \(pos), expected [1, tokens, \(width)]")
        guard let grid = exactSqrt(pos[1] - 1) else {
            throw ConvertError.cannotInfer(
                file: file, what: "the image size",
                hint: "pos_embed has \(pos[1]) tokens; \(pos[1] - 1) patches do not form a square grid.")
        }

        // Every other value a config file states must be the tensors' own.
        let actual: [String: Int] = [
            "heads": heads, "width": width, "depth": depth, "mlp_width": mlp, "patch_size": patch, "image_size": grid * patch,
            "num_classes": classes, "channels": channels
        ]
        for f in hints.files {
            for field in ["width", "depth", "mlp_width", "patch_size", "channels", "heads", "image_size", "num_classes"] {
                guard let s = f.settings[field], let a = actual[field], a != s.value else { continue }
                let ours =
                    provenance[field] == "given"
                    ? "--\(field) \(a) was given for \(file)"
                    : "\(file) has \(field.replacingOccurrences(of: "_", with: " ")) \(a)"
                throw ConvertError.badConfigFile(file: f.path, reason: "it says \(s.key) \(s.value), but \(ours)")
            }
        }

        let face = family == .faceViT
        var head: ModelConfig.Head = .linear
        if face {
            let fileHead = hints.files.last(where: { $0.head != nil })
            if byName["head.bias"] != nil {
                if let f = fileHead, f.head!.kind != .linear {
                    throw ConvertError.badConfigFile(
                        file: f.path, reason: "it names a \(f.head!.kind.rawValue) head, but \(file) has a head bias (a Softmax head)")
                }
                provenance["head"] = "shapes"
            } else if let f = fileHead {
                guard f.head!.kind != .linear else {
                    throw ConvertError.badConfigFile(file: f.path, reason: "it names a Softmax head, but \(file) has no head bias")
                }
                head = f.head!
                provenance["head"] = "file:\(f.path)"
            } else {
                head = .cosface
                provenance["head"] = "default"
                notices.append("face model head taken as CosFace (s=64, m=0.35), the head GS-LoRA trains with")
            }
        }
        let config = ModelConfig(
            family: family, imageSize: grid * patch, patchSize: patch, channels: channels, width: width, depth: depth,
            heads: heads, headDim: inner / heads, mlpWidth: mlp, numClasses: classes, head: head,
            attentionScale: face ? 1 / Double(width).squareRoot() : 1 / Double(inner / heads).squareRoot(),
            layerNormEps: face ? 1e-5 : 1e-6, qkvBias: qkvBias, pooling: pooling, provenance: provenance)

        try checkShapes(weights, config: config, file: file)
        return (config, notices)
    }

    /// Head counts up to 64 that divide `n`: the candidates named when nothing decides.
    static func divisors(_ n: Int) -> [Int] { (1...max(1, min(n, 64))).filter { n % $0 == 0 } }

    /// Every tensor must be one `config` expects, with the expected shape, and none may be missing.
    public static func checkShapes(_ weights: [Tensor], config: ModelConfig, file: String) throws {
        // A model has at least 10 tensors per block; a config promising more blocks cannot fit (and must not
        // make us build a huge expectation list from a hostile header).
        guard config.depth <= weights.count / 10 else {
            throw ConvertError.badModel(
                file: file, tensor: "blocks", reason: "the config says depth \(config.depth) but there are only \(weights.count) tensors")
        }
        let expected = expectedShapes(config)
        var wanted: [String: [Int]] = [:]
        for (n, s) in expected { wanted[n] = s }
        var present = Set<String>()
        for t in weights {
            guard let s = wanted[t.name] else {
                throw ConvertError.badModel(file: file, tensor: t.name, reason: "not part of a \(config.family.rawValue) model with this config")
            }
            guard s == t.shape else {
                throw ConvertError.badModel(file: file, tensor: t.name, reason: "shape \(t.shape), expected \(s) for \(describe(config))")
            }
            present.insert(t.name)
        }
        if let missing = expected.first(where: { !present.contains($0.name) }) {
            throw ConvertError.badModel(file: file, tensor: missing.name, reason: "missing (expected shape \(missing.shape))")
        }
    }

    /// Every canonical tensor of a model with `config`, in canonical order, with its shape. LoRA factors excluded.
    public static func expectedShapes(_ c: ModelConfig) -> [(name: String, shape: [Int])] {
        let w = c.width, inner = c.heads * c.headDim, m = c.mlpWidth
        var out: [(String, [Int])] = [("cls_token", [1, 1, w]), ("pos_embed", [1, c.numTokens, w])]
        out.append(("patch_embed.weight", c.family == .faceViT ? [w, c.patchDim] : [w, c.channels, c.patchSize, c.patchSize]))
        out.append(("patch_embed.bias", [w]))
        for i in 0..<c.depth {
            let b = "blocks.\(i)."
            out += [(b + "norm1.weight", [w]), (b + "norm1.bias", [w]), (b + "attn.qkv.weight", [3 * inner, w])]
            if c.qkvBias { out.append((b + "attn.qkv.bias", [3 * inner])) }
            out += [
                (b + "attn.proj.weight", [w, inner]), (b + "attn.proj.bias", [w]),
                (b + "norm2.weight", [w]), (b + "norm2.bias", [w]),
                (b + "mlp.fc1.weight", [m, w]), (b + "mlp.fc1.bias", [m]),
                (b + "mlp.fc2.weight", [w, m]), (b + "mlp.fc2.bias", [w])
            ]
        }
        out += [(c.finalNormName + ".weight", [w]), (c.finalNormName + ".bias", [w]), ("head.weight", [c.numClasses, w])]
        if c.head.kind == .linear { out.append(("head.bias", [c.numClasses])) }
        return out
    }

    /// The shapes of rank-r LoRA factors on the two FFN linears of block i: A is [r, in], B is [out, r].
    public static func loraShapes(_ c: ModelConfig, block i: Int, rank r: Int) -> [(name: String, shape: [Int])] {
        let w = c.width, m = c.mlpWidth, b = "blocks.\(i).mlp."
        return [(b + "fc1.lora_A", [r, w]), (b + "fc1.lora_B", [m, r]), (b + "fc2.lora_A", [r, m]), (b + "fc2.lora_B", [w, r])]
    }

    static func describe(_ c: ModelConfig) -> String {
        "width \(c.width), depth \(c.depth), heads \(c.heads)×\(c.headDim), mlp \(c.mlpWidth), patch \(c.patchSize), image \(c.imageSize), \(c.numClasses) classes"
    }

    static func exactSqrt(_ n: Int) -> Int? {
        guard n > 0 else { return nil }
        var r = Int(Double(n).squareRoot())
        while r * r > n { r -= 1 }
        while (r + 1) * (r + 1) <= n { r += 1 }
        return r * r == n ? r : nil
    }
}
