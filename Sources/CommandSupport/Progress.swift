import Foundation

/// Images done, throughput and ETA on stderr, redrawn in place; silent when stderr is not a terminal.
public final class Progress {
    private let label: String
    private let start = Date()
    private let enabled = isatty(STDERR_FILENO) == 1
    private var lastDraw = Date.distantPast

    public init(_ label: String) { self.label = label }

    public func update(_ done: Int, _ total: Int) {
        guard enabled else { return }
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = now
        let secs = max(now.timeIntervalSince(start), 1e-6)
        let rate = Double(done) / secs
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r%@ %d/%d images  %.1f img/s  ETA %.0fs ", label, done, total, rate, eta)
        FileHandle.standardError.write(Data(line.utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
