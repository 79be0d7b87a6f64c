import Foundation

/// The report's two plots as SVG text: a line chart of accuracies over tasks and a heat map of group norms.
public enum ReportPlots {
    /// One line of a chart; nil values leave a gap.
    public struct Series: Sendable {
        public var name: String
        public var color: String
        public var values: [Double?]
        public var dashed: Bool

        public init(name: String, color: String, values: [Double?], dashed: Bool = false) {
            self.name = name
            self.color = color
            self.values = values
            self.dashed = dashed
        }
    }

    /// A horizontal reference line across the whole chart.
    public struct Reference: Sendable {
        public var name: String
        public var value: Double
        public var color: String

        public init(name: String, value: Double, color: String) {
            self.name = name
            self.value = value
            self.color = color
        }
    }

    /// Accuracy (0–100 %) against task, one polyline with markers per series, a dotted line per reference,
    /// gridlines every 10 %, and a legend to the right. Each series is a `<g id="series-…">` group.
    public static func lineChart(
        title: String, xLabels: [String], xTitle: String, yTitle: String, series: [Series],
        references: [Reference] = []
    ) -> String {
        let left = 62.0, top = 44.0, plotW = 440.0, plotH = 300.0, legendW = 250.0
        var svg = SVGDocument(width: Int(left + plotW + 20 + legendW), height: Int(top + plotH + 62))
        svg.text(title, left, 24, size: 15, bold: true)
        func y(_ v: Double) -> Double { top + plotH * (1 - min(max(v, 0), 100) / 100) }
        let n = max(xLabels.count, 1)
        func x(_ i: Int) -> Double { n == 1 ? left + plotW / 2 : left + 30 + (plotW - 60) * Double(i) / Double(n - 1) }

        svg.begin([("id", "axes")])
        for v in stride(from: 0.0, through: 100.0, by: 10.0) {
            svg.line(left, y(v), left + plotW, y(v), stroke: v == 0 ? "#444" : "#e3e3e3")
            svg.text(SVGDocument.num(v), left - 8, y(v) + 4, size: 11, anchor: "end")
        }
        svg.line(left, top, left, top + plotH, stroke: "#444")
        for (i, label) in xLabels.enumerated() {
            svg.line(x(i), top + plotH, x(i), top + plotH + 5, stroke: "#444")
            svg.text(label, x(i), top + plotH + 19, size: 11, anchor: "middle")
        }
        svg.text(xTitle, left + plotW / 2, top + plotH + 42, size: 12, anchor: "middle")
        svg.text(yTitle, 18, top + plotH / 2, size: 12, anchor: "middle", rotate: -90)
        svg.end()

        var legendY = top + 6
        let legendX = left + plotW + 24
        for r in references {
            svg.begin([("id", "reference-" + slug(r.name))])
            svg.line(left, y(r.value), left + plotW, y(r.value), stroke: r.color, width: 1.5, dash: "2 4")
            svg.line(legendX, legendY, legendX + 26, legendY, stroke: r.color, width: 1.5, dash: "2 4")
            svg.text(r.name + String(format: " (%.1f)", r.value), legendX + 32, legendY + 4, size: 11)
            svg.end()
            legendY += 20
        }
        for s in series {
            svg.begin([("id", "series-" + slug(s.name))])
            var run: [(Double, Double)] = []
            func flush() {
                if run.count > 1 { svg.polyline(run, stroke: s.color, dash: s.dashed ? "6 4" : nil) }
                run = []
            }
            for (i, v) in s.values.enumerated() {
                guard let v, v.isFinite else { flush(); continue }
                run.append((x(i), y(v)))
            }
            flush()
            for (i, v) in s.values.enumerated() {
                if let v, v.isFinite { svg.circle(x(i), y(v), r: 3.5, fill: s.color) }
            }
            svg.line(legendX, legendY, legendX + 26, legendY, stroke: s.color, width: 2, dash: s.dashed ? "6 4" : nil)
            svg.circle(legendX + 13, legendY, r: 3.5, fill: s.color)
            svg.text(s.name, legendX + 32, legendY + 4, size: 11)
            svg.end()
            legendY += 20
        }
        return svg.xml
    }

