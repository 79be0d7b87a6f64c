import GSLoRAModel

/// Runs many images through a model in batches. The images are read in place from one contiguous N×C×H×W
/// buffer and the model reuses its activation buffers, so a run allocates only its outputs.
public enum BatchedForward {
    /// Row-major [count, classes] logits without margin (s·cos for CosFace/ArcFace, linear logits otherwise) and,
    /// with `embeddings`, the pooled normalised class-token rows [count, width]. `progress(done, total)` is called
    /// after every batch.
    public static func run(
        _ model: ViT, images: UnsafeBufferPointer<Float>, count: Int, embeddings: Bool = false, batchSize: Int = 64,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> (logits: [Float], embeddings: [Float]?) {
        let c = model.config
        let per = c.channels * c.imageSize * c.imageSize
        guard batchSize > 0 else { throw ModelError.badInput("batch size \(batchSize) is not positive") }
        guard images.count == count * per else {
            throw ModelError.badInput("\(images.count) floats for \(count) images of \(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
        let k = c.numClasses, w = c.width
        var logits = [Float](repeating: 0, count: count * k)
        var emb = [Float](repeating: 0, count: embeddings ? count * w : 0)
        var start = 0
        while start < count {
            let n = min(batchSize, count - start)
            let r = try model.forward(images: UnsafeBufferPointer(rebasing: images[(start * per)..<((start + n) * per)]), batch: n)
            logits.replaceSubrange((start * k)..<((start + n) * k), with: r.logits)
            if embeddings { emb.replaceSubrange((start * w)..<((start + n) * w), with: r.embeddings) }
            start += n
            progress?(start, count)
        }
        return (logits, embeddings ? emb : nil)
    }

    /// Predicted class per image: the first maximal logit (as torch.max). With `margin`, the CosFace/ArcFace
    /// margin is applied to each image's true label first (spec/TRAINING.md §A.8: the official face numbers count an
    /// image as correct only if cos_y − m beats every other cosine); a linear head has no margin and ignores it.
    public static func predict(
        _ model: ViT, images: UnsafeBufferPointer<Float>, labels: [Int], margin: Bool, batchSize: Int = 64,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> [Int] {
        let c = model.config, k = c.numClasses
        let per = c.channels * c.imageSize * c.imageSize, count = labels.count
        guard batchSize > 0 else { throw ModelError.badInput("batch size \(batchSize) is not positive") }
        guard images.count == count * per else {
            throw ModelError.badInput("\(images.count) floats for \(count) images of \(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
        var predictions = [Int](repeating: 0, count: count)
        var start = 0
        while start < count {
            let n = min(batchSize, count - start)
            let batchLabels = Array(labels[start..<(start + n)])
            let r = try model.forward(
                images: UnsafeBufferPointer(rebasing: images[(start * per)..<((start + n) * per)]), batch: n,
                labels: margin ? batchLabels : nil)
            let logits = margin ? (r.marginLogits ?? r.logits) : r.logits
            for b in 0..<n { predictions[start + b] = argmax(logits, row: b, width: k) }
            start += n
            progress?(start, count)
        }
        return predictions
    }

    /// Index of the first largest value of row `row`.
    public static func argmax(_ values: [Float], row: Int, width: Int) -> Int {
        var best = 0
        let base = row * width
        for j in 1..<width where values[base + j] > values[base + best] { best = j }
        return best
    }

    /// The k largest entries of a row (ties: lower index first) with their softmax probabilities over the row.
    public static func top(_ values: [Float], row: Int, width: Int, k: Int) -> [(index: Int, value: Float, probability: Double)] {
        let base = row * width
        let rowValues = Array(values[base..<(base + width)])
        let m = Double(rowValues.max() ?? 0)
        var z = 0.0
        for v in rowValues { z += exp(Double(v) - m) }
        let order = rowValues.indices.sorted { (i: Int, j: Int) -> Bool in
            rowValues[i] != rowValues[j] ? rowValues[i] > rowValues[j] : i < j
        }
        return order.prefix(max(0, k)).map { i in (index: i, value: rowValues[i], probability: exp(Double(rowValues[i]) - m) / z) }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
