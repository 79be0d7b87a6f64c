import Foundation
import GSLoRADemo
import GSLoRATraining
import TestSupport
import XCTest

/// `gslora-demo --compare --quick` in-process, through `MethodComparison` as the command runs it: every method of
/// the main table in both settings, the report files, the GS-LoRA row against the demo's own run, and the cache.
final class MethodComparisonTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("compare-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func testQuickComparisonRunsEveryMethodAndMatchesTheDemo() throws {
        var o = DemoOptions(seed: 1337, quick: true)
        o.output = dir + "/out"
        o.data = try DemoTests.dataFolder(in: dir)
        let options = ComparisonOptions(quick: true)
        let comparison = MethodComparison(demo: ForgettingDemo(options: o), options: options)
        let report = try comparison.run()

        // Every method of the table in both settings, in order, each with 4 tasks and its costs.
        let expected = ComparisonOptions.Setting.allCases.flatMap { s in options.methods(s).map { "\(s.rawValue)/\($0.id)" } }
        XCTAssertEqual(report.rows.map { "\($0.setting.rawValue)/\($0.method)" }, expected)
        XCTAssertEqual(report.rows.count, 11 * 2 + 2 * 2 + 2)
        for row in report.rows {
            XCTAssertEqual(row.tasks.count, 4, row.method)
            XCTAssertGreaterThan(row.trainableParameters, 0, row.method)
            XCTAssertFalse(row.cached)
            for t in row.tasks {
                XCTAssertGreaterThan(t.bytes, 0, "\(row.method) task \(t.task)")
                XCTAssertGreaterThan(t.parametersChanged, 0, "\(row.method) task \(t.task)")
                XCTAssertLessThanOrEqual(t.parametersChanged, row.backboneParameters, row.method)
            }
            if row.method.hasPrefix("gslora") {
                XCTAssertTrue(row.tasks.allSatisfy { $0.groups == o.pretrain.depth }, row.method)
                XCTAssertLessThan(row.trainableParameters, row.backboneParameters)
            } else {
                XCTAssertNil(row.tasks[0].groups)
                XCTAssertGreaterThan(row.tasks.map(\.bytes).min()!, row.backboneParameters * 4, "a baseline writes the whole float32 backbone")
            }
        }
        for name in ["compare.md", "compare.json"] + ComparisonWriter.plots(report) {
            XCTAssertTrue(FileManager.default.fileExists(atPath: comparison.folder + "/" + name), name)
        }
        XCTAssertEqual(ComparisonWriter.plots(report).count, 4)
        let md = try String(contentsOfFile: comparison.folder + "/compare.md", encoding: .utf8)
        for title in ["SCRUB-S", "DER++", "GS-LoRA++", "GS-LoRA, α ×100", "## Full data", "## Few-shot: 4 images per class"] {
            XCTAssertTrue(md.contains(title), title)
        }

        // The GS-LoRA rows are the demo's runs: same recipes, same code path, same numbers.
        o.plus = true
        let demo = try ForgettingDemo(options: o).run()
        XCTAssertTrue(demo.pretrain.cached, "the comparison and the demo share the pre-trained backbone")
        for (run, setting, method) in [(demo.runs[0], ComparisonOptions.Setting.full, "gslora"), (demo.runs[1], .fewShot, "gslora++")] {
            let row = try XCTUnwrap(report.rows.first { $0.setting == setting && $0.method == method })
            XCTAssertEqual(row.tasks.map(\.accRetain), run.tasks.map(\.accRetain), method)
            XCTAssertEqual(row.tasks.map(\.accForget), run.tasks.map(\.accForget), method)
            XCTAssertEqual(row.tasks.map(\.accOld), run.tasks.map(\.accOld), method)
            XCTAssertEqual(row.tasks.map(\.h), run.tasks.map(\.h), method)
            XCTAssertEqual(row.tasks.map(\.groupsKept), run.tasks.map(\.groupsKept), method)
        }

        // A rerun takes every row from the cache, with the same numbers.
        let again = try MethodComparison(demo: ForgettingDemo(options: o), options: options).run()
        XCTAssertTrue(again.rows.allSatisfy(\.cached))
        XCTAssertEqual(again.rows.map(\.mean.h), report.rows.map(\.mean.h))

        // A cached row made with other settings is refused (naming the `force` setting), and `force` runs it again.
        let path = comparison.runFolder(.full, .baseline(.ewc)) + "/result.json"
        var cached = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var key = try XCTUnwrap(cached["key"] as? [String: Any])
        key["backbone"] = "gslr1.1-sha256:0000"
        cached["key"] = key
        try JSONSerialization.data(withJSONObject: cached).write(to: URL(fileURLWithPath: path))
        var o2 = options
        o2.settings = [.full]
        XCTAssertThrowsError(try MethodComparison(demo: ForgettingDemo(options: o), options: o2).run()) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("`force`"), "\($0)")
        }
    }

    func testInterruptedComparisonContinuesFromTheFinishedRows() throws {
        var o = DemoOptions(seed: 7, quick: true)
        o.output = dir + "/out"
        o.data = try DemoTests.dataFolder(in: dir)
        var options = ComparisonOptions(quick: true)
        options.settings = [.fewShot]
        let demo = ForgettingDemo(options: o)
        // Stop during the third row (the first step of its training after two rows finished).
        var rowsStarted = 0
        demo.onEvent = { if case let .stage(s) = $0, s.hasPrefix("compare ") { rowsStarted += 1 } }
        demo.shouldStop = { rowsStarted >= 3 }
        XCTAssertThrowsError(try MethodComparison(demo: demo, options: options).run()) { error in
            guard case .interrupted? = error as? TrainingError else { return XCTFail("\(error)") }
        }
        let resumed = try MethodComparison(demo: ForgettingDemo(options: o), options: options).run()
        XCTAssertEqual(resumed.rows.map(\.cached), [true, true] + Array(repeating: false, count: resumed.rows.count - 2))
    }
}