    /// One labelled point of a scatter plot.
    public struct Point: Sendable {
        public var name: String
        public var color: String
        public var x: Double
        public var y: Double

        public init(name: String, color: String, x: Double, y: Double) {
            self.name = name
            self.color = color
            self.x = x
            self.y = y
        }
    }

    /// Accuracy-like y (0–100) against x on a log10 axis spanning the points' decades; each point is a labelled
    /// marker in a `<g id="point-…">` group. Points with x ≤ 0 or a non-finite value are left out.
    public static func scatterLogX(title: String, xTitle: String, yTitle: String, points: [Point]) -> String {
        let left = 62.0, top = 44.0, plotW = 560.0, plotH = 320.0
        var svg = SVGDocument(width: Int(left + plotW + 150), height: Int(top + plotH + 62))
        svg.text(title, left, 24, size: 15, bold: true)
        let shown = points.filter { $0.x > 0 && $0.x.isFinite && $0.y.isFinite }
        let lo = floor(log10(shown.map(\.x).min() ?? 1)), hi = max(ceil(log10(shown.map(\.x).max() ?? 10)), lo + 1)
        func x(_ v: Double) -> Double { left + plotW * (log10(v) - lo) / (hi - lo) }
        func y(_ v: Double) -> Double { top + plotH * (1 - min(max(v, 0), 100) / 100) }

        svg.begin([("id", "axes")])
        for v in stride(from: 0.0, through: 100.0, by: 10.0) {
            svg.line(left, y(v), left + plotW, y(v), stroke: v == 0 ? "#444" : "#e3e3e3")
            svg.text(SVGDocument.num(v), left - 8, y(v) + 4, size: 11, anchor: "end")
        }
        for d in Int(lo)...Int(hi) {
            let px = x(pow(10, Double(d)))
            svg.line(px, top, px, top + plotH, stroke: "#e3e3e3")
            svg.line(px, top + plotH, px, top + plotH + 5, stroke: "#444")
            svg.text("1e\(d)", px, top + plotH + 19, size: 11, anchor: "middle")
        }
        svg.line(left, top, left, top + plotH, stroke: "#444")
        svg.text(xTitle, left + plotW / 2, top + plotH + 42, size: 12, anchor: "middle")
        svg.text(yTitle, 18, top + plotH / 2, size: 12, anchor: "middle", rotate: -90)
        svg.end()
        // Labels of nearby points are stacked downwards so none overlaps another (a thin line leads to a moved one).
        var placed: [(x0: Double, x1: Double, y: Double)] = []
        for p in shown.sorted(by: { y($0.y) < y($1.y) }) {
            let px = x(p.x), py = y(p.y), width = 6.5 * Double(p.name.count)
            var ly = py + 4
            while placed.contains(where: { $0.x0 < px + 8 + width && px + 8 < $0.x1 && abs($0.y - ly) < 13 }) { ly += 13 }
            placed.append((px + 8, px + 8 + width, ly))
            svg.begin([("id", "point-" + slug(p.name))])
            svg.circle(px, py, r: 5, fill: p.color)
            if ly - py - 4 > 2 { svg.line(px + 3, py + 3, px + 8, ly - 4, stroke: "#999") }
            svg.text(p.name, px + 10, ly, size: 11)
            svg.end()
        }
        return svg.xml
    }

