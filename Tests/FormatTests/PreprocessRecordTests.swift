import Foundation
import GSLoRAFormat
import XCTest

/// The optional `preprocess` record of a backbone header (spec/FORMAT.md §4.7) survives a write and read, and is
/// checked against the model it belongs to.
final class PreprocessRecordTests: XCTestCase {
    let config = ModelConfig(
        family: .timmViT, imageSize: 224, patchSize: 16, width: 8, depth: 1, heads: 1, headDim: 8, mlpWidth: 8,
        numClasses: 2, head: .linear, attentionScale: 1, layerNormEps: 1e-6, qkvBias: true)

    func testRecordRoundTripsAndIsCheckedAgainstTheModel() throws {
        let dir = TempDir()
        let record = PreprocessRecord(
            resize: 248, crop: 224, interpolation: .bicubic, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
            source: "config.json pretrained_cfg")
        try GSLRWriter.write(dir.file("a.gslr"), header: GSLRHeader(kind: .backbone, model: config, preprocess: record), tensors: [])
        XCTAssertEqual(try GSLRFile.open(dir.file("a.gslr")).header.preprocess, record)
        XCTAssertTrue(String(decoding: readFile(dir.file("a.gslr")), as: UTF8.self).contains("\"preprocess\":{\"crop\":224,\"interpolation\":\"bicubic\""))
        try GSLRWriter.write(dir.file("b.gslr"), header: GSLRHeader(kind: .backbone, model: config), tensors: [])
        XCTAssertNil(try GSLRFile.open(dir.file("b.gslr")).header.preprocess)

        XCTAssertEqual(
            PreprocessRecord(resize: 256, crop: 200, interpolation: .bilinear, mean: nil, std: nil).problem(channels: 3, imageSize: 224),
            "crop 200 differs from the model's image_size 224")
        XCTAssertEqual(
            PreprocessRecord(resize: 256, crop: 224, interpolation: .bilinear, mean: [0.5], std: [0.5]).problem(channels: 3, imageSize: 224),
            "mean has 1 values for 3 channels")
        XCTAssertNil(record.problem(channels: 3, imageSize: 224))
        XCTAssertThrowsError(
            try GSLRWriter.write(
                dir.file("c.gslr"),
                header: GSLRHeader(
                    kind: .backbone, model: config,
                    preprocess: PreprocessRecord(resize: 256, crop: 112, interpolation: .bilinear, mean: nil, std: nil)), tensors: [])
        ) {
            XCTAssertTrue("\($0)".contains("image_size 224"), "\($0)")
        }
    }
}
