import Foundation

/// Images done, throughput and ETA on stderr (`StatusLine`: redrawn on a terminal, a plain line every 30 s elsewhere).
public final class Progress {
    private let label: String
    private let start = Date()
    private let status = StatusLine()

    public init(_ label: String) { self.label = label }

    public func update(_ done: Int, _ total: Int) {
        let secs = max(Date().timeIntervalSince(start), 1e-6)
        let rate = Double(done) / secs
        let eta = rate > 0 ? Double(total - done) / rate : 0
        status.progress(String(format: "%@ %d/%d images  %.1f img/s  ETA %.0fs", label, done, total, rate, eta), force: done == total)
        if done == total { status.keepLine() }
    }
}
