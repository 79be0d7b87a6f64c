import Foundation
import GSLoRAAdapters
import GSLoRAFormat
import GSLoRAModel
import XCTest

/// Tiny backbones and adapters written with Format's writer, shared by the merge, prune, eval and infer tests.
enum AdapterTestKit {
    static func config(classes: Int = 4) -> ModelConfig {
        ModelConfig(
            family: .faceViT, imageSize: 8, patchSize: 4, channels: 3, width: 8, depth: 2, heads: 2, headDim: 4,
            mlpWidth: 16, numClasses: classes, head: .cosface, attentionScale: 0.35, layerNormEps: 1e-5, qkvBias: false)
    }

    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gslora-apps-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// Canonical tensors of a random model, in `dtype`.
    static func weights(_ c: ModelConfig, seed: UInt64, dtype: DType = .f32) throws -> [Tensor] {
        let p = try ViTParameters.random(config: c, seed: seed)
        var out: [Tensor] = []
        func add(_ name: String, _ shape: [Int], _ b: FloatBuffer) { out.append(Tensor(name: name, shape: shape, floats: b.array, dtype: dtype)) }
        func linear(_ n: String, _ l: Linear) {
            add(n + ".weight", [l.outFeatures, l.inFeatures], l.weight)
            if let b = l.bias { add(n + ".bias", [l.outFeatures], b) }
        }
        func norm(_ n: String, _ l: LayerNormParams) { add(n + ".weight", [c.width], l.weight); add(n + ".bias", [c.width], l.bias) }
        add("cls_token", [1, 1, c.width], p.clsToken)
        add("pos_embed", [1, c.numTokens, c.width], p.posEmbed)
        linear("patch_embed", p.patchEmbed)
        for (i, b) in p.blocks.enumerated() {
            norm("blocks.\(i).norm1", b.norm1)
            linear("blocks.\(i).attn.qkv", b.qkv)
            linear("blocks.\(i).attn.proj", b.proj)
            norm("blocks.\(i).norm2", b.norm2)
            linear("blocks.\(i).mlp.fc1", b.fc1)
            linear("blocks.\(i).mlp.fc2", b.fc2)
        }
        norm("norm", p.norm)
        linear("head", p.head)
        return out
    }

    static func writeBackbone(_ path: String, config c: ModelConfig, weights: [Tensor], classes: [String]? = nil) throws {
        try GSLRWriter.write(
            path, header: GSLRHeader(kind: .backbone, model: c, classes: classes, metadata: ["origin": .string("test")]),
            tensors: weights)
    }

    /// Random factors for every block's fc1/fc2 (B non-zero), one "block" group per block with norm Σ‖T‖_F.
    static func adapterTensors(_ c: ModelConfig, rank: Int, seed: UInt64, magnitude: Float = 0.5) -> [Tensor] {
        var rng = seed
        func next() -> Float {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return (Float(rng >> 40) / Float(1 << 24) * 2 - 1) * magnitude
        }
        var out: [Tensor] = []
        for i in 0..<c.depth {
            for (name, inF, outF) in [("fc1", c.width, c.mlpWidth), ("fc2", c.mlpWidth, c.width)] {
                out.append(Tensor(name: "blocks.\(i).mlp.\(name).lora_A", shape: [rank, inF], floats: (0..<(rank * inF)).map { _ in next() }))
                out.append(Tensor(name: "blocks.\(i).mlp.\(name).lora_B", shape: [outF, rank], floats: (0..<(outF * rank)).map { _ in next() }))
            }
        }
        return out
    }

    static func frobenius(_ t: Tensor) throws -> Double { try t.floats().reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }

    static func writeAdapter(
        _ path: String, config c: ModelConfig, tensors: [Tensor], base: String, task: Int = 1,
        rank: Int, forget: [Int] = [0]
    ) throws {
        var groups: [GroupRecord] = []
        for i in 0..<c.depth {
            let members = tensors.filter { $0.name.hasPrefix("blocks.\(i).") }.map(\.name)
            let norm = try tensors.filter { members.contains($0.name) }.reduce(0) { $0 + (try frobenius($1)) }
            // A corrupt (NaN) factor cannot have its norm recorded: JSON has no NaN.
            groups.append(GroupRecord(name: "blocks.\(i)", members: members, norm: norm.isFinite ? norm : 0, state: .kept))
        }
        let info = AdapterInfo(
            rank: rank, alpha: 1, scaling: 1 / Double(rank), targets: ["mlp.fc1", "mlp.fc2"], grouping: "block",
            groups: groups, task: TaskRecord(index: task, forget: forget, retain: Array(1..<c.numClasses)),
            baseFingerprint: base)
        try GSLRWriter.write(path, header: GSLRHeader(kind: .adapter, adapter: info), tensors: tensors)
    }

