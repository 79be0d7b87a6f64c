import Foundation
import GSLoRADemo

/// PNG copies of the report's SVG plots, drawn by librsvg's `rsvg-convert` (Debian librsvg2-bin, which
/// scripts/setup.sh installs): a well-kept renderer with real fonts, instead of a rasteriser of our own.
enum PNGPlots {
    /// rsvg-convert on PATH, or nil.
    static var tool: URL? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return dirs.map { URL(fileURLWithPath: String($0)).appendingPathComponent("rsvg-convert") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// The SVG plots `svgs` in `folder`, as PNG beside the SVG at twice the size (crisp on high-DPI screens). Each PNG
    /// is drawn to a temporary name and renamed into place, like every other output. Returns the PNG paths.
    static func render(_ svgs: [String], folder: String, tool: URL) throws -> [String] {
        try svgs.map { name in
            let svg = folder + "/" + name, png = String(svg.dropLast(4)) + ".png", temp = png + ".tmp-\(getpid())"
            let p = Process()
            p.executableURL = tool
            p.arguments = ["--zoom", "2", "--background-color", "white", "--output", temp, svg]
            let err = Pipe()
            p.standardError = err
            try p.run()
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0, rename(temp, png) == 0 else {
                try? FileManager.default.removeItem(atPath: temp)
                throw DemoError.failed(
                    stage: "PNG plots", problem: "\(tool.path) could not draw \(svg): \(message.isEmpty ? "exit \(p.terminationStatus)" : message)")
            }
            return png
        }
    }
}
