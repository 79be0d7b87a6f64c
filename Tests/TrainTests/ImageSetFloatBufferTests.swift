import GSLoRAData
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining
import XCTest

final class ImageSetFloatBufferTests: XCTestCase {
    func testGatherIntoFloatBufferGrowsAndKeepsLabels() throws {
        let values = (0..<3).flatMap { [Float(10 * $0), Float(10 * $0 + 1)] }
        let set = try ImageSet(
            images: Tensor(name: "x", shape: [3, 1, 1, 2], floats: values), labels: [2, 0, 1], classNames: ["a", "b", "c"],
            paths: nil)
        let buf = FloatBuffer(count: 0)
        var labels: [Int] = []
        set.gather([2], into: buf, labels: &labels)
        XCTAssertEqual(buf.array, [20, 21])
        XCTAssertEqual(labels, [1])
        set.gather([1, 0], into: buf, labels: &labels)
        XCTAssertEqual(buf.array, [10, 11, 0, 1])
        XCTAssertEqual(labels, [0, 2])
    }
}
