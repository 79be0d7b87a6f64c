import Foundation
import GSLoRADemo
import GSLoRATraining
import XCTest

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The report writer and plots on synthetic numbers: well-formed SVG with the expected series, escaping, the
/// markdown table, the JSON round trip, and the acceptance checks.
final class ReportTests: XCTestCase {
    static func row(_ t: Int, r: Double?, f: Double?, o: Double?, ref: Double?, norms: [Double], pruned: Set<Int> = []) -> TaskRow {
        TaskRow(
            task: t, forget: [2 * t - 2, 2 * t - 1], retain: Array((2 * t)..<10), old: Array(0..<(2 * t - 2)), accRetain: r, accForget: f,
            accOld: o, h: r.map { 2 * 80 * $0 / (80 + $0) }, accForgetBefore: 80, accRetainPretrained: ref, trainableParameters: 30_720,
            backboneParameters: 310_000,
            groups: norms.enumerated().map { GroupRow(name: "blocks.\($0.offset)", norm: $0.element, kept: !pruned.contains($0.offset)) },
            adapter: "run/task-\(t).gslr", adapterBytes: 123_456, trainImages: 3000, steps: 400, seconds: 12.5)
    }

    static func report(retainDrop: Double = 0.5, forget: Double = 0.4, few: Bool = false, seconds: Double = 300) -> DemoReport {
        var o = TrainOptions()
        o.tasks = 4
        o.classesPerTask = 2
        if few { o.shots = 4 }
        let tasks = (1...4).map { t in
            row(t, r: 90 - retainDrop, f: forget, o: t == 1 ? nil : 0.1, ref: 90, norms: [0.5, 0.0005, 1.5, 2.0, 0.25, 3.0], pruned: [1])
        }
        let merged = MergedSummary(path: "run/merged.gslr", fingerprint: "fp", bytes: 1_000_000, accRetain: 91, accForget: 0, accOld: 0)
        let run = RunSummary(
            name: "gslora", title: "GS-LoRA <test> & \"quotes\"", options: o, folder: "run", tasks: tasks, merged: merged,
            exports: [ExportSummary(path: "run/final.pth", format: "pth", tensors: 80, bytes: 1_200_000)], seconds: 100)
        let pre = PretrainSummary(
            path: "pretrained.gslr", fingerprint: "fp0", cached: false, options: PretrainOptions(), parameters: 310_000,
            trainImages: 60_000, accuracy: 88.5, accuracyMargin: 80.1, perClass: Array(repeating: 88.5, count: 10),
            epochs: [], seconds: 150)
        var r = DemoReport(
            data: "/data", classNames: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
            seed: 7, classOrder: Array((0..<10).reversed()), criterion: "cosine", quick: false, pretrain: pre, runs: [run],
            stages: [StageTiming(stage: "pre-train", seconds: 150)], seconds: seconds, checks: [])
        r.checks = DemoChecks.evaluate(r)
        return r
    }

    static func xml(_ text: String) throws -> XMLDocument { try XMLDocument(data: Data(text.utf8)) }

    static func ids(_ doc: XMLDocument) throws -> [String] {
        // Attribute nodes by XPath: FoundationXML's attribute(forName:) misses them under the SVG default namespace.
        try doc.nodes(forXPath: "//@id").compactMap(\.stringValue)
    }