    /// Twenty distinguishable colours (Tableau 20, dark shades first) for charts with many series.
    public static func palette(_ i: Int) -> String {
        let colors = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
            "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"
        ]
        return colors[((i % colors.count) + colors.count) % colors.count]
    }

    /// A rows × columns grid coloured by value (white → dark blue, 0 → the largest value), each cell labelled with
    /// its value; `struck` cells (pruned groups) are grey and say so. A colour bar on the right gives the scale.
    public static func heatMap(
        title: String, rowTitle: String, columnTitle: String, rowLabels: [String], columnLabels: [String],
        values: [[Double?]], struck: [[Bool]] = []
    ) -> String {
        let left = 92.0, top = 52.0, cellW = 92.0, cellH = 34.0
        let cols = columnLabels.count, rows = rowLabels.count
        let gridW = cellW * Double(cols), gridH = cellH * Double(rows)
        let barH = max(gridH, 120.0)
        var svg = SVGDocument(width: Int(left + gridW + 120), height: Int(top + barH + 56))
        svg.text(title, 14, 24, size: 15, bold: true)
        let finite = values.flatMap { $0 }.compactMap { $0 }.filter(\.isFinite)
        let maxV = max(finite.max() ?? 0, 1e-12)

        svg.begin([("id", "cells")])
        for r in 0..<rows {
            svg.text(rowLabels[r], left - 8, top + cellH * Double(r) + cellH / 2 + 4, size: 11, anchor: "end")
            for c in 0..<cols {
                let x = left + cellW * Double(c), y = top + cellH * Double(r)
                let v = r < values.count && c < values[r].count ? values[r][c] : nil
                let isStruck = r < struck.count && c < struck[r].count && struck[r][c]
                let label = v.map { String(format: "%.3g", $0) } ?? "–"
                if isStruck {
                    svg.rect(x, y, cellW, cellH, fill: "#d9d9d9", stroke: "#ffffff")
                    svg.text(label + " pruned", x + cellW / 2, y + cellH / 2 + 4, size: 10, anchor: "middle", fill: "#555")
                } else {
                    let t = v.map { $0.isFinite ? min(max($0 / maxV, 0), 1) : 0 } ?? 0
                    svg.rect(x, y, cellW, cellH, fill: v == nil ? "#f0f0f0" : blues(t), stroke: "#ffffff")
                    svg.text(label, x + cellW / 2, y + cellH / 2 + 4, size: 11, anchor: "middle", fill: t > 0.55 ? "#ffffff" : "#111")
                }
            }
        }
        for c in 0..<cols {
            svg.text(columnLabels[c], left + cellW * (Double(c) + 0.5), top - 8, size: 11, anchor: "middle")
        }
        svg.end()
        svg.text(columnTitle, left + gridW / 2, top + gridH + 22, size: 12, anchor: "middle")
        svg.text(rowTitle, 16, top + gridH / 2, size: 12, anchor: "middle", rotate: -90)

        // Colour bar: 20 steps from 0 (bottom) to the maximum (top).
        svg.begin([("id", "colour-scale")])
        let barX = left + gridW + 24, steps = 20
        for i in 0..<steps {
            let t = Double(i) / Double(steps - 1)
            svg.rect(barX, top + barH * (1 - Double(i + 1) / Double(steps)), 16, barH / Double(steps) + 0.5, fill: blues(t))
        }
        svg.rect(barX, top, 16, barH, fill: "none", stroke: "#888")
        for (frac, v) in [(0.0, 0.0), (0.5, maxV / 2), (1.0, maxV)] {
            let y = top + barH * (1 - frac)
            svg.line(barX + 16, y, barX + 21, y, stroke: "#444")
            svg.text(String(format: "%.3g", v), barX + 24, y + 4, size: 10)
        }
        svg.end()
        return svg.xml
    }

    /// ColorBrewer "Blues" from #f7fbff (t = 0) to #08306b (t = 1), linearly interpolated.
    static func blues(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
        let p = min(max(t, 0), 1) * Double(stops.count - 1)
        let i = min(Int(p), stops.count - 2), f = p - Double(i)
        let a = stops[i], b = stops[i + 1]
        func mix(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// "Acc_r (retained)" → "acc_r-retained": an id fragment.
    static func slug(_ s: String) -> String {
        var out = "", dash = false
        for ch in s.lowercased() {
            if ch.isLetter || ch.isNumber || ch == "_" {
                out.append(ch)
                dash = false
            } else if !dash && !out.isEmpty {
                out.append("-")
                dash = true
            }
        }
        return dash ? String(out.dropLast()) : out
    }
}
