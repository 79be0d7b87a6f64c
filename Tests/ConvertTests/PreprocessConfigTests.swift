import Foundation
import GSLoRAConvert
import GSLoRAFormat
import XCTest

/// timm's config.json → the stored pipeline: timm's fields and defaults (resolve_data_config), and refusals of
/// what gslora cannot reproduce, each naming the file.
final class PreprocessConfigTests: XCTestCase {
    func read(_ cfg: String) throws -> PreprocessRecord? {
        try PreprocessConfig.read(Data(cfg.utf8), file: "hub/config.json")
    }

    func testTimmFieldsAndDefaults() throws {
        let r = try XCTUnwrap(
            read(
                """
                {"architecture": "vit_base_patch16_224", "pretrained_cfg": {"tag": "augreg2_in21k_ft_in1k", "input_size": [3, 224, 224],
                 "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "pool_size": null}}
                """))
        XCTAssertEqual(
            r,
            PreprocessRecord(
                resize: 248, crop: 224, interpolation: .bicubic, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
                source: "config.json pretrained_cfg of vit_base_patch16_224.augreg2_in21k_ft_in1k, crop_pct 0.9"))
        // timm's defaults for missing fields: bicubic, crop_pct 0.875, ImageNet mean/std.
        let d = try XCTUnwrap(read(#"{"pretrained_cfg": {"input_size": [3, 384, 384]}}"#))
        XCTAssertEqual(d.resize, 438)
        XCTAssertEqual(d.crop, 384)
        XCTAssertEqual(d.interpolation, .bicubic)
        XCTAssertEqual(d.mean, [0.485, 0.456, 0.406])
        // A transformers config (no pretrained_cfg) holds no pipeline.
        XCTAssertNil(try read(#"{"model_type": "vit", "image_size": 224}"#))
    }

    func testUnsupportedOrBrokenSettingsAreRefused() {
        let bad: [(String, String)] = [
            (#"{"pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "lanczos"}}"#, "interpolation 'lanczos'"),
            (#"{"pretrained_cfg": {"input_size": [3, 224, 224], "crop_mode": "squash"}}"#, "crop_mode 'squash'"),
            (#"{"pretrained_cfg": {"input_size": [3, 224, 160]}}"#, "not a square"),
            (#"{"pretrained_cfg": {"input_size": [3, 224, 224], "crop_pct": 0}}"#, "crop_pct 0.0"),
            (#"{"pretrained_cfg": {"input_size": [3, 224, 224], "crop_pct": 1e-9}}"#, "makes the resize"),
            (#"{"pretrained_cfg": {"input_size": [3, 224, 224], "mean": [0.5]}}"#, "mean has 1 values for 3 channels"),
            (#"{"pretrained_cfg": {"input_size": [3, 224, 224], "std": [0, 1, 1]}}"#, "non-zero"),
            (#"{"pretrained_cfg": {"input_size": [3, 224, 224], "crop_pct": true}}"#, "not a timm config.json"),
            (#"{"pretrained_cfg": {}}"#, "input_size"),
            (#"{"pretrained_cfg": 7}"#, "not a timm config.json"),
            ("{not json", "not a timm config.json")
        ]
        for (json, expect) in bad {
            XCTAssertThrowsError(try read(json), json) { e in
                XCTAssertTrue("\(e)".contains("hub/config.json") && "\(e)".contains(expect), "\(json): \(e)")
            }
        }
    }
}
