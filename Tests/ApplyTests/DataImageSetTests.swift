import GSLoRAData
import GSLoRAFormat
import XCTest

final class DataImageSetTests: XCTestCase {
    /// 5 images of 1×1×2, image i holding [10i, 10i+1]; labels 2,0,1,2,0.
    private func sample() throws -> ImageSet {
        let values = (0..<5).flatMap { [Float(10 * $0), Float(10 * $0 + 1)] }
        return try ImageSet(
            images: Tensor(name: "x", shape: [5, 1, 1, 2], floats: values), labels: [2, 0, 1, 2, 0],
            classNames: ["a", "b", "c"], paths: ["p0", "p1", "p2", "p3", "p4"])
    }

    func testGatherIntoBuffersAndArrays() throws {
        let set = try sample()
        var out = [Float](repeating: -1, count: 8)
        var labels = [Int](repeating: -1, count: 4)
        out.withUnsafeMutableBufferPointer { o in labels.withUnsafeMutableBufferPointer { l in set.gather([4, 0, 4], into: o, labels: l) } }
        XCTAssertEqual(out, [40, 41, 0, 1, 40, 41, -1, -1])
        XCTAssertEqual(labels, [0, 2, 0, -1])

        var arr: [Float] = []
        var lab: [Int] = []
        set.gather([3, 1], into: &arr, labels: &lab)
        XCTAssertEqual(arr, [30, 31, 10, 11])
        XCTAssertEqual(lab, [2, 0])
    }

    func testSubsetsKeepOriginalLabels() throws {
        let set = try sample()
        XCTAssertEqual(set.indicesByClass, [[1, 4], [2], [0, 3]])
        XCTAssertEqual(set.indices(ofClasses: [2, 1]), [0, 2, 3])
        let sub = set.subset(classes: [0, 2])
        XCTAssertEqual(sub.labels, [2, 0, 2, 0])
        XCTAssertEqual(sub.paths!, ["p0", "p1", "p3", "p4"])
        XCTAssertEqual(sub.withPixels { Array($0) }, [0, 1, 10, 11, 30, 31, 40, 41])
        XCTAssertEqual(sub.classNames, ["a", "b", "c"])
        let picked = set.subset(indices: [4, 4])
        XCTAssertEqual(picked.withPixels { Array($0) }, [40, 41, 40, 41])
        XCTAssertEqual(set.subset(indices: [Int]()).count, 0)
    }

    func testInconsistentPartsAreRefused() {
        let t = Tensor(name: "x", shape: [2, 1, 1, 1], floats: [0, 1])
        XCTAssertThrowsError(try ImageSet(images: t, labels: [0], classNames: ["a"]))
        XCTAssertThrowsError(try ImageSet(images: t, labels: [0, 1], classNames: ["a"]))
        XCTAssertThrowsError(try ImageSet(images: t, labels: [0, 0], classNames: ["a"], paths: ["p"]))
        XCTAssertThrowsError(try ImageSet(images: Tensor(name: "x", shape: [2], floats: [0, 1]), labels: [0, 0], classNames: ["a"]))
    }
}
