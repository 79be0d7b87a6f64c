import Foundation

extension ViT {
    /// The classifier on the embeddings: CosFace/ArcFace (normalised embedding against normalised rows, scale s,
    /// margin m on the label column when labels are given) or a linear head with bias.
    func head(batch: Int, labels: [Int]?, acts: ViTActivations) -> (logits: [Float], margin: [Float]?) {
        let c = config, w = c.width, k = c.numClasses, head = parameters.head
        switch c.head.kind {
        case .linear:
            var logits = [Float](repeating: 0, count: batch * k)
            logits.withUnsafeMutableBufferPointer { out in
                BLAS.gemm(
                    transB: true, m: batch, n: k, k: w, a: acts.embedding.pointer, lda: w, b: head.weight.pointer,
                    ldb: w, c: out.baseAddress!, ldc: k)
                if let bias = head.bias { Kernels.addBias(out.baseAddress!, rows: batch, cols: k, bias: bias.pointer) }
            }
            return (logits, nil)
        case .cosface, .arcface:
            // F.normalize: x / max(‖x‖, 1e-12).
            ViT.normalizeRows(head.weight.pointer, rows: k, cols: w, out: acts.unitHead.pointer, norms: acts.headNorm.pointer)
            ViT.normalizeRows(
                acts.embedding.pointer, rows: batch, cols: w, out: acts.unitEmbedding.pointer,
                norms: acts.embeddingNorm.pointer)
            BLAS.gemm(
                transB: true, m: batch, n: k, k: w, a: acts.unitEmbedding.pointer, lda: w, b: acts.unitHead.pointer,
                ldb: w, c: acts.cosine.pointer, ldc: k)
            let s = Float(c.head.s ?? 0), m = Float(c.head.m ?? 0)
            let cosine = acts.cosine.array
            let logits = cosine.map { s * $0 }
            guard let labels else { return (logits, nil) }
            var margin = logits
            for (b, y) in labels.enumerated() {
                let cy = cosine[b * k + y]
                margin[b * k + y] = c.head.kind == .cosface ? s * (cy - m) : s * ViT.arcMargin(cy, m)
            }
            return (logits, margin)
        }
    }

    /// ArcFace's target-class value (easy_margin false): cos(θ+m) when θ+m < π, else the linear fallback
    /// cos − m·sin(π−m). sinθ is not clamped, as in the reference.
    static func arcMargin(_ cosine: Float, _ m: Float) -> Float {
        let md = Double(m)
        let sine = (1 - cosine * cosine).squareRoot()
        let phi = cosine * Float(Foundation.cos(md)) - sine * Float(Foundation.sin(md))
        let threshold = Float(Foundation.cos(Double.pi - md)), fallback = Float(Foundation.sin(Double.pi - md) * md)
        return cosine > threshold ? phi : cosine - fallback
    }

    static func normalizeRows(
        _ x: UnsafePointer<Float>, rows: Int, cols: Int, out: UnsafeMutablePointer<Float>,
        norms: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let row = x + r * cols, o = out + r * cols
            let n = max(Kernels.sumSquaredDeviation(row, cols, 0).squareRoot(), 1e-12)
            norms[r] = n
            for j in 0..<cols { o[j] = row[j] / n }
        }
    }
}
