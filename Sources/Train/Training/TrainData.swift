import Foundation
import GSLoRACluster
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel

/// A labelled training set and its test set, preprocessed for one model, with one class-name → index map for both
/// (spec/TRAINING.md §4 item 22).
public struct TrainData: Sendable {
    public let train: ImageSet
    public let test: ImageSet
    /// What was loaded, for reports.
    public let source: String

    public init(train: ImageSet, test: ImageSet, source: String) throws {
        guard train.imageSize == test.imageSize, train.channels == test.channels else {
            throw TrainingError.badData(
                path: source,
                problem: "train images are \(train.channels)×\(train.height)×\(train.width), test images \(test.channels)×\(test.height)×\(test.width)")
        }
        guard train.count > 0 else { throw TrainingError.badData(path: source, problem: "the training set holds no images") }
        guard test.count > 0 else { throw TrainingError.badData(path: source, problem: "the test set holds no images") }
        self.train = train
        self.test = test
        self.source = source
    }

    static func isIDXFolder(_ dir: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains { $0.contains("images-idx3-ubyte") }
    }

    /// Loads `data` (and `testData`) for a model with `classes` classes:
    /// - an IDX folder (Fashion-MNIST style, `fashion-mnist` for the Debian package): its train-… and t10k-… files;
    /// - an image folder with `train/` and `test/` sub-folders (one folder per class in each), or any image folder
    ///   together with `testData`;
    /// - an `.npy` of N×C×H×W float32 images with `labels` (and `testData` + `testLabels`).
    /// `classNames` are the model's (nil: the training folder's sorted names, or indices).
    public static func load(
        data rawData: String, testData rawTest: String? = nil, labels: String? = nil, testLabels: String? = nil,
        classNames: [String]?, classes: Int, preprocessing: Preprocessing
    ) throws -> TrainData {
        let source = try Source(data: rawData, testData: rawTest), data = source.data
        func load(_ path: String, labels: String?, split: String, names: [String]?) throws -> ImageSet {
            do {
                let set = try EvalData.load(
                    path: path, labels: labels, split: split, classNames: names, numClasses: classes,
                    preprocessing: preprocessing
                ).set
                guard names == nil, set.classNames.count > (set.labels.max() ?? 0) + 1 else { return set }
                // IDX and .npy data name no classes: keep as many as the labels use (Fashion-MNIST's names for it).
                let used = (set.labels.max() ?? 0) + 1
                let fashion = used == FashionMNIST.classNames.count && path.lowercased().contains("fashion")
                return try ImageSet(
                    images: set.images, labels: set.labels,
                    classNames: fashion ? FashionMNIST.classNames : (0..<used).map(String.init), paths: set.paths)
            } catch let e as TrainingError {
                throw e
            } catch {
                throw TrainingError.badData(path: path, problem: "\(error)")
            }
        }
        let folder = source.kind == .imageFolder
        let train = try load(source.train, labels: folder ? nil : labels, split: "train", names: classNames)
        let test = try load(
            source.test, labels: folder ? nil : testLabels, split: "test",
            names: source.kind == .idx ? classNames ?? train.classNames : train.classNames)
        guard train.classNames.count <= classes else {
            throw TrainingError.badData(path: data, problem: "\(train.classNames.count) classes, but the model has \(classes)")
        }
        return try TrainData(train: train, test: test, source: data)
    }

    /// Where the training and test images come from: an IDX folder holds both splits, an image folder has train/ and
    /// test/ sub-folders, anything else needs its test set named.
    struct Source {
        enum Kind { case idx, imageFolder, files }
        let data: String, train: String, test: String, kind: Kind

        init(data rawData: String, testData rawTest: String?) throws {
            data = FashionMNIST.resolve(rawData)
            let testData = rawTest.map(FashionMNIST.resolve)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: data, isDirectory: &isDir) else {
                throw TrainingError.badData(
                    path: data, problem: "no such file or folder (give an image folder, an IDX folder, `fashion-mnist` or an .npy file)")
            }
            if isDir.boolValue, isIDXFolder(data) {
                (train, test, kind) = (data, testData ?? data, .idx)
            } else if isDir.boolValue, testData == nil {
                (train, test, kind) = (data + "/train", data + "/test", .imageFolder)
                guard FileManager.default.fileExists(atPath: train), FileManager.default.fileExists(atPath: test) else {
                    throw TrainingError.badData(
                        path: data, problem: "an image folder needs train/ and test/ sub-folders, or pass the test images as \(Setting("testData"))")
                }
            } else {
                guard let testData else {
                    throw TrainingError.badData(path: data, problem: "no test set: pass \(Setting("testData")) (and \(Setting("testLabels")) for .npy)")
                }
                (train, test, kind) = (data, testData, .files)
            }
        }
    }

    /// How many training and test images `load` would read, from headers and listings alone.
    public static func imageCounts(data rawData: String, testData rawTest: String? = nil) throws -> (train: Int, test: Int) {
        let source = try Source(data: rawData, testData: rawTest)
        do {
            return (try EvalData.imageCount(path: source.train, split: "train"), try EvalData.imageCount(path: source.test, split: "test"))
        } catch {
            throw TrainingError.badData(path: source.data, problem: "\(error)")
        }
    }
}

