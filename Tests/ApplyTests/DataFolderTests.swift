import GSLoRAData
import XCTest

final class DataFolderTests: XCTestCase {
    /// A 4×4 gray PNG filled with `v`.
    private func flat(_ v: Int) -> [UInt8] {
        TestImages.png(width: 4, height: 4, colorType: TestImages.gray, samples: [Int](repeating: v, count: 16))
    }

    private let identity = Preprocessing.direct(size: 4, channels: 1)

    /// Classes are the sorted folder names (code point order: "A" < "Zeta" < "a" < "b" < "é"); files are found
    /// recursively in sorted folder-path order and sorted within each folder; hidden entries and non-images are
    /// ignored, other image types torchvision knows are reported; upper-case extensions load.
    func testLabelsAndOrderFollowTorchvision() throws {
        let t = DataTemp()
        let classes = ["b", "A", "a", "Zeta", "é"]
        for (k, c) in classes.enumerated() { t.write("train/\(c)/only.png", flat(10 * k)) }
        t.write("train/a/img2.PNG", flat(201))
        t.write("train/a/img10.png", flat(202))
        t.write("train/a/sub/x.png", flat(203))
        t.write("train/a/sub-a/y.jpeg", TestImages.jpeg(width: 4, height: 4, channels: 1, pixels: [UInt8](repeating: 204, count: 16)))
        t.write("train/a/.hidden.png", flat(1))
        t.write("train/a/notes.txt", Array("not an image".utf8))
        t.write("train/a/old.BMP", [0x42, 0x4D])
        t.write("train/.cache/z.png", flat(2))
        t.write("train/readme.png", flat(3))
        // A symlink back to its own class folder must not be followed forever (or count its images twice).
        try FileManager.default.createSymbolicLink(atPath: t.file("train/b/loop"), withDestinationPath: t.file("train/b"))

        let names = try ImageFolder.classNames(in: t.file("train"))
        XCTAssertEqual(names, ["A", "Zeta", "a", "b", "é"])
        let (set, skipped) = try ImageFolder.load(root: t.file("train") + "/", preprocessing: identity)
        XCTAssertEqual(set.classNames, names)
        let rel = set.paths!.map { String($0.dropFirst(t.file("train/").count)) }
        XCTAssertEqual(
            rel,
            [
                "A/only.png", "Zeta/only.png", "a/img10.png", "a/img2.PNG", "a/only.png", "a/sub/x.png",
                "a/sub-a/y.jpeg", "b/only.png", "é/only.png"
            ])
        XCTAssertEqual(set.labels, [0, 1, 2, 2, 2, 2, 2, 3, 4])
        XCTAssertEqual(skipped.map(\.path), [t.file("train/a/old.BMP")])
        XCTAssertTrue(skipped[0].reason.contains("unsupported"))
        // Pixels: first value of each image, in 0…255 levels.
        let first = (0..<set.count).map { Int((set.image($0)[0] * 255).rounded()) }
        XCTAssertEqual(Array(first[0..<6]), [10, 30, 202, 201, 20, 203])
        XCTAssertLessThanOrEqual(abs(first[6] - 204), 1, "JPEG value")
        XCTAssertEqual(Array(first[7...]), [0, 40])
        XCTAssertEqual([set.count, set.channels, set.height, set.width], [9, 1, 4, 4])
    }

    /// test/ maps names through train's class list (spec/TRAINING.md §4 item 22): its own sorted order would differ.
    func testSharedClassMapAndUnknownClass() throws {
        let t = DataTemp()
        for c in ["cat", "dog", "eel"] { t.write("train/\(c)/1.png", flat(50)) }
        t.write("test/eel/1.png", flat(60))
        t.write("test/cat/1.png", flat(70))
        let train = try ImageFolder.load(root: t.file("train"), preprocessing: identity).set
        let test = try ImageFolder.load(root: t.file("test"), classNames: train.classNames, preprocessing: identity).set
        XCTAssertEqual(test.classNames, ["cat", "dog", "eel"])
        XCTAssertEqual(test.labels, [0, 2], "eel keeps index 2 although test/ has only two classes")

        t.write("test/fox/1.png", flat(80))
        XCTAssertThrowsError(try ImageFolder.load(root: t.file("test"), classNames: train.classNames, preprocessing: identity)) { e in
            XCTAssertEqual(e as? DataError, .unknownClass(root: t.file("test"), name: "fox", known: 3))
            XCTAssertTrue("\(e)".contains("'fox'"))
        }
        XCTAssertThrowsError(try ImageFolder.list(root: t.file("train"), classNames: ["cat", "dog", "cat", "eel"])) {
            XCTAssertEqual($0 as? DataError, .duplicateClass(name: "cat"))
        }
        XCTAssertThrowsError(try ImageFolder.load(root: t.file("nowhere"), preprocessing: identity)) {
            guard case DataError.io = $0 else { return XCTFail("\($0)") }
        }
        t.mkdir("empty")
        XCTAssertThrowsError(try ImageFolder.load(root: t.file("empty"), preprocessing: identity)) {
            XCTAssertEqual($0 as? DataError, .noClasses(path: t.file("empty")))
        }
    }

