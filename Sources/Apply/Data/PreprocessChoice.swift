import Foundation
import GSLoRAFormat

/// What the command line asks of the image pipeline; nil fields leave the value to the model file or family.
public struct PreprocessRequest: Equatable, Sendable {
    public enum Base: String, CaseIterable, Sendable {
        /// The model file's stored record, else the family's documented default.
        case auto
        /// Resize straight to the input size, values in [0, 1].
        case direct
        /// torchvision's `ImageClassification` defaults: bilinear, short side input·256/224, ImageNet mean/std.
        case imagenet
    }

    public var base: Base
    public var mean: [Double]?
    public var std: [Double]?
    public var interpolation: Preprocessing.Interpolation?
    /// Short side after resizing, or the crop ratio it follows from (timm: ⌊crop / crop_pct⌋); not both.
    public var resize: Int?
    public var cropPct: Double?
    public var crop: Int?

    public init(
        base: Base = .auto, mean: [Double]? = nil, std: [Double]? = nil, interpolation: Preprocessing.Interpolation? = nil,
        resize: Int? = nil, cropPct: Double? = nil, crop: Int? = nil
    ) {
        self.base = base
        self.mean = mean
        self.std = std
        self.interpolation = interpolation
        self.resize = resize
        self.cropPct = cropPct
        self.crop = crop
    }

    /// The options given, as a user typed them.
    var given: [String] {
        var out: [String] = []
        if let m = mean { out.append("\(Setting("mean")) \(Self.list(m))") }
        if let s = std { out.append("\(Setting("std")) \(Self.list(s))") }
        if let i = interpolation { out.append("\(Setting("interpolation")) \(i.rawValue)") }
        if let r = resize { out.append("\(Setting("resize")) \(r)") }
        if let p = cropPct { out.append("\(Setting("cropPct")) \(p)") }
        if let c = crop { out.append("\(Setting("crop")) \(c)") }
        return out
    }

    static func list(_ v: [Double]) -> String { v.map { "\($0)" }.joined(separator: ",") }
}

/// The pipeline a run uses and where it came from. Order: command-line options over the model file's stored
/// `preprocess` record over the family's documented default (spec/MODELS.md §7). A timm ViT has no family
/// default (its pipeline depends on the checkpoint), so without a record it needs the options.
public struct PreprocessChoice: Sendable {
    public var pipeline: Preprocessing
    /// "model.gslr's preprocess record (config.json pretrained_cfg)", "`mean` … from the command line", …
    public var origin: String
    /// What a user should know about a default (stderr).
    public var notes: [String]

    /// mean and std as given (decimal), which `pipeline` holds rounded to float32.
    public var mean: [Double]?
    public var std: [Double]?

    /// One line for stderr: the pipeline and its origin.
    public var description: String { "preprocess: \(pipeline.summary) [\(origin)]" }

    /// The pipeline as a .gslr `preprocess` record, or nil when it is not a short-side resize and centre crop.
    public func record(source: String) -> PreprocessRecord? {
        guard case let .resizeShortSide(s, crop) = pipeline.geometry else { return nil }
        return PreprocessRecord(resize: s, crop: crop, interpolation: pipeline.interpolation, mean: mean, std: std, source: source)
    }

