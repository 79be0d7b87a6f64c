import GSLoRAModel

/// Every training-side draw (class orders other than the hard-coded one, subsets, few-shot picks, loader shuffles)
/// uses Apply's SplitMix64 with the draws below. PyTorch's and CPython's generators are not reproduced; the same
/// seed gives the same draws on every platform and Swift version, because the bounded draw and the shuffle are
/// written out here rather than taken from the standard library (whose algorithms may change).
extension SplitMix64 {
    /// An independent generator for component `stream` of a run seeded with `seed` (retain loader, forget loader, …):
    /// the first output of SplitMix64(seed ^ stream·0xD1B54A32D192ED03) becomes the new seed.
    public init(seed: UInt64, stream: UInt64) {
        var g = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        self.init(seed: g.next())
    }

    /// Uniform in 0..<n (n > 0) by rejection: draws at or above the largest multiple of n are redrawn.
    public mutating func index(below n: Int) -> Int {
        precondition(n > 0, "index(below: \(n)): the bound must be positive")
        let un = UInt64(n)
        let limit = (UInt64.max / un) * un
        var x = next()
        while x >= limit { x = next() }
        return Int(x % un)
    }

    /// Fisher–Yates from the back: for i = n−1 … 1 swap a[i] with a[index(below: i+1)].
    public mutating func fisherYates<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = index(below: i + 1)
            if i != j { a.swapAt(i, j) }
        }
    }

    /// k distinct elements of `a` in draw order (a partial Fisher–Yates from the front).
    public mutating func draw<T>(_ a: [T], count k: Int) -> [T] {
        var pool = a
        let k = min(max(k, 0), pool.count)
        for i in 0..<k {
            let j = i + index(below: pool.count - i)
            if i != j { pool.swapAt(i, j) }
        }
        return Array(pool[0..<k])
    }
}
