/// What a training run refuses or stops on. Each case names the file or option and says what to do.
public enum TrainerError: Error, CustomStringConvertible, Equatable {
    /// An option value that cannot work.
    case badOption(option: String, problem: String)
    /// A model file the trainer cannot train (not a recognised ViT, adapter instead of backbone, ...).
    case badModel(path: String, problem: String)
    /// Training data that cannot be used.
    case badData(path: String, problem: String)
    /// A training state that does not fit this run.
    case badState(path: String, problem: String)
    /// Stopped by a signal after writing the state; `--resume` continues.
    case interrupted(statePath: String)

    public var description: String {
        switch self {
        case let .badOption(o, p): return Self.sentence(o, p)
        case let .badModel(p, why): return Self.sentence(p, why)
        case let .badData(p, why): return Self.sentence(p, why)
        case let .badState(p, why): return Self.sentence(p, why) + " Start without --resume (or in an empty output folder) to train from the beginning."
        case let .interrupted(p): return "interrupted; training state saved to \(p). Run the same command with --resume to continue."
        }
    }

    /// "subject: problem." — without repeating the subject when a wrapped error already starts with it, and without a
    /// second full stop.
    static func sentence(_ subject: String, _ problem: String) -> String {
        let body = problem.hasPrefix(subject + ": ") ? String(problem.dropFirst(subject.count + 2)) : problem
        return "\(subject): \(body)" + (body.hasSuffix(".") ? "" : ".")
    }
}
