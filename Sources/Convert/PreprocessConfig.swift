import Foundation
import GSLoRAFormat

/// The image pipeline of a timm checkpoint, from the `config.json` timm writes beside it (Hugging Face hub layout,
/// `timm.models.push_to_hf_hub` / `save_for_hf`): its `pretrained_cfg` holds input_size, interpolation, crop_pct,
/// crop_mode, mean and std. Missing fields take timm's defaults as `timm.data.resolve_data_config` does
/// (bicubic, crop_pct 0.875, ImageNet mean/std, crop_mode center); settings gslora cannot reproduce are refused.
public enum PreprocessConfig {
    /// A config.json larger than this is not a model config.
    static let maxBytes = 16 << 20

    /// The record from the `config.json` in the checkpoint's folder, or nil when there is none or it has no
    /// `pretrained_cfg` (e.g. a Hugging Face transformers config).
    public static func beside(_ checkpoint: String) throws -> PreprocessRecord? {
        let path = ((checkpoint as NSString).deletingLastPathComponent as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        guard let size, size <= maxBytes else {
            throw ConvertError.unreadable(file: path, reason: "not a model config (larger than \(maxBytes >> 20) MiB, or unreadable)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw ConvertError.unreadable(file: path, reason: "cannot read it") }
        return try read(data, file: path)
    }

    struct Top: Decodable {
        var architecture: String?
        var pretrained_cfg: Cfg?
    }

    struct Cfg: Decodable {
        var input_size: [Double]?
        var interpolation: String?
        var crop_pct: Double?
        var crop_mode: String?
        var mean: [Double]?
        var std: [Double]?
        var tag: String?
    }

    public static func read(_ data: Data, file: String) throws -> PreprocessRecord? {
        func bad(_ why: String) -> ConvertError { .unreadable(file: file, reason: "pretrained_cfg: \(why)") }
        let top: Top
        do { top = try JSONDecoder().decode(Top.self, from: data) } catch {
            throw ConvertError.unreadable(file: file, reason: "not a timm config.json: \(error)")
        }
        guard let cfg = top.pretrained_cfg else { return nil }
        guard let size = cfg.input_size, size.count == 3 else { throw bad("input_size must be [channels, height, width]") }
        guard size[1] == size[2], size[1] == size[1].rounded(), size[1] >= 1, size[1] <= Double(PreprocessRecord.maxSide) else {
            throw bad("input_size \(size) is not a square image of 1…\(PreprocessRecord.maxSide) pixels; gslora runs square inputs only")
        }
        guard size[0] == 1 || size[0] == 3 else { throw bad("input_size \(size): channels must be 1 or 3") }
        let side = Int(size[1]), channels = Int(size[0])
        let interpolation: PreprocessRecord.Interpolation
        if let s = cfg.interpolation {
            guard let i = PreprocessRecord.Interpolation(rawValue: s) else {
                throw bad("interpolation '\(s.prefix(40))' is not supported (bilinear or bicubic)")
            }
            interpolation = i
        } else {
            interpolation = .bicubic
        }
        if let m = cfg.crop_mode, m != "center" {
            throw bad("crop_mode '\(m.prefix(40))' is not supported (only 'center', timm's default)")
        }
        let pct = cfg.crop_pct ?? 0.875
        guard pct > 0, pct <= 1 else { throw bad("crop_pct \(pct) is not in (0, 1]") }
        let mean = cfg.mean ?? [0.485, 0.456, 0.406]
        let std = cfg.std ?? [0.229, 0.224, 0.225]
        // timm's transforms_imagenet_eval: scale_size = math.floor(img_size / crop_pct).
        let scaled = (Double(side) / pct).rounded(.down)
        guard scaled <= Double(PreprocessRecord.maxSide) else { throw bad("crop_pct \(pct) makes the resize \(scaled) > \(PreprocessRecord.maxSide)") }
        let resize = Int(scaled)
        var name = top.architecture.map { String($0.prefix(200)) }
        if let n = name, let tag = cfg.tag { name = n + "." + tag.prefix(100) }
        let record = PreprocessRecord(
            resize: resize, crop: side, interpolation: interpolation, mean: mean, std: std,
            source: "config.json pretrained_cfg" + (name.map { " of \($0)" } ?? "") + ", crop_pct \(pct)")
        if let p = record.problem(channels: channels, imageSize: nil) { throw bad(p) }
        return record
    }
}