    public static func resolve(
        config c: ModelConfig, stored: PreprocessRecord?, modelPath: String,
        request r: PreprocessRequest
    ) throws -> PreprocessChoice {
        guard r.resize == nil || r.cropPct == nil else {
            throw DataError.badPreprocessing(problem: "give \(Setting("resize")) or \(Setting("cropPct")), not both")
        }
        if let pct = r.cropPct, !(pct > 0 && pct <= 1) { throw DataError.badPreprocessing(problem: "\(Setting("cropPct")) must be in (0, 1], not \(pct)") }
        var notes: [String] = []
        var p: Preprocessing
        var origin: String
        var mean: [Double]?, std: [Double]?
        switch r.base {
        case .direct:
            p = .direct(size: c.imageSize, channels: c.channels)
            origin = "\(Setting("preprocess")) direct"
        case .imagenet:
            p = imageClassification(c, resize: c.imageSize * 256 / 224, interpolation: .bilinear)
            origin = "\(Setting("preprocess")) imagenet (torchvision ImageClassification's defaults)"
            if p.mean != nil { (mean, std) = (imageNetMean, imageNetStd) }
        case .auto:
            if let s = stored {
                p = Preprocessing(record: s, channels: c.channels)
                (mean, std) = (s.mean, s.std)
                let name = (modelPath as NSString).lastPathComponent
                origin =
                    name.lowercased().hasSuffix(".gslr")
                    ? "\(name)'s preprocess record" + (s.source.map { ": \($0)" } ?? "")
                    : "pipeline read with \(name)" + (s.source.map { ": \($0)" } ?? "")
            } else if let d = familyDefault(c) {
                (p, origin) = (d.pipeline, d.origin)
                if p.mean != nil { (mean, std) = (imageNetMean, imageNetStd) }
                notes += d.notes
            } else {
                // timm: every value must come from the options; the crop defaults to the model's input size.
                var missing: [String] = []
                if r.mean == nil || r.std == nil { missing.append("\(Setting("mean")) and \(Setting("std"))") }
                if r.interpolation == nil { missing.append("\(Setting("interpolation"))") }
                if r.resize == nil && r.cropPct == nil { missing.append("\(Setting("cropPct")) (or \(Setting("resize")))") }
                guard missing.isEmpty else {
                    throw DataError.pipelineUnknown(
                        model: modelPath,
                        problem: """
                            a timm ViT's mean/std, interpolation and crop ratio depend on the checkpoint (timm's \
                            pretrained_cfg: vit_base_patch16_224.augreg2_in21k_ft_in1k is bicubic, crop_pct 0.9, mean/std 0.5; \
                            deit_tiny_patch16_224.fb_in1k bicubic, crop_pct 0.9, ImageNet mean/std), and this model file stores \
                            none. Convert it with its timm config.json beside the checkpoint (gslora-convert reads pretrained_cfg) \
                            or with gslora-convert \(Setting("mean"))/\(Setting("std"))/\(Setting("interpolation"))/\(Setting("cropPct")), or pass them here; missing: \
                            \(missing.joined(separator: ", "))
                            """)
                }
                p = Preprocessing(geometry: .resizeShortSide(c.imageSize, crop: c.imageSize), channels: c.channels)
                origin = "command line"
            }
        }

        let crop = r.crop ?? c.imageSize
        guard crop == c.imageSize else {
            throw DataError.badPreprocessing(problem: "\(Setting("crop")) \(crop) differs from the model's input size \(c.imageSize)")
        }
        if let pct = r.cropPct {
            // timm's transforms_imagenet_eval: scale_size = math.floor(img_size / crop_pct).
            let scaled = (Double(crop) / pct).rounded(.down)
            guard scaled <= Double(Preprocessing.maxSide) else {
                throw DataError.badPreprocessing(problem: "\(Setting("cropPct")) \(pct) makes the resize \(scaled) > \(Preprocessing.maxSide)")
            }
            p.geometry = .resizeShortSide(Int(scaled), crop: crop)
        } else if let s = r.resize {
            p.geometry = .resizeShortSide(s, crop: crop)
        }
        if let i = r.interpolation { p.interpolation = i }
        if let m = r.mean { mean = m }
        if let s = r.std { std = s }
        p.mean = mean.map { $0.map(Float.init) }
        p.std = std.map { $0.map(Float.init) }
        if !r.given.isEmpty && origin != "command line" { origin += "; with \(r.given.joined(separator: " ")) from the command line" }
        try p.validate()
        guard p.outputHeight == c.imageSize, p.outputWidth == c.imageSize else {
            throw DataError.badPreprocessing(
                problem: "the pipeline gives \(p.outputHeight)×\(p.outputWidth) images, the model takes \(c.imageSize)×\(c.imageSize)")
        }
        return PreprocessChoice(pipeline: p, origin: origin, notes: notes, mean: mean, std: std)
    }

