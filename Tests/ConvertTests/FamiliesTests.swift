import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

/// What the fixtures' sidecars say about each model, read from the files (never from fixture names).
enum ModelFixtures {
    /// Every .pth with an .expected.json sidecar, malicious ones excluded.
    static func checkpoints() -> [URL] {
        Fixtures.files { $0.hasSuffix(".pth") && !$0.hasPrefix("malicious_") && !$0.hasPrefix("bad_") }
            .filter { FileManager.default.fileExists(atPath: sidecar($0, "expected.json").path) }
    }

    static func sidecar(_ pth: URL, _ ext: String) -> URL { pth.deletingPathExtension().appendingPathExtension(ext) }

    static func stem(_ url: URL) -> String { Fixtures.uniqueStem(url) }

    /// The config a parity file states: the face model's "model_config", or the constructor call in the description
    /// (torchvision VisionTransformer(...) / timm.create_model('vit_<size>_patch<P>_<S>', num_classes=K)).
    static func statedConfig(parity url: URL) throws -> ModelConfig? {
        let p = try Fixtures.json(url)
        if let mc = p["model_config"] as? [String: Any] {
            func i(_ k: String) throws -> Int {
                guard let v = mc[k] as? Int else { throw FixtureError.malformed(url.lastPathComponent, "model_config.\(k) missing") }
                return v
            }
            let dim = try i("dim"), heads = try i("heads"), dimHead = try i("dim_head")
            let head: ModelConfig.Head = (mc["loss_type"] as? String) == "CosFace" ? .cosface : .linear
            return ModelConfig(
                family: .faceViT, imageSize: try i("image_size"), patchSize: try i("patch_size"),
                channels: try i("channels"), width: dim, depth: try i("depth"), heads: heads, headDim: dimHead,
                mlpWidth: try i("mlp_dim"), numClasses: try i("num_class"), head: head,
                attentionScale: 1 / Double(dim).squareRoot(), layerNormEps: 1e-5, qkvBias: false)
        }
        // timm VisionTransformer(**timm_config): qkv bias on, as timm's default.
        if let tc = p["timm_config"] as? [String: Any] {
            func i(_ k: String) throws -> Int {
                guard let v = tc[k] as? Int else { throw FixtureError.malformed(url.lastPathComponent, "timm_config.\(k) missing") }
                return v
            }
            let w = try i("embed_dim"), heads = try i("num_heads"), ratio = tc["mlp_ratio"] as? Double ?? 4
            return ModelConfig(
                family: .timmViT, imageSize: try i("img_size"), patchSize: try i("patch_size"), width: w, depth: try i("depth"),
                heads: heads, headDim: w / heads, mlpWidth: Int(Double(w) * ratio), numClasses: try i("num_classes"), head: .linear,
                attentionScale: 1 / Double(w / heads).squareRoot(), layerNormEps: 1e-6, qkvBias: true,
                pooling: tc["global_pool"] as? String == "avg" ? "avg" : "cls")
        }
        let d = p["description"] as? String ?? ""
        func arg(_ k: String) -> Int? {
            guard let r = d.range(of: "\(k)=(\\d+)", options: .regularExpression) else { return nil }
            return Int(d[r].split(separator: "=")[1])
        }
        if d.contains("VisionTransformer("), let img = arg("image_size"), let patch = arg("patch_size"),
            let depth = arg("num_layers"), let heads = arg("num_heads"), let width = arg("hidden_dim"),
            let mlp = arg("mlp_dim"), let classes = arg("num_classes")
        {
            return ModelConfig(
                family: .torchvisionViT, imageSize: img, patchSize: patch, width: width, depth: depth,
                heads: heads, headDim: width / heads, mlpWidth: mlp, numClasses: classes, head: .linear,
                attentionScale: 1 / Double(width / heads).squareRoot(), layerNormEps: 1e-6, qkvBias: true)
        }
        if d.contains("timm.create_model"), let r = d.range(of: "vit_([a-z]+)_patch(\\d+)_(\\d+)", options: .regularExpression),
            let classes = arg("num_classes")
        {
            let parts = d[r].split(separator: "_") // vit, size, patchP, S
            // timm's published ViT sizes: (width, depth, heads); mlp ratio 4.
            let sizes: [Substring: (Int, Int, Int)] = ["tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)]
            guard let (w, depth, heads) = sizes[parts[1]], let patch = Int(parts[2].dropFirst(5)), let img = Int(parts[3]) else { return nil }
            return ModelConfig(
                family: .timmViT, imageSize: img, patchSize: patch, width: w, depth: depth, heads: heads,
                headDim: w / heads, mlpWidth: 4 * w, numClasses: classes, head: .linear,
                attentionScale: 1 / Double(w / heads).squareRoot(), layerNormEps: 1e-6, qkvBias: true)
        }
        return nil
    }

    /// The expected config of a checkpoint: from its own parity file, or from the parity file of the fixture its
    /// sidecar notes say it holds (checkpoint_nested: "... of the face_vit_tiny model ..."); nil for other layouts.
    static func expectedConfig(_ pth: URL) throws -> ModelConfig? {
        let own = sidecar(pth, "parity.json")
        if FileManager.default.fileExists(atPath: own.path) { return try statedConfig(parity: own) }
        let notes = (try Fixtures.json(sidecar(pth, "expected.json"))["notes"] as? [String] ?? []).joined(separator: " ")
        // The parity file named in the notes, from the checkpoint's own folder.
        let folder = pth.deletingLastPathComponent()
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted() where name.hasSuffix(".parity.json") {
            if notes.contains(name.replacingOccurrences(of: ".parity.json", with: "")) {
                return try statedConfig(parity: folder.appendingPathComponent(name))
            }
        }
        return nil
    }

    /// The sidecar's tensors: dotted key → (dtype, shape, sha256).
    static func sidecarTensors(_ pth: URL) throws -> [(key: String, dtype: String, shape: [Int], sha: String)] {
        let e = try Fixtures.json(sidecar(pth, "expected.json"))
        return (e["tensors"] as? [[String: Any]] ?? []).map {
            (
                (($0["path"] as? [Any]) ?? []).map { "\($0)" }.joined(separator: "."), $0["dtype"] as? String ?? "",
                $0["shape"] as? [Int] ?? [], $0["sha256"] as? String ?? ""
            )
        }
    }

    static func sha256(_ t: Tensor) -> String { SHA256.hex(SHA256.hash(t.data.buffer)) }

    static func options(for config: ModelConfig?) -> ImportOptions {
        ImportOptions(heads: config?.heads, channels: config?.family == .faceViT ? config?.channels : nil)
    }

    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gslora-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }
}