/// Accuracies of one model on the test set's class sets (percent; nil when the set has no test image).
public struct TaskMetrics: Codable, Equatable, Sendable {
    public var accRetain: Double?
    public var accForget: Double?
    public var accOld: Double?
    public var accMissing: Double?
    /// Retain including missing classes (the paper's missing-class column).
    public var accRetainAll: Double?

    enum CodingKeys: String, CodingKey {
        case accRetain = "acc_r", accForget = "acc_f", accOld = "acc_o", accMissing = "acc_m", accRetainAll = "acc_r_all"
    }

    /// The metrics as a task record's numbers, with `prefix` on each key.
    func numbers(_ prefix: String = "") -> [String: Double] {
        var out: [String: Double] = [:]
        for (k, v) in [("acc_r", accRetain), ("acc_f", accForget), ("acc_o", accOld), ("acc_m", accMissing), ("acc_r_all", accRetainAll)] {
            if let v { out[prefix + k] = v }
        }
        return out
    }
}

enum TaskEvaluation {
    /// Predicts every test image of the task's classes and counts per class set. `margin`: the paper's face
    /// criterion (true class's logit minus the margin first); otherwise plain argmax.
    static func evaluate(
        _ model: ViT, test: ImageSet, classes c: TaskClasses, margin: Bool, batch: Int,
        communicator: Communicator = SingleProcess()
    ) throws -> TaskMetrics {
        metrics(
            try counts(
                model, test: test, classes: c.retain + c.forget + c.old + c.missing, margin: margin, batch: batch,
                communicator: communicator), c)
    }

    /// Per-class test counts of `model` over the test images of `classes` (the other classes count 0 images).
    static func counts(
        _ model: ViT, test: ImageSet, classes wanted: [Int], margin: Bool, batch: Int,
        communicator: Communicator = SingleProcess()
    ) throws -> ClassCounts {
        // A test set may name fewer classes than the model has; those classes simply have no test images.
        var n = ClassCounts(classes: Set(wanted), samples: [Int](repeating: 0, count: max(test.classNames.count, model.config.numClasses)))
        n.correct = n.samples
        let idx = test.indices(ofClasses: wanted)
        guard !idx.isEmpty else { return n }
        let sub = test.subset(indices: idx)
        let predictions = try sub.withPixels {
            try BatchedForward.predict(
                model, images: $0, labels: sub.labels, margin: margin, batchSize: batch,
                communicator: communicator)
        }
        for (p, y) in zip(predictions, sub.labels) {
            n.samples[y] += 1
            if p == y { n.correct[y] += 1 }
        }
        return n
    }

    /// The task's accuracies from per-class counts that cover its classes.
    static func metrics(_ n: ClassCounts, _ c: TaskClasses) -> TaskMetrics {
        func acc(_ set: [Int]) -> Double? {
            let total = set.reduce(0) { $0 + n.samples[$1] }
            return total > 0 ? 100 * Double(set.reduce(0) { $0 + n.correct[$1] }) / Double(total) : nil
        }
        return TaskMetrics(
            accRetain: acc(c.retain), accForget: acc(c.forget), accOld: acc(c.old), accMissing: acc(c.missing),
            accRetainAll: c.missing.isEmpty ? nil : acc(c.retain + c.missing))
    }
}

/// Test images and correct predictions per class, over the classes `classes` that were evaluated.
struct ClassCounts {
    var classes: Set<Int>
    var samples: [Int]
    var correct: [Int] = []

    /// True when these counts answer for every class of `c`.
    func covers(_ c: TaskClasses) -> Bool { Set(c.retain + c.forget + c.old + c.missing).isSubset(of: classes) }
}
