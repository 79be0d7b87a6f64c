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
}