final class FamiliesTests: XCTestCase {
    /// Every checkpoint fixture: the family is detected and the config inferred from shapes equals the stated one;
    /// checkpoints of no known layout come out as plain tensors with a notice.
    func testDetectionAndConfigOfEveryFixture() throws {
        let files = ModelFixtures.checkpoints()
        XCTAssertFalse(files.isEmpty, "no fixtures in \(Fixtures.searched)")
        var withFamily = 0
        for url in files {
            let name = url.lastPathComponent
            let want = try ModelFixtures.expectedConfig(url)
            let m = try ModelImport.load(url.path, options: ModelFixtures.options(for: want))
            guard let want else {
                XCTAssertNil(m.family, "\(name): no model layout expected")
                XCTAssertTrue(m.notices.contains { $0.contains("unknown model layout") }, "\(name): notice missing: \(m.notices)")
                XCTAssertEqual(m.weights.count, try ModelFixtures.sidecarTensors(url).count, "\(name): every tensor kept")
                continue
            }
            withFamily += 1
            XCTAssertEqual(m.family, want.family, name)
            XCTAssertEqual(m.config, want, "\(name): inferred config")
            // Every non-optimizer tensor of the sidecar is either a weight or a LoRA factor.
            let modelTensors = try ModelFixtures.sidecarTensors(url).filter { !$0.key.hasPrefix("optimizer.") }
            XCTAssertEqual(m.weights.count + m.lora.count, modelTensors.count, "\(name): tensors accounted for")
            XCTAssertEqual(Set(m.weights.map(\.name)), Set(ModelFamilies.expectedShapes(want).map(\.name)), "\(name): canonical names")
        }
        XCTAssertGreaterThanOrEqual(withFamily, 3, "expected the face, torchvision and timm fixtures to carry parity files")
    }

