import ArgumentParser
import Foundation
import GSLoRAData
import GSLoRAFormat

extension PreprocessRequest.Base: ExpressibleByArgument {}
extension PreprocessRecord.Interpolation: ExpressibleByArgument {}

/// The image-pipeline options of the commands that read images (gslora-infer, gslora-eval, gslora-train forget)
/// and of gslora-convert, which stores them. Options override the model file's stored pipeline field by field,
/// which overrides the family's default (spec/MODELS.md §7).
public struct PreprocessOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Starting pipeline: auto (the model file's stored pipeline, else the family's default), direct "
                + "(resize to the input size, [0,1]) or imagenet (torchvision ImageClassification: bilinear, short side size·256/224, ImageNet mean/std).",
            valueName: "auto|direct|imagenet"))
    public var preprocess: PreprocessRequest.Base = .auto

    @Option(help: ArgumentHelp("Per-channel mean subtracted after scaling to [0,1], e.g. 0.485,0.456,0.406.", valueName: "m1,m2,m3"))
    public var mean: String?

    @Option(help: ArgumentHelp("Per-channel std divided by after the mean, e.g. 0.229,0.224,0.225.", valueName: "s1,s2,s3"))
    public var std: String?

    @Option(help: ArgumentHelp("Resize filter, as PIL does it with antialiasing (torchvision/timm on PIL images).", valueName: "bilinear|bicubic"))
    public var interpolation: PreprocessRecord.Interpolation?

    @Option(help: "Short side after resizing, in pixels (torchvision Resize(N)).")
    public var resize: Int?

    @Option(help: "timm's crop_pct: the short side becomes ⌊crop / crop_pct⌋ (instead of --resize).")
    public var cropPct: Double?

    @Option(help: "Centre crop side; must equal the model's input size (default: that size).")
    public var crop: Int?

    public init() {}

    public func validate() throws {
        _ = try request()
        if let r = resize, r < 1 { throw ValidationError("--resize must be positive") }
        if let c = crop, c < 1 { throw ValidationError("--crop must be positive") }
        if resize != nil && cropPct != nil { throw ValidationError("give --resize or --crop-pct, not both") }
        if let p = cropPct, !(p > 0 && p <= 1) { throw ValidationError("--crop-pct must be in (0, 1]") }
    }

    /// The options as a request; nil fields were not given.
    public func request() throws -> PreprocessRequest {
        func list(_ s: String?, _ name: String) throws -> [Double]? {
            guard let s else { return nil }
            let v = s.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !v.isEmpty, v.count <= 4, v.allSatisfy({ $0?.isFinite == true }) else {
                throw ValidationError("\(name) must be a comma list of 1 to 4 numbers, e.g. 0.5,0.5,0.5; got '\(s)'")
            }
            return v.map { $0! }
        }
        return PreprocessRequest(
            base: preprocess, mean: try list(mean, "--mean"), std: try list(std, "--std"), interpolation: interpolation,
            resize: resize, cropPct: cropPct, crop: crop)
    }

    /// Whether any option was given (gslora-convert stores a pipeline only then, or from a config.json).
    public var isEmpty: Bool { (try? request()) == PreprocessRequest() }

    /// The pipeline for running `config` on `inputs`, printed once on stderr with its origin (always, terminal or
    /// not). Inputs that are all .npy are taken as already preprocessed: then only the input size matters.
    public func pipeline(for config: ModelConfig, stored: PreprocessRecord?, modelPath: String, inputs: [String]) throws -> Preprocessing {
        if !inputs.isEmpty && inputs.allSatisfy({ $0.lowercased().hasSuffix(".npy") }) {
            let ignored = isEmpty ? "" : "; the image pipeline options are ignored"
            Self.say("preprocess: none (.npy input is taken as already preprocessed, \(config.channels)×\(config.imageSize)×\(config.imageSize))\(ignored)")
            return .direct(size: config.imageSize, channels: config.channels)
        }
        let choice = try PreprocessChoice.resolve(config: config, stored: stored, modelPath: modelPath, request: request())
        Self.say(choice.description)
        for n in choice.notes { Self.say("note: \(n)") }
        return choice.pipeline
    }

    static func say(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
}
