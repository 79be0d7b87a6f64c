import GSLoRAData
import GSLoRAModel

extension ImageSet {
    /// `gather` into a FloatBuffer, which grows only when the batch is bigger than any before.
    public func gather<C: Collection>(_ indices: C, into out: FloatBuffer, labels outLabels: inout [Int]) where C.Element == Int {
        let n = indices.count
        out.reserve(n * imageSize)
        if outLabels.count != n { outLabels = [Int](repeating: 0, count: n) }
        outLabels.withUnsafeMutableBufferPointer { l in gather(indices, into: out.buffer, labels: l) }
    }
}
