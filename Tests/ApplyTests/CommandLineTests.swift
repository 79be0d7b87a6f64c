import Foundation
import TestSupport
import XCTest

/// What every command's command line shares: no arguments is a usage error with a short usage, and an unknown option
/// is reported as unknown even when required arguments are missing too.
final class CommandLineTests: XCTestCase {
    /// gslora-demo is not here: every one of its arguments has a default, and `gslora-demo` alone is the main job.
    static let commands = ["gslora-convert", "gslora-inspect", "gslora-merge", "gslora-prune", "gslora-infer", "gslora-eval", "gslora-train"]

    func testNoArgumentsIsAShortUsage() throws {
        for c in Self.commands {
            let r = try CommandRunner.run(c, [])
            XCTAssertEqual(r.code, 2, "\(c): \(r.err)")
            XCTAssertTrue(r.err.contains("Usage: \(c)") && r.err.contains("--help"), "\(c): \(r.err)")
            XCTAssertLessThan(r.err.split(separator: "\n").count, 12, "\(c): a short usage, not the whole help: \(r.err)")
            XCTAssertEqual(r.out, "", c)
        }
        print("checked \(Self.commands.joined(separator: ", "))")
    }

    func testUnknownOptionIsReportedAsUnknown() throws {
        let cases: [(String, [String])] = [
            ("gslora-convert", ["model.pth", "--frobnicate"]), ("gslora-convert", ["--frobnicate"]),
            ("gslora-inspect", ["--frobnicate", "model.gslr"]),
            ("gslora-merge", ["base.gslr", "a1.gslr", "--frobnicate"]), ("gslora-merge", ["--frobnicate"]),
            ("gslora-prune", ["a1.gslr", "--frobnicate"]), ("gslora-prune", ["--frobnicate"]),
            ("gslora-infer", ["model.gslr", "--frobnicate"]),
            ("gslora-eval", ["model.gslr", "--frobnicate"]),
            ("gslora-train", ["--frobnicate"]), ("gslora-train", ["forget", "model.gslr", "--frobnicate"]),
            ("gslora-train", ["pretrain", "--frobnicate"]),
            ("gslora-demo", ["--frobnicate"])
        ]
        for (c, args) in cases {
            let r = try CommandRunner.run(c, args)
            XCTAssertEqual(r.code, 2, "\(c) \(args): \(r.err)")
            XCTAssertTrue(r.err.lowercased().contains("unknown option '--frobnicate'"), "\(c) \(args): \(r.err)")
        }
    }

    /// A usage error found after parsing (by run(), or by validate() for the number lists of `forget`) exits 2 with
    /// its message and the command's usage line, as one found by the parser does, and all of them start "error:";
    /// a failure of the work still exits 1.
    func testUsageErrorsFoundByRunExit2() throws {
        let out = NSTemporaryDirectory() + "/late-usage-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let cases: [(String, [String], String, String)] = [
            ("gslora-bench", ["sizes", "--models", "foo", "--no-pytorch"], "--models: unknown value 'foo'", "gslora-bench sizes"),
            ("gslora-bench", ["sizes", "--steps", "0", "--no-pytorch"], "--steps must be positive", "gslora-bench sizes"),
            ("gslora-bench", ["case", "--model", "p8s8", "--steps", "0"], "--steps must be positive", "gslora-bench case"),
            ("gslora-bench", ["train", "--precision", "fp8"], "unknown precision 'fp8'", "gslora-bench train"),
            ("gslora-bench", ["forward", "--batch", "0"], "batch, iterations must be positive", "gslora-bench forward"),
            ("gslora-merge", ["/nonexistent.gslr"], "give at least one adapter after the base", "gslora-merge"),
            ("gslora-train", ["forget", "/nonexistent.gslr", "-o", out], "Missing expected argument '--data <data>'", "gslora-train forget"),
            (
                "gslora-train", ["forget", "/nonexistent.gslr", "--data", "fashion-mnist", "--epochs", "2.5", "-o", out],
                "--epochs: '2.5' is not a whole number", "gslora-train forget"
            ),
            (
                "gslora-train", ["forget", "/nonexistent.gslr", "--data", "fashion-mnist", "--beta", "0.2,x", "-o", out],
                "--beta: 'x' is not a non-negative number", "gslora-train forget"
            )
        ]
        for (c, args, message, usage) in cases {
            let r = try CommandRunner.run(c, args)
            XCTAssertEqual(r.code, 2, "\(c) \(args): \(r.err)")
            XCTAssertTrue(r.err.contains("error: \(message)"), "\(c) \(args): \(r.err)")
            XCTAssertFalse(r.err.contains("Error:"), "one spelling, whichever step found it: \(r.err)")
            XCTAssertTrue(r.err.contains("Usage: \(usage)") && r.err.contains("See '\(usage) --help'"), "\(c) \(args): \(r.err)")
            XCTAssertFalse(r.err.contains("/nonexistent.gslr"), "a usage error comes before the inputs are opened: \(r.err)")
        }
        // Not usage: a file that is not what --render reads is bad input (exit 1, no usage line).
        let notJSON = NSTemporaryDirectory() + "/not-sizes-\(getpid()).json"
        try Data("[1]".utf8).write(to: URL(fileURLWithPath: notJSON))
        defer { try? FileManager.default.removeItem(atPath: notJSON) }
        let r = try CommandRunner.run("gslora-bench", ["sizes", "--render", notJSON])
        XCTAssertEqual(r.code, 1, r.err)
        XCTAssertTrue(r.err.contains("not a saved `sizes --json` output") && !r.err.contains("Usage:"), r.err)
        print("checked \(cases.count) late usage errors and one failure")
    }
}
