import GSLoRAFormat
import GSLoRAModel
import XCTest

/// Construction from ModelConfig + canonical tensors: every problem is a typed error naming the tensor.
final class ModelLoadingTests: XCTestCase {
    let config = BackwardTests.tinyConfig(.faceViT)

    /// The canonical tensors of a random model of `config` (as a converter would hand them over).
    func canonical(_ c: ModelConfig) throws -> [Tensor] {
        let p = try ViTParameters.random(config: c, seed: 1)
        var out: [Tensor] = [
            Tensor(name: "cls_token", shape: [1, 1, c.width], floats: p.clsToken.array),
            Tensor(name: "pos_embed", shape: [1, c.numTokens, c.width], floats: p.posEmbed.array)
        ]
        func lin(_ name: String, _ l: Linear, shape: [Int]? = nil) {
            out.append(Tensor(name: name + ".weight", shape: shape ?? [l.outFeatures, l.inFeatures], floats: l.weight.array))
            if let b = l.bias { out.append(Tensor(name: name + ".bias", shape: [l.outFeatures], floats: b.array)) }
        }
        func ln(_ name: String, _ n: LayerNormParams) {
            out.append(Tensor(name: name + ".weight", shape: [c.width], floats: n.weight.array))
            out.append(Tensor(name: name + ".bias", shape: [c.width], floats: n.bias.array))
        }
        lin("patch_embed", p.patchEmbed, shape: c.family == .faceViT ? nil : [c.width, c.channels, c.patchSize, c.patchSize])
        for (i, b) in p.blocks.enumerated() {
            ln("blocks.\(i).norm1", b.norm1); lin("blocks.\(i).attn.qkv", b.qkv); lin("blocks.\(i).attn.proj", b.proj)
            ln("blocks.\(i).norm2", b.norm2); lin("blocks.\(i).mlp.fc1", b.fc1); lin("blocks.\(i).mlp.fc2", b.fc2)
        }
        ln("norm", p.norm)
        lin("head", p.head)
        return out
    }

    func testCompleteWeightsLoadInAnyFloatDType() throws {
        for family in [ModelConfig.Family.faceViT, .torchvisionViT] {
            let c = BackwardTests.tinyConfig(family)
            let f32 = try canonical(c)
            let a = try ViT(config: c, weights: f32)
            // The same weights stored as float64 give the same model.
            let f64 = f32.map { t -> Tensor in
                let v = try! t.floats().map(Double.init)
                return Tensor(name: t.name, dtype: .f64, shape: t.shape, data: v.withUnsafeBytes { Bytes(copying: $0) })
            }
            let b = try ViT(config: c, weights: f64)
            let images = [Float](repeating: 0.5, count: 2 * c.channels * c.imageSize * c.imageSize)
            XCTAssertEqual(try a.forward(images: images, batch: 2).logits, try b.forward(images: images, batch: 2).logits)
        }
    }

    func testMissingMisshapedUnexpectedAndDuplicateTensors() throws {
        let good = try canonical(config)
        XCTAssertThrowsError(try ViT(config: config, weights: good.filter { $0.name != "blocks.1.mlp.fc2.bias" })) {
            XCTAssertEqual($0 as? ModelError, .missingTensor("blocks.1.mlp.fc2.bias"))
        }
        var bad = good
        let i = bad.firstIndex { $0.name == "blocks.0.attn.qkv.weight" }!
        bad[i] = Tensor(name: bad[i].name, shape: [8, 24], floats: try bad[i].floats())
        XCTAssertThrowsError(try ViT(config: config, weights: bad)) {
            XCTAssertEqual($0 as? ModelError, .shapeMismatch(tensor: "blocks.0.attn.qkv.weight", expected: [24, 8], actual: [8, 24]))
            XCTAssertTrue("\($0)".contains("blocks.0.attn.qkv.weight"))
        }
        XCTAssertThrowsError(
            try ViT(config: config, weights: good + [Tensor(name: "blocks.0.attn.qkv.bias", shape: [24], floats: .init(repeating: 0, count: 24))])
        ) {
            XCTAssertEqual($0 as? ModelError, .unexpectedTensors(["blocks.0.attn.qkv.bias"]))
        }
        XCTAssertThrowsError(try ViT(config: config, weights: good + [good[0]])) {
            XCTAssertEqual($0 as? ModelError, .duplicateTensor("cls_token"))
        }
        var ints = good
        ints[0] = Tensor(name: "cls_token", dtype: .i32, shape: [1, 1, 8], data: Bytes(copying: [UInt8](repeating: 0, count: 32)))
        XCTAssertThrowsError(try ViT(config: config, weights: ints)) { XCTAssertTrue("\($0)".contains("cls_token")) }
        var short = good
        short[0] = Tensor(name: "cls_token", dtype: .f32, shape: [1, 1, 8], data: Bytes(copying: [UInt8](repeating: 0, count: 7)))
        XCTAssertThrowsError(try ViT(config: config, weights: short)) { XCTAssertTrue("\($0)".contains("cls_token")) }
    }