    /// Without --heads the architecture table decides when it can (timm_vit_tiny: vit_tiny/deit_tiny, 3 heads);
    /// otherwise the import is refused naming --heads and the candidates, the true heads×size among them.
    func testHeadsAreDecidedOrRefused() throws {
        var decided = 0, refused = 0
        for url in ModelFixtures.checkpoints() {
            guard let want = try ModelFixtures.expectedConfig(url) else { continue }
            print("checking \(url.path)")
            do {
                let m = try ModelImport.load(url.path)
                XCTAssertEqual(m.config?.heads, want.heads, url.lastPathComponent)
                XCTAssertEqual(m.config?.provenance?["heads"]?.hasPrefix("architecture:"), true, "\(String(describing: m.config?.provenance))")
                decided += 1
            } catch let e as ConvertError {
                guard case .cannotInfer = e else { XCTFail("\(url.lastPathComponent): \(e)"); continue }
                XCTAssertTrue("\(e)".contains("`heads`") && "\(e)".contains("\(want.heads)×\(want.headDim)"), "\(e)")
                // Lenient (for showing a file): the tensors under their own names, and the reason as a notice.
                let m = try ModelImport.load(url.path, options: ImportOptions(lenient: true))
                XCTAssertNil(m.config)
                let stateDict = try ModelFixtures.sidecarTensors(url).filter { !$0.key.hasPrefix("optimizer.") }
                XCTAssertEqual(m.weights.count, stateDict.count, url.lastPathComponent)
                XCTAssertTrue(m.notices.contains { $0.contains("`heads`") }, "\(m.notices)")
                refused += 1
            }
        }
        XCTAssertGreaterThanOrEqual(decided, 1, "timm_vit_tiny is vit_tiny_patch16_224's shape")
        XCTAssertGreaterThanOrEqual(refused, 1, "the face and torchvision fixtures match no published architecture")
    }

    /// The table holds what the libraries build (tools/architectures.py); every entry matches its own shapes, and
    /// entries sharing shapes agree on heads or are reported as disagreeing.
    func testArchitectureTable() throws {
        let h14 = try XCTUnwrap(Architectures.named("vit_h_14"))
        XCTAssertEqual([h14.heads, h14.width, h14.depth ?? 0, h14.patchSize], [16, 1280, 32, 14])
        XCTAssertEqual(Architectures.named("timm/vit_base_patch16_224.augreg_in21k")?.heads, 12)
        XCTAssertEqual(Architectures.named("ViT-P8S8")?.heads, 8)
        for a in Architectures.all {
            let pe = a.family == .faceViT ? [a.width, a.patchSize * a.patchSize * a.channels] : [a.width, a.channels, a.patchSize, a.patchSize]
            let m = Architectures.matching(family: a.family, width: a.width, depth: a.depth ?? 6, mlpWidth: a.mlpWidth, qkvBias: a.qkvBias, patchEmbed: pe)
            XCTAssertTrue(m.contains(a), a.name)
        }
    }

    /// Config files: the official config.txt, a Hugging Face ViTConfig, and values that are not integers.
    func testConfigFiles() throws {
        let dir = try ModelFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let txt = dir.appendingPathComponent("config.txt").path
        try "{'SEED': 1337, 'INPUT_SIZE': [112, 112], 'EMBEDDING_SIZE': 512, 'DEVICE': device(type='cpu'), 'BACKBONE_NAME': 'VIT', 'HEAD_NAME': 'ArcFace'}"
            .write(toFile: txt, atomically: true, encoding: .utf8)
        let t = try ConfigFile.read(txt)
        XCTAssertEqual(t.settings["heads"]?.value, 8)
        XCTAssertEqual(t.settings["image_size"]?.value, 112)
        XCTAssertEqual(t.head, ModelConfig.Head(kind: .arcface, s: 64, m: 0.5))
        try "{'BACKBONE_NAME': 'VITs'}".write(toFile: txt, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ConfigFile.read(txt)) { XCTAssertTrue("\($0)".contains("VITs"), "\($0)") }
        let js = dir.appendingPathComponent("config.json").path
        try #"{"model_type": "vit", "hidden_size": 320, "num_attention_heads": 4, "num_channels": 3, "patch_size": 4}"#
            .write(toFile: js, atomically: true, encoding: .utf8)
        let j = try ConfigFile.read(js)
        XCTAssertEqual(j.settings["heads"], ConfigFile.Setting(value: 4, key: "num_attention_heads"))
        XCTAssertEqual(j.settings["width"]?.value, 320)
        try #"{"model_args": {"num_heads": true}}"#.write(toFile: js, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ConfigFile.read(js)) { XCTAssertTrue("\($0)".contains("model_args.num_heads"), "\($0)") }
        try #"{"num_attention_heads": 4.5}"#.write(toFile: js, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ConfigFile.read(js))
        try #"{"architecture": "timm/vit_small_patch16_224.augreg_in21k"}"#.write(toFile: js, atomically: true, encoding: .utf8)
        XCTAssertEqual(try ConfigFile.read(js).settings["heads"]?.value, 6)
        try "{'BACKBONE_NAME': 'VIT'}".write(toFile: txt, atomically: true, encoding: .utf8)
        XCTAssertEqual(
            try ConfigFile.beside(dir.appendingPathComponent("model.pth").path).map { URL(fileURLWithPath: $0.path).lastPathComponent },
            ["config.json", "config.txt"])
    }

