import Foundation
import GSLoRAConvert
import GSLoRAData
import GSLoRAFormat
import GSLoRAModel
import XCTest

/// Tests/Fixtures/preprocess, written by tools/make_preprocess_fixtures.py with Pillow, timm and torchvision.
enum PreprocessFixtures {
    static var directory: URL {
        // This file is <root>/Tests/ApplyTests/PreprocessFixtureTests.swift.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/preprocess", isDirectory: true)
    }

    static func cases() throws -> [(name: String, json: [String: Any])] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".case.json") }.sorted()
        return try names.map { n in
            let data = try Data(contentsOf: directory.appendingPathComponent(n))
            return (n, try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], "\(n): not a JSON object"))
        }
    }

    /// The case's pipeline as `Preprocessing` (mean/std rounded to float32 as Normalize does).
    static func expected(_ j: [String: Any], channels: Int) throws -> Preprocessing {
        let p = try XCTUnwrap(j["pipeline"] as? [String: Any])
        return Preprocessing(
            geometry: .resizeShortSide(try XCTUnwrap(p["resize"] as? Int), crop: try XCTUnwrap(p["crop"] as? Int)),
            channels: channels, mean: (p["mean"] as? [Double])?.map(Float.init), std: (p["std"] as? [Double])?.map(Float.init),
            interpolation: try XCTUnwrap(Preprocessing.Interpolation(rawValue: try XCTUnwrap(p["interpolation"] as? String))))
    }

    /// What a user passes on the command line to get the case's pipeline.
    static func request(_ j: [String: Any]) throws -> PreprocessRequest {
        let p = try XCTUnwrap(j["pipeline"] as? [String: Any])
        let pct = p["crop_pct"] as? Double
        return PreprocessRequest(
            mean: p["mean"] as? [Double], std: p["std"] as? [Double],
            interpolation: Preprocessing.Interpolation(rawValue: p["interpolation"] as? String ?? ""),
            resize: pct == nil ? p["resize"] as? Int : nil, cropPct: pct)
    }

    static func sha(_ bytes: [UInt8]) -> String { SHA256.hex(SHA256.hash(bytes)) }

    /// The 8-bit resized + cropped image (H×W×C interleaved, as PIL's tobytes) that `p` computes before scaling.
    static func crop8(_ p: Preprocessing, _ img: DecodedImage) throws -> [UInt8] {
        var q = p
        q.mean = nil
        q.std = nil
        try q.validate()
        var out = [Float](repeating: -1, count: q.valuesPerImage)
        out.withUnsafeMutableBufferPointer { q.apply(img, into: $0) }
        let plane = q.outputWidth * q.outputHeight
        var hwc = [UInt8](repeating: 0, count: out.count)
        for c in 0..<q.channels { for i in 0..<plane { hwc[i * q.channels + c] = UInt8((out[c * plane + i] * 255).rounded()) } }
        return hwc
    }
}

