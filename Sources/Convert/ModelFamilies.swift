import GSLoRAFormat

/// The key layouts of the supported ViT families and the reversible map between each family's ORIGINAL state-dict
/// keys and the CANONICAL (timm-like) names gslora uses everywhere else. spec/MODELS.md lists every pair.
public struct FamilyKeyMap: Sendable {
    public let family: ModelConfig.Family
    /// Keys outside the blocks: (original, canonical).
    let globals: [(original: String, canonical: String)]
    /// What precedes the block index: "transformer.layers." (face), "encoder.layers.encoder_layer_" (torchvision),
    /// "blocks." (timm). Canonical blocks are always "blocks.{i}.".
    let blockPrefix: String
    /// Keys inside block i, after "{prefix}{i}.": (original suffix, canonical suffix).
    let blockRules: [(original: String, canonical: String)]
    /// Keys whose presence identifies the family.
    let signature: [String]

    public static let canonicalBlockPrefix = "blocks."

    /// The canonical name of an original key, or nil when the key is not part of the family's layout.
    public func canonical(_ original: String) -> String? {
        if let g = globals.first(where: { $0.original == original }) { return g.canonical }
        guard let (i, suffix) = Self.splitBlock(original, prefix: blockPrefix),
            let r = blockRules.first(where: { $0.original == suffix })
        else { return nil }
        return "\(Self.canonicalBlockPrefix)\(i).\(r.canonical)"
    }

    /// The original key of a canonical name, or nil when the name has no counterpart in this family.
    public func original(_ canonical: String) -> String? {
        if let g = globals.first(where: { $0.canonical == canonical }) { return g.original }
        guard let (i, suffix) = Self.splitBlock(canonical, prefix: Self.canonicalBlockPrefix),
            let r = blockRules.first(where: { $0.canonical == suffix })
        else { return nil }
        return "\(blockPrefix)\(i).\(r.original)"
    }

    /// Every (original, canonical) pair for a model of `depth` blocks, globals first then block by block.
    public func pairs(depth: Int) -> [(original: String, canonical: String)] {
        var out = globals
        for i in 0..<depth {
            for r in blockRules { out.append(("\(blockPrefix)\(i).\(r.original)", "\(Self.canonicalBlockPrefix)\(i).\(r.canonical)")) }
        }
        return out
    }

    /// "prefix{i}.rest" → (i, rest). The index must be plain decimal without leading zeros so the map stays 1:1.
    static func splitBlock(_ key: String, prefix: String) -> (Int, String)? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        let digits = rest[..<dot]
        guard !digits.isEmpty, digits.count <= 6, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            digits == "0" || digits.first != "0", let i = Int(digits)
        else { return nil }
        return (i, String(rest[rest.index(after: dot)...]))
    }
}

/// The per-family layouts and detection.
public enum ModelFamilies {
    /// Suffixes a LoRA-wrapped linear adds next to `weight` and `bias` (loralib names).
    static let loraSuffixes = ["lora_A", "lora_B"]

    static func linear(_ original: String, _ canonical: String, lora: Bool = false) -> [(original: String, canonical: String)] {
        let parts = ["weight", "bias"] + (lora ? loraSuffixes : [])
        return parts.map { ("\(original).\($0)", "\(canonical).\($0)") }
    }

    /// GS-LoRA's `vit_pytorch_face.ViT_face` (spec/TRAINING.md §A.1.2).
    public static let face = FamilyKeyMap(
        family: .faceViT,
        globals: [("pos_embedding", "pos_embed"), ("cls_token", "cls_token")]
            + linear("patch_to_embedding", "patch_embed") + linear("mlp_head.0", "norm")
            + linear("loss", "head"),
        blockPrefix: "transformer.layers.",
        blockRules: linear("0.fn.norm", "norm1") + [("0.fn.fn.to_qkv.weight", "attn.qkv.weight")]
            + linear("0.fn.fn.to_out.0", "attn.proj") + linear("1.fn.norm", "norm2")
            + linear("1.fn.fn.net.0", "mlp.fc1", lora: true) + linear("1.fn.fn.net.3", "mlp.fc2", lora: true),
        signature: ["pos_embedding", "cls_token", "patch_to_embedding.weight", "transformer.layers.0.0.fn.norm.weight"])