    /// Original → canonical → original is the identity for every key of every family, and the map is one-to-one.
    func testKeyMapsInvert() {
        for fam in ModelFamilies.all {
            let pairs = fam.pairs(depth: 13)
            XCTAssertEqual(Set(pairs.map(\.original)).count, pairs.count, "\(fam.family): originals unique")
            XCTAssertEqual(Set(pairs.map(\.canonical)).count, pairs.count, "\(fam.family): canonicals unique")
            for (o, c) in pairs {
                XCTAssertEqual(fam.canonical(o), c, "\(fam.family): \(o)")
                XCTAssertEqual(fam.original(c), o, "\(fam.family): \(c)")
            }
            for junk in ["blocks.01.norm1.weight", "blocks.x.norm1.weight", "blocks..norm1.weight", "foo", "", "blocks.0.norm3.weight"] {
                XCTAssertNil(fam.original(junk), "\(fam.family): '\(junk)' must not map")
            }
        }
        XCTAssertEqual(ModelFamilies.face.canonical("transformer.layers.5.1.fn.fn.net.3.lora_B"), "blocks.5.mlp.fc2.lora_B")
        XCTAssertEqual(ModelFamilies.torchvision.original("blocks.11.attn.qkv.bias"), "encoder.layers.encoder_layer_11.self_attention.in_proj_bias")
        XCTAssertEqual(ModelFamilies.timm.original("patch_embed.weight"), "patch_embed.proj.weight")
    }

    /// Each fixture's original keys map onto exactly the canonical names its config expects (and back).
    func testFixtureKeysMapBothWays() throws {
        var checked = 0
        for url in ModelFixtures.checkpoints() {
            guard let want = try ModelFixtures.expectedConfig(url) else { continue }
            checked += 1
            let m = try ModelImport.load(url.path, options: ModelFixtures.options(for: want))
            let map = ModelFamilies.map(for: want.family)
            let originals = try ModelFixtures.sidecarTensors(url).map(\.key).filter { !$0.hasPrefix("optimizer.") }
                .map { $0.hasPrefix("state_dict.module.") ? String($0.dropFirst("state_dict.module.".count)) : $0 }
            XCTAssertEqual(Set((m.weights + m.lora).compactMap { map.original($0.name) }), Set(originals), url.lastPathComponent)
        }
        XCTAssertGreaterThan(checked, 0, "no model checkpoint with a stated config in \(Fixtures.searched)")
    }

    /// A checkpoint whose keys start like a family but hold foreign tensors is kept as plain tensors with a notice.
    func testPartialLayoutFallsBackToTensors() throws {
        let t = Tensor(name: "", shape: [2], floats: [1, 2])
        let keys = ["cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight", "blocks.0.ls1.gamma"]
        let root = CheckpointValue.dict(keys.map { ($0, .tensor(t)) })
        let m = try ModelImport.load(checkpoint: root, path: "partial.pth", options: ImportOptions())
        XCTAssertNil(m.family)
        XCTAssertEqual(m.weights.map(\.name), keys)
        XCTAssertTrue(m.notices.contains { $0.contains("blocks.0.ls1.gamma") }, "\(m.notices)")
    }

