import TestSupport
import XCTest

/// gslora-train's argument parsing as a user meets it.
final class TrainCommandTests: XCTestCase {
    /// The help says a negative --ema-start turns the EMA off, so `--ema-start -1` must parse as a value, not as an
    /// option: the run then fails on the missing backbone (exit 1), not on usage (exit 2).
    func testNegativeEMAStartParsesAsAValue() throws {
        let missing = "/nonexistent/backbone.gslr"
        let r = try CommandRunner.run("gslora-train", ["forget", missing, "--data", "fashion-mnist", "--plus",
                                                       "--ema-start", "-1", "-o", NSTemporaryDirectory() + "/ema-start-test"])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains(missing), r.err)
        XCTAssertFalse(r.err.contains("Missing value"), r.err)
    }
}
