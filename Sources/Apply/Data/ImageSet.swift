import GSLoRAFormat

/// A labelled set of images held as one float32 N×C×H×W array (PyTorch layout), ready for batching.
/// Labels are class indices into `classNames`; `paths` names the source file of each image when there is one.
public struct ImageSet: @unchecked Sendable {
    /// float32, shape [N, C, H, W].
    public let images: Tensor
    public let labels: [Int]
    public let classNames: [String]
    public let paths: [String]?

    public init(images: Tensor, labels: [Int], classNames: [String], paths: [String]? = nil) throws {
        guard images.dtype == .f32, images.shape.count == 4 else {
            throw DataError.mismatch(what: "image set", problem: "images must be float32 [N, C, H, W], got \(images.dtype.rawValue) \(images.shape)")
        }
        guard images.data.count == images.count * 4 else {
            throw DataError.mismatch(what: "image set", problem: "\(images.data.count) bytes do not hold float32 \(images.shape)")
        }
        guard labels.count == images.shape[0] else {
            throw DataError.mismatch(what: "image set", problem: "\(labels.count) labels for \(images.shape[0]) images")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classNames.count }) {
            throw DataError.mismatch(what: "image set", problem: "label \(labels[bad]) of image \(bad) is outside 0..<\(classNames.count)")
        }
        if let paths, paths.count != labels.count {
            throw DataError.mismatch(what: "image set", problem: "\(paths.count) paths for \(labels.count) images")
        }
        guard images.data.buffer.baseAddress.map({ Int(bitPattern: $0) % 4 == 0 }) ?? true else {
            throw DataError.mismatch(what: "image set", problem: "image data is not 4-byte aligned")
        }
        self.init(validated: images, labels: labels, classNames: classNames, paths: paths)
    }

    init(validated images: Tensor, labels: [Int], classNames: [String], paths: [String]?) {
        self.images = images
        self.labels = labels
        self.classNames = classNames
        self.paths = paths
    }

    public var count: Int { images.shape[0] }
    public var channels: Int { images.shape[1] }
    public var height: Int { images.shape[2] }
    public var width: Int { images.shape[3] }
    /// Floats per image: C × H × W.
    public var imageSize: Int { channels * height * width }

    /// All pixels, image after image. The pointer is valid while this set (or a copy) is alive: Swift may end a
    /// local's lifetime at its last use, so prefer `withPixels` when the set is not used afterwards.
    public var pixels: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: images.data.buffer.baseAddress?.assumingMemoryBound(to: Float.self), count: count * imageSize)
    }

    /// Runs `body` on all pixels while the storage is certainly alive.
    public func withPixels<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(images.data.owner) { try body(pixels) }
    }

    /// The C×H×W floats of image `i` (valid while the set is alive, as `pixels`).
    public func image(_ i: Int) -> UnsafeBufferPointer<Float> {
        precondition(i >= 0 && i < count, "image index \(i) out of 0..<\(count)")
        return UnsafeBufferPointer(rebasing: pixels[(i * imageSize)..<((i + 1) * imageSize)])
    }

    /// Copies the images at `indices` (in that order) into `into` (batch × C × H × W) and, if given, their labels
    /// into `labels`. Allocates nothing; the buffers must hold at least `indices.count` images / labels.
    public func gather<C: Collection>(
        _ indices: C, into out: UnsafeMutableBufferPointer<Float>,
        labels outLabels: UnsafeMutableBufferPointer<Int>? = nil
    ) where C.Element == Int {
        let n = indices.count, size = imageSize
        precondition(out.count >= n * size, "batch buffer holds \(out.count) floats, \(n) images need \(n * size)")
        precondition(outLabels.map { $0.count >= n } ?? true, "label buffer holds \(outLabels?.count ?? 0), need \(n)")
        guard n > 0 else { return }
        let src = pixels.baseAddress!
        var k = 0
        for i in indices {
            precondition(i >= 0 && i < count, "image index \(i) out of 0..<\(count)")
            (out.baseAddress! + k * size).update(from: src + i * size, count: size)
            outLabels?[k] = labels[i]
            k += 1
        }
    }

    /// `gather` into arrays, reusing their storage when it is already the right size.
    public func gather<C: Collection>(_ indices: C, into out: inout [Float], labels outLabels: inout [Int]) where C.Element == Int {
        let n = indices.count
        if out.count != n * imageSize { out = [Float](repeating: 0, count: n * imageSize) }
        if outLabels.count != n { outLabels = [Int](repeating: 0, count: n) }
        out.withUnsafeMutableBufferPointer { o in
            outLabels.withUnsafeMutableBufferPointer { l in gather(indices, into: o, labels: l) }
        }
    }

    /// Indices of the images of each class: `indicesByClass[k]` lists class k's images in set order.
    public var indicesByClass: [[Int]] {
        var result = [[Int]](repeating: [], count: classNames.count)
        for (i, y) in labels.enumerated() { result[y].append(i) }
        return result
    }

    /// Indices (in set order) of the images whose label is in `classes`.
    public func indices<S: Sequence>(ofClasses classes: S) -> [Int] where S.Element == Int {
        var wanted = [Bool](repeating: false, count: classNames.count)
        for c in classes where c >= 0 && c < classNames.count { wanted[c] = true }
        return labels.indices.filter { wanted[labels[$0]] }
    }

    /// A new set of the images at `indices` (copied, in that order). Labels and class names are kept as they are,
    /// so class k stays class k (spec/TRAINING.md §A.6: labels stay the original indices).
    public func subset<C: Collection>(indices: C) -> ImageSet where C.Element == Int {
        let n = indices.count
        let owner = ByteOwner.allocate(n * imageSize * 4)
        let out = UnsafeMutableBufferPointer(
            start: UnsafeMutableRawPointer(mutating: owner.base.baseAddress!).assumingMemoryBound(to: Float.self),
            count: n * imageSize)
        gather(indices, into: out)
        let tensor = Tensor(name: images.name, dtype: .f32, shape: [n, channels, height, width], data: Bytes(owner: owner))
        // Every part was validated for the whole set, so the subset is valid too.
        return ImageSet(
            validated: tensor, labels: indices.map { labels[$0] }, classNames: classNames,
            paths: paths.map { p in indices.map { p[$0] } })
    }

    /// The images of the classes in `classes`, in set order, labels unchanged.
    public func subset<S: Sequence>(classes: S) -> ImageSet where S.Element == Int {
        subset(indices: indices(ofClasses: classes))
    }
}

/// Allocates float32 [n, c, h, w] storage (64-byte aligned, zeroed) and returns it with a pointer for filling.
func allocateImages(_ n: Int, _ c: Int, _ h: Int, _ w: Int, name: String) -> (Tensor, UnsafeMutablePointer<Float>) {
    let owner = ByteOwner.allocate(n * c * h * w * 4)
    let p = UnsafeMutableRawPointer(mutating: owner.base.baseAddress!).assumingMemoryBound(to: Float.self)
    return (Tensor(name: name, dtype: .f32, shape: [n, c, h, w], data: Bytes(owner: owner)), p)
}
