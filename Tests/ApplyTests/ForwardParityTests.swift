import Foundation
import GSLoRAConvert
import GSLoRAModel
import TestSupport
import XCTest

/// Every `*.parity.json` that holds a model forward is replayed: its sibling `.pth` goes through the converter
/// (config from the file; only the head count comes from the parity file's own model description), and the
/// forward's stages and outputs must match PyTorch within Tolerance.forward.
final class ForwardParityTests: XCTestCase {
    struct Case {
        let name: String
        let json: [String: Any]
        let model: ViT
    }

    /// Parity files that describe a forward pass, each with a fresh model built from its sibling checkpoint (the
    /// bf16 tests use them too).
    static func cases() throws -> [Case] {
        var out: [Case] = []
        for url in Fixtures.files(endingWith: ".parity.json") {
            let json = try Fixtures.json(url)
            guard json["forward"] != nil || json["logits"] != nil else { continue }
            let pth = url.deletingLastPathComponent()
                .appendingPathComponent(url.lastPathComponent.replacingOccurrences(of: ".parity.json", with: ".pth"))
            let imported = try ModelImport.load(pth.path, options: ImportOptions(heads: Self.statedHeads(json)))
            let config = try XCTUnwrap(imported.config, "\(pth.lastPathComponent): converter found no model config")
            var adapters: [LoRAAdapter] = []
            if !imported.lora.isEmpty {
                let rank = try XCTUnwrap(imported.loraRank), alpha = try XCTUnwrap(imported.loraAlpha)
                adapters.append(try LoRAAdapter(config: config, tensors: imported.lora, scaling: Float(alpha / Double(rank))))
            }
            out.append(
                Case(
                    name: url.lastPathComponent, json: json,
                    model: try ViT(config: config, weights: imported.weights, adapters: adapters)))
        }
        return out
    }

    /// The head count the parity file states for its model: `model_config.heads`, else `num_heads=N` in its
    /// description (the converter cannot infer heads from weights; its default is width/64).
    static func statedHeads(_ json: [String: Any]) -> Int? {
        if let mc = json["model_config"] as? [String: Any], let h = mc["heads"] as? Int { return h }
        guard let d = json["description"] as? String, let r = d.range(of: #"num_heads=(\d+)"#, options: .regularExpression) else { return nil }
        return Int(d[r].dropFirst("num_heads=".count))
    }

    func assertClose(_ actual: [Float], _ expected: Any?, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try FixtureArray(expected, what)
        XCTAssertEqual(actual.count, ref.values.count, "\(what): element count", file: file, line: line)
        guard actual.count == ref.values.count else { return }
        let err = Tolerance.maxRelative(actual, ref.values)
        XCTAssertLessThanOrEqual(err, Tolerance.forward, "\(what): max-abs relative error \(err)", file: file, line: line)
    }

    func testFixturesHoldForwardParityFiles() throws {
        XCTAssertGreaterThanOrEqual(try Self.cases().count, 3, "expected the face, torchvision and timm parity files")
    }

    func testForwardMatchesPyTorch() throws {
        let cases = try Self.cases()
        XCTAssertFalse(cases.isEmpty, "no forward parity file in \(Fixtures.searched)")
        for c in cases {
            let m = c.model, cfg = m.config
            if let fwd = c.json["forward"] as? [String: Any] {
                let inputs = try XCTUnwrap(c.json["inputs"] as? [String: Any], "\(c.name): no inputs")
                for group in fwd.keys.sorted() {
                    let g = try XCTUnwrap(fwd[group] as? [String: Any])
                    let images = try FixtureArray(inputs["\(group)_images"], "\(c.name) \(group)_images")
                    let labels = try XCTUnwrap(g["labels"] as? [Int])
                    let out = try m.forward(images: images.floats, batch: images.shape[0], labels: labels, mode: .eval)
                    let tag = "\(c.name) \(group)"
                    if g["patches"] != nil { try assertClose(m.activations.patches.array, g["patches"], "\(tag) patches") }
                    if g["patch_embed"] != nil { try assertClose(m.activations.patchEmbed.array, g["patch_embed"], "\(tag) patch_embed") }
                    if g["tokens"] != nil { try assertClose(m.activations.tokens.array, g["tokens"], "\(tag) tokens") }
                    if g["pre_layernorm_cls"] != nil { try assertClose(out.preNormCLS, g["pre_layernorm_cls"], "\(tag) pre-LN cls") }
                    try assertClose(out.embeddings, g["embedding"], "\(tag) embedding")
                    try assertClose(out.logits, g["logits_plain"], "\(tag) plain logits")
                    try assertClose(try XCTUnwrap(out.marginLogits), g["logits_margin"], "\(tag) margin logits")
                    if let pred = g["pred_margin"] as? [Int] {
                        let k = cfg.numClasses
                        let ours = (0..<out.batch).map { b in (0..<k).max { out.marginLogits![b * k + $0] < out.marginLogits![b * k + $1] }! }
                        XCTAssertEqual(ours, pred, "\(tag) margin predictions")
                    }
                }
                if let protos = c.json["prototypes"] as? [String: Any], protos["proto_embeddings"] != nil {
                    let images = try FixtureArray(inputs["proto_images"], "\(c.name) proto_images")
                    let out = try m.forward(images: images.floats, batch: images.shape[0])
                    try assertClose(out.embeddings, protos["proto_embeddings"], "\(c.name) prototype embeddings")
                }
            } else {
                let input = try FixtureArray(c.json["input"], "\(c.name) input")
                let out = try m.forward(images: input.floats, batch: input.shape[0])
                try assertClose(out.logits, c.json["logits"], "\(c.name) logits")
                XCTAssertNil(out.marginLogits)
                for key in ["cls_features_after_norm", "pooled_features_after_norm"] where c.json[key] != nil {
                    try assertClose(out.embeddings, c.json[key], "\(c.name) \(key)")
                }
            }
        }
    }

    /// Live LoRA and weights merged out of place give the same outputs (and both match the reference above).
    func testLiveAndMergedLoRAAgree() throws {
        var checked = 0
        for c in try Self.cases() where !c.model.adapters.isEmpty {
            let merged = try c.model.merged()
            XCTAssertTrue(merged.adapters.isEmpty)
            let cfg = c.model.config
            let n = 4
            var rng = SplitMix64(seed: 7)
            let images = (0..<(n * cfg.channels * cfg.imageSize * cfg.imageSize)).map { _ in rng.nextUnitFloat() }
            let labels = (0..<n).map { $0 % cfg.numClasses }
            let live = try c.model.forward(images: images, batch: n, labels: labels)
            let m = try merged.forward(images: images, batch: n, labels: labels)
            XCTAssertLessThanOrEqual(Tolerance.maxRelative(m.embeddings, live.embeddings.map(Double.init)), Tolerance.forward, c.name)
            XCTAssertLessThanOrEqual(Tolerance.maxRelative(m.trainingLogits, live.trainingLogits.map(Double.init)), Tolerance.forward, c.name)
            // The adapter must matter, or the comparison proves nothing.
            let plain = try ViT(config: cfg, parameters: c.model.parameters).forward(images: images, batch: n, labels: labels)
            XCTAssertGreaterThan(Tolerance.maxRelative(plain.embeddings, live.embeddings.map(Double.init)), Tolerance.forward, c.name)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no parity fixture carries LoRA")
    }
}
