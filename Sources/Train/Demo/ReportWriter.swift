import Foundation
import GSLoRAFormat
import GSLoRAModel

/// Writes a `DemoReport` as a folder: report.json (every number), report.md (a table per run with the plots
/// embedded) and, per run, accuracy-RUN.svg and group-norms-RUN.svg. Each file is written atomically.
public enum ReportWriter {
    /// The files written, in order (paths inside `folder`).
    @discardableResult
    public static func write(_ report: DemoReport, to folder: String) throws -> [String] {
        var files = [("report.json", try json(report))]
        for run in report.runs {
            files.append((accuracyPlot(run), accuracySVG(report, run)))
            files.append((normsPlot(run), normsSVG(report, run)))
        }
        files.append(("report.md", markdown(report)))
        return try write(files, to: folder)
    }

    /// Text files (name, contents) into `folder`, each atomically; returns their paths.
    static func write(_ files: [(String, String)], to folder: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return try files.map { name, text in
            let path = folder + "/" + name
            try AtomicFile.write(path) { try $0.write(Array(text.utf8)) }
            return path
        }
    }

    /// A report as pretty, key-sorted JSON text with a final newline.
    public static func json<T: Encodable>(_ value: T) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(value), as: UTF8.self) + "\n"
    }

    public static func accuracyPlot(_ run: RunSummary) -> String { "accuracy-\(run.name).svg" }
    public static func normsPlot(_ run: RunSummary) -> String { "group-norms-\(run.name).svg" }

    /// Acc_r / Acc_f / Acc_o over tasks, the pre-trained model's accuracy on the same retained classes, and the
    /// pre-trained model's overall accuracy as a reference line.
    public static func accuracySVG(_ report: DemoReport, _ run: RunSummary) -> String {
        ReportPlots.lineChart(
            title: "\(run.title): test accuracy after each task",
            xLabels: run.tasks.map { "task \($0.task)" }, xTitle: "task (2 more classes forgotten each)", yTitle: "accuracy (%)",
            series: [
                .init(name: "Acc_r (retained)", color: "#1f77b4", values: run.tasks.map(\.accRetain)),
                .init(name: "Acc_f (forgotten now)", color: "#d62728", values: run.tasks.map(\.accForget)),
                .init(name: "Acc_o (forgotten earlier)", color: "#ff7f0e", values: run.tasks.map(\.accOld)),
                .init(name: "pre-trained, same retained", color: "#7f7f7f", values: run.tasks.map(\.accRetainPretrained), dashed: true)
            ],
            references: [.init(name: "pre-trained, all classes", value: report.pretrain.accuracy, color: "#2ca02c")])
    }

    /// Σ‖T‖_F of each block's group after each task: which blocks GS-LoRA chose to change.
    public static func normsSVG(_ report: DemoReport, _ run: RunSummary) -> String {
        let names = run.tasks.first?.groups.map(\.name) ?? []
        let values = names.indices.map { g in run.tasks.map { g < $0.groups.count ? Optional($0.groups[g].norm) : nil } }
        let struck = names.indices.map { g in run.tasks.map { g < $0.groups.count && !$0.groups[g].kept } }
        return ReportPlots.heatMap(
            title: "\(run.title): group norm Σ‖T‖_F per block and task", rowTitle: "LoRA group",
            columnTitle: "task", rowLabels: names, columnLabels: run.tasks.map { "task \($0.task)" },
            values: values, struck: struck)
    }

    static func pct(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "–" }

    static func names(_ classes: [Int], _ r: DemoReport) -> String {
        classes.map { $0 < r.classNames.count ? r.classNames[$0] : String($0) }.joined(separator: ", ")
    }

    /// The markdown report.
    public static func markdown(_ r: DemoReport) -> String {
        var md: [String] = []
        md.append("# Continual forgetting on Fashion-MNIST with GS-LoRA")
        md.append("")
        md.append(
            "Data: `\(r.data)`. Seed \(r.seed). Accuracy on the test set by **\(r.criterion)** logits"
                + (r.criterion == "cosine" ? " (argmax of s·cos, no margin)" : " (true class's cosine minus the margin)") + "."
                + (r.quick ? " **Quick run** (a few hundred images, one epoch): the numbers only show that every stage runs." : ""))
        md.append("")
        md.append(
            "Class order π (seed \(r.seed)): "
                + r.classOrder.map { "\($0) \(r.classNames.indices.contains($0) ? r.classNames[$0] : "")" }.joined(separator: " · ") + ".")
        md.append("")
        let p = r.pretrain, o = p.options
        md.append("## Pre-trained backbone")
        md.append("")
        md.append(
            "`\(p.path)` (\(p.cached ? "from the cache: settings matched, training skipped" : String(format: "trained in %.0f s", p.seconds))): "
                + "face-style ViT, \(o.imageSize)×\(o.imageSize)×\(o.channels), patch \(o.patchSize), width \(o.width), depth \(o.depth), "
                + "\(o.heads) heads, MLP \(o.mlpWidth), CosFace s \(SVGDocument.num(o.s)) m \(SVGDocument.num(o.m)); \(p.parameters) parameters; "
                + "\(o.epochs) epoch(s) over \(p.trainImages) images, batch \(o.batchSize), lr \(o.lr).")
        md.append("")
        md.append(String(format: "Test accuracy **%.2f %%** (margin criterion %.2f %%).", p.accuracy, p.accuracyMargin))
        md.append("")
        if !r.checks.isEmpty {
            md.append("## Checks")
            md.append("")
            md.append("| check | required | measured | |")
            md.append("|---|---|---|---|")
            for c in r.checks { md.append("| \(c.name) | \(c.requirement) | \(c.measured) | \(c.passed ? "pass" : "**FAIL**") |") }
            md.append("")
        }
        for run in r.runs {
            let t = run.options
            md.append("## \(run.title)")
            md.append("")
            let data = t.shots.map { "\($0) images per class" } ?? "data ratio \(t.dataRatio)"
            md.append(
                "\(t.tasks) tasks × \(t.classesPerTask) classes; \(data); \(t.epochs.map(String.init).joined(separator: "/")) epochs per task, batch \(t.batchSize), "
                    + "lr \(t.lr) → \(t.minLR) cosine, rank \(t.rank), \(t.grouping) groups, BND \(SVGDocument.num(t.bound)), "
                    + "β \(t.beta.map { SVGDocument.num($0) }.joined(separator: "/")), α \(t.alpha)"
                    + (t.plus ? ", prototype w_f \(t.prototypeForget.map { String($0) }.joined(separator: "/")) M \(SVGDocument.num(t.prototypeMargin))" : "")
                    + (t.pruneThreshold.map { ", groups with norm < \($0) pruned" } ?? "") + ". Files in `\(run.folder)`.")
            md.append("")
            md.append("| task | forgotten now | Acc_r | Acc_r pre-trained | Acc_f (before) | Acc_o | H | trainable | groups kept | adapter bytes | wall time |")
            md.append("|---|---|---|---|---|---|---|---|---|---|---|")
            for row in run.tasks {
                md.append(
                    "| \(row.task) | \(names(row.forget, r)) | \(pct(row.accRetain)) | \(pct(row.accRetainPretrained)) | "
                        + "\(pct(row.accForget)) (\(pct(row.accForgetBefore))) | \(pct(row.accOld)) | \(pct(row.h)) | "
                        + String(format: "%.2f %%", row.trainableRatio) + " | \(row.groupsKept)/\(row.groups.count) | \(row.adapterBytes) | "
                        + String(format: "%.1f s", row.seconds) + " |")
            }
            md.append("")
            md.append("![accuracy over tasks](\(accuracyPlot(run)))")
            md.append("")
            md.append("![group norms per block and task](\(normsPlot(run)))")
            md.append("")
            let m = run.merged
            md.append(
                "Merged chain `\(m.path)` (\(m.bytes) bytes, fingerprint `\(m.fingerprint)`), evaluated from the file: "
                    + "Acc_r \(pct(m.accRetain)), Acc_f \(pct(m.accForget)), Acc_o \(pct(m.accOld)).")
            md.append("")
            if !run.exports.isEmpty {
                md.append(
                    "Exported: " + run.exports.map { "`\($0.path)` (\($0.format), \($0.tensors) tensors, \($0.bytes) bytes)" }.joined(separator: ", ") + ".")
                md.append("")
            }
        }
        md.append("## Timings")
        md.append("")
        md.append("Wall time depends on what else the machine runs; CPU time (all threads) is the work itself.")
        md.append("")
        md.append("| stage | wall s | CPU s |")
        md.append("|---|---|---|")
        for s in r.stages { md.append("| \(s.stage) | " + String(format: "%.1f | %.1f", s.seconds, s.cpuSeconds) + " |") }
        md.append("| **total** | " + String(format: "%.1f | %.1f", r.seconds, r.cpuSeconds) + " |")
        md.append("")
        return md.joined(separator: "\n")
    }
}
