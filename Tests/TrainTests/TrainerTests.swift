import Foundation
import GSLoRAAdapters
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining
import XCTest

/// The forgetting protocol end to end on a tiny model: continual chaining through the files, few-shot counts,
/// refused arguments.
final class TrainerTests: XCTestCase {
    /// Task 1 trains on the backbone file, task 2 on backbone ⊕ adapter 1 exactly as gslora-merge writes it.
    func testContinualTasksChainThroughMergedBases() throws {
        let dir = try temporaryDirectory("chain")
        let backbonePath = try TinyRun.backboneFile(in: dir)
        let backbone = try TrainBackbone.open(backbonePath)
        let data = try TinyRun.data()
        var o = TinyRun.options
        o.plus = false
        let report = try Trainer(backbone: backbone, data: data, options: o, outputDirectory: dir + "/out").run()
        let a1 = try AdapterFile.open(dir + "/out/task-1.gslr"), a2 = try AdapterFile.open(dir + "/out/task-2.gslr")
        XCTAssertEqual(a1.info.baseFingerprint, try GSLRFile.open(backbonePath).fingerprint)
        let merged = try LoRAMerge.mergeFiles(base: backbonePath, adapters: [dir + "/out/task-1.gslr"], output: dir + "/merged.gslr")
        XCTAssertEqual(a2.info.baseFingerprint, merged.outputFingerprint)
        XCTAssertEqual(report.tasks[1].baseFingerprint, merged.outputFingerprint)

        // The records: task indices, class sets from the order, old classes, targets, one group per block.
        let order = report.classOrder
        XCTAssertEqual(a1.info.task.index, 1)
        XCTAssertEqual(a1.info.task.forget, [order[TinyRun.classes - 1]])
        XCTAssertEqual(a2.info.task.forget, [order[TinyRun.classes - 2]])
        XCTAssertEqual(a2.info.task.old, [order[TinyRun.classes - 1]])
        XCTAssertEqual(Set(a2.info.task.retain), Set(order.prefix(TinyRun.classes - 2)))
        XCTAssertEqual(a1.info.targets, ["mlp.fc1", "mlp.fc2"])
        XCTAssertEqual(a1.info.groups.map(\.name), ["blocks.0", "blocks.1"])
        XCTAssertEqual(a1.info.scaling, o.loraAlpha / Double(o.rank))
        for g in a1.info.groups {
            let norm = try g.members.reduce(0.0) { acc, n in
                acc + (try a1.tensors.first { $0.name == n }!.floats().reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
            }
            XCTAssertEqual(g.norm, norm, accuracy: 1e-9 + 1e-6 * norm, "group norm is Σ‖T‖_F")
        }

        // Task 2's "before" numbers are those of the merged model.
        let mergedModel = try ViT(config: TinyRun.config, weights: try GSLRFile.open(dir + "/merged.gslr").allTensors())
        let forget2 = data.test.subset(classes: a2.info.task.forget)
        let predictions = try forget2.withPixels {
            try BatchedForward.predict(mergedModel, images: $0, labels: forget2.labels, margin: false)
        }
        let acc = 100 * Double(zip(predictions, forget2.labels).filter { $0 == $1 }.count) / Double(forget2.count)
        XCTAssertEqual(try XCTUnwrap(report.tasks[1].before.accForget), acc, accuracy: 1e-9)
        XCTAssertEqual(a2.info.task.metrics["before_acc_f"], acc)
    }

    /// Per-task epochs with explicit per-task classes: task 2 runs 3 epochs of its own step count, the last value repeats.
    func testEpochsAndClassesPerTask() throws {
        let dir = try temporaryDirectory("per-task")
        var o = TinyRun.options
        o.forget = [[1], [4]]
        o.epochs = [1, 3]
        o.shots = 2
        let backbone = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(), source: "tiny")
        let r = try Trainer(backbone: backbone, data: try TinyRun.data(), options: o, outputDirectory: dir).run()
        XCTAssertEqual(r.tasks.map(\.forget), [[1], [4]])
        XCTAssertEqual(r.tasks[1].old, [1])
        let perEpoch = { (retained: Int) in (retained * 2 + o.batchSize - 1) / o.batchSize }
        XCTAssertEqual(r.tasks[0].steps, 1 * perEpoch(TinyRun.classes - 1))
        XCTAssertEqual(r.tasks[1].steps, 3 * perEpoch(TinyRun.classes - 2))
    }

