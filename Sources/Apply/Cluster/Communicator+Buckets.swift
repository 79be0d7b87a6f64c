extension Communicator {
    /// Sums every buffer over the ranks in place, packed into few large allreduces of at most `bucketFloats` floats
    /// each (one call per tensor would pay the network latency hundreds of times per step; one call for a whole
    /// model would need a second copy of it). A tensor larger than a bucket goes alone, in place.
    public func allreduceSum(_ buffers: [UnsafeMutableBufferPointer<Float>], bucketFloats: Int = 1 << 22) throws {
        guard size > 1 else { return }
        var packed = [Float]()
        var pending: [UnsafeMutableBufferPointer<Float>] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            try allreduceSum(&packed)
            var at = 0
            for b in pending {
                packed.withUnsafeBufferPointer { b.baseAddress!.update(from: $0.baseAddress! + at, count: b.count) }
                at += b.count
            }
            packed.removeAll(keepingCapacity: true)
            pending.removeAll()
        }
        for b in buffers where !b.isEmpty {
            if b.count >= bucketFloats {
                try allreduceSum(b)
                continue
            }
            if packed.count + b.count > bucketFloats { try flush() }
            packed.append(contentsOf: UnsafeBufferPointer(b))
            pending.append(b)
        }
        try flush()
    }
}