    func testBadConfigsAreRejected() throws {
        var c = config
        c.imageSize = 10
        XCTAssertThrowsError(try ViTParameters.random(config: c, seed: 1)) { XCTAssertTrue("\($0)".contains("multiple of patch_size")) }
        c = config
        c.width = 1 << 40
        XCTAssertThrowsError(try ViTParameters.random(config: c, seed: 1))
        c = config
        c.head = .init(kind: .cosface, s: nil, m: 0.35)
        XCTAssertThrowsError(try ViTParameters.random(config: c, seed: 1))
        c = config
        c.layerNormEps = .nan
        XCTAssertThrowsError(try ViTParameters.random(config: c, seed: 1))
    }

    func testBadInputsAreRejected() throws {
        let m = try ViT(config: config, weights: try canonical(config))
        let one = [Float](repeating: 0, count: config.channels * config.imageSize * config.imageSize)
        XCTAssertThrowsError(try m.forward(images: one, batch: 2))
        XCTAssertThrowsError(try m.forward(images: one, batch: 0))
        XCTAssertThrowsError(try m.forward(images: one, batch: 1, labels: [config.numClasses]))
        XCTAssertThrowsError(try m.forward(images: one, batch: 1, labels: [0, 1]))
        XCTAssertThrowsError(try m.forward(images: one, batch: 1, mode: .train(dropout: 1)))
        XCTAssertThrowsError(try m.forward(images: one, batch: Int.max / 2)) // size overflow, no allocation
    }

    func testAdaptersMustFitAndRoundTripAsTensors() throws {
        let a = try BackwardTests.adapter(config, rank: 2, seed: 1)
        let back = try LoRAAdapter(config: config, tensors: a.tensors, scaling: a.scaling)
        XCTAssertEqual(back.rank, 2)
        XCTAssertEqual(back.fc2[1].b.array, a.fc2[1].b.array)
        XCTAssertThrowsError(try LoRAAdapter(config: config, tensors: a.tensors.filter { $0.name != "blocks.1.mlp.fc1.lora_B" }, scaling: 0.5)) {
            XCTAssertEqual($0 as? ModelError, .missingTensor("blocks.1.mlp.fc1.lora_B"))
        }
        var other = config
        other.mlpWidth = 32
        let wrong = try LoRAAdapter(config: other, rank: 2, seed: 1)
        XCTAssertThrowsError(try ViT(config: config, weights: try canonical(config), adapters: [wrong]))
    }

    /// Dropout changes training outputs, reproducibly per seed; eval and train without dropout agree.
    func testDropoutModes() throws {
        let m = try ViT(config: config, weights: try canonical(config))
        var rng = SplitMix64(seed: 9)
        let images = (0..<(2 * config.channels * config.imageSize * config.imageSize)).map { _ in rng.nextUnitFloat() }
        let eval = try m.forward(images: images, batch: 2).embeddings
        XCTAssertEqual(try m.forward(images: images, batch: 2, mode: .train(dropout: 0)).embeddings, eval)
        m.dropoutSeed = 1
        let d1 = try m.forward(images: images, batch: 2, mode: .train(dropout: 0.1)).embeddings
        let d2 = try m.forward(images: images, batch: 2, mode: .train(dropout: 0.1)).embeddings
        m.dropoutSeed = 1
        XCTAssertEqual(try m.forward(images: images, batch: 2, mode: .train(dropout: 0.1)).embeddings, d1)
        XCTAssertNotEqual(d1, eval)
        XCTAssertNotEqual(d1, d2)
    }
}
