/// The image pipeline a backbone expects (spec/FORMAT.md §4.7): the image's short side resized to `resize` with
/// `interpolation` (PIL's antialiased filters), a centre crop of `crop` × `crop`, values v / 255, then
/// (x − mean) / std per channel when `mean` and `std` are given. It is what torchvision's `Resize(resize)`,
/// `CenterCrop(crop)`, `ToTensor`, `Normalize(mean, std)` do on a PIL image.
public struct PreprocessRecord: Codable, Equatable, Sendable {
    public enum Interpolation: String, Codable, Sendable, CaseIterable {
        case bilinear, bicubic
    }

    /// The short side after resizing, in pixels.
    public var resize: Int
    /// The side of the centre crop; the model's input size.
    public var crop: Int
    public var interpolation: Interpolation
    /// Per channel, both or neither.
    public var mean: [Double]?
    public var std: [Double]?
    /// Where the settings came from (e.g. "config.json pretrained_cfg"), for people reading the file.
    public var source: String?

    public init(resize: Int, crop: Int, interpolation: Interpolation, mean: [Double]?, std: [Double]?, source: String? = nil) {
        self.resize = resize
        self.crop = crop
        self.interpolation = interpolation
        self.mean = mean
        self.std = std
        self.source = source
    }

    /// Largest side accepted (a resize beyond it is a corrupt record, not a real pipeline).
    public static let maxSide = 16384

    /// What is wrong with the record for a model of `channels` channels and input side `imageSize`, or nil.
    public func problem(channels: Int?, imageSize: Int?) -> String? {
        guard crop >= 1, resize >= crop, resize <= Self.maxSide else {
            return "resize \(resize) / crop \(crop): need 1 ≤ crop ≤ resize ≤ \(Self.maxSide)"
        }
        if let s = imageSize, crop != s { return "crop \(crop) differs from the model's image_size \(s)" }
        guard (mean == nil) == (std == nil) else { return "give both mean and std, or neither" }
        for (name, v) in [("mean", mean), ("std", std)] {
            guard let v else { continue }
            if let c = channels, v.count != c { return "\(name) has \(v.count) values for \(c) channels" }
            if v.isEmpty { return "\(name) is empty" }
        }
        if let std, std.contains(where: { !($0.isFinite && $0 != 0) }) { return "std values must be finite and non-zero: \(std)" }
        if let mean, mean.contains(where: { !$0.isFinite }) { return "mean values must be finite: \(mean)" }
        if let s = source, s.utf8.count > 4096 { return "source is longer than 4096 bytes" }
        return nil
    }
}
