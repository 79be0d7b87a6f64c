import GSLoRAFormat

/// A linear layer y = x·Wᵀ + b with W stored [out, in] row-major (PyTorch's layout).
public struct Linear {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: FloatBuffer
    public let bias: FloatBuffer?

    public init(inFeatures: Int, outFeatures: Int, weight: FloatBuffer, bias: FloatBuffer?) {
        precondition(
            weight.count == inFeatures * outFeatures && (bias?.count ?? outFeatures) == outFeatures,
            "linear \(outFeatures)×\(inFeatures) got \(weight.count) weights")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.weight = weight
        self.bias = bias
    }
}

/// LayerNorm scale and shift.
public struct LayerNormParams {
    public let weight: FloatBuffer
    public let bias: FloatBuffer
}

/// One pre-norm transformer block.
public struct BlockParams {
    public let norm1: LayerNormParams
    public let qkv: Linear
    public let proj: Linear
    public let norm2: LayerNormParams
    public let fc1: Linear
    public let fc2: Linear
}

/// Every parameter of a ViT in float32, by canonical role. The buffers are reference types: training updates
/// them in place (after `FloatBuffer.detach()`, as loaded ones may be views of the model file); `ViT.merged()`
/// shares the ones it does not change.
public struct ViTParameters {
    public let clsToken: FloatBuffer // [width]
    public let posEmbed: FloatBuffer // [tokens, width]
    /// [width, patchDim]; for conv families the columns are in (c, p1, p2) order, i.e. the conv kernel flattened.
    public let patchEmbed: Linear
    public let blocks: [BlockParams]
    /// The LayerNorm after pooling (`ModelConfig.finalNormName`: `norm`, or `fc_norm` for mean pooling).
    public let norm: LayerNormParams
    /// [classes, width]; bias only for the linear head.
    public let head: Linear

