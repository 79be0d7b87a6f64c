import Foundation
import Format

/// Where the command's words go: progress redrawn on stderr when it is a terminal, messages on stderr, the
/// `--json` report on stdout.
final class Console {
    let interactive = isatty(STDERR_FILENO) == 1
    private var lastDraw = Date.distantPast
    private var drawn = false

    func progress(_ line: String, force: Bool = false) {
        guard interactive else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.25 else { return }
        lastDraw = now
        let width = 160
        let text = line.count > width ? String(line.prefix(width)) : line
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
        drawn = true
    }

    /// A line that stays (ends any progress line first). Quiet runs only show `always` lines.
    func message(_ text: String, always: Bool = false) {
        guard interactive || always else { return }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); drawn = false }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func json<T: Encodable>(_ value: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        FileHandle.standardOutput.write(try enc.encode(value) + Data([0x0A]))
    }
}
