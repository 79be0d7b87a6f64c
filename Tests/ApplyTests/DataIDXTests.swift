import Foundation
import GSLoRAData
import GSLoRAEvaluation
import XCTest

final class DataIDXTests: XCTestCase {
    /// An IDX file: magic 00 00 08 ndim, big-endian sizes, bytes.
    private func idx(_ dims: [Int], _ data: [UInt8]) -> [UInt8] {
        [0, 0, 8, UInt8(dims.count)] + dims.flatMap { TestImages.be32($0) } + data
    }

    private let pixels: [UInt8] = (0..<24).map { UInt8($0 * 10) } // 3 images of 2×4

    func testRawAndGzipFilesLoadTheSame() throws {
        let t = DataTemp()
        let img = idx([3, 2, 4], pixels), lab = idx([3], [2, 0, 1])
        t.write("i", img)
        t.write("l", lab)
        t.write("i.gz", TestImages.gzip(img))
        t.write("l.gz", TestImages.gzip(lab))
        // Two gzip members back to back read as one stream, as gunzip does.
        t.write("i2.gz", TestImages.gzip(Array(img[0..<10])) + TestImages.gzip(Array(img[10...])))
        for (i, l) in [("i", "l"), ("i.gz", "l.gz"), ("i2.gz", "l")] {
            let raw = try IDX.readImages(path: t.file(i))
            XCTAssertEqual([raw.count, raw.rows, raw.cols], [3, 2, 4])
            XCTAssertEqual(raw.pixels, pixels)
            XCTAssertEqual(try IDX.readLabels(path: t.file(l)), [2, 0, 1])
            let set = try IDX.load(
                images: t.file(i), labels: t.file(l), classNames: ["x", "y", "z"],
                preprocessing: Preprocessing(geometry: .direct(height: 2, width: 4), channels: 1))
            XCTAssertEqual([set.count, set.channels, set.height, set.width], [3, 1, 2, 4])
            XCTAssertEqual(set.withPixels { Array($0) }, pixels.map { Float($0) / 255 })
            XCTAssertEqual(set.labels, [2, 0, 1])
            XCTAssertNil(set.paths)
        }
    }

    /// Lying headers, truncation and wrong kinds of file are refused with the file named.
    func testMalformedFilesAreRefused() throws {
        let t = DataTemp()
        let good = idx([3, 2, 4], pixels)
        let gz = TestImages.gzip(good)
        var corruptGz = gz
        corruptGz[gz.count / 2] ^= 0xFF
        let cases: [(String, [UInt8], String)] = [
            ("more-claimed", idx([4, 2, 4], pixels), "truncated"),
            ("fewer-claimed", idx([2, 2, 4], pixels), "holds"),
            ("cut", Array(good[0..<(good.count - 1)]), "truncated"),
            ("huge", idx([0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], []), "overflow"),
            ("short", [0, 0, 8], "shorter"),
            ("magic", [1, 2, 8, 3] + Array(good[4...]), "magic"),
            ("type", [0, 0, 0x0D, 3] + Array(good[4...]), "type"),
            ("labels", idx([24], pixels), "dimensions"),
            ("header-cut", Array(good[0..<9]), "size header"),
            ("more-claimed.gz", TestImages.gzip(idx([4, 2, 4], pixels)), "only 24"),
            ("bomb.gz", TestImages.gzip(idx([100_000, 100, 100], [])), "compressed bytes"),
            ("trailing.gz", TestImages.gzip(good + [7]), "continues"),
            ("cut.gz", Array(gz[0..<(gz.count - 12)]), "truncated"),
            ("garbage-after.gz", gz + [1, 2, 3], "non-gzip"),
            ("corrupt.gz", corruptGz, "corrupt gzip")
        ]
        for (name, bytes, words) in cases {
            let path = t.write(name, bytes)
            XCTAssertThrowsError(try IDX.readImages(path: path), name) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(path), "\(name): \(text)")
                XCTAssertTrue(text.contains(words), "\(name): \(text)")
                switch e as? DataError {
                case .badIDX?, .badGzip?: break
                default: XCTFail("\(name): \(e)")
                }
            }
        }
    }

    func testLabelsMustMatchImagesAndClasses() throws {
        let t = DataTemp()
        let i = t.write("i", idx([3, 2, 4], pixels))
        let two = t.write("l2", idx([2], [0, 1]))
        let high = t.write("l9", idx([3], [0, 9, 1]))
        let p = Preprocessing.direct(size: 2, channels: 1)
        XCTAssertThrowsError(try IDX.load(images: i, labels: two, classNames: ["a", "b"], preprocessing: p)) {
            guard case DataError.mismatch = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try IDX.load(images: i, labels: high, classNames: ["a", "b"], preprocessing: p)) {
            XCTAssertTrue("\($0)".contains("label 9"), "\($0)")
        }
    }

    func testMissingFashionMNISTSaysHowToInstall() {
        XCTAssertThrowsError(try FashionMNIST.load(.test, directory: "/nonexistent/fashion-mnist")) { e in
            XCTAssertTrue("\(e)".contains("apt-get install dataset-fashion-mnist"), "\(e)")
            XCTAssertTrue("\(e)".contains("t10k-images-idx3-ubyte.gz"), "\(e)")
        }
    }

    /// The real data set from Debian's dataset-fashion-mnist, when installed.
    func testFashionMNISTFromDebianPackage() throws {
        guard FileManager.default.fileExists(atPath: FashionMNIST.directory + "/train-images-idx3-ubyte.gz") else {
            throw XCTSkip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
        }
        let train = try FashionMNIST.load(.train)
        XCTAssertEqual([train.count, train.channels, train.height, train.width], [60000, 1, 28, 28])
        XCTAssertEqual(train.classNames.count, 10)
        XCTAssertEqual(Set(train.labels), Set(0..<10))
        XCTAssertEqual(train.indicesByClass.map(\.count), [Int](repeating: 6000, count: 10))
        let (lo, hi) = train.withPixels { ($0.min(), $0.max()) }
        XCTAssertEqual(lo, 0)
        XCTAssertEqual(hi, 1)

        let test = try FashionMNIST.load(.test, preprocessing: .direct(size: 32, channels: 3))
        XCTAssertEqual([test.count, test.channels, test.height, test.width], [10000, 3, 32, 32])
        XCTAssertEqual(test.indicesByClass.map(\.count), [Int](repeating: 1000, count: 10))
        let (red, green) = test.withPixels { (Array($0[0..<1024]), Array($0[1024..<2048])) }
        XCTAssertEqual(red, green, "gray replicated into RGB")
    }

    /// `fashion-mnist` names Debian's folder in gslora-eval as in gslora-train; any other name is a path.
    func testFashionMNISTNameWorksForEvaluationData() throws {
        guard FileManager.default.fileExists(atPath: FashionMNIST.directory + "/t10k-images-idx3-ubyte.gz") else {
            throw XCTSkip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
        }
        let (set, skipped) = try EvalData.load(
            path: "fashion-mnist", classNames: FashionMNIST.classNames, numClasses: 10,
            preprocessing: .direct(size: 28, channels: 1))
        XCTAssertEqual(set.count, 10000)
        XCTAssertTrue(skipped.isEmpty)
        XCTAssertThrowsError(
            try EvalData.load(
                path: "fashion-mnist-nonexistent", classNames: nil, numClasses: 10,
                preprocessing: .direct(size: 28, channels: 1))
        ) { e in
            XCTAssertTrue("\(e)".contains("fashion-mnist-nonexistent"), "\(e)")
        }
    }
}