    /// The documented default of a family (spec/MODELS.md §7), or nil for timm (no single one).
    /// - face ViT (spec/TRAINING.md §A.1.1): the aligned faces resized straight to the input size, values in [0, 1].
    /// - torchvision ViT: its ImageNet weights' `ImageClassification` transform for that input size: 224 → the
    ///   IMAGENET1K_V1 one (bilinear, short side 256, ImageNet mean/std; vit_b_16, vit_b_32, vit_l_32); 384, 512,
    ///   518 → IMAGENET1K_SWAG_E2E_V1's (bicubic, short side = crop). Other sizes have no torchvision weights:
    ///   ImageClassification's proportions (short side size·256/224, bilinear), with a note.
    public static func familyDefault(_ c: ModelConfig) -> (pipeline: Preprocessing, origin: String, notes: [String])? {
        switch c.family {
        case .faceViT:
            return (.direct(size: c.imageSize, channels: c.channels), "face ViT default: resize to the input size, [0, 1] (spec/TRAINING.md §A.1.1)", [])
        case .torchvisionViT:
            let other = "pass \(Setting("resize"))/\(Setting("interpolation")) (or store them with gslora-convert) if the weights were trained otherwise"
            switch c.imageSize {
            case 224:
                return (
                    imageClassification(c, resize: 256, interpolation: .bilinear),
                    "torchvision ViT default: IMAGENET1K_V1 weights' transform",
                    [
                        "torchvision ViT at 224 px without a stored pipeline: using the IMAGENET1K_V1 weights' transform "
                            + "(bilinear, short side 256); vit_l_16's IMAGENET1K_V1 uses \(Setting("resize")) 242, the SWAG_LINEAR weights "
                            + "\(Setting("interpolation")) bicubic \(Setting("resize")) 224; " + other
                    ]
                )
            case 384, 512, 518:
                return (
                    imageClassification(c, resize: c.imageSize, interpolation: .bicubic),
                    "torchvision ViT default: IMAGENET1K_SWAG_E2E_V1 weights' transform",
                    [
                        "torchvision ViT at \(c.imageSize) px without a stored pipeline: using the SWAG_E2E weights' transform "
                            + "(bicubic, short side \(c.imageSize)); " + other
                    ]
                )
            default:
                return (
                    imageClassification(c, resize: c.imageSize * 256 / 224, interpolation: .bilinear),
                    "torchvision ImageClassification's proportions",
                    [
                        "torchvision ViT at \(c.imageSize) px: no torchvision weights exist at this size; using "
                            + "ImageClassification's proportions (bilinear, short side \(c.imageSize * 256 / 224), ImageNet "
                            + "mean/std); " + other
                    ]
                )
            }
        case .timmViT:
            return nil
        }
    }

    static let imageNetMean = [0.485, 0.456, 0.406], imageNetStd = [0.229, 0.224, 0.225]

    /// torchvision's `ImageClassification(crop_size: size, resize_size:, interpolation:)`; ImageNet mean/std apply
    /// per RGB channel, so a gray model gets the geometry only.
    static func imageClassification(_ c: ModelConfig, resize: Int, interpolation: Preprocessing.Interpolation) -> Preprocessing {
        var p = Preprocessing.imageNet(resize: resize, crop: c.imageSize)
        p.interpolation = interpolation
        p.channels = c.channels
        if c.channels != 3 { p.mean = nil; p.std = nil }
        return p
    }
}

extension Preprocessing {
    /// "resize short side 248 (bicubic, antialiased) → centre crop 224 → v/255 → (x − mean)/std, mean […], std […]".
    public var summary: String {
        var parts: [String]
        switch geometry {
        case let .resizeShortSide(s, crop):
            parts = ["resize short side to \(s) (\(interpolation.rawValue), antialiased)", "centre crop \(crop)"]
        case let .direct(h, w):
            parts = ["resize to \(w)×\(h) (\(interpolation.rawValue), antialiased)"]
        }
        parts.append("v/255")
        if let m = mean, let s = std {
            func f(_ v: [Float]) -> String { "[" + v.map { "\($0)" }.joined(separator: ", ") + "]" }
            parts.append("(x − mean)/std, mean \(f(m)) std \(f(s))")
        }
        return parts.joined(separator: " → ") + " (\(channels == 1 ? "gray" : "RGB"))"
    }
}
