import Foundation
import GSLoRAFormat
import GSLoRAModel
import TestSupport
import XCTest

/// The three heads against Double formulas on the model's own embeddings (spec/TRAINING.md §A.1.1).
final class HeadTests: XCTestCase {
    func run(_ head: ModelConfig.Head) throws -> (ViT, ViTOutput, [Int]) {
        var c = BackwardTests.tinyConfig(.faceViT)
        c.head = head
        let m = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 4))
        var rng = SplitMix64(seed: 5)
        let images = (0..<(3 * c.channels * c.imageSize * c.imageSize)).map { _ in rng.nextUnitFloat() }
        let labels = [2, 0, 1]
        return (m, try m.forward(images: images, batch: 3, labels: labels), labels)
    }

    func cosines(_ m: ViT, _ out: ViTOutput) -> [Double] {
        let w = m.config.width, k = m.config.numClasses, hw = m.parameters.head.weight.array.map(Double.init)
        func unit(_ v: [Double]) -> [Double] { let n = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12); return v.map { $0 / n } }
        var out2: [Double] = []
        for b in 0..<out.batch {
            let e = unit(out.embeddings[(b * w)..<((b + 1) * w)].map(Double.init))
            for j in 0..<k { out2.append(zip(e, unit(Array(hw[(j * w)..<((j + 1) * w)]))).reduce(0) { $0 + $1.0 * $1.1 }) }
        }
        return out2
    }

    func testCosFace() throws {
        let (m, out, labels) = try run(.cosface)
        let cos = cosines(m, out), k = m.config.numClasses
        let plain = cos.map { 64 * $0 }
        var margin = plain
        for (b, y) in labels.enumerated() { margin[b * k + y] = 64 * (cos[b * k + y] - 0.35) }
        XCTAssertLessThanOrEqual(Tolerance.maxRelative(out.logits, plain), 1e-6)
        XCTAssertLessThanOrEqual(Tolerance.maxRelative(try XCTUnwrap(out.marginLogits), margin), 1e-6)
    }

    func testArcFace() throws {
        let (m, out, labels) = try run(.init(kind: .arcface, s: 64, m: 0.5))
        let cos = cosines(m, out), k = m.config.numClasses
        var margin = cos.map { 64 * $0 }
        for (b, y) in labels.enumerated() {
            let c = cos[b * k + y], s = (1 - c * c).squareRoot()
            let phi = c > Foundation.cos(Double.pi - 0.5) ? c * Foundation.cos(0.5) - s * Foundation.sin(0.5) : c - Foundation.sin(Double.pi - 0.5) * 0.5
            margin[b * k + y] = 64 * phi
        }
        XCTAssertLessThanOrEqual(Tolerance.maxRelative(try XCTUnwrap(out.marginLogits), margin), 1e-5)
    }

    func testLinear() throws {
        let (m, out, _) = try run(.linear)
        let w = m.config.width, k = m.config.numClasses
        let hw = m.parameters.head.weight.array, hb = try XCTUnwrap(m.parameters.head.bias).array
        var ref: [Double] = []
        for b in 0..<out.batch {
            for j in 0..<k { ref.append(Double(hb[j]) + (0..<w).reduce(0.0) { $0 + Double(out.embeddings[b * w + $1]) * Double(hw[j * w + $1]) }) }
        }
        XCTAssertLessThanOrEqual(Tolerance.maxRelative(out.logits, ref), 1e-6)
        XCTAssertNil(out.marginLogits)
        XCTAssertEqual(out.trainingLogits, out.logits)
    }
}
