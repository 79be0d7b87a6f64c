import CGSLoRAKernels

/// Dropout masks from a counter-based hash: element i of call k depends only on (seed, k, i), so masks are
/// reproducible, the generating loop vectorizes, and fused kernels can draw a mask element where they use it
/// instead of reading a stored mask. Mask values are 0 or 1/(1−p) (inverted dropout, as PyTorch).
public struct Dropout: Sendable {
    public let probability: Float
    public let seed: UInt64
    private var calls: UInt64 = 0
    /// The global sample index of each batch row's image (nil: its batch position): data-parallel ranks draw the
    /// masks of the samples they hold, as one process holding the whole batch would.
    var samples: [Int]?

    public init(probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) is outside [0, 1)")
        self.probability = probability
        self.seed = seed
    }

    /// The next call's mask, as a function of the element index.
    public mutating func nextMask() -> DropoutMask {
        calls &+= 1
        var mixer = SplitMix64(seed: seed ^ (calls &* 0xD1B5_4A32_D192_ED03))
        let key = UInt32(truncatingIfNeeded: mixer.next()), key2 = UInt32(truncatingIfNeeded: mixer.next())
        // Keep an element when its 24-bit hash is ≥ p·2^24.
        let threshold = UInt32((Double(probability) * 16_777_216).rounded())
        return DropoutMask(key: key, key2: key2, threshold: threshold, keep: 1 / (1 - probability))
    }

    /// The next call's mask laid over buffer rows `rowStride` elements apart, `rowsPerSample` rows to an image.
    mutating func nextRows(rowStride: Int, rowsPerSample: Int) -> RowDropout {
        RowDropout(mask: nextMask(), rowStride: rowStride, rowsPerSample: rowsPerSample, samples: samples)
    }

}

/// One dropout call's mask: element i is 0 or 1/(1−p), computed from i alone. Loops that call `value(at:)` vectorize
/// only when the index arithmetic cannot trap: write `base &+ j`, not `base + j`.
public struct DropoutMask: Sendable {
    /// The hash's keys, the 24-bit threshold and the kept value, as CGSLoRAKernels' fused kernels take them.
    let c: gk_mask

    init(key: UInt32, key2: UInt32, threshold: UInt32, keep: Float) {
        c = gk_mask(key: key, key2: key2, threshold: threshold, keep: keep)
    }

    /// Element i: 0 when a 32-bit hash of (i, keys) falls below the threshold in its top 24 bits, else 1/(1−p).
    @inline(__always)
    public func value(at i: Int) -> Float { gk_mask_value(c, i) }
}

/// A dropout mask laid over [rows, cols] buffer rows: row r, column j is element r·rowStride + j. A stride larger than
/// the row length picks rows out of a larger draw (the class rows of a mask drawn over every token, so the class-only
/// last block drops exactly what the all-token path drops). Nothing is stored: the backward pass recomputes it.
/// With `samples`, image s's rows are drawn where image samples[s]'s rows lie in the whole batch's draw.
struct RowDropout: Sendable {
    let mask: DropoutMask
    let rowStride: Int
    let rowsPerSample: Int
    let samples: [Int]?

    @inline(__always)
    func start(of row: Int) -> Int {
        guard let samples else { return row &* rowStride }
        let s = row / rowsPerSample
        return (row &+ (samples[s] &- s) &* rowsPerSample) &* rowStride
    }
}
