import Foundation
import GSLoRAConvert
import GSLoRAFormat
import TestSupport
import XCTest

final class RoundTripTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try ModelFixtures.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func convert(
        _ input: String, _ output: String, _ importing: ImportOptions, names: ConvertOptions.Names = .original,
        dtype: DTypeCast.Target = .keep
    ) throws -> ConvertReport {
        try Converter.convert(input: input, output: output, options: ConvertOptions(importing: importing, dtype: dtype, names: names))
    }

    /// Same names, order, dtypes, shapes and bytes.
    func assertSameTensors(_ a: [Tensor], _ b: [Tensor], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.map(\.name), b.map(\.name), "\(what): names", file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.dtype, y.dtype, "\(what) \(x.name): dtype", file: file, line: line)
            XCTAssertEqual(x.shape, y.shape, "\(what) \(x.name): shape", file: file, line: line)
            XCTAssertTrue(x.data.buffer.elementsEqual(y.data.buffer), "\(what) \(x.name): bytes", file: file, line: line)
        }
    }

    /// .pth → .gslr → .pth → .gslr gives identical tensors and config; the middle .pth has the family's original
    /// keys in the original order and the original bytes.
    func testPthGslrPthGslr() throws {
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            let want = try ModelFixtures.expectedConfig(url)
            let opts = ModelFixtures.options(for: want)
            _ = try convert(url.path, path("\(stem).a.gslr"), opts)
            _ = try convert(path("\(stem).a.gslr"), path("\(stem).b.pth"), ImportOptions())
            _ = try convert(path("\(stem).b.pth"), path("\(stem).c.gslr"), opts)
            let a = try GSLRFile.open(path("\(stem).a.gslr")), c = try GSLRFile.open(path("\(stem).c.gslr"))
            XCTAssertEqual(a.kind, want == nil ? .tensors : .backbone, stem)
            XCTAssertEqual(a.header.model, want, stem)
            XCTAssertEqual(c.header.model, a.header.model, stem)
            XCTAssertEqual(a.fingerprint, c.fingerprint, stem)
            assertSameTensors(a.allTensors(), c.allTensors(), stem)

            // The .pth holds the original keys (DataParallel prefix and wrapper gone, LoRA in the adapter) and bytes.
            guard case let .dict(items) = try TorchCheckpoint.load(path("\(stem).b.pth")) else { XCTFail(stem); continue }
            var side = try ModelFixtures.sidecarTensors(url).filter { !$0.key.hasPrefix("optimizer.") && !$0.key.contains("lora_") }
            if want != nil {
                side = side.map { s in
                    var t = s; t.key = t.key.replacingOccurrences(of: "state_dict.module.", with: ""); return t
                }
            }
            XCTAssertEqual(items.map(\.key), side.map(\.key), stem)
            for (item, s) in zip(items, side) {
                guard case let .tensor(t) = item.value else { XCTFail("\(stem) \(item.key)"); continue }
                XCTAssertEqual(t.dtype.torchName, s.dtype, "\(stem) \(s.key)")
                XCTAssertEqual(t.shape, s.shape, "\(stem) \(s.key)")
                XCTAssertEqual(ModelFixtures.sha256(t), s.sha, "\(stem) \(s.key)")
            }
        }
    }

    /// .pth → .pth keeps a LoRA checkpoint's keys (factors included) in loralib's order.
    func testPthToPthKeepsKeysAndOrder() throws {
        for url in ModelFixtures.checkpoints() {
            let want = try ModelFixtures.expectedConfig(url)
            let stem = ModelFixtures.stem(url)
            _ = try convert(url.path, path("\(stem).pth"), ModelFixtures.options(for: want))
            guard case let .dict(items) = try TorchCheckpoint.load(path("\(stem).pth")) else { XCTFail(stem); continue }
            let side = try ModelFixtures.sidecarTensors(url).filter { !$0.key.hasPrefix("optimizer.") }
                .map { $0.key.replacingOccurrences(of: "state_dict.module.", with: "") }
            XCTAssertEqual(items.map(\.key), side, stem)
        }
    }

    /// .gslr → .safetensors → .gslr, with original and with canonical names, gives identical tensors and config.
    func testGslrSafetensorsGslr() throws {
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            let want = try ModelFixtures.expectedConfig(url)
            _ = try convert(url.path, path("\(stem).gslr"), ModelFixtures.options(for: want))
            let a = try GSLRFile.open(path("\(stem).gslr"))
            for names in ConvertOptions.Names.allCases {
                let st = path("\(stem).\(names).safetensors"), back = path("\(stem).\(names).gslr")
                _ = try convert(path("\(stem).gslr"), st, ImportOptions(), names: names)
                let s = try SafetensorsFile.open(st)
                if let want {
                    let map = ModelFamilies.map(for: want.family)
                    XCTAssertEqual(s.tensors.map(\.name), a.allTensors().map { names == .original ? map.original($0.name)! : $0.name }, "\(stem) \(names)")
                }
                // The config travels in the metadata, so no --heads is needed on the way back.
                _ = try convert(st, back, ImportOptions())
                let b = try GSLRFile.open(back)
                XCTAssertEqual(b.header.model, a.header.model, "\(stem) \(names)")
                assertSameTensors(a.allTensors(), b.allTensors(), "\(stem) \(names)")
                XCTAssertEqual(b.header.metadata["converted_from"], .string((st as NSString).lastPathComponent))
            }
        }
    }

    /// --dtype casts float tensors only; bf16 → f32 after a bf16 cast is exact, so a second cast changes nothing.
    func testDtypeOption() throws {
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            let want = try ModelFixtures.expectedConfig(url)
            _ = try convert(url.path, path("\(stem).bf16.safetensors"), ModelFixtures.options(for: want), dtype: .bf16)
            let src = try ModelImport.load(url.path, options: ModelFixtures.options(for: want))
            let bf = try SafetensorsFile.open(path("\(stem).bf16.safetensors")).tensors
            let orig = src.interleaved + src.extra
            XCTAssertEqual(bf.count, orig.count, stem)
            for (t, o) in zip(bf, orig) {
                XCTAssertEqual(t.dtype, o.dtype.isFloatingPoint ? .bf16 : o.dtype, "\(stem) \(t.name)")
                if !o.dtype.isFloatingPoint { XCTAssertTrue(t.data.buffer.elementsEqual(o.data.buffer), "\(stem) \(t.name)") }
            }
        }
    }

    // MARK: LoRA import

    /// A checkpoint with LoRA factors becomes a backbone without them plus an adapter bound to it by fingerprint,
    /// with one group per block whose recorded norm is Σ‖T‖_F and whose loss form sqrt(Σ‖T‖²) is the parity file's
    /// structure_block_norms.
    func testLoRAImportSplitsBackboneAndAdapter() throws {
        var checked = 0
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            guard let want = try ModelFixtures.expectedConfig(url),
                try ModelFixtures.sidecarTensors(url).contains(where: { $0.key.hasSuffix("lora_A") })
            else { continue }
            let report = try convert(url.path, path("\(stem).gslr"), ModelFixtures.options(for: want))
            XCTAssertEqual(report.outputs.map(\.kind), ["backbone", "adapter"], stem)
            XCTAssertEqual(report.loraMerge, "assumed_unmerged", stem)
            let bb = try GSLRFile.open(path("\(stem).gslr"))
            let ad = try GSLRFile.open(Converter.defaultAdapterPath(path("\(stem).gslr")))
            XCTAssertFalse(bb.allTensors().contains { $0.name.contains("lora") }, stem)
            XCTAssertEqual(ad.kind, .adapter)
            guard let info = ad.header.adapter else { XCTFail(stem); continue }
            XCTAssertEqual(info.baseFingerprint, bb.fingerprint, stem)
            XCTAssertEqual(info.grouping, "block")
            XCTAssertEqual(info.targets, ["mlp.fc1", "mlp.fc2"])
            XCTAssertEqual(info.groups.map(\.name), (0..<want.depth).map { "blocks.\($0)" }, stem)
            XCTAssertEqual(info.task.index, 0)
            XCTAssertTrue(info.task.forget.isEmpty && info.task.retain.isEmpty)
            for g in info.groups {
                XCTAssertEqual(g.members, ["fc1.lora_A", "fc1.lora_B", "fc2.lora_A", "fc2.lora_B"].map { "\(g.name).mlp.\($0)" })
            }
            let parity = ModelFixtures.sidecar(url, "parity.json")
            if FileManager.default.fileExists(atPath: parity.path) {
                let p = try Fixtures.json(parity)
                let lora = p["lora"] as? [String: Any] ?? [:]
                XCTAssertEqual(info.rank, lora["rank"] as? Int, stem)
                XCTAssertEqual(info.alpha, (lora["lora_alpha"] as? NSNumber)?.doubleValue, stem)
                XCTAssertEqual(info.scaling, (lora["scaling"] as? NSNumber)?.doubleValue, stem)
                let norms = ((p["losses"] as? [String: Any])?["structure_block_norms"] as? [NSNumber])?.map(\.doubleValue) ?? []
                XCTAssertEqual(norms.count, info.groups.count, stem)
                for (g, n) in zip(info.groups, norms) {
                    let frob = try g.members.map { name -> Double in
                        try ad.tensor(name).floats().reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    }
                    let lossForm = frob.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
                    XCTAssertLessThan(Tolerance.relative(lossForm, n), 1e-6, "\(stem) \(g.name): \(lossForm) vs \(n)")
                    XCTAssertLessThan(Tolerance.relative(g.norm, frob.reduce(0, +)), 1e-12, "\(stem) \(g.name) recorded norm")
                    XCTAssertGreaterThan(g.norm, lossForm, "\(stem) \(g.name): Σ‖T‖ must exceed sqrt(Σ‖T‖²) for 4 nonzero members")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no LoRA fixture with a parity file")
    }

    /// A checkpoint saved after eval() holds W + s·B·A. With --base it is recognised, the backbone is written as the
    /// base weights and the adapter is the same as from the train-mode file; weights that are neither are refused.
    func testMergedCheckpointIsDetectedWithBase() throws {
        var checked = 0
        for url in ModelFixtures.checkpoints() {
            let stem = ModelFixtures.stem(url)
            guard let want = try ModelFixtures.expectedConfig(url), FileManager.default.fileExists(atPath: ModelFixtures.sidecar(url, "parity.json").path),
                try ModelFixtures.sidecarTensors(url).contains(where: { $0.key.hasSuffix("lora_A") }),
                case let .dict(items) = try TorchCheckpoint.load(url.path)
            else { continue }
            let opts = ModelFixtures.options(for: want)
            let scaling = 1.0 / Double(try ModelImport.load(url.path, options: opts).loraRank!)

            // W + factor·s·B·A on every LoRA linear (or on the first only), computed here in double precision.
            func shifted(_ factor: Double, onlyFirst: Bool = false) throws -> CheckpointValue {
                var byKey: [String: Tensor] = [:]
                for (k, v) in items { if case let .tensor(t) = v { byKey[k] = t } }
                var done = 0
                return .dict(
                    try items.map { k, v in
                        guard k.hasSuffix(".weight"), let a = byKey[k.replacingOccurrences(of: ".weight", with: ".lora_A")],
                            let b = byKey[k.replacingOccurrences(of: ".weight", with: ".lora_B")], case let .tensor(w) = v,
                            !(onlyFirst && done > 0)
                        else { return (k, v) }
                        done += 1
                        let W = try w.floats(), A = try a.floats(), B = try b.floats()
                        let r = a.shape[0], nIn = a.shape[1], nOut = b.shape[0]
                        var out = W
                        for o in 0..<nOut {
                            for i in 0..<nIn {
                                var s = 0.0
                                for j in 0..<r { s += Double(B[o * r + j]) * Double(A[j * nIn + i]) }
                                out[o * nIn + i] = Float(Double(W[o * nIn + i]) + factor * scaling * s)
                            }
                        }
                        return (k, .tensor(Tensor(name: k, shape: w.shape, floats: out)))
                    })
            }

            // Train-mode reference: backbone and adapter from the original file.
            _ = try convert(url.path, path("\(stem).ref.gslr"), opts)
            let ref = try GSLRFile.open(path("\(stem).ref.gslr")), refAdapter = try GSLRFile.open(path("\(stem).ref.adapter.gslr"))

            var withBase = opts
            withBase.base = url.path
            try PthWriter.write(path("\(stem).merged.pth"), try shifted(1))
            let r = try convert(path("\(stem).merged.pth"), path("\(stem).merged.gslr"), withBase)
            XCTAssertEqual(r.loraMerge, "merged", stem)
            XCTAssertTrue(r.notices.contains { $0.contains("W − s·B·A") }, "\(r.notices)")
            let bb = try GSLRFile.open(path("\(stem).merged.gslr"))
            for (x, y) in zip(bb.allTensors(), ref.allTensors()) {
                let a = try x.floats(), b = try y.floats()
                let scale = b.map(abs).max() ?? 0
                let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, 1e-6 * max(scale, 1), "\(stem) \(x.name): merged weight not restored")
            }
            assertSameTensors(try GSLRFile.open(path("\(stem).merged.adapter.gslr")).allTensors(), refAdapter.allTensors(), "\(stem) adapter")

            // The original file against itself: unmerged.
            XCTAssertEqual(try convert(url.path, path("\(stem).plain.gslr"), withBase).loraMerge, "unmerged", stem)

            // Twice the update, or only some layers merged: refused, naming the problem.
            try PthWriter.write(path("\(stem).double.pth"), try shifted(2))
            XCTAssertThrowsError(try convert(path("\(stem).double.pth"), path("\(stem).double.gslr"), withBase)) { e in
                guard case let ConvertError.badLoRA(_, reason) = e else { return XCTFail("\(e)") }
                XCTAssertTrue(reason.contains("neither the base weight nor base + s·B·A"), reason)
            }
            try PthWriter.write(path("\(stem).mixed.pth"), try shifted(1, onlyFirst: true))
            XCTAssertThrowsError(try convert(path("\(stem).mixed.pth"), path("\(stem).mixed.gslr"), withBase)) { e in
                guard case let ConvertError.badLoRA(_, reason) = e else { return XCTFail("\(e)") }
                XCTAssertTrue(reason.contains("inconsistent"), reason)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("\(stem).double.gslr")), "nothing written on refusal")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no LoRA fixture with a parity file")
    }

    /// Converter refuses: output = input, output = base, unknown extension, existing output without force.
    func testConverterRefusals() throws {
        guard let url = ModelFixtures.checkpoints().first else { return XCTFail("no fixtures") }
        let copy = path("in.pth")
        try FileManager.default.copyItem(atPath: url.path, toPath: copy)
        let cases: [(String, String, ConvertOptions)] = [
            ("output is input", copy, ConvertOptions()),
            ("unknown extension", path("x.onnx"), ConvertOptions()),
            ("output is base", path("base.gslr"), ConvertOptions(importing: ImportOptions(base: path("base.gslr")))),
            ("adapter output is the output", path("o.gslr"), ConvertOptions(adapterOut: path("o.gslr"))),
            ("adapter output with a .pth output", path("o.pth"), ConvertOptions(adapterOut: path("a.gslr")))
        ]
        try Data([1]).write(to: URL(fileURLWithPath: path("base.gslr")))
        for (what, out, opts) in cases {
            XCTAssertThrowsError(try Converter.convert(input: copy, output: out, options: opts), what) { e in
                guard case ConvertError.badOutput = e else { return XCTFail("\(what): \(e)") }
            }
        }
        try Data([1]).write(to: URL(fileURLWithPath: path("exists.safetensors")))
        XCTAssertThrowsError(
            try Converter.convert(input: copy, output: path("exists.safetensors"), options: ConvertOptions(importing: ImportOptions(raw: true))))
        XCTAssertNoThrow(
            try Converter.convert(input: copy, output: path("exists.safetensors"), options: ConvertOptions(importing: ImportOptions(raw: true), force: true)))
        XCTAssertThrowsError(try Converter.convert(input: path("missing.pth"), output: path("m.gslr"), options: ConvertOptions())) { e in
            XCTAssertTrue("\(e)".contains("missing.pth"), "\(e)")
        }
    }
}
