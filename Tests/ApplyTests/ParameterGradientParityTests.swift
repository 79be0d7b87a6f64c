import Foundation
import GSLoRAConvert
import GSLoRAFormat
import GSLoRAModel
import TestSupport
import XCTest

/// All-parameter backward on real PyTorch numbers: every parity file with `backward.parameter_gradients` (the
/// gradient of L = Σ logits·R, R in the file, of a linear-head model without dropout) is replayed. ∂L/∂embedding =
/// R·W_head; `ViT.backward` gives every backbone parameter's gradient, compared by name (the family's original names
/// in the file, mapped to canonical ones).
final class ParameterGradientParityTests: XCTestCase {
    func testParameterGradientsMatchPyTorch() throws {
        var checked = 0
        for url in Fixtures.files(endingWith: ".parity.json") {
            let json = try Fixtures.json(url)
            guard let backward = json["backward"] as? [String: Any], let expected = backward["parameter_gradients"] as? [[String: Any]]
            else { continue }
            let name = url.lastPathComponent
            let pth = Fixtures.sibling(url, replacing: ".parity.json", with: ".pth")
            let imported = try ModelImport.load(pth.path, options: ImportOptions(heads: ForwardParityTests.statedHeads(json)))
            let config = try XCTUnwrap(imported.config, "\(name): converter found no model config")
            XCTAssertEqual(config.head.kind, .linear, "\(name): the loss Σ logits·R is stated for a linear head")
            let model = try ViT(config: config, weights: imported.weights)
            let input = try FixtureArray(json["input"], "\(name) input"), r = try FixtureArray(backward["R"], "\(name) R")
            let b = input.shape[0], k = config.numClasses
            XCTAssertEqual(r.values.count, b * k, "\(name): R is [batch, classes]")
            let out = try model.forward(images: input.floats, batch: b, mode: .train(dropout: 0))
            let logits = try FixtureArray(json["logits"], "\(name) logits")
            XCTAssertLessThanOrEqual(Tolerance.maxRelative(out.logits, logits.values), Tolerance.forward, "\(name): training-mode logits")
            let grads = ViTGradients(model: model, parameters: true)
            try model.backward(gradEmbeddings: Self.embeddingGradient(model, r: r, batch: b), into: grads)
            // Canonical name → gradient buffer (expectedShapes and allBuffers share the canonical order).
            var byName: [String: FloatBuffer] = [:]
            for (n, g) in zip(ModelFamilies.expectedShapes(config).map(\.name), try XCTUnwrap(grads.parameters).allBuffers) { byName[n] = g }
            let map = ModelFamilies.map(for: config.family)
            var seen = Set<String>()
            for e in expected {
                let original = try XCTUnwrap(e["name"] as? String)
                let canonical = try XCTUnwrap(map.canonical(original), "\(name): \(original) has no canonical name")
                let g = try XCTUnwrap(byName[canonical], "\(name): no gradient for \(canonical)")
                let ref = try FixtureArray(e["grad"], "\(name) \(original) grad")
                XCTAssertEqual(g.count, ref.values.count, "\(name) \(original): element count")
                let err = Tolerance.maxRelative(g.array, ref.values)
                XCTAssertLessThanOrEqual(err, Tolerance.gradient, "\(name) \(original): gradient error \(err)")
                seen.insert(canonical)
                checked += 1
            }
            // Every backbone parameter is compared (the head's gradient comes from the loss side).
            XCTAssertEqual(seen, Set(byName.keys.filter { !$0.hasPrefix("head.") }), "\(name): parameters compared")
        }
        XCTAssertGreaterThan(checked, 0, "no parity fixture holds parameter gradients")
    }

