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

    /// `--method`: an unknown method lists the known ones; a flag of another method is refused naming its methods;
    /// both are usage errors (exit 2) found before anything is loaded.
    func testMethodUsageErrors() throws {
        let out = NSTemporaryDirectory() + "/method-test"
        let unknown = try CommandRunner.run("gslora-train", ["forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out, "--method", "sgd"])
        XCTAssertEqual(unknown.code, 2, unknown.err)
        for m in ["gslora++", "retrain", "ewc", "der++", "scrub-s", "lirf"] { XCTAssertTrue(unknown.err.contains(m), unknown.err) }
        let foreign = try CommandRunner.run("gslora-train", ["forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out,
                                                             "--method", "ewc", "--smoothing", "0.1"])
        XCTAssertEqual(foreign.code, 2, foreign.err)
        XCTAssertTrue(foreign.err.contains("--smoothing belongs to scrub, scrub-s"), foreign.err)
        let gsloraFlag = try CommandRunner.run("gslora-train", ["forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out,
                                                                "--method", "der", "--rank", "4"])
        XCTAssertEqual(gsloraFlag.code, 2, gsloraFlag.err)
        XCTAssertTrue(gsloraFlag.err.contains("--rank belongs to gslora, gslora++"), gsloraFlag.err)
        // A flag of the chosen method passes the check (the run then fails on the missing backbone, exit 1).
        let own = try CommandRunner.run("gslora-train", ["forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out,
                                                         "--method", "scrub-s", "--smoothing", "0.1"])
        XCTAssertEqual(own.code, 1, own.err)
    }
}
