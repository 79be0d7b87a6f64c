import ArgumentParser
import GSLoRAFormat
import GSLoRAModel

/// The models of `gslora-bench sizes`, with the configs the converter writes for them (GS-LoRA's face model as the
/// trainer builds it; timm's vit_*_patch16_224 as `ModelFamilies` reads them: linear head, 1000 classes,
/// head_dim^-0.5, LayerNorm eps 1e-6, qkv bias, class-token pooling).
enum BenchModel: String, CaseIterable, ExpressibleByArgument {
    case p8s8
    case vitS16 = "vit-s16"
    case vitB16 = "vit-b16"
    case vitL16 = "vit-l16"

    var config: ModelConfig {
        switch self {
        case .p8s8:
            ModelConfig(
                family: .faceViT, imageSize: 112, patchSize: 8, width: 512, depth: 6, heads: 8, headDim: 64,
                mlpWidth: 2048, numClasses: 100, head: .cosface, attentionScale: 1 / 512.0.squareRoot(),
                layerNormEps: 1e-5, qkvBias: false)
        case .vitS16: Self.timm(width: 384, depth: 12, heads: 6)
        case .vitB16: Self.timm(width: 768, depth: 12, heads: 12)
        case .vitL16: Self.timm(width: 1024, depth: 24, heads: 16)
        }
    }

    var title: String {
        switch self {
        case .p8s8: "face ViT-P8S8 (112 px, width 512, depth 6, 8 heads, 100 classes, CosFace)"
        case .vitS16: "timm vit_small_patch16_224 (width 384, depth 12, 6 heads)"
        case .vitB16: "timm vit_base_patch16_224 (width 768, depth 12, 12 heads)"
        case .vitL16: "timm vit_large_patch16_224 (width 1024, depth 24, 16 heads)"
        }
    }

    private static func timm(width: Int, depth: Int, heads: Int) -> ModelConfig {
        ModelConfig(
            family: .timmViT, imageSize: 224, patchSize: 16, width: width, depth: depth, heads: heads, headDim: 64,
            mlpWidth: 4 * width, numClasses: 1000, head: .linear, attentionScale: 0.125, layerNormEps: 1e-6, qkvBias: true)
    }
}

/// The work a size case times: `forward` (eval, batch 32), `gslora` (4 retain + 4 forget images, rank-8 LoRA on every
/// fc1/fc2, block groups) and `allparams` (the same 8 images, every parameter trained).
enum BenchCase: String, CaseIterable, ExpressibleByArgument {
    case forward, gslora, allparams

    var title: String {
        switch self {
        case .forward: "forward b32"
        case .gslora: "GS-LoRA step 4+4"
        case .allparams: "all-params step 8"
        }
    }
}
