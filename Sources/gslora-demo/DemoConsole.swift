import CommandSupport
import Foundation
import GSLoRADemo
import GSLoRATraining

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT/SIGTERM; the trainer polls it after every step and stops cleanly.
nonisolated(unsafe) var demoStopRequested: sig_atomic_t = 0

enum DemoSignals {
    /// The first signal asks for a clean stop; a second one kills the process as usual.
    static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                if demoStopRequested != 0 {
                    signal(s, SIG_DFL)
                    raise(s)
                }
                demoStopRequested = 1
            }
        }
    }
}

/// Progress and messages on stderr (`StatusLine`: a redrawn line on a terminal; elsewhere one plain line per epoch
/// or 30 s), and one line per stage and task result whatever stderr is.
final class DemoConsole {
    private let status = StatusLine()
    private let start = Date()

    func progress(_ line: String, force: Bool = false) { status.progress(line, force: force) }

    func message(_ text: String) { status.message(text) }

    private var clock: String { "[" + ProgressLine.duration(Date().timeIntervalSince(start)) + "]" }

    func show(_ e: DemoEvent, tasks: Int) {
        switch e {
        case let .stage(s): message("\(clock) \(s)")
        case let .note(s): message("\(clock)   \(s)")
        case let .pretrain(.step(epoch, step, steps, loss, acc, ips)):
            progress(String(format: "  pre-train epoch %d  step %d/%d  loss %.4f  train acc (margin) %.1f  %.0f img/s", epoch + 1, step, steps, loss, acc, ips))
        case let .pretrain(.epochFinished(r)):
            message(
                String(
                    format: "%@   pre-train epoch %d: loss %.4f  test acc %.2f (margin %.2f)  %.1fs", clock, r.epoch + 1, r.loss,
                    r.testAccuracy, r.testAccuracyMargin, r.seconds))
        case let .train(run, event):
            switch event {
            case let .step(s): progress("  \(run) " + ProgressLine.render(s, tasks: tasks), force: s.step == s.steps)
            case let .taskStarted(t, c, nf, nr, steps):
                message("\(clock)   \(run) task \(t)/\(tasks): forget \(c.forget) · \(c.retain.count) retained · \(nf)+\(nr) images · \(steps) steps")
            case let .evaluated(t, phase, m, h): message("\(clock)   \(run) task \(t) \(phase): " + ProgressLine.metrics(m, h: h))
            case .stateSaved: status.milestone()
            case .taskFinished: break
            }
        }
    }

    func summary(_ r: DemoReport, folder: String) {
        message(
            String(
                format: "pre-trained: test acc %.2f %% (margin %.2f %%)%@", r.pretrain.accuracy, r.pretrain.accuracyMargin,
                r.pretrain.cached ? ", cached" : ""))
        for run in r.runs {
            for t in run.tasks {
                func p(_ x: Double?) -> String { x.map { String(format: "%6.2f", $0) } ?? "     –" }
                message(
                    "\(run.title) task \(t.task): Acc_r \(p(t.accRetain)) (pre-trained \(p(t.accRetainPretrained)))  Acc_f \(p(t.accForget))  Acc_o \(p(t.accOld))  H \(p(t.h))  groups kept \(t.groupsKept)/\(t.groups.count)"
                )
            }
        }
        let failed = r.checks.filter { !$0.passed }
        if !r.checks.isEmpty {
            message(
                failed.isEmpty
                    ? "all \(r.checks.count) checks pass" : "\(failed.count) of \(r.checks.count) checks FAIL: " + failed.map(\.name).joined(separator: "; "))
        }
        message(String(format: "report: %@/report.md (%.0f s in all)", folder, r.seconds))
    }

    func comparison(_ r: ComparisonReport, folder: String) {
        func p(_ x: Double?) -> String { x.map { String(format: "%6.2f", $0) } ?? "     –" }
        for row in r.rows {
            message(
                "\(row.setting.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(row.title.padding(toLength: 16, withPad: " ", startingAt: 0)) "
                    + "Acc_r \(p(row.mean.accRetain))  Acc_f \(p(row.mean.accForget))  Acc_o \(p(row.mean.accOld))  H \(p(row.mean.h))  "
                    + String(format: "changed %.0f/task  %.0f s", row.mean.parametersChanged, row.seconds) + (row.cached ? " (cached)" : ""))
        }
        message(String(format: "comparison: %@/compare.md (%.0f s in this run)", folder, r.seconds))
    }
}