    /// Reads and checks every canonical tensor `config` needs (any float dtype becomes float32).
    /// Names follow the canonical layout (cls_token, pos_embed, patch_embed.*, blocks.{i}.*, norm.* or fc_norm.*, head.*).
    /// A float32 tensor on a 64-byte boundary (every one in a .gslr) is used in place (`FloatBuffer.init?(viewing:)`):
    /// the weights of a mapped file are held once, its pages made copy-on-write. Others are converted copies.
    public init(config c: ModelConfig, weights: [Tensor]) throws {
        try ViTParameters.validate(c)
        var byName: [String: Tensor] = [:]
        for t in weights {
            if byName.updateValue(t, forKey: t.name) != nil { throw ModelError.duplicateTensor(t.name) }
        }
        var used = Set<String>()
        func take(_ name: String, _ shape: [Int]) throws -> FloatBuffer {
            guard let t = byName[name] else { throw ModelError.missingTensor(name) }
            guard t.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, actual: t.shape) }
            guard t.dtype.isFloatingPoint else {
                throw ModelError.badTensor(tensor: name, problem: "dtype \(t.dtype.rawValue) is not a float type")
            }
            used.insert(name)
            if let view = FloatBuffer(viewing: t) { return view }
            do { return FloatBuffer(try t.floats()) } catch {
                throw ModelError.badTensor(tensor: name, problem: "\(error)")
            }
        }
        func linear(_ name: String, out: Int, in inF: Int, bias: Bool = true, weightShape: [Int]? = nil) throws -> Linear {
            Linear(
                inFeatures: inF, outFeatures: out, weight: try take(name + ".weight", weightShape ?? [out, inF]),
                bias: bias ? try take(name + ".bias", [out]) : nil)
        }
        func layerNorm(_ name: String) throws -> LayerNormParams {
            LayerNormParams(weight: try take(name + ".weight", [c.width]), bias: try take(name + ".bias", [c.width]))
        }
        let w = c.width, inner = c.heads * c.headDim
        clsToken = try take("cls_token", [1, 1, w])
        posEmbed = try take("pos_embed", [1, c.numTokens, w])
        patchEmbed = try linear(
            "patch_embed", out: w, in: c.patchDim,
            weightShape: c.family == .faceViT ? [w, c.patchDim] : [w, c.channels, c.patchSize, c.patchSize])
        blocks = try (0..<c.depth).map { i in
            let b = "blocks.\(i)."
            return BlockParams(
                norm1: try layerNorm(b + "norm1"),
                qkv: try linear(b + "attn.qkv", out: 3 * inner, in: w, bias: c.qkvBias),
                proj: try linear(b + "attn.proj", out: w, in: inner),
                norm2: try layerNorm(b + "norm2"),
                fc1: try linear(b + "mlp.fc1", out: c.mlpWidth, in: w),
                fc2: try linear(b + "mlp.fc2", out: w, in: c.mlpWidth))
        }
        norm = try layerNorm(c.finalNormName)
        head = try linear("head", out: c.numClasses, in: w, bias: c.head.kind == .linear)
        let extra = byName.keys.filter { !used.contains($0) }.sorted()
        if !extra.isEmpty { throw ModelError.unexpectedTensors(extra) }
    }

    public init(
        clsToken: FloatBuffer, posEmbed: FloatBuffer, patchEmbed: Linear, blocks: [BlockParams],
        norm: LayerNormParams, head: Linear
    ) {
        self.clsToken = clsToken
        self.posEmbed = posEmbed
        self.patchEmbed = patchEmbed
        self.blocks = blocks
        self.norm = norm
        self.head = head
    }

    /// Random parameters of the right shapes (benchmarks, gradient checks): linear weights U(±1/√in),
    /// embeddings N-ish small, LayerNorm scale 1 and shift 0.
    public static func random(config c: ModelConfig, seed: UInt64) throws -> ViTParameters {
        try validate(c)
        var rng = SplitMix64(seed: seed)
        func uniform(_ n: Int, _ bound: Float) -> FloatBuffer {
            let b = FloatBuffer(count: n)
            for i in 0..<n { b.pointer[i] = (rng.nextUnitFloat() * 2 - 1) * bound }
            return b
        }
        func linear(out: Int, in inF: Int, bias: Bool = true) -> Linear {
            let bound = 1 / Float(inF).squareRoot()
            return Linear(inFeatures: inF, outFeatures: out, weight: uniform(out * inF, bound), bias: bias ? uniform(out, bound) : nil)
        }
        func norm() -> LayerNormParams {
            let g = FloatBuffer(count: c.width)
            g.fill(1)
            return LayerNormParams(weight: g, bias: FloatBuffer(count: c.width))
        }
        let w = c.width, inner = c.heads * c.headDim
        return ViTParameters(
            clsToken: uniform(w, 0.02), posEmbed: uniform(c.numTokens * w, 0.02),
            patchEmbed: linear(out: w, in: c.patchDim),
            blocks: (0..<c.depth).map { _ in
                BlockParams(
                    norm1: norm(), qkv: linear(out: 3 * inner, in: w, bias: c.qkvBias), proj: linear(out: w, in: inner),
                    norm2: norm(), fc1: linear(out: c.mlpWidth, in: w), fc2: linear(out: w, in: c.mlpWidth))
            },
            norm: norm(), head: linear(out: c.numClasses, in: w, bias: c.head.kind == .linear))
    }

    /// Rejects configs the forward pass cannot run, with caps so a hostile header cannot ask for absurd buffers.
    static func validate(_ c: ModelConfig) throws {
        func need(_ ok: Bool, _ why: @autoclosure () -> String) throws { if !ok { throw ModelError.badConfig(why()) } }
        let cap = 1 << 16
        for (name, v) in [
            ("image_size", c.imageSize), ("patch_size", c.patchSize), ("channels", c.channels),
            ("width", c.width), ("depth", c.depth), ("heads", c.heads), ("head_dim", c.headDim),
            ("mlp_width", c.mlpWidth), ("num_classes", c.numClasses)
        ] {
            try need(v > 0 && v <= cap, "\(name) is \(v), expected 1...\(cap)")
        }
        try need(c.imageSize % c.patchSize == 0, "image_size \(c.imageSize) is not a multiple of patch_size \(c.patchSize)")
        try need(c.numTokens <= cap, "\(c.numTokens) tokens exceed \(cap)")
        try need(c.patchDim <= cap, "a patch of \(c.patchDim) values exceeds \(cap)")
        try need(c.heads * c.headDim <= cap, "heads × head_dim = \(c.heads * c.headDim) exceeds \(cap)")
        try need(c.attentionScale.isFinite && c.attentionScale > 0, "attention_scale \(c.attentionScale) is not a positive number")
        try need(c.layerNormEps.isFinite && c.layerNormEps > 0, "layer_norm_eps \(c.layerNormEps) is not a positive number")
        try need(["cls", "avg"].contains(c.pooling), "pooling \"\(c.pooling)\" is not supported (only \"cls\" and \"avg\")")
        switch c.head.kind {
        case .cosface, .arcface:
            try need(c.head.s.map { $0.isFinite } ?? false, "\(c.head.kind.rawValue) head needs a finite scale s")
            try need(c.head.m.map { $0.isFinite } ?? false, "\(c.head.kind.rawValue) head needs a finite margin m")
        case .linear: break
        }
    }
}
