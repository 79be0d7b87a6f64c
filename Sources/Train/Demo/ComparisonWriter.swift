import Foundation

/// Writes a `ComparisonReport` into its folder: compare.json (every number), compare.md (per setting the main table,
/// the per-task table and the plots) and per setting h-per-task-SETTING.svg and h-vs-changed-SETTING.svg. Each file
/// is written atomically.
public enum ComparisonWriter {
    @discardableResult
    public static func write(_ report: ComparisonReport, to folder: String) throws -> [String] {
        var files = [("compare.json", try ReportWriter.json(report))]
        for s in settings(report) {
            files.append((hPlot(s), hSVG(report, s)))
            files.append((costPlot(s), costSVG(report, s)))
        }
        files.append(("compare.md", markdown(report)))
        return try ReportWriter.write(files, to: folder)
    }

    /// The SVG plots of a report (names inside its folder).
    public static func plots(_ report: ComparisonReport) -> [String] { settings(report).flatMap { [hPlot($0), costPlot($0)] } }

    static func hPlot(_ s: ComparisonOptions.Setting) -> String { "h-per-task-\(s.rawValue).svg" }
    static func costPlot(_ s: ComparisonOptions.Setting) -> String { "h-vs-changed-\(s.rawValue).svg" }

    /// The settings that have rows, in the options' order.
    static func settings(_ r: ComparisonReport) -> [ComparisonOptions.Setting] {
        r.options.settings.filter { s in r.rows.contains { $0.setting == s } }
    }

    static func label(_ s: ComparisonOptions.Setting, _ r: ComparisonReport) -> String {
        switch s {
        case .full: return "full data"
        case .fewShot: return r.shots.map { "\($0) images per class" } ?? "few-shot"
        }
    }

    /// Colour per method id, the same in every plot.
    static func color(_ method: String, _ r: ComparisonReport) -> String {
        var ids: [String] = []
        for row in r.rows where !ids.contains(row.method) { ids.append(row.method) }
        return ReportPlots.palette(ids.firstIndex(of: method) ?? 0)
    }

    static func hSVG(_ r: ComparisonReport, _ s: ComparisonOptions.Setting) -> String {
        let rows = r.rows.filter { $0.setting == s }
        let n = rows.map(\.tasks.count).max() ?? 0
        return ReportPlots.lineChart(
            title: "H after each task, \(label(s, r))", xLabels: (1...max(n, 1)).map { "task \($0)" },
            xTitle: "task (2 more classes forgotten each)", yTitle: "H (%)",
            series: rows.map { row in
                .init(
                    name: row.title, color: color(row.method, r), values: row.tasks.map(\.h),
                    dashed: !row.method.hasPrefix("gslora"))
            })
    }

    static func costSVG(_ r: ComparisonReport, _ s: ComparisonOptions.Setting) -> String {
        ReportPlots.scatterLogX(
            title: "Mean H against parameters changed per task, \(label(s, r))",
            xTitle: "backbone parameters changed per task (mean, log scale)", yTitle: "mean H (%)",
            points: r.rows.filter { $0.setting == s }.compactMap { row in
                row.mean.h.map { .init(name: row.title, color: color(row.method, r), x: row.mean.parametersChanged, y: $0) }
            })
    }

    static func count(_ x: Double) -> String {
        switch x {
        case 1e6...: return String(format: "%.2f M", x / 1e6)
        case 1e3...: return String(format: "%.1f k", x / 1e3)
        default: return String(format: "%.0f", x)
        }
    }

    public static func markdown(_ r: ComparisonReport) -> String {
        var md: [String] = []
        md.append("# Forgetting methods compared on Fashion-MNIST (the paper's main table)")
        md.append("")
        md.append(
            "Data: `\(r.data)`. Seed \(r.seed). Class order π: "
                + r.classOrder.map { r.classNames.indices.contains($0) ? r.classNames[$0] : String($0) }.joined(separator: " · ")
                + ". Accuracy on the test set by **\(r.criterion)** logits after each task; H = 2·Δ·Acc_r / (Δ + Acc_r) with Δ = Acc_f before − Acc_f after."
                + (r.quick ? " **Quick run** (a few hundred images, one epoch): the numbers only show that every method runs." : ""))
        md.append("")
        let p = r.pretrain
        md.append(
            String(
                format: "Every method starts from the same pre-trained backbone `%@` (%d parameters, test accuracy %.2f %%).", p.path, p.parameters, p.accuracy)
        )
        md.append("")
        for s in settings(r) {
            let rows = r.rows.filter { $0.setting == s }
            md.append("## " + (s == .full ? "Full data" : "Few-shot: \(label(s, r))"))
            md.append("")
            md.append(
                "Means over the tasks. *Changed*: backbone parameters whose value a task changes (GS-LoRA: the merged weights of the groups it keeps); "
                    + "*bytes*: the file a task writes (GS-LoRA: its adapter; a baseline: the whole backbone).")
            md.append("")
            md.append("| method | Acc_r | Acc_f | Acc_o | H | trainable | changed / task | groups kept | bytes / task | wall s | CPU s |")
            md.append("|---|---|---|---|---|---|---|---|---|---|---|")
            for row in rows {
                let kept = row.tasks.compactMap(\.groupsKept), groups = row.tasks.compactMap(\.groups)
                let keptText = kept.isEmpty ? "–" : zip(kept, groups).map { "\($0)/\($1)" }.joined(separator: " ")
                md.append(
                    "| \(row.title) | \(ReportWriter.pct(row.mean.accRetain)) | \(ReportWriter.pct(row.mean.accForget)) | \(ReportWriter.pct(row.mean.accOld)) | **\(ReportWriter.pct(row.mean.h))** | "
                        + "\(count(Double(row.trainableParameters))) | \(count(row.mean.parametersChanged)) | \(keptText) | \(count(row.mean.bytes)) | "
                        + String(format: "%.0f | %.0f", row.seconds, row.cpuSeconds) + (row.cached ? " (cached)" : "") + " |")
            }
            md.append("")
            let n = rows.map(\.tasks.count).max() ?? 0
            md.append("After each task, Acc_r / Acc_f / Acc_o / H:")
            md.append("")
            md.append("| method | " + (1...max(n, 1)).map { "task \($0)" }.joined(separator: " | ") + " | recipe |")
            md.append("|---|" + String(repeating: "---|", count: max(n, 1)) + "---|")
            for row in rows {
                let cells = (0..<max(n, 1)).map { i in
                    i < row.tasks.count
                        ? [row.tasks[i].accRetain, row.tasks[i].accForget, row.tasks[i].accOld, row.tasks[i].h].map(ReportWriter.pct).joined(separator: " / ")
                        : ""
                }
                md.append("| \(row.title) | " + cells.joined(separator: " | ") + " | \(row.recipe) |")
            }
            md.append("")
            md.append("![H after each task](\(hPlot(s)))")
            md.append("")
            md.append("![mean H against parameters changed](\(costPlot(s)))")
            md.append("")
        }
        md.append(
            String(
                format: "Time of this invocation: %.0f s wall, %.0f s CPU (rows marked cached ran earlier; their own times are shown).", r.seconds, r.cpuSeconds
            ))
        md.append("")
        return md.joined(separator: "\n")
    }
}
