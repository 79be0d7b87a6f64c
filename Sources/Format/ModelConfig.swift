/// The architecture of a ViT backbone, as a .gslr backbone header stores it (spec/FORMAT.md, spec/MODELS.md).
/// Everything the forward pass needs is here, so no caller has to guess a size from a tensor name.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// Which layout the weights came from; decides patch order and defaults (spec/MODELS.md).
    public enum Family: String, Codable, Sendable {
        case faceViT = "face_vit" // GS-LoRA's vit_pytorch_face.ViT_face
        case torchvisionViT = "torchvision_vit"
        case timmViT = "timm_vit"
    }

    /// The classifier on top of the pooled embedding.
    public struct Head: Codable, Equatable, Sendable {
        public enum Kind: String, Codable, Sendable { case cosface, arcface, linear }
        public var kind: Kind
        /// Logit scale s and margin m of CosFace/ArcFace; unused for a linear head.
        public var s: Double?
        public var m: Double?

        public init(kind: Kind, s: Double? = nil, m: Double? = nil) {
            self.kind = kind
            self.s = s
            self.m = m
        }

        enum CodingKeys: String, CodingKey { case kind, s, m }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            // An optional key is left out, never `null` (spec/FORMAT.md §4.0).
            for k in [CodingKeys.s, .m] where c.contains(k) {
                guard try c.decodeNil(forKey: k) else { continue }
                throw DecodingError.typeMismatch(
                    Double.self, .init(codingPath: c.codingPath + [k], debugDescription: "null is not a value; leave an optional key out"))
            }
            kind = try c.decode(Kind.self, forKey: .kind)
            s = try c.decodeIfPresent(Double.self, forKey: .s)
            m = try c.decodeIfPresent(Double.self, forKey: .m)
        }

        public static let cosface = Head(kind: .cosface, s: 64, m: 0.35)
        public static let linear = Head(kind: .linear)
    }

    public var family: Family
    public var imageSize: Int
    public var patchSize: Int
    public var channels: Int
    public var width: Int
    public var depth: Int
    public var heads: Int
    public var headDim: Int
    public var mlpWidth: Int
    public var numClasses: Int
    public var head: Head
    /// Multiplier of Q·Kᵀ. The face transformer uses width^-0.5, not headDim^-0.5 (spec/TRAINING.md §A.1.1).
    public var attentionScale: Double
    public var layerNormEps: Double
    /// Whether the qkv projection has a bias (torchvision and timm: yes; face: no).
    public var qkvBias: Bool
    /// "cls": the class-token row, then the final norm `norm`; "avg": the mean of the patch-token rows (the class
    /// token excluded), then the final norm `fc_norm` (timm's `global_pool='avg'`).
    public var pooling: String
    /// Where the values the tensor shapes cannot fix came from, by key ("heads", "channels", "head"): "given" (an
    /// option), "file:<path>" (a config file beside the checkpoint), "architecture:<names>" (spec/MODELS.md's
    /// table), "shapes" (only one value fits the tensors) or "default" (GS-LoRA's CosFace head). Optional.
    public var provenance: [String: String]?

    public init(
        family: Family, imageSize: Int, patchSize: Int, channels: Int = 3, width: Int, depth: Int,
        heads: Int, headDim: Int, mlpWidth: Int, numClasses: Int, head: Head,
        attentionScale: Double, layerNormEps: Double, qkvBias: Bool, pooling: String = "cls",
        provenance: [String: String]? = nil
    ) {
        self.family = family
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.channels = channels
        self.width = width
        self.depth = depth
        self.heads = heads
        self.headDim = headDim
        self.mlpWidth = mlpWidth
        self.numClasses = numClasses
        self.head = head
        self.attentionScale = attentionScale
        self.layerNormEps = layerNormEps
        self.qkvBias = qkvBias
        self.pooling = pooling
        self.provenance = provenance
    }

    /// Patches per image side and in all; tokens add the class token.
    public var gridSize: Int { imageSize / patchSize }
    public var numPatches: Int { gridSize * gridSize }
    public var numTokens: Int { numPatches + 1 }
    /// Values in one flattened patch.
    public var patchDim: Int { patchSize * patchSize * channels }
    /// Canonical name of the LayerNorm after pooling: timm's `fc_norm` for mean pooling, `norm` otherwise.
    public var finalNormName: String { pooling == "avg" ? "fc_norm" : "norm" }

    /// Two configs are equal when they describe the same model; where a value came from is not part of it.
    public static func == (a: ModelConfig, b: ModelConfig) -> Bool {
        a.isSameModel(b)
    }

    private func isSameModel(_ o: ModelConfig) -> Bool {
        family == o.family && imageSize == o.imageSize && patchSize == o.patchSize && channels == o.channels && width == o.width
            && depth == o.depth && heads == o.heads && headDim == o.headDim && mlpWidth == o.mlpWidth && numClasses == o.numClasses
            && head == o.head && attentionScale == o.attentionScale && layerNormEps == o.layerNormEps && qkvBias == o.qkvBias
            && pooling == o.pooling
    }

    enum CodingKeys: String, CodingKey {
        case family, imageSize = "image_size", patchSize = "patch_size", channels, width, depth, heads
        case headDim = "head_dim", mlpWidth = "mlp_width", numClasses = "num_classes", head
        case attentionScale = "attention_scale", layerNormEps = "layer_norm_eps", qkvBias = "qkv_bias", pooling, provenance
    }
}
