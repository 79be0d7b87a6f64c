import Dispatch
import Foundation
import GSLoRAFormat

/// What running a ViT costs, from its config alone: multiply-adds, parameters and the bytes of the buffers the model
/// allocates for a batch (the same sizes `ViTActivations` and the backward pass reserve), so a run can be sized
/// before it starts. Counts are exact for the matrix products; elementwise work is not counted.
public enum ModelCost {
    /// The products of one image, in FLOPs (2 per multiply-add): the patch embedding, the head, and per block, for
    /// `queries` rows of queries (every token, or the class token alone in a class-only last block): K and V over every
    /// token, the linear layers of the query rows (Q, proj, fc1, fc2), attention (QKᵀ and PV) and LoRA of rank `r` on
    /// fc1 and fc2.
    struct Parts {
        var patch, head, keysValues, linears, attention, lora: Double
        /// Of `linears`, one FFN layer (fc1 and fc2 are the same size); of `lora`, fc1's x·Aᵀ (its input gradient
        /// ∂(x·Aᵀ)·A is as large).
        var ffnLayer, loraFc1Down: Double
        init(_ c: ModelConfig, loraRank r: Int, queries: Int) {
            let t = Double(c.numTokens), n = Double(queries), w = Double(c.width), inner = Double(c.heads) * Double(c.headDim)
            let m = Double(c.mlpWidth), rank = Double(r)
            patch = 2 * Double(c.numPatches) * Double(c.patchDim) * w
            head = 2 * w * Double(c.numClasses)
            keysValues = 2 * t * w * 2 * inner
            linears = 2 * n * (w * inner + inner * w + 2 * w * m)
            attention = 2 * 2 * Double(c.heads) * n * t * Double(c.headDim)
            lora = 2 * n * rank * 2 * (w + m)
            ffnLayer = 2 * n * w * m
            loraFc1Down = 2 * n * rank * w
        }

        /// The parts of a block over every token and of the last block (the class row alone with `classOnlyLastBlock`,
        /// `ViT.allTokensInLastBlock` false, the model's default; mean pooling always runs it on every token).
        static func blocks(_ c: ModelConfig, loraRank r: Int, classOnlyLastBlock: Bool) -> (full: Parts, last: Parts) {
            let classOnly = classOnlyLastBlock && c.pooling == "cls"
            return (Parts(c, loraRank: r, queries: c.numTokens), Parts(c, loraRank: r, queries: classOnly ? 1 : c.numTokens))
        }

        var forward: Double { keysValues + linears + attention + lora }

        /// This block's backward: LoRA only and `lowest` (block 0) stops after the FFN: fc2's input gradient and the
        /// LoRA gradients, no input gradient for fc1 (nor fc1's LoRA). Otherwise every input gradient (attention's two
        /// products need four) and LoRA's, and with `allParameters` every weight gradient.
        func backward(lowest: Bool, allParameters: Bool) -> Double {
            let inputs = !allParameters && lowest ? ffnLayer + 2 * lora - loraFc1Down : keysValues + linears + 2 * attention + 2 * lora
            return inputs + (allParameters ? keysValues + linears : 0)
        }
    }

    /// FLOPs of one image's forward pass; `classOnlyLastBlock`: the last block's queries, attention, proj and FFN run on
    /// the class token alone (K and V on every token), as the model runs unless `ViT.allTokensInLastBlock` is set
    /// (ignored for mean pooling, whose last block runs on every token).
    public static func forwardFLOPs(_ c: ModelConfig, loraRank r: Int = 0, classOnlyLastBlock: Bool = false) -> Double {
        let (full, last) = Parts.blocks(c, loraRank: r, classOnlyLastBlock: classOnlyLastBlock), d = max(0, c.depth)
        return full.patch + full.head + (d > 0 ? Double(d - 1) * full.forward + last.forward : 0)
    }

    /// FLOPs of one image's forward and backward pass, as `ViT.backward` and the loss make them: the head's input
    /// gradient, and down the blocks every product's input gradient and LoRA's factor gradients. LoRA only stops
    /// after block 0's FFN (nothing below needs more). `allParameters` goes down to the patch embedding and adds
    /// every weight's gradient, the head's and the patch embedding's included.
    public static func trainingFLOPs(_ c: ModelConfig, loraRank r: Int, allParameters: Bool, classOnlyLastBlock: Bool = false) -> Double {
        let (full, last) = Parts.blocks(c, loraRank: r, classOnlyLastBlock: classOnlyLastBlock), d = max(0, c.depth)
        var total = forwardFLOPs(c, loraRank: r, classOnlyLastBlock: classOnlyLastBlock) + full.head
        // Without LoRA and without weight gradients nothing below the head is trained.
        guard (allParameters || r > 0) && d > 0 else { return total }
        if d == 1 {
            total += last.backward(lowest: true, allParameters: allParameters)
        } else {
            total += last.backward(lowest: false, allParameters: allParameters)
            total += Double(d - 2) * full.backward(lowest: false, allParameters: allParameters)
            total += full.backward(lowest: true, allParameters: allParameters)
        }
        return allParameters ? total + full.patch + full.head : total
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
    /// training, as the model sizes them (the last block on the class token alone for class-token pooling);
    /// `weightGradients` false: the blocks share the inputs of qkv and proj (`ViT.keepsWeightGradientInputs`).
    public static func activationBytes(_ c: ModelConfig, batch: Int, loraRank r: Int, training: Bool, weightGradients: Bool = true) -> Int {
        // Eval runs a batch in pieces (`ViT.forward`).
        let images = training ? batch : min(batch, max(1, ViT.evalRows / c.numTokens)), ranks = r > 0 ? [r] : []
        var floats = ViTActivations.floats(
            config: c, batch: images, ranks: ranks, training: training, classOnlyLastBlock: c.pooling == "cls",
            keepWeightInputs: weightGradients)
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
