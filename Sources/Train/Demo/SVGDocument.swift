import Foundation

/// A minimal SVG builder: elements are appended as text, every attribute and text node escaped, so the output is
/// well-formed XML whatever the labels hold.
struct SVGDocument {
    let width: Int
    let height: Int
    private var body: [String] = []

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // XML 1.0 forbids most control characters even escaped; drop them.
            case _ where c.value < 0x20 && c != "\n" && c != "\t": continue
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Numbers with at most two decimals, no exponent (SVG coordinates).
    static func num(_ x: Double) -> String {
        let r = (x * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(format: "%.2f", r)
    }

    private static func attributes(_ attrs: [(String, String)]) -> String {
        attrs.map { " \($0.0)=\"\(escape($0.1))\"" }.joined()
    }

    mutating func element(_ name: String, _ attrs: [(String, String)], text: String? = nil) {
        if let text {
            body.append("<\(name)\(Self.attributes(attrs))>\(Self.escape(text))</\(name)>")
        } else {
            body.append("<\(name)\(Self.attributes(attrs))/>")
        }
    }

    /// Opens a group (with an id naming what it holds, e.g. a series); `end()` closes it.
    mutating func begin(_ attrs: [(String, String)]) { body.append("<g\(Self.attributes(attrs))>") }
    mutating func end() { body.append("</g>") }

    mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, stroke: String? = nil, extra: [(String, String)] = []) {
        var a = [("x", Self.num(x)), ("y", Self.num(y)), ("width", Self.num(w)), ("height", Self.num(h)), ("fill", fill)]
        if let stroke { a.append(("stroke", stroke)) }
        element("rect", a + extra)
    }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, width: Double = 1, dash: String? = nil) {
        var a = [
            ("x1", Self.num(x1)), ("y1", Self.num(y1)), ("x2", Self.num(x2)), ("y2", Self.num(y2)), ("stroke", stroke),
            ("stroke-width", Self.num(width))
        ]
        if let dash { a.append(("stroke-dasharray", dash)) }
        element("line", a)
    }

    mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double = 2, dash: String? = nil) {
        var a = [
            ("points", points.map { "\(Self.num($0.0)),\(Self.num($0.1))" }.joined(separator: " ")), ("fill", "none"),
            ("stroke", stroke), ("stroke-width", Self.num(width)), ("stroke-linejoin", "round")
        ]
        if let dash { a.append(("stroke-dasharray", dash)) }
        element("polyline", a)
    }

    mutating func circle(_ x: Double, _ y: Double, r: Double, fill: String) {
        element("circle", [("cx", Self.num(x)), ("cy", Self.num(y)), ("r", Self.num(r)), ("fill", fill)])
    }

    /// `anchor`: start, middle or end; `rotate`: degrees about the anchor point.
    mutating func text(
        _ s: String, _ x: Double, _ y: Double, size: Double = 12, anchor: String = "start", fill: String = "#222",
        bold: Bool = false, rotate: Double? = nil
    ) {
        var a = [("x", Self.num(x)), ("y", Self.num(y)), ("font-size", Self.num(size)), ("text-anchor", anchor), ("fill", fill)]
        if bold { a.append(("font-weight", "bold")) }
        if let rotate { a.append(("transform", "rotate(\(Self.num(rotate)) \(Self.num(x)) \(Self.num(y)))")) }
        element("text", a, text: s)
    }

    var xml: String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" "
            + "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            + "<rect x=\"0\" y=\"0\" width=\"\(width)\" height=\"\(height)\" fill=\"#ffffff\"/>\n"
            + body.joined(separator: "\n") + "\n</svg>\n"
    }
}
