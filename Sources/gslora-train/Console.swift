import CommandSupport
import Foundation

/// Where the command's words go: progress and messages on stderr (`StatusLine`), the `--json` report on stdout.
final class Console {
    private let status = StatusLine()

    func progress(_ line: String, force: Bool = false) { status.progress(line, force: force) }

    /// An epoch ended: off a terminal its last progress line is printed.
    func epochEnded() { status.milestone() }

    /// A line that stays (ends any progress line first); printed whatever stderr is.
    func message(_ text: String) { status.message(text) }

    static func json<T: Encodable>(_ value: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        FileHandle.standardOutput.write(try enc.encode(value) + Data([0x0A]))
    }
}
