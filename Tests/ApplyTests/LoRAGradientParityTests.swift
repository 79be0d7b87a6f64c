import Foundation
import GSLoRAConvert
import GSLoRAModel
import TestSupport
import XCTest

/// The backward pass on real PyTorch numbers: every parity file with `lora_params[].grad` (the gradient of its
/// GS-LoRA total loss) is replayed. The loss side (margin cross-entropy, bounded forget term, prototype KL, group
/// lasso) is computed here in Double from the formulas the file states, giving ∂L/∂embedding; the backbone part
/// is `ViT.backward`. The Train module owns the production loss code; this is an independent reference for it.
final class LoRAGradientParityTests: XCTestCase {
    func testLoRAGradientsMatchPyTorch() throws {
        var checked = 0
        for url in Fixtures.files(endingWith: ".parity.json") {
            let json = try Fixtures.json(url)
            guard let params = json["lora_params"] as? [[String: Any]], let hyper = json["hyper"] as? [String: Any],
                let inputs = json["inputs"] as? [String: Any], let fwd = json["forward"] as? [String: Any]
            else { continue }
            let pth = url.deletingLastPathComponent()
                .appendingPathComponent(url.lastPathComponent.replacingOccurrences(of: ".parity.json", with: ".pth"))
            let imported = try ModelImport.load(pth.path, options: ImportOptions(heads: ForwardParityTests.statedHeads(json)))
            let config = try XCTUnwrap(imported.config)
            let rank = try XCTUnwrap(imported.loraRank), alpha = try XCTUnwrap(imported.loraAlpha)
            let adapter = try LoRAAdapter(config: config, tensors: imported.lora, scaling: Float(alpha / Double(rank)))
            let model = try ViT(config: config, weights: imported.weights, adapters: [adapter])
            let grads = ViTGradients(model: model, parameters: false)
            let k = config.numClasses, w = config.width
            let s = try XCTUnwrap(config.head.s)
            let beta = try XCTUnwrap(hyper["beta"] as? Double), bound = try XCTUnwrap(hyper["BND"] as? Double)
            let lassoWeight = try XCTUnwrap(hyper["alpha"] as? Double)
            let protoWeight = hyper["prototype_weight_forget"] as? Double ?? 0, protoMargin = hyper["prototype_margin"] as? Double ?? 0
            let table = try FixtureArray((json["prototypes"] as? [String: Any])?["table"], "prototype table")
            var total = 0.0

            for group in ["forget", "retain"] {
                let images = try FixtureArray(inputs["\(group)_images"], "\(group)_images")
                let labels = try XCTUnwrap((fwd[group] as? [String: Any])?["labels"] as? [Int])
                let b = labels.count
                let out = try model.forward(images: images.floats, batch: b, labels: labels, mode: .train(dropout: 0))
                let logits = try XCTUnwrap(out.marginLogits).map(Double.init), e = out.embeddings.map(Double.init)
                // Mean cross-entropy on the margin logits and its logit gradient (softmax − onehot)/B.
                var ce = 0.0
                var gLogits = [Double](repeating: 0, count: b * k)
                for i in 0..<b {
                    let row = Array(logits[(i * k)..<((i + 1) * k)]), mx = row.max()!
                    let z = row.reduce(0) { $0 + Foundation.exp($1 - mx) }
                    ce += (mx + Foundation.log(z) - row[labels[i]]) / Double(b)
                    for j in 0..<k { gLogits[i * k + j] = (Foundation.exp(row[j] - mx) / z - (j == labels[i] ? 1 : 0)) / Double(b) }
                }
                var factor = 1.0
                if group == "forget" {
                    // β·relu(BND − CE): active only while CE is below the bound.
                    factor = bound - ce > 0 ? -beta : 0
                    total += beta * max(0, bound - ce)
                } else {
                    total += ce
                }
                // CosFace: logit = s·(ê·ŵ − m·[label]); ∂e = (∂ê − ê(ê·∂ê))/‖e‖.
                let headW = model.parameters.head.weight.array.map(Double.init)
                var gE = [Double](repeating: 0, count: b * w)
                for i in 0..<b {
                    let ei = Array(e[(i * w)..<((i + 1) * w)]), n = max(ei.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
                    var dUnit = [Double](repeating: 0, count: w)
                    for j in 0..<k {
                        let row = Array(headW[(j * w)..<((j + 1) * w)]), rn = max(row.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
                        let g = factor * gLogits[i * k + j] * s
                        for d in 0..<w { dUnit[d] += g * row[d] / rn }
                    }
                    let dot = (0..<w).reduce(0.0) { $0 + ei[$1] / n * dUnit[$1] }
                    for d in 0..<w { gE[i * w + d] = (dUnit[d] - ei[d] / n * dot) / n }
                }
                // Prototype term on the forget batch: w·relu(margin − KL(p_proto ‖ q_emb)); ∂KL/∂e = (q − p)/B.
                if group == "forget", protoWeight > 0 {
                    var kl = 0.0
                    var gKL = [Double](repeating: 0, count: b * w)
                    for i in 0..<b {
                        let p = Self.logSoftmax(Array(table.values[(labels[i] * w)..<((labels[i] + 1) * w)]))
                        let q = Self.logSoftmax(Array(e[(i * w)..<((i + 1) * w)]))
                        for d in 0..<w {
                            kl += Foundation.exp(p[d]) * (p[d] - q[d]) / Double(b)
                            gKL[i * w + d] = (Foundation.exp(q[d]) - Foundation.exp(p[d])) / Double(b)
                        }
                    }
                    total += protoWeight * max(0, protoMargin - kl)
                    if protoMargin - kl > 0 { for i in 0..<gE.count { gE[i] -= protoWeight * gKL[i] } }
                }
                try model.backward(gradEmbeddings: gE.map(Float.init), into: grads)
            }

            // Group lasso over blocks: α·Σ_l ‖(A, B of fc1 and fc2)‖; ∂ = α·T/‖group‖.
            let lossTotal = try XCTUnwrap((json["losses"] as? [String: Any])?["total"] as? Double)
            var lasso = 0.0
            var groupNorm: [Double] = []
            for l in 0..<config.depth {
                let all = [adapter.fc1[l].a, adapter.fc1[l].b, adapter.fc2[l].a, adapter.fc2[l].b].flatMap(\.array)
                let n = all.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                groupNorm.append(n)
                lasso += n
            }
            total += lassoWeight * lasso
            XCTAssertLessThanOrEqual(Tolerance.relative(total, lossTotal), Tolerance.forward, "\(url.lastPathComponent): total loss \(total) vs \(lossTotal)")

            for p in params {
                let name = try XCTUnwrap(p["name"] as? String)
                let (block, layer, factor) = try XCTUnwrap(Self.parseLoRAName(name), "unrecognised LoRA name \(name)")
                let f = layer == 0 ? adapter.fc1[block] : adapter.fc2[block]
                let g = layer == 0 ? grads.lora[0].fc1[block] : grads.lora[0].fc2[block]
                let value = factor == "A" ? f.a : f.b, grad = factor == "A" ? g.a : g.b
                let ours = (0..<grad.count).map { grad[$0] + Float(lassoWeight * Double(value[$0]) / groupNorm[block]) }
                let ref = try FixtureArray(p["grad"], "\(name) grad")
                XCTAssertEqual(ours.count, ref.values.count, name)
                let err = Tolerance.maxRelative(ours, ref.values)
                XCTAssertLessThanOrEqual(err, Tolerance.gradient, "\(url.lastPathComponent) \(name): gradient error \(err)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no parity fixture holds LoRA gradients")
    }

    static func logSoftmax(_ x: [Double]) -> [Double] {
        let mx = x.max()!, lz = mx + Foundation.log(x.reduce(0) { $0 + Foundation.exp($1 - mx) })
        return x.map { $0 - lz }
    }

    /// Official face-transformer LoRA names: transformer.layers.{i}.1.fn.fn.net.{0|3}.lora_{A|B}
    /// → (block, 0 for fc1 / 1 for fc2, "A"/"B").
    static func parseLoRAName(_ name: String) -> (Int, Int, String)? {
        let parts = name.split(separator: ".")
        guard parts.count == 9, parts[0] == "transformer", parts[1] == "layers", let block = Int(parts[2]),
            parts[6] == "net", let layer = ["0": 0, "3": 1][String(parts[7])], parts[8].hasPrefix("lora_")
        else { return nil }
        return (block, layer, String(parts[8].dropFirst(5)))
    }
}
