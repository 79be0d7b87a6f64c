import Foundation
import GSLoRAData
import TestSupport
import XCTest

/// gslora-train's argument parsing, output policy and console as a user meets them.
final class TrainCommandTests: XCTestCase {
    /// The help says a negative --ema-start turns the EMA off, so `--ema-start -1` must parse as a value, not as an
    /// option: the run then fails on the missing backbone (exit 1), not on usage (exit 2).
    func testNegativeEMAStartParsesAsAValue() throws {
        let missing = "/nonexistent/backbone.gslr"
        let r = try CommandRunner.run(
            "gslora-train",
            [
                "forget", missing, "--data", "fashion-mnist", "--plus",
                "--ema-start", "-1", "-o", NSTemporaryDirectory() + "/ema-start-test"
            ])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains(missing), r.err)
        XCTAssertFalse(r.err.contains("Missing value"), r.err)
    }

    /// TinyRun's backbone and data as files, and the arguments of a one-task, two-epoch forget run on them.
    func tinyForget(_ dir: String) throws -> (backbone: String, args: [String]) {
        let backbone = try TinyRun.backboneFile(in: dir)
        for (name, set) in [("train", try TinyRun.images(perClass: 6, seed: 11)), ("test", try TinyRun.images(perClass: 3, seed: 12))] {
            try NPY.write(set.images, to: "\(dir)/\(name)-x.npy")
            try set.labels.map(Float.init).withUnsafeBufferPointer { try NPY.write($0, shape: [set.labels.count], to: "\(dir)/\(name)-y.npy") }
        }
        return (
            backbone,
            [
                "forget", backbone, "--data", dir + "/train-x.npy", "--labels", dir + "/train-y.npy", "--test-data", dir + "/test-x.npy",
                "--test-labels", dir + "/test-y.npy", "--forget", "0", "--epochs", "2", "--batch-size", "4", "--data-ratio", "1",
                "--rank", "2", "--eval-batch", "16"
            ]
        )
    }

    /// Off a terminal (stderr to a file, as under nohup) the run is not silent: its messages and one plain progress
    /// line per epoch are there, with no terminal control codes.
    func testRunOffATerminalLogsEveryEpoch() throws {
        let dir = try temporaryDirectory("cmd-log")
        let (_, args) = try tinyForget(dir)
        let r = try CommandRunner.runWithStderrInFile("gslora-train", args + ["-o", dir + "/run"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("task 1/1: forget class0"), r.err)
        XCTAssertTrue(r.err.contains("task 1 before:") && r.err.contains("task 1 after:"), r.err)
        // A line as each epoch ends (a slow machine may add one every 30 s); the last is the task's last step.
        let step = try NSRegularExpression(pattern: "^task 1/1  epoch (\\d+)/2  step (\\d+)/(\\d+) ")
        let lines = r.err.split(separator: "\n").map(String.init).compactMap { line -> [String]? in
            guard let m = step.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else { return nil }
            return (1...3).map { String(line[Range(m.range(at: $0), in: line)!]) }
        }
        XCTAssertEqual(Set(lines.map { $0[0] }), ["1", "2"], "a plain progress line in every epoch: \(r.err)")
        XCTAssertEqual(lines.last?[1], lines.last?[2], "the last line is the last step: \(r.err)")
        XCTAssertFalse(r.err.contains("\u{1B}") || r.err.contains("\r"), "no terminal control codes in a file")
    }

    /// No run replaces a finished run's task file or an interrupted run's state without --force, and none replaces
    /// the backbone even with it; an output folder that cannot be written is refused before any training.
    func testForgetOverwritePolicy() throws {
        let dir = try temporaryDirectory("cmd-policy")
        let (backbone, args) = try tinyForget(dir)
        let out = dir + "/run"
        var r = try CommandRunner.run("gslora-train", args + ["-o", out])
        XCTAssertEqual(r.code, 0, r.err)
        let task = try Data(contentsOf: URL(fileURLWithPath: out + "/task-1.gslr"))

        r = try CommandRunner.run("gslora-train", args + ["-o", out, "--seed", "2"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains(out + "/task-1.gslr") && r.err.contains("--force"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/task-1.gslr")), task, "untouched without --force")

        // An interrupted run's state: --resume or --force, named.
        try FileManager.default.copyItem(atPath: out + "/task-1.gslr", toPath: out + "/state.gslr")
        r = try CommandRunner.run("gslora-train", args + ["-o", out, "--seed", "2"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("--resume") && r.err.contains("--force") && r.err.contains("state.gslr"), r.err)
        r = try CommandRunner.run("gslora-train", args + ["-o", out, "--resume", "--force"])
        XCTAssertEqual(r.code, 2, r.err)
        r = try CommandRunner.run("gslora-train", args + ["-o", out, "--seed", "2", "--force"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/task-1.gslr")), task, "replaced with --force")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/state.gslr"), "a finished run removes its state")

        // The backbone sitting in the output folder as task-1.gslr is an input: never replaced.
        let other = dir + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: backbone, toPath: other + "/task-1.gslr")
        let before = try Data(contentsOf: URL(fileURLWithPath: other + "/task-1.gslr"))
        var moved = args
        moved[1] = other + "/task-1.gslr"
        r = try CommandRunner.run("gslora-train", moved + ["-o", other, "--force"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("input"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: other + "/task-1.gslr")), before)

        // A folder under a file cannot be made: refused up front (no "task 1/1" line: nothing trained).
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/plain-file"))
        r = try CommandRunner.run("gslora-train", args + ["-o", dir + "/plain-file/run"])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains("not a folder") && !r.err.contains("task 1/1"), r.err)
    }

    func testPretrainOverwritePolicy() throws {
        let dir = try temporaryDirectory("cmd-pretrain")
        let (backbone, args) = try tinyForget(dir)
        let before = try Data(contentsOf: URL(fileURLWithPath: backbone))
        let r = try CommandRunner.run(
            "gslora-train",
            [
                "pretrain", "--data", args[3], "--labels", args[5], "--image-size", "8", "--patch-size", "4",
                "--channels", "1", "--width", "16", "--depth", "1", "--heads", "2", "--mlp-width", "32",
                "--epochs", "1", "-o", backbone
            ])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("exists") && r.err.contains("--force"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: backbone)), before)
    }

    /// gslora-demo takes -o like the other commands and does not run into an earlier run's results without --force.
    func testDemoOutputPolicy() throws {
        let dir = try temporaryDirectory("cmd-demo")
        let report = dir + "/report.json"
        try Data("{}".utf8).write(to: URL(fileURLWithPath: report))
        var r = try CommandRunner.run("gslora-demo", ["--quick", "-o", dir, "--data", dir + "/no-such-data"])
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssertTrue(r.err.contains("earlier run") && r.err.contains("--force"), r.err)
        XCTAssertEqual(try String(contentsOfFile: report, encoding: .utf8), "{}")
        // With --force it goes on (and stops at the missing data).
        r = try CommandRunner.run("gslora-demo", ["--quick", "-o", dir, "--data", dir + "/no-such-data", "--force"])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains("no-such-data"), r.err)
    }

    /// `--method`: an unknown method lists the known ones; a flag of another method is refused naming its methods;
    /// both are usage errors (exit 2) found before anything is loaded.
    func testMethodUsageErrors() throws {
        let out = NSTemporaryDirectory() + "/method-test"
        let unknown = try CommandRunner.run("gslora-train", ["forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out, "--method", "sgd"])
        XCTAssertEqual(unknown.code, 2, unknown.err)
        for m in ["gslora++", "retrain", "ewc", "der++", "scrub-s", "lirf"] { XCTAssertTrue(unknown.err.contains(m), unknown.err) }
        let foreign = try CommandRunner.run(
            "gslora-train",
            [
                "forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out,
                "--method", "ewc", "--smoothing", "0.1"
            ])
        XCTAssertEqual(foreign.code, 2, foreign.err)
        XCTAssertTrue(foreign.err.contains("--smoothing belongs to scrub, scrub-s"), foreign.err)
        let gsloraFlag = try CommandRunner.run(
            "gslora-train",
            [
                "forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out,
                "--method", "der", "--rank", "4"
            ])
        XCTAssertEqual(gsloraFlag.code, 2, gsloraFlag.err)
        XCTAssertTrue(gsloraFlag.err.contains("--rank belongs to gslora, gslora++"), gsloraFlag.err)
        // A flag of the chosen method passes the check (the run then fails on the missing backbone, exit 1).
        let own = try CommandRunner.run(
            "gslora-train",
            [
                "forget", "/nonexistent.gslr", "--data", "fashion-mnist", "-o", out,
                "--method", "scrub-s", "--smoothing", "0.1"
            ])
        XCTAssertEqual(own.code, 1, own.err)
    }
}
