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
            let b = input.shape[0], k = config.numClasses, w = config.width
            XCTAssertEqual(r.values.count, b * k, "\(name): R is [batch, classes]")
            let out = try model.forward(images: input.floats, batch: b, mode: .train(dropout: 0))
            let logits = try FixtureArray(json["logits"], "\(name) logits")
            XCTAssertLessThanOrEqual(Tolerance.maxRelative(out.logits, logits.values), Tolerance.forward, "\(name): training-mode logits")
            let head = model.parameters.head.weight.array
            let gE = (0..<(b * w)).map { i in
                (0..<k).reduce(Float(0)) { $0 + Float(r.values[(i / w) * k + $1]) * head[$1 * w + i % w] }
            }
            let grads = ViTGradients(model: model, parameters: true)
            try model.backward(gradEmbeddings: gE, into: grads)
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
}
