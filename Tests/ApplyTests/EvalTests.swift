import Foundation
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAModel
import XCTest

final class EvalTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try AdapterTestKit.tempDir() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ n: String) -> String { dir.appendingPathComponent(n).path }

    func testHMatchesThePapersExample() {
        // spec/TRAINING.md §A.8: 100-20 GS-LoRA, Δ = 74.65 (74.65 → 0), Acc_r = 74.16 → H = 74.40.
        XCTAssertEqual(ForgettingScore.h(forgetBefore: 74.65, forget: 0, retain: 74.16), 74.40, accuracy: 0.005)
        XCTAssertEqual(ForgettingScore.h(forgetBefore: 50, forget: 50, retain: 0), 0)
    }

    func testClassSelection() throws {
        let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "7"]
        XCTAssertEqual(try ClassSelection.parse("0-2,4", classNames: names, option: "--forget"), [0, 1, 2, 4])
        XCTAssertEqual(try ClassSelection.parse("Coat, T-shirt/top,1", classNames: names, option: "--forget"), [0, 1, 4])
        XCTAssertEqual(try ClassSelection.parse("7", classNames: names, option: "--forget"), [5], "a name wins over a number")
        for bad in ["Shoe", "0-9", "6", "3-1", "1,,2", "-1"] {
            XCTAssertThrowsError(try ClassSelection.parse(bad, classNames: names, option: "--forget"), bad) { e in
                XCTAssertTrue("\(e)".contains("--forget"), "\(e)")
            }
        }
        XCTAssertThrowsError(try ClassSelection.parse("Shoe", classNames: names, option: "--old")) { e in
            XCTAssertEqual(
                e as? EvaluationError, .unknownClass(option: "--old", item: "Shoe", known: "'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', '7'"))
        }
    }

    /// A random model, .npy images and labels chosen so that known images are right: returns the plain
    /// predictions, the labels and the model.
    func makeModelAndData(n: Int = 40) throws -> (ViT, [Int], [Int], [Float]) {
        let c = AdapterTestKit.config(classes: 4)
        let model = try ViT(config: c, weights: AdapterTestKit.weights(c, seed: 11))
        let per = 3 * 8 * 8
        let images = (0..<(n * per)).map { Float(sin(Double($0) * 0.731) + cos(Double($0 / per) * 1.3)) }
        let preds = try images.withUnsafeBufferPointer {
            try BatchedForward.predict(model, images: $0, labels: [Int](repeating: 0, count: n), margin: false, batchSize: 7)
        }
        // Every third image gets a wrong label.
        let labels = preds.enumerated().map { i, p in i % 3 == 0 ? (p + 1) % 4 : p }
        try images.withUnsafeBufferPointer { try NPY.write($0, shape: [n, 3, 8, 8], to: path("x.npy")) }
        try labels.map(Float.init).withUnsafeBufferPointer { try NPY.write($0, shape: [n], to: path("y.npy")) }
        return (model, preds, labels, images)
    }

    func testReportCountsAndH() throws {
        let (model, preds, labels, _) = try makeModelAndData()
        let (set, _) = try EvalData.load(
            path: path("x.npy"), labels: path("y.npy"), classNames: ["a", "b", "c", "d"], numClasses: 4,
            preprocessing: .direct(size: 8, channels: 3))
        XCTAssertEqual(set.labels, labels)
        let got = try set.withPixels { try BatchedForward.predict(model, images: $0, labels: set.labels, margin: false, batchSize: 64) }
        XCTAssertEqual(got, preds, "batch size does not change predictions")
        func acc(_ cs: Set<Int>) -> Double {
            let idx = labels.indices.filter { cs.contains(labels[$0]) }
            return 100 * Double(idx.filter { preds[$0] == labels[$0] }.count) / Double(idx.count)
        }
        let r = try ForgettingScore.report(
            predictions: got, labels: set.labels, classNames: set.classNames, forget: [0], retain: nil,
            old: [3], before: nil, beforePath: nil, criterion: "cosine", model: "m", adapters: [],
            merged: false, data: "x.npy")
        XCTAssertEqual(r.retain, [1, 2].filter { labels.contains($0) })
        XCTAssertEqual(r.accForget!, acc([0]), accuracy: 1e-12)
        XCTAssertEqual(r.accRetain!, acc([1, 2]), accuracy: 1e-12)
        XCTAssertEqual(r.accOld!, acc([3]), accuracy: 1e-12)
        XCTAssertEqual(r.perClass.reduce(0) { $0 + $1.samples }, labels.count)
        XCTAssertNil(r.h)
        // A "before" report with every forget image right.
        var before = r
        before.perClass = before.perClass.map {
            var c = $0; if c.index == 0 { c.correct = c.samples; c.accuracy = 100 }; return c
        }
        let data = try JSONEncoder().encode(before)
        try data.write(to: dir.appendingPathComponent("before.json"))
        let b = try ForgettingScore.readReport(path("before.json"))
        let r2 = try ForgettingScore.report(
            predictions: got, labels: set.labels, classNames: set.classNames, forget: [0], retain: [1, 2],
            old: [], before: b, beforePath: path("before.json"), criterion: "cosine", model: "m",
            adapters: [], merged: false, data: "x.npy")
        XCTAssertEqual(r2.accForgetBefore, 100)
        XCTAssertEqual(r2.delta!, 100 - acc([0]), accuracy: 1e-12)
        let d = 100 - acc([0]), ar = acc([1, 2])
        XCTAssertEqual(r2.h!, 2 * d * ar / (d + ar + 1e-8), accuracy: 1e-9)
        // Overlapping sets are refused; a before report without the forget classes too.
        XCTAssertThrowsError(
            try ForgettingScore.report(
                predictions: got, labels: labels, classNames: set.classNames, forget: [0], retain: [0, 1],
                old: [], before: nil, beforePath: nil, criterion: "cosine", model: "m", adapters: [],
                merged: false, data: ""))
        before.perClass.removeAll { $0.index == 0 }
        XCTAssertThrowsError(
            try ForgettingScore.report(
                predictions: got, labels: labels, classNames: set.classNames, forget: [0], retain: nil,
                old: [], before: before, beforePath: "b.json", criterion: "cosine", model: "m",
                adapters: [], merged: false, data: "")
        ) { e in
            guard case EvaluationError.badReport(path: "b.json", _) = e else { return XCTFail("\(e)") }
        }
    }

    func testMarginCriterionIsTheOfficialOne() throws {
        let (model, _, labels, images) = try makeModelAndData()
        let c = model.config
        let out = try model.forward(images: images, batch: labels.count)
        let s = Float(c.head.s!), m = Float(c.head.m!)
        var want = 0
        for (i, y) in labels.enumerated() {
            let cos = out.logits[(i * 4)..<(i * 4 + 4)].map { $0 / s }
            let rival = cos.indices.filter({ $0 != y }).map({ cos[$0] }).max()!
            if cos[y] - m > rival { want += 1 }
        }
        let got = try images.withUnsafeBufferPointer { try BatchedForward.predict(model, images: $0, labels: labels, margin: true, batchSize: 16) }
        XCTAssertEqual(zip(got, labels).filter { $0 == $1 }.count, want)
        let plain = try images.withUnsafeBufferPointer { try BatchedForward.predict(model, images: $0, labels: labels, margin: false) }
        XCTAssertLessThanOrEqual(want, zip(plain, labels).filter { $0 == $1 }.count)
    }

    func testBadNPYAndLabelsAreClearErrors() throws {
        _ = try makeModelAndData(n: 6)
        let pre = Preprocessing.direct(size: 8, channels: 3)
        // Wrong shape (channels-last).
        try [Float](repeating: 0, count: 6 * 8 * 8 * 3).withUnsafeBufferPointer { try NPY.write($0, shape: [6, 8, 8, 3], to: path("hwc.npy")) }
        XCTAssertThrowsError(try EvalData.load(path: path("hwc.npy"), labels: path("y.npy"), classNames: nil, numClasses: 4, preprocessing: pre)) { e in
            XCTAssertTrue("\(e)".contains(self.path("hwc.npy")) && "\(e)".contains("channels-last"), "\(e)")
        }
        // Truncated file.
        let bytes = try Data(contentsOf: dir.appendingPathComponent("x.npy"))
        try bytes.prefix(bytes.count - 10).write(to: dir.appendingPathComponent("cut.npy"))
        XCTAssertThrowsError(try EvalData.load(path: path("cut.npy"), labels: path("y.npy"), classNames: nil, numClasses: 4, preprocessing: pre)) { e in
            XCTAssertTrue("\(e)".contains(self.path("cut.npy")) && "\(e)".contains("truncated"), "\(e)")
        }
        // Not an .npy at all.
        try Data("hello".utf8).write(to: dir.appendingPathComponent("junk.npy"))
        XCTAssertThrowsError(try EvalData.load(path: path("junk.npy"), labels: path("y.npy"), classNames: nil, numClasses: 4, preprocessing: pre)) { e in
            XCTAssertTrue("\(e)".contains("not an .npy"), "\(e)")
        }
        // Labels: wrong count, out of range, fractional, missing.
        for (name, values) in [("short", [Float](repeating: 0, count: 5)), ("range", [0, 1, 2, 3, 4, 0]), ("frac", [0, 0.5, 1, 1, 1, 1])] {
            try values.withUnsafeBufferPointer { try NPY.write($0, shape: [values.count], to: path(name + ".npy")) }
            XCTAssertThrowsError(
                try EvalData.load(path: path("x.npy"), labels: path(name + ".npy"), classNames: nil, numClasses: 4, preprocessing: pre),
                name
            ) { e in XCTAssertTrue("\(e)".contains(self.path(name + ".npy")), "\(e)") }
        }
        XCTAssertThrowsError(try EvalData.load(path: path("x.npy"), labels: nil, classNames: nil, numClasses: 4, preprocessing: pre)) { e in
            XCTAssertTrue("\(e)".contains("`labels`"), "\(e)")
        }
    }

    func testIDXFolder() throws {
        // Fashion-MNIST-style names, 8×8 gray images with labels 0..3.
        let n = 5
        var images: [UInt8] = [0, 0, 8, 3, 0, 0, 0, UInt8(n), 0, 0, 0, 8, 0, 0, 0, 8]
        images += (0..<(n * 64)).map { UInt8($0 % 251) }
        let labels: [UInt8] = [0, 0, 8, 1, 0, 0, 0, UInt8(n)] + [0, 1, 2, 3, 1]
        let sub = dir.appendingPathComponent("idx")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        try Data(images).write(to: sub.appendingPathComponent("t10k-images-idx3-ubyte"))
        try Data(labels).write(to: sub.appendingPathComponent("t10k-labels-idx1-ubyte"))
        let (set, _) = try EvalData.load(
            path: sub.path, classNames: ["a", "b", "c", "d"], numClasses: 4,
            preprocessing: .direct(size: 8, channels: 3))
        XCTAssertEqual(set.labels, [0, 1, 2, 3, 1])
        XCTAssertEqual(set.channels, 3)
        XCTAssertEqual(set.image(0)[1], 1 / 255, accuracy: 1e-7)
        XCTAssertThrowsError(
            try EvalData.load(
                path: sub.path, split: "train", classNames: nil, numClasses: 4,
                preprocessing: .direct(size: 8, channels: 3))
        ) { e in
            XCTAssertTrue("\(e)".contains("split 'train'"), "\(e)")
        }
    }
}
