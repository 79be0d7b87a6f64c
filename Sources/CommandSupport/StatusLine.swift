import Foundation

/// Progress and messages on stderr. Messages (`note:`, `warning:`, results) are always printed. Progress depends on
/// where stderr goes: on a terminal one line is redrawn in place; elsewhere (a file, a pipe, nohup, a batch
/// scheduler) the latest progress is printed as a plain line every `plainInterval` seconds and at each `milestone()`
/// (an epoch's end), so a long run's log is never silent for hours.
public final class StatusLine {
    public let interactive: Bool
    public static let plainInterval: TimeInterval = 30
    private var lastDraw = Date.distantPast
    private var lastPlain = Date()
    private var drawn = false
    private var pending: String?

    public init(interactive: Bool = isatty(STDERR_FILENO) == 1) { self.interactive = interactive }

    public func progress(_ line: String, force: Bool = false) {
        let now = Date()
        if !interactive {
            pending = line
            if now.timeIntervalSince(lastPlain) >= Self.plainInterval { milestone() }
            return
        }
        guard force || now.timeIntervalSince(lastDraw) >= 0.25 else { return }
        lastDraw = now
        let text = line.count > 160 ? String(line.prefix(160)) : line
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
        drawn = true
    }

    /// Off a terminal, prints the latest progress line (if any came since the last one printed).
    public func milestone() {
        guard !interactive, let line = pending else { return }
        pending = nil
        lastPlain = Date()
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Keeps a redrawn progress line on screen (ends it with a newline).
    public func keepLine() {
        guard drawn else { return }
        FileHandle.standardError.write(Data("\n".utf8))
        drawn = false
    }

    /// Erases a redrawn progress line.
    public func clear() {
        guard drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        drawn = false
    }

    /// A line that stays (ends a redrawn progress line first).
    public func message(_ text: String) {
        clear()
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// `note: …` for each notice.
    public func notes(_ notices: [String]) { for n in notices { message("note: \(n)") } }
}
