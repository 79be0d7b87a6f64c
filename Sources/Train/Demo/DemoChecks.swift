import Foundation

/// The issue's acceptance criteria, evaluated on a report's numbers (a quick run is only checked for having run).
public enum DemoChecks {
    /// Pre-trained accuracy floor, forgotten-class ceiling, and how far retained accuracy may fall below the
    /// pre-trained model's on the same classes (full data / few-shot), in points; the job's time limit.
    public static let pretrainFloor = 85.0
    public static let forgetCeiling = 2.0
    public static let retainSlack = 1.0
    public static let retainSlackFewShot = 6.0
    public static let timeLimit = 600.0

    public static func evaluate(_ r: DemoReport) -> [Check] {
        guard !r.quick else { return [] }
        var out: [Check] = []
        let p = r.pretrain.accuracy
        out.append(Check(name: "pre-trained accuracy", requirement: "≥ \(f(pretrainFloor)) %", measured: f(p) + " %", passed: p >= pretrainFloor))
        for run in r.runs {
            let slack = run.options.shots == nil ? retainSlack : retainSlackFewShot
            for t in run.tasks {
                let forgotten = [t.accForget, t.accOld].compactMap { $0 }
                let worst = forgotten.max() ?? 0
                out.append(
                    Check(
                        name: "\(run.title) task \(t.task): forgotten classes", requirement: "Acc_f and Acc_o ≤ \(f(forgetCeiling)) %",
                        measured: "Acc_f \(pct(t.accForget)), Acc_o \(pct(t.accOld))", passed: worst <= forgetCeiling))
                if let a = t.accRetain, let ref = t.accRetainPretrained {
                    out.append(
                        Check(
                            name: "\(run.title) task \(t.task): retained classes", requirement: "Acc_r ≥ pre-trained − \(f(slack)) points",
                            measured: "Acc_r \(f(a)) vs pre-trained \(f(ref)) (\(String(format: "%+.2f", a - ref)))", passed: a >= ref - slack))
                }
            }
        }
        out.append(
            Check(name: "whole job", requirement: "≤ \(Int(timeLimit)) s", measured: String(format: "%.0f s", r.seconds), passed: r.seconds <= timeLimit))
        return out
    }

    static func f(_ x: Double) -> String { String(format: "%.2f", x) }
    static func pct(_ x: Double?) -> String { x.map(f) ?? "–" }
}