    /// A test folder with fewer classes than the model (a 6-class model, test images of classes 0–3 only) is
    /// evaluated on the classes it has; the model's other classes count as having no test images.
    func testTestSetWithFewerClassesThanTheModel() throws {
        let dir = try temporaryDirectory("fewer-test-classes")
        var o = TinyRun.options
        o.tasks = 1
        o.epochs = [1]
        o.forget = [[1]]
        let full = try TinyRun.images(perClass: 3, seed: 12)
        let some = full.subset(indices: full.labels.indices.filter { full.labels[$0] < 4 })
        let test = try ImageSet(images: some.images, labels: some.labels, classNames: Array(full.classNames.prefix(4)))
        let backbone = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(), source: "tiny")
        let r = try Trainer(
            backbone: backbone,
            data: try TrainData(
                train: try TinyRun.images(perClass: 6, seed: 11), test: test,
                source: "synthetic"), options: o, outputDirectory: dir
        ).run()
        XCTAssertNotNil(r.tasks[0].after.accForget)
        XCTAssertNotNil(r.tasks[0].after.accRetain)
    }

    /// .npy training data end to end, as `gslora-train forget --data x.npy --labels y.npy --test-data … --test-labels …`
    /// loads it: the same images as in-memory data give the same adapter bytes.
    func testNpyDataTrainsLikeInMemoryData() throws {
        let dir = try temporaryDirectory("npy")
        let data = try TinyRun.data()
        func save(_ set: ImageSet, _ name: String) throws -> (String, String) {
            let images = dir + "/\(name).npy", labels = dir + "/\(name)-labels.npy"
            try NPY.write(set.images, to: images)
            try NPY.write(Tensor(name: "labels", shape: [set.count], floats: set.labels.map(Float.init)), to: labels)
            return (images, labels)
        }
        let (train, trainLabels) = try save(data.train, "train"), (test, testLabels) = try save(data.test, "test")
        let loaded = try TrainData.load(
            data: train, testData: test, labels: trainLabels, testLabels: testLabels, classNames: nil,
            classes: TinyRun.classes, preprocessing: .direct(size: 8, channels: 1))
        XCTAssertEqual(loaded.train.labels, data.train.labels)
        XCTAssertEqual(loaded.test.count, data.test.count)
        var o = TinyRun.options
        o.tasks = 1
        o.epochs = [1]
        let backbone = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(), source: "tiny")
        let fromFiles = try Trainer(backbone: backbone, data: loaded, options: o, outputDirectory: dir + "/files").run()
        let inMemory = try Trainer(backbone: backbone, data: data, options: o, outputDirectory: dir + "/memory").run()
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: fromFiles.tasks[0].adapter)),
            try Data(contentsOf: URL(fileURLWithPath: inMemory.tasks[0].adapter)))
    }

    func testFewShotDrawsExactlyShotsPerClass() throws {
        let dir = try temporaryDirectory("fewshot")
        var o = TinyRun.options
        o.tasks = 1
        o.classesPerTask = 2
        o.shots = 3
        o.epochs = [1]
        let backbone = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(), source: "tiny")
        let r = try Trainer(backbone: backbone, data: try TinyRun.data(), options: o, outputDirectory: dir).run()
        XCTAssertEqual(r.tasks[0].forgetSamples, 2 * 3)
        XCTAssertEqual(r.tasks[0].retainSamples, (TinyRun.classes - 2) * 3)

        // Missing classes: the first k of the order are neither forgotten nor retained nor drawn.
        o.missing = 1
        let m = try Trainer(backbone: backbone, data: try TinyRun.data(), options: o, outputDirectory: dir).run()
        XCTAssertEqual(m.tasks[0].missing, [m.classOrder[0]])
        XCTAssertFalse(m.tasks[0].retain.contains(m.classOrder[0]))
        XCTAssertEqual(m.tasks[0].retainSamples, (TinyRun.classes - 3) * 3)
        XCTAssertNotNil(m.tasks[0].after.accMissing)

        o.shots = 7 // the synthetic training set has 6 images per class
        XCTAssertThrowsError(try Trainer(backbone: backbone, data: try TinyRun.data(), options: o, outputDirectory: dir)) {
            guard case TrainingError.badOption(let option, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(option, Setting("shots"))
        }
    }

    func testBadArgumentsAreRefusedByName() throws {
        let dir = try temporaryDirectory("bad")
        let backbone = try TrainBackbone(config: TinyRun.config, tensors: try TinyRun.weights(), source: "tiny")
        let data = try TinyRun.data()
        func refused(_ change: (inout TrainOptions) -> Void, _ option: Setting) {
            var o = TinyRun.options
            change(&o)
            XCTAssertThrowsError(try Trainer(backbone: backbone, data: data, options: o, outputDirectory: dir), "\(option)") {
                guard case TrainingError.badOption(let named, _) = $0 else { return XCTFail("\(option): \($0)") }
                XCTAssertEqual(named, option)
            }
        }
        refused(
            {
                $0.tasks = 1; $0.forget = [[TinyRun.classes]]
            }, Setting("forget"))
        refused(
            {
                $0.tasks = 1; $0.forget = [[0, 0]]
            }, Setting("forget"))
        refused(
            {
                $0.tasks = 2; $0.forget = [[0], [0]]
            }, Setting("forget"))
        refused(
            {
                $0.tasks = 2; $0.forget = [[0], []]
            }, Setting("forget"))
        refused(
            {
                $0.tasks = 1; $0.forget = [[0], [1]]
            }, Setting("forget"))
        refused(
            {
                $0.tasks = 2; $0.forget = [[1]]
            }, Setting("forget"))
        refused({ $0.tasks = 6 }, Setting("tasks"))
        refused({ $0.dataRatio = 0 }, Setting("dataRatio"))
        refused({ $0.grouping = "rows" }, Setting("grouping"))
        refused({ $0.batchSize = 0 }, Setting("batchSize"))
        refused({ $0.epochs = [2, 0] }, Setting("epochs"))
        refused({ $0.epochs = [] }, Setting("epochs"))

        // An adapter is not a backbone.
        var o = TinyRun.options
        o.tasks = 1
        o.epochs = [1]
        _ = try Trainer(backbone: backbone, data: data, options: o, outputDirectory: dir).run()
        XCTAssertThrowsError(try TrainBackbone.open(dir + "/task-1.gslr")) {
            guard case TrainingError.badModel(let path, let why) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(path, dir + "/task-1.gslr")
            XCTAssertTrue(why.contains("adapter"), why)
        }
        // Images of the wrong size for the model.
        let small = try ImageSet(
            images: Tensor(name: "x", shape: [2, 1, 4, 4], floats: [Float](repeating: 0.5, count: 32)),
            labels: [0, 1], classNames: ["a", "b"])
        XCTAssertThrowsError(
            try Trainer(
                backbone: backbone, data: try TrainData(train: small, test: small, source: "small"), options: o,
                outputDirectory: dir)
        ) {
            guard case TrainingError.badData(let path, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(path, "small")
        }
    }

    /// A wrapped error that already names the file is not prefixed with it again, nor given a second full stop.
    func testWrappedErrorsNameTheFileOnce() {
        let inner = "/m/face.pth: cannot infer the number of attention heads. Pass --heads N."
        XCTAssertEqual("\(TrainingError.badModel(path: "/m/face.pth", problem: inner))", inner)
        XCTAssertEqual("\(TrainingError.badData(path: "/d", problem: "no test set"))", "/d: no test set.")
        XCTAssertEqual("\(TrainingError.badOption(option: Setting("rank"), problem: "must be ≥ 1"))", "`rank`: must be ≥ 1.")
    }
}

