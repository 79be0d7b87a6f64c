import GSLoRACluster
import GSLoRAModel

/// Evaluation split across the ranks of a communicator: each rank predicts its contiguous share of the images and
/// the predictions are summed (every other rank contributes zeros at an image), so every rank ends with the same
/// predictions, and so the same counts, as one process.
extension BatchedForward {
    public static func predict(
        _ model: ViT, images: UnsafeBufferPointer<Float>, labels: [Int], margin: Bool, batchSize: Int = 64,
        communicator: Communicator, progress: ((Int, Int) -> Void)? = nil
    ) throws -> [Int] {
        guard communicator.size > 1 else {
            return try predict(model, images: images, labels: labels, margin: margin, batchSize: batchSize, progress: progress)
        }
        let c = model.config
        let per = c.channels * c.imageSize * c.imageSize
        guard images.count == labels.count * per else {
            throw ModelError.badInput("\(images.count) floats for \(labels.count) images of \(c.channels)×\(c.imageSize)×\(c.imageSize)")
        }
        let mine = communicator.shard(labels.count)
        let local = try predict(
            model, images: UnsafeBufferPointer(rebasing: images[(mine.lowerBound * per)..<(mine.upperBound * per)]),
            labels: Array(labels[mine]), margin: margin, batchSize: batchSize,
            progress: progress.map { p in { done, _ in p(done, mine.count) } })
        // Class indices are exact in a Double, and each image has one non-zero contribution.
        var all = [Double](repeating: 0, count: labels.count)
        for (i, p) in local.enumerated() { all[mine.lowerBound + i] = Double(p) }
        try communicator.allreduceSum(&all)
        return all.map { Int($0) }
    }
}
