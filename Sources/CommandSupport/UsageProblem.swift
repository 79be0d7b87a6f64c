import ArgumentParser
import GSLoRAEvaluation

/// An error that is the caller's usage (a value no run can accept) rather than a failure of the work: exit 2.
public protocol UsageProblem: Error {
    var isUsageProblem: Bool { get }
}

/// The message of `error` when it is a usage error (exit 2): a `ValidationError`, wherever it was thrown, or a
/// `UsageProblem` that says it is one; nil for a failure of the work (exit 1).
public func usageMessage(of error: Error) -> String? {
    if let v = error as? ValidationError { return v.message }
    if let u = error as? UsageProblem, u.isUsageProblem { return "\(u)" }
    return nil
}

/// A malformed class list or class sets that overlap: no run can use them.
extension EvaluationError: UsageProblem {
    public var isUsageProblem: Bool {
        switch self {
        case .badClassList, .overlappingClasses: true
        default: false
        }
    }
}
