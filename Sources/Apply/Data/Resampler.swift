/// PIL's antialiased bilinear resize on 8-bit interleaved pixels (Pillow `libImaging/Resample.c`), restricted to
/// the output window that survives the centre crop. Each output pixel depends only on its own row (horizontal
/// pass) or column (vertical pass), so computing just the window gives the same values as resizing everything.
enum Resampler {
    /// Fixed-point weight precision of Pillow's 8-bit path: 32 bits − 8 for the sample − 2 for headroom.
    static let precisionBits: Int32 = 22

    /// Weights of output positions `range` for an `inSize → outSize` resize, in Pillow's order and rounding.
    /// Returns the number of weights per position (`ksize`); `bounds[2j]` is the first input index and
    /// `bounds[2j+1]` how many inputs output `range.lowerBound + j` uses.
    static func coefficients(inSize: Int, outSize: Int, range: Range<Int>, bounds: inout [Int], weights: inout [Int32]) -> Int {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale          // the triangle filter's support is 1
        let ksize = Int(support.rounded(.up)) * 2 + 1
        bounds.removeAll(keepingCapacity: true)
        weights.removeAll(keepingCapacity: true)
        bounds.reserveCapacity(2 * range.count)
        weights.reserveCapacity(ksize * range.count)
        var k = [Double](repeating: 0, count: ksize)
        let one = Double(1 << precisionBits)
        for xx in range {
            let center = (Double(xx) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)
            let n = min(Int(center + support + 0.5), inSize) - lo
            var total = 0.0
            for x in 0..<n {
                let w = max(0, 1 - abs((Double(x + lo) - center + 0.5) / filterScale))
                k[x] = w
                total += w
            }
            for x in 0..<ksize {
                let v = x < n && total != 0 ? k[x] / total : 0
                weights.append(Int32(v < 0 ? v * one - 0.5 : v * one + 0.5))
            }
            bounds.append(lo)
            bounds.append(n)
        }
        return ksize
    }

    /// Resizes `src` (w×h×c) per `layout` and returns the `outHeight × outWidth` window at the crop offset,
    /// as a pointer and row stride in bytes (into `src` itself when nothing needs resampling).
    static func resize(_ src: UnsafePointer<UInt8>, width w: Int, height h: Int, channels c: Int,
                       layout L: Preprocessing.Layout, outWidth ow: Int, outHeight oh: Int,
                       scratch s: ResampleScratch) -> (base: UnsafePointer<UInt8>, stride: Int) {
        let needH = L.resizedWidth != w, needV = L.resizedHeight != h
        let x0 = L.cropLeft, y0 = L.cropTop

        // Source rows the vertical pass reads.
        var rowLo = y0, rowHi = y0 + oh
        var kv = 0
        if needV {
            kv = coefficients(inSize: h, outSize: L.resizedHeight, range: y0..<(y0 + oh), bounds: &s.vBounds, weights: &s.vWeights)
            rowLo = s.vBounds[0]
            rowHi = s.vBounds[2 * (oh - 1)] + s.vBounds[2 * (oh - 1) + 1]
        }

        // Horizontal pass: rows rowLo..<rowHi, output columns x0..<x0+ow.
        var mid: UnsafePointer<UInt8>, midStride: Int, midRow0: Int
        if needH {
            let kh = coefficients(inSize: w, outSize: L.resizedWidth, range: x0..<(x0 + ow), bounds: &s.hBounds, weights: &s.hWeights)
            midStride = ow * c
            midRow0 = rowLo
            s.mid.reserve((rowHi - rowLo) * midStride)
            let dst = s.mid.pointer
            s.hBounds.withUnsafeBufferPointer { bounds in
                s.hWeights.withUnsafeBufferPointer { weights in
                    for r in rowLo..<rowHi {
                        let row = src + r * w * c
                        let out = dst + (r - rowLo) * midStride
                        for j in 0..<ow {
                            let lo = bounds[2 * j], n = bounds[2 * j + 1]
                            let kw = weights.baseAddress! + j * kh
                            for ch in 0..<c {
                                var acc: Int32 = 1 << (precisionBits - 1)
                                var p = row + lo * c + ch
                                for t in 0..<n {
                                    acc &+= Int32(p.pointee) &* kw[t]
                                    p += c
                                }
                                out[j * c + ch] = clip(acc)
                            }
                        }
                    }
                }
            }
            mid = UnsafePointer(dst)
        } else {
            mid = src + x0 * c
            midStride = w * c
            midRow0 = 0
        }

        guard needV else { return (mid + (y0 - midRow0) * midStride, midStride) }

        // Vertical pass: whole rows at a time, accumulating in Int32 so the inner loop vectorises.
        let rowLen = ow * c
        s.final.reserve(oh * rowLen)
        s.accumulator.reserve(rowLen)
        let acc = s.accumulator.pointer
        s.vBounds.withUnsafeBufferPointer { bounds in
            s.vWeights.withUnsafeBufferPointer { weights in
                for i in 0..<oh {
                    let lo = bounds[2 * i] - midRow0, n = bounds[2 * i + 1]
                    let kw = weights.baseAddress! + i * kv
                    acc.update(repeating: 1 << (precisionBits - 1), count: rowLen)
                    for t in 0..<n {
                        let row = mid + (lo + t) * midStride
                        let wt = kw[t]
                        for e in 0..<rowLen { acc[e] &+= Int32(row[e]) &* wt }
                    }
                    let out = s.final.pointer + i * rowLen
                    for e in 0..<rowLen { out[e] = clip(acc[e]) }
                }
            }
        }
        return (UnsafePointer(s.final.pointer), rowLen)
    }

    @inline(__always)
    static func clip(_ acc: Int32) -> UInt8 {
        let v = acc >> precisionBits
        return UInt8(truncatingIfNeeded: v < 0 ? 0 : (v > 255 ? 255 : v))
    }
}

/// Reusable buffers for one thread's resizing.
final class ResampleScratch {
    let gray = Scratch<UInt8>()
    let mid = Scratch<UInt8>()
    let final = Scratch<UInt8>()
    let accumulator = Scratch<Int32>()
    var hBounds: [Int] = []
    var hWeights: [Int32] = []
    var vBounds: [Int] = []
    var vWeights: [Int32] = []
}

/// A growable uninitialised-on-growth buffer; `reserve` reallocates only when asked for more than it has.
final class Scratch<T> {
    private(set) var pointer: UnsafeMutablePointer<T>
    private var capacity = 0

    init() { pointer = .allocate(capacity: 1) }

    deinit { pointer.deallocate() }

    func reserve(_ n: Int) {
        guard n > capacity else { return }
        pointer.deallocate()
        pointer = .allocate(capacity: n)
        capacity = n
    }
}
