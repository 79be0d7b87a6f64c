import Foundation
import Format

/// Turns any supported file into a `FileSummary`. Only .gslr is read here; other formats are routed to their readers.
enum Summarize {
    static func file(_ path: String, includeTable: Bool, verify: Bool) throws -> FileSummary {
        let f = try GSLRFile.open(path)
        var s = FileSummary(f, includeTable: includeTable)
        if verify {
            let progress = Progress(path: path)
            let start = DispatchTime.now().uptimeNanoseconds
            let bad = f.verify(progress: progress.update)
            progress.finish()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            s.verification = FileSummary.Verification(checkedBytes: s.tensorBytes, seconds: seconds, mismatches: bad)
        }
        return s
    }
}

/// A one-line progress display on stderr, shown only when stderr is a terminal.
final class Progress {
    let path: String
    let enabled = isatty(2) == 1
    private var lastPercent = -1

    init(path: String) { self.path = path }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let p = Int(Double(done) / Double(total) * 100)
        guard p != lastPercent else { return }
        lastPercent = p
        FileHandle.standardError.write(Data("\rverifying \(path): \(p)%".utf8))
    }

    func finish() {
        if enabled && lastPercent >= 0 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
