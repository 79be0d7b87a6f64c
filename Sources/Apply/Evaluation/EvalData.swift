import Foundation
import GSLoRAData
import GSLoRAFormat

/// Labelled evaluation data in any of the layouts gslora reads, preprocessed for one model.
public enum EvalData {
    /// Loads `path` as:
    /// - a folder with `*-images-idx3-ubyte[.gz]` files: an IDX (Fashion-MNIST-style) folder; `split` picks
    ///   "t10k" (test) or "train" files, the labels file is the matching `*-labels-idx1-ubyte[.gz]`;
    /// - any other folder: an ImageFolder (one sub-folder per class, named as the model's classes when it has them);
    /// - an `.npy` file: float32 N×C×H×W images already preprocessed, with `labels` an `.npy` of class indices;
    /// - any other file: IDX images, with `labels` or the sibling `…labels-idx1…` file.
    /// `classNames` are the model's (nil when it has none); labels must be below `numClasses`. The name
    /// `fashion-mnist` stands for Debian's folder.
    public static func load(
        path rawPath: String, labels: String? = nil, split: String = "test", classNames: [String]?, numClasses: Int,
        preprocessing: Preprocessing
    ) throws -> (set: ImageSet, skipped: [SkippedImage]) {
        let path = FashionMNIST.resolve(rawPath)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EvaluationError.badData(path: path, problem: "no such file or folder")
        }
        let names = classNames ?? (0..<numClasses).map(String.init)
        if isDir.boolValue {
            if let images = try idxImages(in: path, split: split) {
                let set = try IDX.load(
                    images: images, labels: labels ?? idxLabels(for: images), classNames: idxNames(images, classNames, numClasses),
                    preprocessing: preprocessing)
                return (set, [])
            }
            guard labels == nil else {
                throw EvaluationError.badData(path: path, problem: "\(Setting("labels")) is only for .npy or IDX image files, not an image folder")
            }
            let r = try ImageFolder.load(root: path, classNames: classNames, preprocessing: preprocessing)
            guard r.set.classNames.count <= numClasses else {
                throw EvaluationError.badData(path: path, problem: "\(r.set.classNames.count) class folders, but the model has \(numClasses) classes")
            }
            return r
        }
        if path.lowercased().hasSuffix(".npy") {
            guard let labels else { throw EvaluationError.badData(path: path, problem: ".npy images need a labels file: pass \(Setting("labels")) LABELS.npy") }
            let images = try NPY.readImages(
                path: path, channels: preprocessing.channels, height: preprocessing.outputHeight,
                width: preprocessing.outputWidth)
            let raw = try NPY.read(path: labels)
            guard raw.shape.count == 1 || (raw.shape.count == 2 && raw.shape[1] == 1) else {
                throw EvaluationError.badData(path: labels, problem: "labels have shape \(raw.shape); expected one class index per image, shape (N,)")
            }
            let values = try raw.floats()
            var y: [Int] = []
            y.reserveCapacity(values.count)
            for (i, v) in values.enumerated() {
                guard v.isFinite, v == v.rounded(), v >= 0, v < Float(numClasses) else {
                    throw EvaluationError.badData(path: labels, problem: "label \(v) of item \(i) is not a class index in 0..<\(numClasses)")
                }
                y.append(Int(v))
            }
            guard y.count == images.shape[0] else {
                throw EvaluationError.badData(path: labels, problem: "\(y.count) labels for the \(images.shape[0]) images of \(path)")
            }
            return (try ImageSet(images: images, labels: y, classNames: names), [])
        }
        let set = try IDX.load(
            images: path, labels: labels ?? idxLabels(for: path), classNames: idxNames(path, classNames, numClasses),
            preprocessing: preprocessing)
        return (set, [])
    }

    /// The images file of an IDX folder, or nil when the folder holds none.
    /// How many images `load` reads from `path`, from file headers and the folder listing alone (nothing decoded),
    /// so that a run can be sized before its data is loaded.
    public static func imageCount(path rawPath: String, split: String = "test") throws -> Int {
        let path = FashionMNIST.resolve(rawPath)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EvaluationError.badData(path: path, problem: "no such file or folder")
        }
        if isDir.boolValue {
            if let images = try idxImages(in: path, split: split) { return try IDX.imageCount(path: images) }
            return try ImageFolder.list(root: path).files.count
        }
        if path.lowercased().hasSuffix(".npy") {
            let shape = try NPY.shape(path: path)
            return shape.count == 4 ? shape[0] : 1
        }
        return 1
    }

    static func idxImages(in dir: String, split: String) throws -> String? {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains("images-idx3-ubyte") }.sorted()
        guard !files.isEmpty else { return nil }
        let prefix = split == "train" ? "train-" : "t10k-"
        let pick = files.filter { $0.hasPrefix(prefix) }
        // A lone file named after neither split is taken whatever the split.
        let lone = files.count == 1 && !files[0].hasPrefix("train-") && !files[0].hasPrefix("t10k-") ? files[0] : nil
        let chosen = pick.first { $0.hasSuffix(".gz") } ?? pick.first ?? lone
        guard let chosen else {
            throw EvaluationError.badData(path: dir, problem: "IDX files \(files) but none for split '\(split)' (\(prefix)…); pass one images file instead")
        }
        return dir + "/" + chosen
    }

    /// The labels file next to an IDX images file (`…images-idx3-ubyte…` → `…labels-idx1-ubyte…`).
    static func idxLabels(for images: String) throws -> String {
        let candidate = images.replacingOccurrences(of: "images-idx3-ubyte", with: "labels-idx1-ubyte")
        guard candidate != images, FileManager.default.fileExists(atPath: candidate) else {
            throw EvaluationError.badData(path: images, problem: "no labels file found next to it (expected \(candidate)); pass \(Setting("labels"))")
        }
        return candidate
    }

    /// Class names for IDX data: the model's, Fashion-MNIST's for a 10-class model on Fashion-MNIST files, else indices.
    static func idxNames(_ path: String, _ names: [String]?, _ k: Int) -> [String] {
        if let names { return names }
        if k == FashionMNIST.classNames.count, path.lowercased().contains("fashion") { return FashionMNIST.classNames }
        return (0..<k).map(String.init)
    }
}