    static func bytes(_ t: Tensor) -> [UInt8] { Array(t.data.buffer) }
}

final class MergeTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    /// A base file and one adapter trained on it.
    func makeBaseAndAdapter(dtype: DType = .f32, magnitude: Float = 0.5) throws -> (ModelConfig, String, String) {
        let c = AdapterTestKit.config()
        try AdapterTestKit.writeBackbone(
            path("base.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 1, dtype: dtype),
            classes: ["a", "b", "c", "d"])
        let fp = try GSLRFile.open(path("base.gslr")).fingerprint
        try AdapterTestKit.writeAdapter(
            path("t1.gslr"), config: c, tensors: AdapterTestKit.adapterTensors(c, rank: 2, seed: 7, magnitude: magnitude),
            base: fp, rank: 2)
        return (c, path("base.gslr"), path("t1.gslr"))
    }

    func testMergeMatchesReferenceAndRecordsTask() throws {
        let (c, base, t1) = try makeBaseAndAdapter()
        let report = try LoRAMerge.mergeFiles(base: base, adapters: [t1], scales: [2], output: path("m.gslr"))
        let out = try GSLRFile.open(path("m.gslr"))
        let adapter = try AdapterFile.open(t1)
        XCTAssertEqual(out.header.model, c)
        XCTAssertEqual(out.header.classes, ["a", "b", "c", "d"])
        XCTAssertEqual(out.header.metadata["origin"], .string("test"))
        XCTAssertEqual(out.header.merged, [MergedTask(task: 1, adapterFingerprint: adapter.fingerprint, scale: 2)])
        XCTAssertEqual(report.outputFingerprint, out.fingerprint)
        XCTAssertEqual(out.verify(), [])
        // W' = W + 2·(1/2)·B·A, checked against a float64 product.
        let b0 = try GSLRFile.open(base)
        for i in 0..<c.depth {
            for name in ["fc1", "fc2"] {
                let p = "blocks.\(i).mlp.\(name)"
                let w = try b0.tensor(p + ".weight").floats(), got = try out.tensor(p + ".weight").floats()
                let a = try adapter.tensors.first { $0.name == p + ".lora_A" }!.floats()
                let b = try adapter.tensors.first { $0.name == p + ".lora_B" }!.floats()
                let shape = try out.tensor(p + ".weight").shape
                for o in 0..<shape[0] {
                    for k in 0..<shape[1] {
                        var d = 0.0
                        for r in 0..<2 { d += Double(b[o * 2 + r]) * Double(a[r * shape[1] + k]) }
                        XCTAssertEqual(Double(got[o * shape[1] + k]), Double(w[o * shape[1] + k]) + d, accuracy: 1e-5, "\(p)[\(o),\(k)]")
                    }
                }
            }
        }
        // Tensors without LoRA are untouched.
        XCTAssertEqual(AdapterTestKit.bytes(try out.tensor("blocks.0.attn.qkv.weight")), AdapterTestKit.bytes(try b0.tensor("blocks.0.attn.qkv.weight")))
    }

    func testPruneRoundTrips() throws {
        let (_, base, t1) = try makeBaseAndAdapter()
        _ = try LoRAMerge.mergeFiles(base: base, adapters: [t1], output: path("full.gslr"))
        let keepAll = try AdapterPrune.pruneFile(input: t1, output: path("p0.gslr"), rule: .threshold(0))
        XCTAssertEqual(keepAll.kept, 2)
        XCTAssertEqual(keepAll.change.relative, 0)
        _ = try LoRAMerge.mergeFiles(base: base, adapters: [path("p0.gslr")], output: path("m0.gslr"))
        let full = try GSLRFile.open(path("full.gslr")), m0 = try GSLRFile.open(path("m0.gslr"))
        XCTAssertEqual(full.fingerprint, m0.fingerprint)
        for t in full.allTensors() { XCTAssertEqual(AdapterTestKit.bytes(t), AdapterTestKit.bytes(try m0.tensor(t.name)), t.name) }

        let none = try AdapterPrune.pruneFile(input: t1, output: path("pall.gslr"), rule: .keep(0))
        XCTAssertEqual(none.kept, 0)
        XCTAssertEqual(none.change.relative, 1, accuracy: 1e-12)
        XCTAssertEqual(try GSLRFile.open(path("pall.gslr")).tensors.count, 0)
        _ = try LoRAMerge.mergeFiles(base: base, adapters: [path("pall.gslr")], output: path("mall.gslr"))
        XCTAssertEqual(try GSLRFile.open(path("mall.gslr")).fingerprint, try GSLRFile.open(base).fingerprint, "pruning every group gives the base back")
    }

    func testFingerprintMismatchRefusedUnlessForced() throws {
        let (c, _, t1) = try makeBaseAndAdapter()
        try AdapterTestKit.writeBackbone(path("other.gslr"), config: c, weights: try AdapterTestKit.weights(c, seed: 99))
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: path("other.gslr"), adapters: [t1], output: path("x.gslr"))) { e in
            guard case let AdapterError.fingerprintMismatch(a, expected, actual, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(a, t1)
            XCTAssertEqual(expected, try? AdapterFile.open(t1).info.baseFingerprint)
            XCTAssertEqual(actual, try? GSLRFile.open(self.path("other.gslr")).fingerprint)
            XCTAssertTrue("\(e)".contains(expected) && "\(e)".contains(actual), "both fingerprints shown: \(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.gslr")), "no output on refusal")
        let r = try LoRAMerge.mergeFiles(base: path("other.gslr"), adapters: [t1], output: path("x.gslr"), force: true)
        XCTAssertTrue(r.steps[0].forced)
        XCTAssertEqual(r.warnings.count, 1)
    }

    func testMergingTwiceIsRefusedWithHint() throws {
        let (_, base, t1) = try makeBaseAndAdapter()
        _ = try LoRAMerge.mergeFiles(base: base, adapters: [t1], output: path("m.gslr"))
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: path("m.gslr"), adapters: [t1], output: path("mm.gslr"))) { e in
            XCTAssertTrue("\(e)".contains("already merged"), "\(e)")
        }
    }

    func testContinualChainOfThree() throws {
        let (c, base, t1) = try makeBaseAndAdapter()
        var chain = try MergedWeights(file: GSLRFile.open(base))
        var adapters = [t1]
        try chain.fold(AdapterFile.open(t1))
        for task in 2...3 {
            let p = path("t\(task).gslr")
            try AdapterTestKit.writeAdapter(
                p, config: c, tensors: AdapterTestKit.adapterTensors(c, rank: 2, seed: UInt64(10 + task)),
                base: chain.fingerprint, task: task, rank: 2)
            adapters.append(p)
            try chain.fold(AdapterFile.open(p))
        }
        let r = try LoRAMerge.mergeFiles(base: base, adapters: adapters, output: path("chain.gslr"))
        XCTAssertEqual(r.steps.map(\.task), [1, 2, 3])
        XCTAssertEqual(r.outputFingerprint, chain.fingerprint)
        XCTAssertEqual(try GSLRFile.open(path("chain.gslr")).header.merged?.map(\.task), [1, 2, 3])
        // One step at a time through files gives the same bytes.
        _ = try LoRAMerge.mergeFiles(base: base, adapters: [adapters[0]], output: path("s1.gslr"))
        _ = try LoRAMerge.mergeFiles(base: path("s1.gslr"), adapters: [adapters[1]], output: path("s2.gslr"))
        _ = try LoRAMerge.mergeFiles(base: path("s2.gslr"), adapters: [adapters[2]], output: path("s3.gslr"))
        let s3 = try GSLRFile.open(path("s3.gslr"))
        XCTAssertEqual(s3.fingerprint, r.outputFingerprint)
        XCTAssertEqual(s3.header.merged?.map(\.task), [1, 2, 3])
        // Wrong order is refused at the first adapter that does not fit.
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: base, adapters: [adapters[0], adapters[2], adapters[1]], output: path("bad.gslr"))) { e in
            guard case let AdapterError.fingerprintMismatch(a, _, _, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(a, adapters[2])
        }
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: base, adapters: [adapters[1]], output: path("bad.gslr"))) { e in
            XCTAssertTrue("\(e)".contains(adapters[1]), "\(e)")
        }
    }

    func testNonFiniteResultNamesTheTensor() throws {
        let c = AdapterTestKit.config()
        for (label, dtype, value) in [("nan", DType.f32, Float.nan), ("huge", .f32, 1e30), ("f16 overflow", .f16, 3e3)] {
            let d = path(label)
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            try AdapterTestKit.writeBackbone(d + "/base.gslr", config: c, weights: try AdapterTestKit.weights(c, seed: 1, dtype: dtype))
            var ts = AdapterTestKit.adapterTensors(c, rank: 2, seed: 3)
            let i = ts.firstIndex { $0.name == "blocks.1.mlp.fc2.lora_B" }!
            var v = try ts[i].floats()
            for k in v.indices { v[k] = value }
            ts[i] = Tensor(name: ts[i].name, shape: ts[i].shape, floats: v)
            let j = ts.firstIndex { $0.name == "blocks.1.mlp.fc2.lora_A" }!
            ts[j] = Tensor(name: ts[j].name, shape: ts[j].shape, floats: try ts[j].floats().map { _ in value })
            try AdapterTestKit.writeAdapter(d + "/a.gslr", config: c, tensors: ts, base: try GSLRFile.open(d + "/base.gslr").fingerprint, rank: 2)
            XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: d + "/base.gslr", adapters: [d + "/a.gslr"], output: d + "/out.gslr"), label) { e in
                guard case let AdapterError.nonFinite(t, _, n, _) = e else { return XCTFail("\(label): \(e)") }
                XCTAssertEqual(t, "blocks.1.mlp.fc2.weight", label)
                XCTAssertGreaterThan(n, 0)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/out.gslr"), label)
        }
    }

    func testF16StorageUsesFloat32MathAndWritesF16() throws {
        let (c, base, t1) = try makeBaseAndAdapter(dtype: .f16, magnitude: 0.8)
        _ = try LoRAMerge.mergeFiles(base: base, adapters: [t1], output: path("m16.gslr"))
        let out = try GSLRFile.open(path("m16.gslr")), b0 = try GSLRFile.open(base), adapter = try AdapterFile.open(t1)
        XCTAssertTrue(out.tensors.allSatisfy { $0.dtype == .f16 })
        var changed = 0
        for i in 0..<c.depth {
            for name in ["fc1", "fc2"] {
                let p = "blocks.\(i).mlp.\(name)"
                let w = try b0.tensor(p + ".weight"), got = try out.tensor(p + ".weight")
                let wv = try w.floats(), gv = try got.floats()
                let a = try adapter.tensors.first { $0.name == p + ".lora_A" }!.floats()
                let b = try adapter.tensors.first { $0.name == p + ".lora_B" }!.floats()
                let nIn = w.shape[1]
                for o in 0..<w.shape[0] {
                    for k in 0..<nIn {
                        var d: Float = 0
                        for r in 0..<2 { d += b[o * 2 + r] * a[r * nIn + k] }
                        // float32 sum, rounded once to f16: the GEMM's summation order may move the f32 value by an ulp,
                        // which can flip the f16 rounding only at a tie, so allow one f16 ulp.
                        let want = Float16(wv[o * nIn + k] + 0.5 * d)
                        let g = Float16(gv[o * nIn + k])
                        XCTAssertLessThanOrEqual(abs(Float(g) - Float(want)), Float(want.ulp), "\(p)[\(o),\(k)]")
                        if g != Float16(wv[o * nIn + k]) { changed += 1 }
                    }
                }
            }
        }
        XCTAssertGreaterThan(changed, 100, "the merge changed the f16 weights")
    }

    func testLiveAndMergedForwardAgree() throws {
        let (c, base, t1) = try makeBaseAndAdapter()
        let pruned = path("t1.pruned.gslr")
        _ = try AdapterPrune.pruneFile(input: t1, output: pruned, rule: .keep(1))
        let images = (0..<(3 * 3 * 8 * 8)).map { Float(sin(Double($0) * 0.37)) }
        for adapterPath in [t1, pruned] {
            let file = try GSLRFile.open(base)
            let adapter = try AdapterFile.open(adapterPath)
            let live = try ViT(config: c, weights: file.allTensors(), adapters: [adapter.liveAdapter(config: c, scale: 1.5)])
            var w = try MergedWeights(file: file)
            try w.fold(adapter, scale: 1.5)
            let merged = try ViT(config: c, weights: w.tensors)
            let plain = try ViT(config: c, weights: file.allTensors())
            let x = try live.forward(images: images, batch: 3), y = try merged.forward(images: images, batch: 3)
            let z = try plain.forward(images: images, batch: 3)
            var diff: Float = 0, effect: Float = 0
            for i in x.embeddings.indices {
                diff = max(diff, abs(x.embeddings[i] - y.embeddings[i]))
                effect = max(effect, abs(x.embeddings[i] - z.embeddings[i]))
            }
            XCTAssertLessThan(diff, 1e-4, adapterPath)
            XCTAssertGreaterThan(effect, 1e-2, "the adapter changes the output: \(adapterPath)")
        }
    }

    func testScaleCountAndKindChecked() throws {
        let (_, base, t1) = try makeBaseAndAdapter()
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: base, adapters: [t1], scales: [1, 2], output: path("x.gslr")))
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: t1, adapters: [t1], output: path("x.gslr"))) { e in
            XCTAssertEqual(e as? AdapterError, .wrongKind(file: t1, expected: "backbone", actual: "adapter"))
        }
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: base, adapters: [base], output: path("x.gslr"))) { e in
            XCTAssertEqual(e as? AdapterError, .wrongKind(file: base, expected: "adapter", actual: "backbone"))
            XCTAssertEqual("\(e)", "\(base): is a backbone file, expected an adapter file.")
        }
        XCTAssertThrowsError(try LoRAMerge.mergeFiles(base: base, adapters: [t1], output: base)) { e in
            XCTAssertEqual(e as? FormatError, .outputIsInput(file: base))
        }
    }
}
