import Foundation
import GSLoRAAdapters
import GSLoRAConvert
import GSLoRAData
import GSLoRADemo
import GSLoRAFormat
import GSLoRATraining
import TestSupport
import XCTest

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The `gslora-demo --quick` job in-process, through `ForgettingDemo` as the command runs it, on Debian's
/// Fashion-MNIST (or, where the package is missing, a synthetic IDX set in the same layout, so the test always
/// runs every stage); then the bad inputs.
final class DemoTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Debian's folder when it holds the data, else a synthetic 10-class IDX set (class k: a bright bar at row 2k+4).
    func dataFolder() throws -> String { try Self.dataFolder(in: dir) }

    static func dataFolder(in dir: String) throws -> String {
        let real = FashionMNIST.directory
        if FileManager.default.fileExists(atPath: real + "/train-images-idx3-ubyte.gz") { return real }
        let d = dir + "/synthetic"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try Self.writeIDX(d, prefix: "train", count: 600)
        try Self.writeIDX(d, prefix: "t10k", count: 300)
        return d
    }

    static func writeIDX(_ d: String, prefix: String, count: Int, badLabel: Int? = nil) throws {
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }
        var images = be(0x0803) + be(UInt32(count)) + be(28) + be(28), labels = be(0x0801) + be(UInt32(count))
        var rng = SystemRandomNumberGenerator()
        for i in 0..<count {
            let k = i % 10
            for r in 0..<28 {
                for _ in 0..<28 { images.append(r == 2 * k + 4 ? 230 : UInt8.random(in: 0...40, using: &rng)) }
            }
            labels.append(UInt8(i == 3 ? (badLabel ?? k) : k))
        }
        try Data(images).write(to: URL(fileURLWithPath: "\(d)/\(prefix)-images-idx3-ubyte"))
        try Data(labels).write(to: URL(fileURLWithPath: "\(d)/\(prefix)-labels-idx1-ubyte"))
    }

    func quickOptions(data: String) -> DemoOptions {
        var o = DemoOptions(seed: 1337, quick: true)
        o.output = dir + "/out"
        o.data = data
        o.plus = true
        return o
    }

    func testQuickJobWritesEveryArtefact() throws {
        let data = try dataFolder()
        let demo = ForgettingDemo(options: quickOptions(data: data))
        var stages: [String] = []
        demo.onEvent = { if case let .stage(s) = $0 { stages.append(s) } }
        let report = try demo.run()
        XCTAssertFalse(report.pretrain.cached)
        XCTAssertTrue(stages.contains("pre-train"), "\(stages)")
        XCTAssertEqual(report.runs.map(\.name), ["gslora", "gslora-plus"])
        XCTAssertEqual(report.classOrder.sorted(), Array(0..<10))

        // report.json: the keys a reader looks for, and the numbers of every task.
        let json = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: demo.reportFolder + "/report.json"))) as? [String: Any])
        for key in ["data", "class_names", "seed", "class_order", "criterion", "pretrain", "runs", "stages", "seconds", "checks"] {
            XCTAssertNotNil(json[key], "report.json lacks \(key)")
        }
        let runs = try XCTUnwrap(json["runs"] as? [[String: Any]])
        for run in runs {
            let tasks = try XCTUnwrap(run["tasks"] as? [[String: Any]])
            XCTAssertEqual(tasks.count, 4)
            for t in tasks {
                for key in ["acc_r", "acc_f", "h", "trainable_ratio", "groups_kept", "adapter_bytes", "seconds", "groups"] {
                    XCTAssertNotNil(t[key], "task lacks \(key)")
                }
            }
            XCTAssertNotNil((tasks[1])["acc_o"], "task 2 has earlier-forgotten classes")
        }

        // report.md: one table row per task and run, plots embedded.
        let md = try String(contentsOfFile: demo.reportFolder + "/report.md", encoding: .utf8)
        let rows = md.split(separator: "\n").filter { l in (1...4).contains { l.hasPrefix("| \($0) | ") } }
        XCTAssertEqual(rows.count, 8, md)
        for run in report.runs {
            XCTAssertTrue(md.contains("](accuracy-\(run.name).svg)"))
            let acc = try XMLDocument(data: Data(contentsOf: URL(fileURLWithPath: demo.reportFolder + "/accuracy-\(run.name).svg")))
            let ids = try acc.nodes(forXPath: "//@id").compactMap(\.stringValue)
            for id in ["series-acc_r-retained", "series-acc_f-forgotten-now", "series-acc_o-forgotten-earlier"] { XCTAssertTrue(ids.contains(id)) }
            let norms = try XMLDocument(data: Data(contentsOf: URL(fileURLWithPath: demo.reportFolder + "/group-norms-\(run.name).svg")))
            let cells = try norms.nodes(forXPath: "//*[@id='cells']/*[local-name()='rect']")
            XCTAssertEqual(cells.count, report.pretrain.options.depth * 4)
        }

        // Adapters, merged model and exports re-open with our readers and agree with each other.
        let pretrained = try GSLRFile.open(demo.pretrainedPath)
        for run in report.runs {
            var weights = try MergedWeights(file: pretrained)
            for t in run.tasks {
                let a = try AdapterFile.open(t.adapter)
                XCTAssertEqual(a.info.task.index, t.task)
                XCTAssertEqual(a.fileSize, t.adapterBytes)
                try weights.fold(a)
            }
            let merged = try GSLRFile.open(run.merged.path)
            XCTAssertEqual(merged.kind, .backbone)
            XCTAssertEqual(merged.fingerprint, weights.fingerprint, "the merged file is the chain folded in order")
            XCTAssertEqual(merged.header.merged?.count, 4)
            XCTAssertEqual(run.exports.map(\.format), ["pth", "safetensors"])
            let reference = try merged.tensor("blocks.0.mlp.fc1.weight").floats()
            for e in run.exports {
                // A .pth holds no config: the head count comes from the caller, as gslora-convert's --heads.
                let m = try ModelImport.load(e.path, options: ImportOptions(heads: report.pretrain.options.heads, channels: report.pretrain.options.channels))
                XCTAssertEqual(m.family, .faceViT, e.path)
                let w = try XCTUnwrap(m.weights.first { $0.name == "blocks.0.mlp.fc1.weight" }, e.path)
                XCTAssertEqual(try w.floats(), reference, "\(e.path) holds the merged weights")
            }
        }

        // A second run takes the backbone from the cache.
        let again = ForgettingDemo(options: quickOptions(data: data))
        XCTAssertTrue(try again.run().pretrain.cached)
    }

    /// The command itself: --quick exits 0 (a quick run has no acceptance checks) and, with rsvg-convert installed
    /// (CI installs librsvg2-bin), writes each plot as a PNG beside its SVG.
    func testCommandWritesPNGCopiesOfThePlots() throws {
        let out = dir + "/cmd"
        let r = try CommandRunner.run("gslora-demo", ["--quick", "--data", try dataFolder(), "--out", out])
        XCTAssertEqual(r.code, 0, r.err)
        let svgs = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".svg") }.sorted()
        XCTAssertEqual(svgs.count, 2, "\(svgs)")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/rsvg-convert") else {
            XCTAssertTrue(r.err.contains("apt-get install librsvg2-bin"), r.err)
            throw XCTSkip("rsvg-convert is not installed (apt-get install librsvg2-bin)")
        }
        for svg in svgs {
            let png = try Data(contentsOf: URL(fileURLWithPath: out + "/" + svg.dropLast(4) + ".png"))
            XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "\(svg): not a PNG")
            XCTAssertGreaterThan(png.count, 5000, "\(svg): an empty picture")
        }
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: out).allSatisfy { !$0.contains(".tmp-") })
    }

    func testMissingDataSaysHowToInstallIt() {
        var o = quickOptions(data: dir + "/no-such-folder")
        o.plus = false
        XCTAssertThrowsError(try ForgettingDemo(options: o).run()) { e in
            guard case DemoError.missingData = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("apt-get install dataset-fashion-mnist"), "\(e)")
        }
        // A folder without the files is the same case.
        let empty = dir + "/empty"
        try? FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ForgettingDemo(options: quickOptions(data: empty)).run()) { e in
            guard case DemoError.missingData = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("train-images-idx3-ubyte"), "\(e)")
        }
    }

    func testALabelOfAClassThatDoesNotExistIsRefused() throws {
        let d = dir + "/badlabel"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try Self.writeIDX(d, prefix: "train", count: 100, badLabel: 12)
        try Self.writeIDX(d, prefix: "t10k", count: 50)
        XCTAssertThrowsError(try ForgettingDemo(options: quickOptions(data: d)).run()) { e in
            guard case DemoError.badData = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("label 12"), "\(e)")
        }
    }

    /// Bad --forget lists are refused before any pre-training starts (nothing is written to the output folder).
    func testBadForgetListsAreRefusedBeforePretraining() throws {
        let data = try dataFolder()
        for (tasks, why) in [([[3], [3]], "twice"), ([[10]], "not one of the model's classes"), ([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], "no class to retain")] {
            var o = quickOptions(data: data)
            o.forget(tasks: tasks)
            XCTAssertThrowsError(try ForgettingDemo(options: o).run(), "\(tasks)") { e in
                guard case TrainingError.badOption(let option, let problem) = e else { return XCTFail("\(e)") }
                XCTAssertEqual(option, Setting("forget"))
                XCTAssertTrue(problem.contains(why), problem)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: o.output + "/pretrained.gslr"))
        }
    }

    /// A cached pretrained.gslr (or a --backbone) of another family or class count is refused, saying what to do.
    func testACheckpointOfAnotherFamilyIsRefused() throws {
        let data = try dataFolder()
        var o = quickOptions(data: data)
        try FileManager.default.createDirectory(atPath: o.output, withIntermediateDirectories: true)
        let tv = ModelConfig(
            family: .torchvisionViT, imageSize: 28, patchSize: 7, channels: 1, width: 8, depth: 1, heads: 2, headDim: 4,
            mlpWidth: 16, numClasses: 10, head: .linear, attentionScale: 0.5, layerNormEps: 1e-6, qkvBias: true)
        let path = o.output + "/pretrained.gslr"
        try GSLRWriter.write(
            path, header: GSLRHeader(kind: .backbone, model: tv), tensors: [Tensor(name: "cls_token", shape: [1, 1, 8], floats: Array(repeating: 0, count: 8))])
        XCTAssertThrowsError(try ForgettingDemo(options: o).run()) { e in
            guard case DemoError.wrongModel = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("torchvision_vit") && "\(e)".contains("delete it"), "\(e)")
        }
        // The same file given as --backbone.
        o.backbone = path
        o.output = dir + "/out2"
        XCTAssertThrowsError(try ForgettingDemo(options: o).run()) { e in
            guard case DemoError.wrongModel = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("torchvision_vit") && "\(e)".contains("face_vit"), "\(e)")
        }
    }
}
