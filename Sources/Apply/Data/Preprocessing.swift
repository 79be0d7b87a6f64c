import GSLoRAFormat

/// How decoded 8-bit images become model input: channel conversion, resize, centre crop, [0,1] scaling and
/// optional per-channel normalisation, written as float32 C×H×W (PyTorch layout).
///
/// The reference pipeline is torchvision on PIL images (ImageFolder's loader, `Resize`, `CenterCrop`, `ToTensor`,
/// `Normalize`; timm's eval transform is the same), and this reproduces it bit for bit on 8-bit input (checked
/// against Pillow on random images, Tests/Fixtures/preprocess/resample.json):
/// - Resize is PIL's `Image.resize(..., BILINEAR or BICUBIC)`: a separable filter (triangle, or Keys' cubic with
///   a = −0.5) whose support widens by the scale factor when shrinking (antialiasing; torchvision's
///   `antialias=True` tensor path uses the same weights in float), with 22-bit fixed-point weights, a horizontal
///   pass then a vertical pass, each rounded and clipped to 8 bits (vertical first when the height shrinks by more
///   than twice as many pixels as the width, as Pillow ≥ 13 does). A pass is skipped when its size is unchanged,
///   so an image already at the target size passes through untouched.
/// - `resizeShortSide(s, crop: c)`: the short side becomes s, the long side `⌊s·long/short⌋`; the crop offset is
///   Python's `round((size − c) / 2)` (half to even). Only the cropped part of the resized image is computed.
/// - Channel conversion happens before resizing, like `Image.convert`: gray → RGB replicates the value;
///   RGB → gray is PIL's `L = (19595 R + 38470 G + 7471 B + 32768) >> 16`.
/// - Scaling is `Float(v) / 255` and normalisation `(x − mean) / std` in float32, as `ToTensor` and `Normalize` do.
public struct Preprocessing: Equatable, Sendable {
    public enum Geometry: Equatable, Sendable {
        /// torchvision `Resize(size)` then `CenterCrop(crop)`.
        case resizeShortSide(Int, crop: Int)
        /// Resize straight to height × width, ignoring the aspect ratio (torchvision `Resize((h, w))`); for small
        /// data sets whose images are all one size, e.g. Fashion-MNIST 28×28 → 32×32.
        case direct(height: Int, width: Int)
    }

    public typealias Interpolation = PreprocessRecord.Interpolation

    public var geometry: Geometry
    /// Channels of the output: 1 (gray) or 3 (RGB).
    public var channels: Int
    public var mean: [Float]?
    public var std: [Float]?
    public var interpolation: Interpolation

    public init(geometry: Geometry, channels: Int, mean: [Float]? = nil, std: [Float]? = nil, interpolation: Interpolation = .bilinear) {
        self.geometry = geometry
        self.channels = channels
        self.mean = mean
        self.std = std
        self.interpolation = interpolation
    }

    /// A stored record's pipeline for a model of `channels` channels (mean and std rounded to float32, as
    /// `Normalize` rounds them to the tensor's dtype).
    public init(record r: PreprocessRecord, channels: Int) {
        self.init(
            geometry: .resizeShortSide(r.resize, crop: r.crop), channels: channels, mean: r.mean.map { $0.map(Float.init) },
            std: r.std.map { $0.map(Float.init) }, interpolation: r.interpolation)
    }

    /// Resize straight to size × size, values in [0, 1].
    public static func direct(size: Int, channels: Int) -> Preprocessing {
        Preprocessing(geometry: .direct(height: size, width: size), channels: channels)
    }