/// Every `*.case.json` in Tests/Fixtures/preprocess: gslora must derive the case's pipeline from where the case
/// says it is written (timm's config.json, command-line options, or the family default), decode PNGs to PIL's
/// exact pixels, produce PIL's exact 8-bit resize + crop, and give the reference logits within 1e-3 of each
/// image's largest logit magnitude (timm's / torchvision's own transform + model, float32).
final class PreprocessFixtureTests: XCTestCase {
    func testEveryCaseMatchesItsReferencePipelineAndLogits() throws {
        let cases = try PreprocessFixtures.cases()
        XCTAssertFalse(cases.isEmpty, "no *.case.json in \(PreprocessFixtures.directory.path); run tools/make_preprocess_fixtures.py")
        var jpegExact = 0, jpegTotal = 0
        for (name, j) in cases {
            let modelPath = PreprocessFixtures.directory.appendingPathComponent(try XCTUnwrap(j["model"] as? String)).path
            let imported = try ModelImport.load(modelPath, options: ImportOptions(heads: j["heads"] as? Int))
            let config = try XCTUnwrap(imported.config, "\(name): no model recognised in \(modelPath)")
            let want = try PreprocessFixtures.expected(j, channels: config.channels)

            let from = try XCTUnwrap(j["pipeline_from"] as? String)
            let request = from == "flags" ? try PreprocessFixtures.request(j) : PreprocessRequest()
            if from == "config.json" { XCTAssertNotNil(imported.preprocess, "\(name): config.json beside \(modelPath) not read") }
            if from == "family" { XCTAssertNil(imported.preprocess, "\(name): unexpected stored pipeline") }
            let choice = try PreprocessChoice.resolve(config: config, stored: imported.preprocess, modelPath: modelPath, request: request)
            XCTAssertEqual(choice.pipeline, want, "\(name): pipeline from \(from)")

            let model = try ViT(config: config, weights: imported.weights)
            var worst = 0.0
            for entry in try XCTUnwrap(j["images"] as? [[String: Any]]) {
                let file = try XCTUnwrap(entry["file"] as? String)
                let img = try DecodedImage.load(path: PreprocessFixtures.directory.appendingPathComponent(file).path)
                let decodedExact = PreprocessFixtures.sha(img.pixels) == entry["decoded_sha256"] as? String
                let isJPEG = file.hasSuffix(".jpg")
                if isJPEG {
                    jpegTotal += 1
                    jpegExact += decodedExact ? 1 : 0
                } else {
                    XCTAssertTrue(decodedExact, "\(name) \(file): decoded pixels differ from PIL's")
                }
                if decodedExact {
                    XCTAssertEqual(
                        PreprocessFixtures.sha(try PreprocessFixtures.crop8(choice.pipeline, img)), entry["crop_sha256"] as? String,
                        "\(name) \(file): 8-bit resize + crop differs from PIL's")
                }
                var x = [Float](repeating: 0, count: choice.pipeline.valuesPerImage)
                x.withUnsafeMutableBufferPointer { choice.pipeline.apply(img, into: $0) }
                let got = try model.forward(images: x, batch: 1).logits
                let ref = try XCTUnwrap(entry["logits"] as? [Double])
                XCTAssertEqual(got.count, ref.count, "\(name) \(file)")
                let scale = ref.map(abs).max() ?? 1
                let err = zip(got, ref).map { abs(Double($0) - $1) }.max() ?? .infinity
                worst = max(worst, err / scale)
                XCTAssertLessThanOrEqual(err, 1e-3 * scale, "\(name) \(file): logits differ by \(err) (largest |logit| \(scale))")
            }
            print(
                "\(name): pipeline from \(from) = \(choice.pipeline.summary); \((j["images"] as? [Any])?.count ?? 0) images, worst logit error \(worst) of the largest |logit|"
            )
        }
        print("JPEG: \(jpegExact) of \(jpegTotal) decoded to PIL's exact pixels")
    }
}

/// Tests/Fixtures/preprocess/resample.json: Pillow's Image.resize (BILINEAR, BICUBIC) on seeded random images,
/// shrinking and enlarging, gray and RGB; gslora's resize must equal it byte for byte.
final class ResampleFixtureTests: XCTestCase {
    func testResizeMatchesPillowExactly() throws {
        let url = PreprocessFixtures.directory.appendingPathComponent("resample.json")
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], "\(url.path) missing")
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        XCTAssertFalse(cases.isEmpty, "no resample cases in \(url.path)")
        var counts: [String: Int] = [:]
        for (i, c) in cases.enumerated() {
            let filter = try XCTUnwrap(Preprocessing.Interpolation(rawValue: try XCTUnwrap(c["filter"] as? String)))
            let ch = try XCTUnwrap(c["channels"] as? Int), w = try XCTUnwrap(c["width"] as? Int), h = try XCTUnwrap(c["height"] as? Int)
            let ow = try XCTUnwrap(c["out_width"] as? Int), oh = try XCTUnwrap(c["out_height"] as? Int)
            let src = [UInt8](try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(c["source"] as? String))))
            let want = [UInt8](try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(c["expected"] as? String))))
            let p = Preprocessing(geometry: .direct(height: oh, width: ow), channels: ch, interpolation: filter)
            let got = try PreprocessFixtures.crop8(p, DecodedImage(width: w, height: h, channels: ch, pixels: src))
            let wrong = zip(got, want).filter { $0 != $1 }.count
            XCTAssertEqual(got, want, "case \(i): \(filter) \(w)×\(h)×\(ch) → \(ow)×\(oh): \(wrong) of \(want.count) values differ")
            counts[filter.rawValue, default: 0] += 1
        }
        print(
            "resample.json (Pillow \(root["pillow"] ?? "?")): \(counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")) cases checked"
        )
    }
}