    func testLineChartIsWellFormedWithOneGroupPerSeries() throws {
        let r = Self.report()
        let doc = try Self.xml(ReportWriter.accuracySVG(r, r.runs[0]))
        XCTAssertEqual(doc.rootElement()?.name, "svg")
        let ids = try Self.ids(doc)
        for id in [
            "series-acc_r-retained", "series-acc_f-forgotten-now", "series-acc_o-forgotten-earlier", "series-pre-trained-same-retained",
            "reference-pre-trained-all-classes"
        ] {
            XCTAssertTrue(ids.contains(id), "missing \(id) in \(ids)")
        }
        // Acc_o has no value for task 1, so its line joins tasks 2–4 only: 3 markers (+1 in the legend).
        let accO = try doc.nodes(forXPath: "//*[@id='series-acc_o-forgotten-earlier']/*[local-name()='circle']")
        XCTAssertEqual(accO.count, 4)
        let accR = try doc.nodes(forXPath: "//*[@id='series-acc_r-retained']/*[local-name()='circle']")
        XCTAssertEqual(accR.count, 5)
        // The title's markup characters arrive as text, not as markup.
        let title = try doc.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue).first { $0.contains("GS-LoRA") }
        XCTAssertEqual(title, "GS-LoRA <test> & \"quotes\": test accuracy after each task")
    }

    func testHeatMapHasACellPerBlockAndTaskAndAColourScale() throws {
        let r = Self.report()
        let doc = try Self.xml(ReportWriter.normsSVG(r, r.runs[0]))
        let cells = try doc.nodes(forXPath: "//*[@id='cells']/*[local-name()='rect']")
        XCTAssertEqual(cells.count, 6 * 4)
        let texts = try doc.nodes(forXPath: "//*[@id='cells']/*[local-name()='text']").compactMap(\.stringValue)
        XCTAssertEqual(texts.filter { $0.hasSuffix("pruned") }.count, 4, "block 1 is pruned in every task")
        XCTAssertTrue(texts.contains("blocks.5"))
        XCTAssertTrue(texts.contains("3"), "the largest norm is printed in its cell")
        XCTAssertTrue(try Self.ids(doc).contains("colour-scale"))
        // The largest norm gets the darkest colour, a zero-norm cell the lightest.
        let fills = try doc.nodes(forXPath: "//*[@id='cells']/*[local-name()='rect']/@fill").compactMap(\.stringValue)
        XCTAssertEqual(fills.count, cells.count)
        XCTAssertTrue(fills.contains("#08306b"))
    }

    func testWriterWritesEveryFileAndTheJSONRoundTrips() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Self.report()
        let files = try ReportWriter.write(r, to: dir)
        XCTAssertEqual(
            Set(files.map { ($0 as NSString).lastPathComponent }),
            ["report.json", "report.md", "accuracy-gslora.svg", "group-norms-gslora.svg"])
        let back = try JSONDecoder().decode(DemoReport.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/report.json")))
        XCTAssertEqual(back.runs[0].tasks.map(\.accRetain), r.runs[0].tasks.map(\.accRetain))
        XCTAssertEqual(back.runs[0].tasks[0].groupsKept, 5)
        XCTAssertEqual(back.runs[0].tasks[0].trainableRatio, 100 * 30_720 / 310_000.0, accuracy: 1e-12)
        let md = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        let rows = md.split(separator: "\n").filter { $0.hasPrefix("| 1 |") || $0.hasPrefix("| 2 |") || $0.hasPrefix("| 3 |") || $0.hasPrefix("| 4 |") }
        XCTAssertEqual(rows.count, 4)
        XCTAssertTrue(rows[0].contains("T-shirt/top, Trouser"), String(rows[0]))
        XCTAssertTrue(rows[0].contains("| 89.50 | 90.00 |"), String(rows[0]))
        XCTAssertTrue(rows[0].contains("5/6"), String(rows[0]))
        XCTAssertTrue(md.contains("![accuracy over tasks](accuracy-gslora.svg)"))
        XCTAssertTrue(md.contains("![group norms per block and task](group-norms-gslora.svg)"))
    }

    func testChecksFollowTheIssueThresholds() {
        XCTAssertTrue(Self.report().checks.allSatisfy(\.passed), "\(Self.report().checks.filter { !$0.passed })")
        let drop = Self.report(retainDrop: 1.5).checks.filter { !$0.passed }
        XCTAssertEqual(drop.count, 4)
        XCTAssertTrue(drop.allSatisfy { $0.name.hasSuffix("retained classes") })
        // Few-shot runs may lose up to 6 points.
        XCTAssertTrue(Self.report(retainDrop: 5.5, few: true).checks.allSatisfy(\.passed))
        XCTAssertEqual(Self.report(forget: 2.5).checks.filter { !$0.passed }.count, 4)
        XCTAssertEqual(Self.report(seconds: 601).checks.filter { !$0.passed }.map(\.name), ["whole job"])
    }
}