    /// The same loss on a model with LoRA on fc1/fc2 (the factors in the .pth, alpha in the file): every parity file
    /// with `backward.lora_gradients` is replayed and every factor's gradient compared by name. The face fixture's
    /// GS-LoRA step checks the whole GS-LoRA loss; this checks the LoRA backward on other families and at any size
    /// (tools/full_size_parity.py runs it on ViT-B/16).
    func testLoRAGradientsMatchPyTorch() throws {
        var checked: [String] = []
        for url in Fixtures.files(endingWith: ".parity.json") {
            let json = try Fixtures.json(url)
            guard let backward = json["backward"] as? [String: Any], let expected = backward["lora_gradients"] as? [[String: Any]]
            else { continue }
            let name = url.lastPathComponent
            let lora = try XCTUnwrap(json["lora"] as? [String: Any], "\(name): no lora settings")
            let alpha = try XCTUnwrap(lora["lora_alpha"] as? Double, "\(name): no lora.lora_alpha")
            let pth = Fixtures.sibling(url, replacing: ".parity.json", with: ".pth")
            let imported = try ModelImport.load(pth.path, options: ImportOptions(heads: ForwardParityTests.statedHeads(json), loraAlpha: alpha))
            let config = try XCTUnwrap(imported.config, "\(name): converter found no model config")
            XCTAssertEqual(config.head.kind, .linear, "\(name): the loss Σ logits·R is stated for a linear head")
            let rank = try XCTUnwrap(imported.loraRank, "\(name): the .pth holds no LoRA factors")
            XCTAssertEqual(rank, lora["rank"] as? Int, "\(name): rank")
            let adapter = try LoRAAdapter(config: config, tensors: imported.lora, scaling: Float(alpha / Double(rank)))
            let model = try ViT(config: config, weights: imported.weights, adapters: [adapter])
            let input = try FixtureArray(json["input"], "\(name) input"), r = try FixtureArray(backward["R"], "\(name) R")
            let b = input.shape[0]
            let out = try model.forward(images: input.floats, batch: b, mode: .train(dropout: 0))
            let logits = try FixtureArray(json["logits"], "\(name) logits")
            XCTAssertLessThanOrEqual(Tolerance.maxRelative(out.logits, logits.values), Tolerance.forward, "\(name): training-mode logits")
            let grads = ViTGradients(model: model, parameters: false)
            try model.backward(gradEmbeddings: Self.embeddingGradient(model, r: r, batch: b), into: grads)
            XCTAssertEqual(expected.count, 4 * config.depth, "\(name): A and B of fc1 and fc2 in every block")
            var worst = 0.0
            for e in expected {
                let factorName = try XCTUnwrap(e["name"] as? String)
                let (block, layer, factor) = try XCTUnwrap(Self.parseLoRAName(factorName), "\(name): unrecognised LoRA name \(factorName)")
                let g = layer == 1 ? grads.lora[0].fc1[block] : grads.lora[0].fc2[block]
                let ours = (factor == "A" ? g.a : g.b).array
                let ref = try FixtureArray(e["grad"], "\(name) \(factorName) grad")
                XCTAssertEqual(ours.count, ref.values.count, "\(name) \(factorName): element count")
                let err = Tolerance.maxRelative(ours, ref.values)
                XCTAssertLessThanOrEqual(err, Tolerance.gradient, "\(name) \(factorName): gradient error \(err)")
                worst = max(worst, err)
            }
            checked.append(String(format: "%@ (worst %.2g of the largest gradient)", name, worst))
        }
        XCTAssertFalse(checked.isEmpty, "no parity fixture holds LoRA gradients under a linear loss in \(Fixtures.searched)")
        print("checked LoRA gradients of \(checked.joined(separator: ", "))")
    }

    /// ∂L/∂embedding of L = Σ logits·R for a linear head: R·W_head.
    static func embeddingGradient(_ model: ViT, r: FixtureArray, batch b: Int) -> [Float] {
        let k = model.config.numClasses, w = model.config.width
        let head = model.parameters.head.weight.array
        return (0..<(b * w)).map { i in
            (0..<k).reduce(Float(0)) { $0 + Float(r.values[(i / w) * k + $1]) * head[$1 * w + i % w] }
        }
    }

    /// timm names `blocks.{i}.mlp.fc{1|2}.lora_{A|B}` → (block, 1 or 2, "A" or "B").
    static func parseLoRAName(_ name: String) -> (Int, Int, String)? {
        let parts = name.split(separator: ".")
        guard parts.count == 5, parts[0] == "blocks", let block = Int(parts[1]), parts[2] == "mlp",
            let layer = ["fc1": 1, "fc2": 2][String(parts[3])], ["lora_A", "lora_B"].contains(parts[4])
        else { return nil }
        return (block, layer, String(parts[4].dropFirst(5)))
    }
}