    /// A detected family with an inconsistent shape is refused, naming the tensor.
    func testWrongShapeIsRefused() throws {
        guard let url = ModelFixtures.checkpoints().first(where: { (try? ModelFixtures.expectedConfig($0))??.family == .torchvisionViT }),
            let want = try ModelFixtures.expectedConfig(url)
        else { throw XCTSkip("no torchvision fixture") }
        guard case let .dict(items) = try TorchCheckpoint.load(url.path) else { return XCTFail("not a dict") }
        let bad = items.map { kv -> (key: String, value: CheckpointValue) in
            kv.key == "encoder.layers.encoder_layer_1.mlp.3.bias" ? (kv.key, .tensor(Tensor(name: "", shape: [3], floats: [0, 0, 0]))) : kv
        }
        XCTAssertThrowsError(try ModelImport.load(checkpoint: .dict(bad), path: "bad.pth", options: ModelFixtures.options(for: want))) { e in
            guard case let ConvertError.badModel(_, tensor, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(tensor, "blocks.1.mlp.fc2.bias")
        }
    }

    /// A timm checkpoint with fc_norm (mean pooling) and norm as well is refused naming both; without heads given,
    /// a mean-pooling one is not decided by the (class-token) architecture table. Built from any timm fixture.
    func testMeanPoolingNorms() throws {
        guard let url = ModelFixtures.checkpoints().first(where: { (try? ModelFixtures.expectedConfig($0))??.family == .timmViT }),
            let want = try ModelFixtures.expectedConfig(url)
        else { return XCTFail("no timm fixture with a stated config in \(Fixtures.searched)") }
        guard case let .dict(items) = try TorchCheckpoint.load(url.path) else { return XCTFail("not a dict") }
        let w = Tensor(name: "", shape: [want.width], floats: [Float](repeating: 1, count: want.width))
        let norms = ["norm.weight", "norm.bias", "fc_norm.weight", "fc_norm.bias"]
        let both = items.filter { !norms.contains($0.key) } + norms.map { (key: $0, value: CheckpointValue.tensor(w)) }
        XCTAssertThrowsError(try ModelImport.load(checkpoint: .dict(both), path: "both.pth", options: ModelFixtures.options(for: want))) { e in
            guard case let ConvertError.badModel(_, tensor, reason) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(tensor, "fc_norm.weight")
            XCTAssertTrue(reason.contains("norm.weight"), reason)
        }
        let avg = items.filter { !norms.contains($0.key) } + norms.suffix(2).map { (key: $0, value: CheckpointValue.tensor(w)) }
        let m = try ModelImport.load(checkpoint: .dict(avg), path: "avg.pth", options: ModelFixtures.options(for: want))
        XCTAssertEqual(m.config?.pooling, "avg")
        XCTAssertEqual(m.weights.filter { $0.name.hasSuffix("norm.weight") && !$0.name.hasPrefix("blocks.") }.map(\.name), ["fc_norm.weight"])
        XCTAssertThrowsError(try ModelImport.load(checkpoint: .dict(avg), path: "avg.pth", options: ImportOptions())) { e in
            guard case ConvertError.cannotInfer = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("mean-pooling"), "\(e)")
        }
        // A config.json beside the checkpoint that states the pooling decides what the weights cannot: it must agree.
        let dir = try ModelFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("model.pth").path, js = dir.appendingPathComponent("config.json").path
        let cls = items.filter { !norms.contains($0.key) } + norms.prefix(2).map { (key: $0, value: CheckpointValue.tensor(w)) }
        let cases: [(json: String, items: [(key: String, value: CheckpointValue)], refusal: String?)] = [
            (#"{"global_pool": "avg"}"#, avg, nil),
            (#"{"global_pool": "token", "model_args": {"global_pool": "avg", "fc_norm": null}}"#, avg, nil),
            (#"{"global_pool": "token"}"#, cls, nil),
            (#"{"global_pool": "token"}"#, avg, "global_pool 'token', but \(path) has fc_norm.*"),
            (#"{"model_args": {"global_pool": "avg", "fc_norm": false}}"#, cls, "model_args.global_pool 'avg' with model_args.fc_norm false"),
            (#"{"model_args": {"global_pool": "token", "fc_norm": true}}"#, avg, "a norm after class-token pooling"),
            (#"{"model_args": {"global_pool": "map"}}"#, cls, "model_args.global_pool 'map'"),
            (#"{"global_pool": 3}"#, cls, "'global_pool' is not a string"),
            (#"{"model_args": {"fc_norm": "yes"}}"#, cls, "'model_args.fc_norm' is not true, false or null")
        ]
        for (json, tensors, refusal) in cases {
            try json.write(toFile: js, atomically: true, encoding: .utf8)
            let load = { try ModelImport.load(checkpoint: .dict(tensors), path: path, options: ModelFixtures.options(for: want)) }
            guard let refusal else {
                XCTAssertEqual(try load().config?.pooling, tensors.contains { $0.key == "fc_norm.weight" } ? "avg" : "cls", json)
                continue
            }
            XCTAssertThrowsError(try load(), json) { e in
                guard case let ConvertError.badConfigFile(f, reason) = e else { return XCTFail("\(json): \(e)") }
                XCTAssertEqual(f, js)
                XCTAssertTrue(reason.contains(refusal), "\(json): \(reason)")
            }
        }
        print("checked \(url.lastPathComponent): norm and fc_norm, and \(cases.count) config.json pooling statements")
    }

    /// Training-checkpoint wrappers: the state dict is found, `module.` dropped, leaves kept as metadata with dotted
    /// keys, optimizer state skipped with a notice (or kept when asked).
    func testCheckpointWrapperMetadataAndOptimizer() throws {
        var checked = 0
        for url in ModelFixtures.checkpoints() {
            let e = try Fixtures.json(ModelFixtures.sidecar(url, "expected.json"))
            let leaves = e["leaves"] as? [[String: Any]] ?? []
            let optimizerTensors = try ModelFixtures.sidecarTensors(url).filter { $0.key.hasPrefix("optimizer.") }
            guard !leaves.isEmpty || !optimizerTensors.isEmpty else { continue }
            checked += 1
            let want = try ModelFixtures.expectedConfig(url)
            let m = try ModelImport.load(url.path, options: ModelFixtures.options(for: want))
            let wantKeys = Set(leaves.compactMap { $0["key"] as? String }.filter { !$0.hasPrefix("optimizer.") })
            XCTAssertEqual(Set(m.metadata.keys), wantKeys, url.lastPathComponent)
            for leaf in leaves {
                guard let k = leaf["key"] as? String, !k.hasPrefix("optimizer."), let v = m.metadata[k] else { continue }
                switch leaf["value"] {
                case let s as String: XCTAssertEqual(v, .string(s), k)
                case let n as NSNumber where leaf["type"] as? String == "int": XCTAssertEqual(v, .int(n.intValue), k)
                case let n as NSNumber where leaf["type"] as? String == "float": XCTAssertEqual(v, .number(n.doubleValue), k)
                default: break
                }
            }
            if !optimizerTensors.isEmpty {
                XCTAssertTrue(m.notices.contains { $0.contains("skipped optimizer state") }, "\(m.notices)")
                XCTAssertTrue(m.extra.isEmpty)
                var keep = ModelFixtures.options(for: want)
                keep.keepOptimizer = true
                let k = try ModelImport.load(url.path, options: keep)
                XCTAssertEqual(Set(k.extra.map(\.name)), Set(optimizerTensors.map(\.key)), url.lastPathComponent)
            }
            if try ModelFixtures.sidecarTensors(url).contains(where: { $0.key.hasPrefix("state_dict.module.") }) {
                XCTAssertTrue(m.notices.contains { $0.contains("module.") }, "\(m.notices)")
            }
        }
        XCTAssertGreaterThan(checked, 0, "no training-checkpoint fixture (leaves or optimizer state) in \(Fixtures.searched)")
    }

    /// --raw keeps every tensor under its full dotted key, exactly the sidecar's keys.
    func testRawKeepsEveryTensor() throws {
        for url in ModelFixtures.checkpoints() {
            let m = try ModelImport.load(url.path, options: ImportOptions(raw: true))
            let side = try ModelFixtures.sidecarTensors(url)
            XCTAssertNil(m.family)
            XCTAssertEqual(m.weights.map(\.name), side.map(\.key), url.lastPathComponent)
            for (t, s) in zip(m.weights, side) { XCTAssertEqual(ModelFixtures.sha256(t), s.sha, "\(url.lastPathComponent) \(s.key)") }
        }
    }
}
