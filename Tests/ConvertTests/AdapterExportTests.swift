import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

/// Adapters leave .gslr and come back: through .safetensors and .pth (the record travels in the metadata / as
/// string entries) and through Hugging Face PEFT folders (keys and config PEFT reads, the record in the weights'
/// metadata). Data-driven over every fixture checkpoint that holds LoRA factors.
final class AdapterExportTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try ModelFixtures.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func convert(_ input: String, _ output: String, _ importing: ImportOptions = ImportOptions(), force: Bool = false) throws -> ConvertReport {
        try Converter.convert(input: input, output: output, options: ConvertOptions(importing: importing, force: force))
    }

    /// Every LoRA fixture split into backbone + adapter: (stem, backbone path, adapter path, import options).
    func splitFixtures() throws -> [(String, String, String, ImportOptions)] {
        var out: [(String, String, String, ImportOptions)] = []
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            guard let want = try ModelFixtures.expectedConfig(url),
                try ModelFixtures.sidecarTensors(url).contains(where: { $0.key.hasSuffix("lora_A") })
            else { continue }
            let opts = ModelFixtures.options(for: want)
            _ = try convert(url.path, path("\(stem).gslr"), opts)
            out.append((stem, path("\(stem).gslr"), Converter.defaultAdapterPath(path("\(stem).gslr")), opts))
        }
        print("AdapterExportTests: LoRA fixtures \(out.map(\.0))")
        XCTAssertFalse(out.isEmpty, "no fixture checkpoint with LoRA factors in \(Fixtures.searched)")
        return out
    }

    func assertSameAdapter(_ a: GSLRFile, _ b: GSLRFile, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(b.kind, .adapter, what, file: file, line: line)
        XCTAssertEqual(
            a.header.adapter, b.header.adapter, "\(what): adapter record (rank, scaling, groups, norms, task, base fingerprint)", file: file, line: line)
        XCTAssertEqual(a.header.classes, b.header.classes, "\(what): classes", file: file, line: line)
        XCTAssertEqual(a.fingerprint, b.fingerprint, "\(what): tensors", file: file, line: line)
    }

    /// A record that is not the converter's default (a pruned group, a task, class names, metadata) so that losing
    /// any of it shows.
    func richAdapter(_ adapter: String, _ stem: String) throws -> String {
        let f = try GSLRFile.open(adapter)
        var info = f.header.adapter!
        let pruned = Set(info.groups[0].members)
        info.groups[0].state = .pruned
        info.task = TaskRecord(index: 2, forget: [1, 3], retain: [0, 2, 4])
        let h = GSLRHeader(kind: .adapter, classes: ["a", "b"], adapter: info, metadata: ["note": .string("kept"), "epochs": .int(7)])
        let out = path("\(stem).rich.gslr")
        try GSLRWriter.write(out, header: h, tensors: f.allTensors().filter { !pruned.contains($0.name) })
        return out
    }

    /// .gslr adapter → .safetensors / .pth → .gslr is the same adapter: record, classes, tensors. (Before, the
    /// record was dropped and the file came back as plain tensors.)
    func testAdapterRoundTripsThroughSafetensorsAndPth() throws {
        for (stem, _, adapter, _) in try splitFixtures() {
            let rich = try richAdapter(adapter, stem)
            for ext in ["safetensors", "pth"] {
                let mid = path("\(stem).adapter.\(ext)"), back = path("\(stem).back.\(ext).gslr")
                let out = try convert(rich, mid)
                XCTAssertTrue(out.notices.allSatisfy { !$0.contains("plain tensors") }, "\(stem) \(ext): \(out.notices)")
                let report = try convert(mid, back)
                XCTAssertEqual(report.outputs.map(\.kind), ["adapter"], "\(stem) \(ext)")
                let b = try GSLRFile.open(back)
                assertSameAdapter(try GSLRFile.open(rich), b, "\(stem) via .\(ext)")
                XCTAssertEqual(b.header.metadata["note"], .string("kept"), "\(stem) via .\(ext): metadata")
            }
        }
    }

    /// The .pth adapter loads into PyTorch the loralib way: a flat dict whose tensors are the factors, the record a
    /// string entry.
    func testPthAdapterIsAFlatStateDict() throws {
        for (stem, _, adapter, _) in try splitFixtures() {
            _ = try convert(adapter, path("\(stem).a.pth"))
            guard case let .dict(items) = try TorchCheckpoint.load(path("\(stem).a.pth")) else { XCTFail(stem); continue }
            let tensors = items.filter { if case .tensor = $0.value { return true } else { return false } }.map(\.key)
            XCTAssertEqual(tensors, try GSLRFile.open(adapter).allTensors().map(\.name), stem)
            XCTAssertTrue(items.contains { $0.key == "gslora.adapter" }, stem)
        }
    }

    /// adapter.gslr → PEFT folder (--base) → .gslr (--base) is the same adapter, and the folder is what PEFT
    /// reads: adapter_config.json with peft_type LORA, r, lora_alpha, target_modules in the family's names;
    /// weights under base_model.model.<module>.lora_A.weight.
    func testPeftFolderRoundTrip() throws {
        for (stem, backbone, adapter, opts) in try splitFixtures() {
            let rich = try richAdapter(adapter, stem)
            var withBase = opts
            withBase.base = backbone
            let folder = (path("\(stem).peft") + "/")
            let report = try convert(rich, folder, withBase)
            XCTAssertEqual(report.outputs.map(\.kind), ["peft"], stem)
            let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + PeftFolder.configName))) as! [String: Any]
            let info = try GSLRFile.open(rich).header.adapter!
            XCTAssertEqual(cfg["peft_type"] as? String, "LORA", stem)
            XCTAssertEqual(cfg["r"] as? Int, info.rank, stem)
            XCTAssertEqual((cfg["lora_alpha"] as? NSNumber)?.doubleValue, info.alpha, stem)
            XCTAssertEqual(cfg["bias"] as? String, "none", stem)
            XCTAssertEqual(cfg["use_rslora"] as? Bool, false, stem)
            let family = try GSLRFile.open(backbone).header.model!.family
            let map = ModelFamilies.map(for: family)
            // Block 0 was pruned: only blocks 1… are targets.
            let kept = info.groups.filter { $0.state == .kept }.flatMap(\.members).filter { $0.hasSuffix(".lora_A") }
            XCTAssertEqual(cfg["target_modules"] as? [String], kept.map { String(map.original($0)!.dropLast(".lora_A".count)) }, stem)
            let st = try SafetensorsFile.open(folder + PeftFolder.weightsName)
            XCTAssertEqual(
                Set(st.tensors.map(\.name)),
                Set(info.groups.filter { $0.state == .kept }.flatMap(\.members).map { "base_model.model.\(map.original($0)!).weight" }), stem)

            // Without the record (as PEFT itself saves), the folder is bound to --base and keeps rank, scaling, tensors.
            try SafetensorsWriter.write(path("\(stem).plain.safetensors"), tensors: st.tensors, metadata: ["format": "pt"])
            let plain = (path("\(stem).plain") + "/")
            try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: folder + PeftFolder.configName, toPath: plain + PeftFolder.configName)
            try FileManager.default.moveItem(atPath: path("\(stem).plain.safetensors"), toPath: plain + PeftFolder.weightsName)

            let back = path("\(stem).peft-back.gslr")
            _ = try convert(folder, back, withBase)
            assertSameAdapter(try GSLRFile.open(rich), try GSLRFile.open(back), "\(stem) via PEFT")
            let plainBack = path("\(stem).plain-back.gslr")
            let r = try convert(plain, plainBack, withBase)
            XCTAssertTrue(r.notices.contains { $0.contains("records no base fingerprint") }, "\(stem): \(r.notices)")
            let pb = try GSLRFile.open(plainBack), bb = try GSLRFile.open(backbone)
            XCTAssertEqual(pb.header.adapter?.baseFingerprint, bb.fingerprint, stem)
            XCTAssertEqual(pb.header.adapter?.rank, info.rank, stem)
            XCTAssertEqual(pb.header.adapter?.scaling, info.scaling, stem)
            XCTAssertEqual(pb.fingerprint, try GSLRFile.open(back).fingerprint, stem)
        }
    }

    /// What a PEFT folder needs and what cannot be represented is refused with the reason.
    func testPeftRefusals() throws {
        guard let (stem, backbone, adapter, opts) = try splitFixtures().first else { return }
        var withBase = opts
        withBase.base = backbone
        let folder = (path("\(stem).peft") + "/")
        _ = try convert(adapter, folder, withBase)

        func expectError(_ what: String, _ body: () throws -> Void, _ needle: String) {
            do {
                try body()
                XCTFail("\(what): no error")
            } catch {
                XCTAssertTrue("\(error)".contains(needle), "\(what): \(error)")
            }
        }
        expectError("export without base", { _ = try convert(adapter, (path("x.peft") + "/"), opts) }, "`base`")
        expectError("import without base", { _ = try convert(folder, path("x.gslr"), opts) }, "`base`")
        expectError("existing folder", { _ = try convert(adapter, folder, withBase) }, "`force`")
        expectError("backbone to PEFT", { _ = try convert(backbone, (path("y.peft") + "/"), withBase) }, "only an adapter")

        let config = folder + PeftFolder.configName
        let original = try String(contentsOfFile: config, encoding: .utf8)
        for (key, value, needle) in [
            ("use_dora", "true", "DoRA"), ("bias", "\"all\"", "bias"), ("peft_type", "\"IA3\"", "LORA"),
            ("modules_to_save", "[\"head\"]", "modules_to_save"), ("r", "3", "rank")
        ] {
            let edited = original.replacingOccurrences(of: "\"\(key)\" : ", with: "\"\(key)\" : \(value), \"_old_\(key)\" : ")
            XCTAssertNotEqual(edited, original, key)
            try edited.write(toFile: config, atomically: true, encoding: .utf8)
            expectError(key, { _ = try convert(folder, path("\(key).gslr"), withBase) }, needle)
        }
        try original.write(toFile: config, atomically: true, encoding: .utf8)

        // A factor on a module that is not an FFN linear.
        let st = try SafetensorsFile.open(folder + PeftFolder.weightsName)
        let qkv = st.tensors.map { t -> Tensor in
            var c = t
            if c.name.hasSuffix("lora_A.weight") { c.name = "base_model.model.some.attention.lora_A.weight" }
            return c
        }.prefix(1)
        try SafetensorsWriter.write(folder + PeftFolder.weightsName, tensors: Array(qkv) + st.tensors.dropFirst(), metadata: st.metadata)
        expectError("attention LoRA", { _ = try convert(folder, path("qkv.gslr"), withBase) }, "FFN linear")
    }
}
