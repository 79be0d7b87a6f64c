import GSLoRAFormat

/// PIL's antialiased resize on 8-bit interleaved pixels (Pillow `libImaging/Resample.c`), BILINEAR or BICUBIC,
/// restricted to the output window that survives the centre crop. Each output pixel depends only on its own row
/// (horizontal pass) or column (vertical pass), so computing just the window gives the same values as resizing
/// everything.
enum Resampler {
    typealias Filter = PreprocessRecord.Interpolation

    /// Fixed-point weight precision of Pillow's 8-bit path: 32 bits − 8 for the sample − 2 for headroom.
    static let precisionBits: Int32 = 22

    /// Pillow's filters: the triangle (support 1) and Keys' cubic with a = −0.5 (support 2), in its operation order.
    @inline(__always)
    static func weight(_ filter: Filter, _ x: Double) -> Double {
        let x = abs(x)
        switch filter {
        case .bilinear:
            return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }

    static func filterSupport(_ filter: Filter) -> Double { filter == .bilinear ? 1 : 2 }

    /// Weights of output positions `range` for an `inSize → outSize` resize, in Pillow's order and rounding
    /// (`precompute_coeffs`, `normalize_coeffs_8bpc`). Returns the number of weights per position (`ksize`);
    /// `bounds[2j]` is the first input index and `bounds[2j+1]` how many inputs output `range.lowerBound + j` uses.
    static func coefficients(_ filter: Filter, inSize: Int, outSize: Int, range: Range<Int>, bounds: inout [Int], weights: inout [Int32]) -> Int {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        // The filter widens by the shrink factor (antialiasing).
        let support = filterSupport(filter) * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        bounds.removeAll(keepingCapacity: true)
        weights.removeAll(keepingCapacity: true)
        bounds.reserveCapacity(2 * range.count)
        weights.reserveCapacity(ksize * range.count)
        var k = [Double](repeating: 0, count: ksize)
        let one = Double(1 << precisionBits)
        let ss = 1 / filterScale
        for xx in range {
            let center = (Double(xx) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)
            let n = min(Int(center + support + 0.5), inSize) - lo
            var total = 0.0
            for x in 0..<n {
                let w = weight(filter, (Double(x + lo) - center + 0.5) * ss)
                k[x] = w
                total += w
            }
            for x in 0..<ksize {
                let v = x < n ? (total != 0 ? k[x] / total : k[x]) : 0
                weights.append(Int32(v < 0 ? v * one - 0.5 : v * one + 0.5))
            }
            bounds.append(lo)
            bounds.append(n)
        }
        return ksize
    }

    /// Resizes `src` (w×h×c) per `layout` and returns the `outHeight × outWidth` window at the crop offset,
    /// as a pointer and row stride in bytes (into `src` itself when nothing needs resampling).
    static func resize(
        _ src: UnsafePointer<UInt8>, width w: Int, height h: Int, channels c: Int, filter: Filter,
        layout L: Preprocessing.Layout, outWidth ow: Int, outHeight oh: Int,
        scratch s: ResampleScratch
    ) -> (base: UnsafePointer<UInt8>, stride: Int) {
        let needH = L.resizedWidth != w, needV = L.resizedHeight != h
        let x0 = L.cropLeft, y0 = L.cropTop
        var kv = 0, kh = 0
        if needV { kv = coefficients(filter, inSize: h, outSize: L.resizedHeight, range: y0..<(y0 + oh), bounds: &s.vBounds, weights: &s.vWeights) }
        if needH { kh = coefficients(filter, inSize: w, outSize: L.resizedWidth, range: x0..<(x0 + ow), bounds: &s.hBounds, weights: &s.hWeights) }
        let rowLen = ow * c

        // Pillow ≥ 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as
        // the width (each pass rounds to 8 bits, so the order shows in the values). Source columns the
        // horizontal pass reads: colLo..<colHi.
        if needH && needV && L.resizedHeight < h && h - L.resizedHeight > 2 * (w - L.resizedWidth) {
            let colLo = s.hBounds[0], colHi = s.hBounds[2 * (ow - 1)] + s.hBounds[2 * (ow - 1) + 1]
            let midLen = (colHi - colLo) * c
            s.mid.reserve(oh * midLen)
            vertical(src + colLo * c, stride: w * c, rowBase: 0, rowLen: midLen, rows: oh, ksize: kv, scratch: s, into: s.mid.pointer)
            s.final.reserve(oh * rowLen)
            horizontal(
                UnsafePointer(s.mid.pointer), stride: midLen, colBase: colLo, rows: oh, channels: c, outWidth: ow, ksize: kh,
                scratch: s, into: s.final.pointer)
            return (UnsafePointer(s.final.pointer), rowLen)
        }

        // Horizontal pass first, over the source rows the vertical pass reads.
        var rowLo = y0, rowHi = y0 + oh
        if needV {
            rowLo = s.vBounds[0]
            rowHi = s.vBounds[2 * (oh - 1)] + s.vBounds[2 * (oh - 1) + 1]
        }
        var mid: UnsafePointer<UInt8>, midStride: Int, midRow0: Int
        if needH {
            midStride = rowLen
            midRow0 = rowLo
            s.mid.reserve((rowHi - rowLo) * midStride)
            horizontal(
                src + rowLo * w * c, stride: w * c, colBase: 0, rows: rowHi - rowLo, channels: c, outWidth: ow, ksize: kh,
                scratch: s, into: s.mid.pointer)
            mid = UnsafePointer(s.mid.pointer)
        } else {
            mid = src + x0 * c
            midStride = w * c
            midRow0 = 0
        }
        guard needV else { return (mid + (y0 - midRow0) * midStride, midStride) }
        s.final.reserve(oh * rowLen)
        vertical(mid, stride: midStride, rowBase: midRow0, rowLen: rowLen, rows: oh, ksize: kv, scratch: s, into: s.final.pointer)
        return (UnsafePointer(s.final.pointer), rowLen)
    }

    /// `rows` rows of `src` (row stride `stride` bytes; its first pixel is source column `colBase`) → `outWidth`
    /// pixels each, by the weights in `hBounds`/`hWeights` (bounds in source columns), into `dst` (dense rows).
    static func horizontal(
        _ src: UnsafePointer<UInt8>, stride: Int, colBase: Int, rows: Int, channels c: Int, outWidth ow: Int,
        ksize kh: Int, scratch s: ResampleScratch, into dst: UnsafeMutablePointer<UInt8>
    ) {
        s.hBounds.withUnsafeBufferPointer { bounds in
            s.hWeights.withUnsafeBufferPointer { weights in
                for r in 0..<rows {
                    let row = src + r * stride
                    let out = dst + r * ow * c
                    for j in 0..<ow {
                        let lo = bounds[2 * j] - colBase, n = bounds[2 * j + 1]
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
    }

    /// Output rows 0..<rows, each `rowLen` bytes, by the weights in `vBounds`/`vWeights` (bounds in source rows;
    /// `src` row 0 is source row `rowBase`), into `dst` (dense rows). Whole rows at a time, accumulating in
    /// Int32 so the inner loop vectorises.
    static func vertical(
        _ src: UnsafePointer<UInt8>, stride: Int, rowBase: Int, rowLen: Int, rows: Int, ksize kv: Int,
        scratch s: ResampleScratch, into dst: UnsafeMutablePointer<UInt8>
    ) {
        s.accumulator.reserve(rowLen)
        let acc = s.accumulator.pointer
        s.vBounds.withUnsafeBufferPointer { bounds in
            s.vWeights.withUnsafeBufferPointer { weights in
                for i in 0..<rows {
                    let lo = bounds[2 * i] - rowBase, n = bounds[2 * i + 1]
                    let kw = weights.baseAddress! + i * kv
                    acc.update(repeating: 1 << (precisionBits - 1), count: rowLen)
                    for t in 0..<n {
                        let row = src + (lo + t) * stride
                        let wt = kw[t]
                        for e in 0..<rowLen { acc[e] &+= Int32(row[e]) &* wt }
                    }
                    let out = dst + i * rowLen
                    for e in 0..<rowLen { out[e] = clip(acc[e]) }
                }
            }
        }
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