    /// torchvision's ImageNet evaluation transform (spec/TRAINING.md §A.1.3): short side 256, centre crop 224, ImageNet mean/std.
    public static func imageNet(resize: Int = 256, crop: Int = 224) -> Preprocessing {
        Preprocessing(
            geometry: .resizeShortSide(resize, crop: crop), channels: 3,
            mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
    }

    public var outputHeight: Int {
        switch geometry {
        case let .resizeShortSide(_, crop): return crop
        case let .direct(h, _): return h
        }
    }

    public var outputWidth: Int {
        switch geometry {
        case let .resizeShortSide(_, crop): return crop
        case let .direct(_, w): return w
        }
    }

    /// Floats per output image: channels × height × width.
    public var valuesPerImage: Int { channels * outputHeight * outputWidth }

    /// Largest output side accepted.
    public static let maxSide = 16384

    public func validate() throws {
        guard channels == 1 || channels == 3 else { throw DataError.badPreprocessing(problem: "channels must be 1 or 3, not \(channels)") }
        switch geometry {
        case let .resizeShortSide(s, crop):
            guard s >= 1, s <= Preprocessing.maxSide, crop >= 1, crop <= s else {
                throw DataError.badPreprocessing(problem: "resize \(s) / crop \(crop): need 1 ≤ crop ≤ resize ≤ \(Preprocessing.maxSide)")
            }
        case let .direct(h, w):
            guard h >= 1, w >= 1, h <= Preprocessing.maxSide, w <= Preprocessing.maxSide else {
                throw DataError.badPreprocessing(problem: "output size \(h)×\(w) must be 1…\(Preprocessing.maxSide) per side")
            }
        }
        for (name, v) in [("mean", mean), ("std", std)] {
            if let v, v.count != channels {
                throw DataError.badPreprocessing(problem: "\(name) has \(v.count) values for \(channels) channels")
            }
        }
        guard (mean == nil) == (std == nil) else { throw DataError.badPreprocessing(problem: "give both mean and std, or neither") }
        if let std, std.contains(where: { !($0.isFinite && $0 != 0) }) {
            throw DataError.badPreprocessing(problem: "std values must be finite and non-zero: \(std)")
        }
        if let mean, mean.contains(where: { !$0.isFinite }) { throw DataError.badPreprocessing(problem: "mean values must be finite: \(mean)") }
    }

    /// Where the output comes from in the resized image of a given source.
    public struct Layout: Equatable, Sendable {
        public var resizedWidth: Int
        public var resizedHeight: Int
        public var cropLeft: Int
        public var cropTop: Int

        public init(resizedWidth: Int, resizedHeight: Int, cropLeft: Int, cropTop: Int) {
            self.resizedWidth = resizedWidth
            self.resizedHeight = resizedHeight
            self.cropLeft = cropLeft
            self.cropTop = cropTop
        }
    }

    public func layout(sourceWidth w: Int, sourceHeight h: Int) -> Layout {
        switch geometry {
        case let .direct(oh, ow):
            return Layout(resizedWidth: ow, resizedHeight: oh, cropLeft: 0, cropTop: 0)
        case let .resizeShortSide(s, crop):
            // torchvision: new_long = int(s * long / short); exact in integers.
            let (rw, rh) = w <= h ? (s, s * h / w) : (s * w / h, s)
            return Layout(
                resizedWidth: rw, resizedHeight: rh,
                cropLeft: Preprocessing.roundHalfEven(rw - crop), cropTop: Preprocessing.roundHalfEven(rh - crop))
        }
    }

    /// Python's `round(d / 2)` for a non-negative integer d.
    private static func roundHalfEven(_ d: Int) -> Int {
        let k = d / 2
        return d % 2 == 0 || k % 2 == 0 ? k : k + 1
    }

    /// Converts one decoded image into `valuesPerImage` floats (C×H×W). Call `validate()` first.
    public func apply(_ image: DecodedImage, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count >= valuesPerImage, "output holds \(out.count) floats, the image needs \(valuesPerImage)")
        let scratch = ResampleScratch()
        image.pixels.withUnsafeBufferPointer { p in
            run(
                p.baseAddress!, width: image.width, height: image.height, channels: image.channels,
                into: out.baseAddress!, scratch: scratch, table: OutputTable(self))
        }
    }

    /// The pipeline on raw interleaved pixels; `scratch` is reused across calls (one per thread).
    func run(
        _ src: UnsafePointer<UInt8>, width w: Int, height h: Int, channels srcC: Int,
        into out: UnsafeMutablePointer<Float>, scratch: ResampleScratch, table: OutputTable
    ) {
        var pixels = src
        var c = srcC
        if srcC == 3 && channels == 1 {
            scratch.gray.reserve(w * h)
            let g = scratch.gray.pointer
            for i in 0..<(w * h) {
                let r = Int32(src[3 * i]), gg = Int32(src[3 * i + 1]), b = Int32(src[3 * i + 2])
                g[i] = UInt8(truncatingIfNeeded: (r &* 19595 &+ gg &* 38470 &+ b &* 7471 &+ 0x8000) >> 16)
            }
            pixels = UnsafePointer(g)
            c = 1
        }
        let L = layout(sourceWidth: w, sourceHeight: h)
        let ow = outputWidth, oh = outputHeight
        let resized = Resampler.resize(
            pixels, width: w, height: h, channels: c, filter: interpolation, layout: L, outWidth: ow, outHeight: oh, scratch: scratch)
        // resized: oh rows × ow pixels × c, row stride `resized.stride`.
        let plane = ow * oh
        for oc in 0..<channels {
            let sc = c == 1 ? 0 : oc
            let lut = table.values + 256 * oc
            let dst = out + oc * plane
            for y in 0..<oh {
                let row = resized.base + y * resized.stride + sc
                let d = dst + y * ow
                for x in 0..<ow { d[x] = lut[Int(row[x * c])] }
            }
        }
    }
}

/// Per-channel lookup of `(Float(v) / 255 − mean) / std` for v in 0…255: the same float32 operations as
/// torchvision's `ToTensor` + `Normalize`, done once instead of per pixel.
final class OutputTable: @unchecked Sendable {
    let values: UnsafeMutablePointer<Float>

    init(_ p: Preprocessing) {
        values = .allocate(capacity: 256 * p.channels)
        for c in 0..<p.channels {
            for v in 0..<256 {
                var x = Float(v) / 255
                if let mean = p.mean, let std = p.std { x = (x - mean[c]) / std[c] }
                values[256 * c + v] = x
            }
        }
    }

    deinit { values.deallocate() }
}
