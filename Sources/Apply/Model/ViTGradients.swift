/// Gradients of one adapter, shaped like it: per block, ∂L/∂A and ∂L/∂B of fc1 and fc2.
public struct LoRAGradients {
    public let fc1: [LoRAFactors]
    public let fc2: [LoRAFactors]

    /// Zeros shaped like `adapter`.
    public init(like adapter: LoRAAdapter) {
        func zero(_ f: LoRAFactors) -> LoRAFactors {
            LoRAFactors(
                rank: f.rank, inFeatures: f.inFeatures, outFeatures: f.outFeatures,
                a: FloatBuffer(count: f.a.count), b: FloatBuffer(count: f.b.count))
        }
        fc1 = adapter.fc1.map(zero)
        fc2 = adapter.fc2.map(zero)
    }

    public func zero() {
        for f in fc1 + fc2 { f.a.fill(0); f.b.fill(0) }
    }
}

/// What `ViT.backward` accumulates into: LoRA gradients per adapter and, when asked for, the gradients of every
/// backbone parameter (pre-training). Gradients add up over backward calls until `zero()`.
public final class ViTGradients {
    public let lora: [LoRAGradients]
    /// Same shapes as `ViT.parameters`; nil when only LoRA is trained (frozen W: no weight gradients computed).
    public let parameters: ViTParameters?

    public init(model: ViT, parameters wantParameters: Bool) {
        lora = model.adapters.map(LoRAGradients.init(like:))
        parameters = wantParameters ? model.parameters.zerosLike() : nil
    }

    public func zero() {
        lora.forEach { $0.zero() }
        parameters?.allBuffers.forEach { $0.fill(0) }
    }
}

extension ViTParameters {
    /// Zero buffers of the same shapes.
    func zerosLike() -> ViTParameters {
        func z(_ b: FloatBuffer) -> FloatBuffer { FloatBuffer(count: b.count) }
        func lin(_ l: Linear) -> Linear { Linear(inFeatures: l.inFeatures, outFeatures: l.outFeatures, weight: z(l.weight), bias: l.bias.map(z)) }
        func ln(_ n: LayerNormParams) -> LayerNormParams { LayerNormParams(weight: z(n.weight), bias: z(n.bias)) }
        return ViTParameters(
            clsToken: z(clsToken), posEmbed: z(posEmbed), patchEmbed: lin(patchEmbed),
            blocks: blocks.map {
                BlockParams(
                    norm1: ln($0.norm1), qkv: lin($0.qkv), proj: lin($0.proj),
                    norm2: ln($0.norm2), fc1: lin($0.fc1), fc2: lin($0.fc2))
            },
            norm: ln(norm), head: lin(head))
    }

    /// Every buffer, in canonical order (cls, pos, patch embed, blocks, norm, head).
    public var allBuffers: [FloatBuffer] {
        func lin(_ l: Linear) -> [FloatBuffer] { [l.weight] + (l.bias.map { [$0] } ?? []) }
        func ln(_ n: LayerNormParams) -> [FloatBuffer] { [n.weight, n.bias] }
        var out = [clsToken, posEmbed] + lin(patchEmbed)
        for b in blocks { out += ln(b.norm1) + lin(b.qkv) + lin(b.proj) + ln(b.norm2) + lin(b.fc1) + lin(b.fc2) }
        return out + ln(norm) + lin(head)
    }
}
