import Foundation

/// One-line renderings of a run's progress for a terminal (the command decides where and whether to print).
public enum ProgressLine {
    /// `task 1/4  epoch 3/100  step 120/5000  loss 43.21 (ce_r 42.00 ce_f 42.21 struct 3.46)  acc r 75.0 f 12.5  96 img/s  ETA 1h02m`
    public static func render(_ s: StepReport, tasks: Int) -> String {
        var line = String(
            format: "task %d/%d  epoch %d/%d  step %d/%d  loss %.4g (ce_r %.4g ce_f %.4g", s.task, tasks, s.epoch + 1, s.epochs,
            s.step, s.steps, s.total, s.ceRetain, s.ceForget)
        if let st = s.structure { line += String(format: " struct %.4g", st) }
        if let k = s.klForget { line += String(format: " kl_f %.3g", k) }
        line += String(format: ")  train acc r %.1f f %.1f  %.0f img/s  ETA ", s.accRetain, s.accForget, s.imagesPerSecond) + duration(s.eta)
        return line
    }

    /// "1h02m", "3m05s", "42s".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// `acc_r 74.16  acc_f 0.00  acc_o 0.05  H 74.40`
    public static func metrics(_ m: TaskMetrics, h: Double?) -> String {
        var parts: [String] = []
        func add(_ k: String, _ v: Double?) { if let v { parts.append(k + String(format: " %.2f", v)) } }
        add("acc_r", m.accRetain)
        add("acc_f", m.accForget)
        add("acc_o", m.accOld)
        add("acc_m", m.accMissing)
        add("acc_r_all", m.accRetainAll)
        add("H", h)
        return parts.joined(separator: "  ")
    }
}
