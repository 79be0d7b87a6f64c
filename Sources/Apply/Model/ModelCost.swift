import Dispatch
import Foundation
import GSLoRAFormat

/// What running a ViT costs, from its config alone: multiply-adds, parameters and the bytes of the buffers the model
/// allocates for a batch (the same sizes `ViTActivations` and the backward pass reserve), so a run can be sized
/// before it starts. Counts are exact for the matrix products; elementwise work is not counted.
public enum ModelCost {
    /// The products of one image, in FLOPs (2 per multiply-add): patch embedding, per block the linear layers,
    /// attention (QKᵀ and PV) and LoRA of rank `r` on fc1 and fc2, and the head.
    struct Parts {
        var patch, linears, attention, lora, head: Double
        init(_ c: ModelConfig, loraRank r: Int) {
            let t = Double(c.numTokens), w = Double(c.width), inner = Double(c.heads * c.headDim), m = Double(c.mlpWidth)
            patch = 2 * Double(c.numPatches) * Double(c.patchDim) * w
            linears = 2 * t * (w * 3 * inner + inner * w + 2 * w * m)
            attention = 2 * 2 * Double(c.heads) * t * t * Double(c.headDim)
            lora = 2 * t * Double(r) * 2 * (w + m)
            head = 2 * w * Double(c.numClasses)
        }
    }

    /// FLOPs of one image's forward pass over every token.
    public static func forwardFLOPs(_ c: ModelConfig, loraRank r: Int = 0) -> Double {
        let p = Parts(c, loraRank: r)
        return p.patch + Double(c.depth) * (p.linears + p.attention + p.lora) + p.head
    }

    /// FLOPs of one image's forward and backward pass. The backward pass takes every product's input gradient
    /// (attention's two products need four), LoRA's factor gradients, and with `allParameters` every weight's
    /// gradient too.
    public static func trainingFLOPs(_ c: ModelConfig, loraRank r: Int, allParameters: Bool) -> Double {
        let p = Parts(c, loraRank: r), d = Double(c.depth)
        let loraOnly = p.patch + 2 * p.head + d * (2 * p.linears + 3 * p.attention + 3 * p.lora)
        return allParameters ? loraOnly + p.patch + p.head + d * p.linears : loraOnly
    }

    /// Parameters of the backbone and head (float32 each).
    public static func parameters(_ c: ModelConfig) -> Int {
        let w = Double(c.width), inner = Double(c.heads * c.headDim), m = Double(c.mlpWidth)
        let qkvBias = c.qkvBias ? 3 * inner : 0
        let block = 4 * w + (w * 3 * inner + qkvBias) + (inner * w + w) + (w * m + m) + (m * w + w)
        let classes = Double(c.numClasses)
        return clamped(
            Double(c.patchDim) * w + 2 * w + Double(c.numTokens) * w + Double(c.depth) * block + 2 * w + classes * w
                + (c.head.kind == .linear ? classes : 0))
    }

    /// LoRA factors on fc1 and fc2 of every block at rank `r`.
    public static func loraParameters(_ c: ModelConfig, rank r: Int) -> Int {
        clamped(Double(c.depth) * Double(r) * 2 * Double(c.width + c.mlpWidth))
    }

    /// Bytes of the activation buffers for a batch (`ViTActivations.floats`), plus the backward pass's scratch when
    /// training; `weightGradients` false: the blocks share the inputs of qkv and proj (`ViT.keepsWeightGradientInputs`).
    public static func activationBytes(_ c: ModelConfig, batch: Int, loraRank r: Int, training: Bool, weightGradients: Bool = true) -> Int {
        // Eval runs a batch in pieces (`ViT.forward`).
        let images = training ? batch : min(batch, max(1, ViT.evalRows / c.numTokens)), ranks = r > 0 ? [r] : []
        var floats = ViTActivations.floats(
            config: c, batch: images, ranks: ranks, training: training, classOnlyLastBlock: true, keepWeightInputs: weightGradients)
        if training { floats += BackwardScratch.floats(c, batch: images, ranks: ranks) }
        return clamped(floats * 4)
    }

    /// A count as an Int, saturating at 10¹⁸ so that sums of a few of them cannot overflow (hostile sizes).
    public static func clamped(_ x: Double) -> Int { x < 1e18 ? Int(x.rounded()) : 1_000_000_000_000_000_000 }
}

extension ModelCost {
    /// The float32 GEMM speed of this machine now, in GFLOP/s: the best of a few 1024×1024×768 products on the
    /// model's BLAS (≈ 0.1 s). It bounds how fast any product-bound step can run.
    public static func measureGEMMSpeed() -> Double {
        let m = 1024, n = 1024, k = 768
        let a = FloatBuffer(count: m * k), b = FloatBuffer(count: n * k), out = FloatBuffer(count: m * n)
        a.fill(0.5)
        b.fill(0.25)
        var best = Double.infinity
        for _ in 0..<4 {
            let start = DispatchTime.now().uptimeNanoseconds
            BLAS.gemm(transB: true, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: k, c: out.pointer, ldc: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return 2 * Double(m * n * k) / best / 1e9
    }
}