/// A tiny random face-style model and synthetic class-dependent images, for trainer tests that must run in seconds.
enum TinyRun {
    static let classes = 6

    static var config: ModelConfig {
        ModelConfig(
            family: .faceViT, imageSize: 8, patchSize: 4, channels: 1, width: 16, depth: 2, heads: 2, headDim: 8, mlpWidth: 32,
            numClasses: classes, head: ModelConfig.Head(kind: .cosface, s: 16, m: 0.2), attentionScale: 0.25,
            layerNormEps: 1e-5, qkvBias: false)
    }

    /// Canonical tensors of a random model.
    static func weights(seed: UInt64 = 7) throws -> [Tensor] {
        let model = try ViT(config: config, parameters: try ViTParameters.random(config: config, seed: seed))
        return try PretrainStep(model: model).tensors
    }

    /// `perClass` images of every class: a class-specific pattern plus noise.
    static func images(perClass: Int, seed: UInt64) throws -> ImageSet {
        var rng = SplitMix64(seed: seed)
        let n = classes * perClass, size = 64
        var pixels = [Float](repeating: 0, count: n * size), labels: [Int] = []
        for i in 0..<n {
            let y = i % classes
            labels.append(y)
            for j in 0..<size {
                let pattern: Float = (j * (y + 1)) % 7 < 3 ? 0.8 : 0.2
                pixels[i * size + j] = pattern + 0.2 * (rng.nextUnitFloat() - 0.5)
            }
        }
        return try ImageSet(
            images: Tensor(name: "images", shape: [n, 1, 8, 8], floats: pixels), labels: labels,
            classNames: (0..<classes).map { "class\($0)" })
    }

    static func data() throws -> TrainData {
        try TrainData(train: try images(perClass: 6, seed: 11), test: try images(perClass: 3, seed: 12), source: "synthetic")
    }

    /// A backbone .gslr of the random model in `dir`.
    static func backboneFile(in dir: String, seed: UInt64 = 7) throws -> String {
        let path = dir + "/backbone-\(seed).gslr"
        try GSLRWriter.write(
            path, header: GSLRHeader(kind: .backbone, model: config, classes: (0..<classes).map { "class\($0)" }),
            tensors: try weights(seed: seed))
        return path
    }

    /// Two continual tasks of one class each, two epochs, every randomised part switched on (dropout, GS-LoRA++ with
    /// an EMA from epoch 0, few images so epochs have several steps).
    static var options: TrainOptions {
        var o = TrainOptions()
        o.tasks = 2
        o.classesPerTask = 1
        o.epochs = [2]
        o.batchSize = 4
        o.dataRatio = 1
        o.dropout = 0.1
        o.rank = 2
        o.bound = 20
        o.alpha = 1e-3
        o.plus = true
        o.prototypeForget = [0.05]
        o.prototypeMargin = 1
        o.emaStart = 0
        o.evalBatch = 16
        return o
    }
}

extension XCTestCase {
    /// A fresh folder for one test's files, removed when the test ends.
    func temporaryDirectory(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "gslora-trainer-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }
}