    /// torchvision `VisionTransformer` (vit_b_16 and friends).
    public static let torchvision = FamilyKeyMap(
        family: .torchvisionViT,
        globals: [("class_token", "cls_token")] + linear("conv_proj", "patch_embed")
            + [("encoder.pos_embedding", "pos_embed")] + linear("encoder.ln", "norm") + linear("heads.head", "head"),
        blockPrefix: "encoder.layers.encoder_layer_",
        blockRules: linear("ln_1", "norm1")
            + [("self_attention.in_proj_weight", "attn.qkv.weight"), ("self_attention.in_proj_bias", "attn.qkv.bias")]
            + linear("self_attention.out_proj", "attn.proj") + linear("ln_2", "norm2")
            + linear("mlp.0", "mlp.fc1", lora: true) + linear("mlp.3", "mlp.fc2", lora: true),
        signature: ["class_token", "conv_proj.weight", "encoder.pos_embedding", "encoder.layers.encoder_layer_0.ln_1.weight"])

    /// timm `VisionTransformer` (vit_*_patch*_*), the canonical layout apart from `patch_embed.proj`. Mean-pooling
    /// models (`global_pool='avg'`) have `fc_norm` after pooling instead of `norm`.
    public static let timm = FamilyKeyMap(
        family: .timmViT,
        globals: [("cls_token", "cls_token"), ("pos_embed", "pos_embed")] + linear("patch_embed.proj", "patch_embed")
            + linear("norm", "norm") + linear("fc_norm", "fc_norm") + linear("head", "head"),
        blockPrefix: "blocks.",
        blockRules: linear("norm1", "norm1") + linear("attn.qkv", "attn.qkv") + linear("attn.proj", "attn.proj")
            + linear("norm2", "norm2") + linear("mlp.fc1", "mlp.fc1", lora: true) + linear("mlp.fc2", "mlp.fc2", lora: true),
        signature: ["cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight"])

    public static let all: [FamilyKeyMap] = [face, torchvision, timm]

    public static func map(for family: ModelConfig.Family) -> FamilyKeyMap {
        switch family {
        case .faceViT: return face
        case .torchvisionViT: return torchvision
        case .timmViT: return timm
        }
    }

    /// The outcome of looking at a list of keys.
    public enum Detection: Equatable {
        /// Every key belongs to `family`; `canonical[k]` is the canonical name of key k.
        case family(ModelConfig.Family, canonical: [String])
        /// No family's signature matched.
        case unknown
        /// A family's signature matched but some keys are foreign to it; the file converts as plain tensors.
        case partial(ModelConfig.Family, unmapped: [String])
    }

    /// Detects the family from original keys (a state dict after unwrapping).
    public static func detect(originalKeys keys: [String]) -> Detection {
        let set = Set(keys)
        guard let fam = all.first(where: { $0.signature.allSatisfy(set.contains) }) else { return .unknown }
        var canonical: [String] = []
        var unmapped: [String] = []
        for k in keys {
            if let c = fam.canonical(k) { canonical.append(c) } else { unmapped.append(k) }
        }
        return unmapped.isEmpty ? .family(fam.family, canonical: canonical) : .partial(fam.family, unmapped: unmapped)
    }

    /// Whether `keys` are already canonical names (e.g. a .safetensors written with canonical names, `ConvertOptions.names`).
    public static func looksCanonical(_ keys: [String]) -> Bool {
        let set = Set(keys)
        return ["cls_token", "pos_embed", "patch_embed.weight", "blocks.0.norm1.weight"].allSatisfy(set.contains)
    }

    /// Whether a canonical name is a LoRA factor.
    public static func isLoRA(_ canonical: String) -> Bool {
        canonical.hasSuffix(".lora_A") || canonical.hasSuffix(".lora_B")
    }
}