    /// Bad files are skipped with their paths (and the good ones keep their own pixels after the gaps close);
    /// with strict they are thrown by name.
    func testBadImagesSkippedOrThrownUnderStrict() throws {
        let t = DataTemp()
        let good = flat(99)
        t.write("d/b/a_ok.png", flat(11))
        t.write("d/b/bad.jpg", Array("this is text".utf8))
        t.write("d/b/c_ok.png", flat(22))
        t.write("d/b/trunc.png", Array(good[0..<(good.count - 15)]))
        t.write("d/b/zero.png", [])
        t.write("d/b/z_ok.png", flat(33))
        let (set, skipped) = try ImageFolder.load(root: t.file("d"), preprocessing: identity)
        XCTAssertEqual(set.paths!, ["a_ok.png", "c_ok.png", "z_ok.png"].map { t.file("d/b/" + $0) })
        XCTAssertEqual(set.withPixels { px in (0..<3).map { Int((px[$0 * 16 + 15] * 255).rounded()) } }, [11, 22, 33])
        XCTAssertEqual(skipped.map(\.path), ["bad.jpg", "trunc.png", "zero.png"].map { t.file("d/b/" + $0) })
        XCTAssertTrue(skipped[0].reason.contains("magic"), skipped[0].reason)
        XCTAssertTrue(skipped[2].reason.contains("empty"), skipped[2].reason)
        XCTAssertThrowsError(try ImageFolder.load(root: t.file("d"), preprocessing: identity, strict: true)) { e in
            guard case let DataError.badImage(path, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(path, t.file("d/b/bad.jpg"))
            XCTAssertTrue("\(e)".contains("bad.jpg"))
        }
    }

    /// A plain list of files (no classes), as inference takes them: kept indices say which files made it.
    func testImageFilesKeepOrderAndReportFailures() throws {
        let t = DataTemp()
        let a = t.write("a.png", flat(10)), b = t.write("b.png", Array("nope".utf8)), c = t.write("c.png", flat(30))
        let missing = t.file("missing.png")
        let (images, kept, skipped) = try ImageFiles.load([c, missing, b, a], preprocessing: identity)
        XCTAssertEqual(images.shape, [2, 1, 4, 4])
        XCTAssertEqual(kept, [0, 3])
        let firsts = withExtendedLifetime(images) {
            images.data.buffer.bindMemory(to: Float.self).enumerated().filter { $0.offset % 16 == 0 }.map { Int(($0.element * 255).rounded()) }
        }
        XCTAssertEqual(firsts, [30, 10])
        XCTAssertEqual(skipped.map(\.path), [missing, b])
        XCTAssertTrue(skipped[0].reason.contains("open"), skipped[0].reason)
        XCTAssertThrowsError(try ImageFiles.load([a, b], preprocessing: identity, strict: true)) {
            XCTAssertTrue("\($0)".contains(b))
        }
    }

    /// Enough files for both cores: every image lands at its own index, resized and converted to RGB.
    func testParallelLoadKeepsEveryImageInPlace() throws {
        let t = DataTemp()
        for k in 0..<3 {
            for i in 0..<40 {
                let v = (k * 40 + i) * 2
                t.write(
                    "p/c\(k)/\(String(format: "%03d", i)).png",
                    TestImages.png(width: 9, height: 7, colorType: TestImages.gray, samples: [Int](repeating: v, count: 63)))
            }
        }
        let p = Preprocessing(geometry: .resizeShortSide(5, crop: 4), channels: 3)
        let (set, skipped) = try ImageFolder.load(root: t.file("p"), preprocessing: p)
        XCTAssertEqual(skipped, [])
        XCTAssertEqual([set.count, set.channels, set.height, set.width], [120, 3, 4, 4])
        for i in 0..<120 {
            let want = Float(2 * i) / 255
            XCTAssertTrue(set.image(i).allSatisfy { $0 == want }, "image \(i)")
            XCTAssertEqual(set.labels[i], i / 40)
        }
    }
}
