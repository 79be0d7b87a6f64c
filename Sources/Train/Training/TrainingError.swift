import Foundation
import GSLoRAFormat

/// Everything the training library refuses or stops on: bad inputs to the trainer's building blocks (shapes,
/// labels, hyper-parameters) and whole-run problems (model, data, state files, interruption). Each case names the
/// file or setting and says what to do.
public enum TrainingError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// A buffer's length does not match the sizes it was given.
    case invalidShape(String)
    /// A label outside 0..<classes.
    case labelOutOfRange(what: String, index: Int, label: Int, classes: Int)
    /// A hyper-parameter or setting that cannot work (non-positive batch, ratio outside (0,1], …).
    case invalidArgument(String)
    /// A class that the dataset does not have (outside 0..<classes, or with no prototype).
    case unknownClass(Int, String)
    /// Few-shot sampling asked for more images than a class holds.
    case notEnoughImages(classIndex: Int, available: Int, requested: Int)
    /// A split or subset came out empty where training needs samples.
    case emptySet(String)
    /// The run needs more memory than the machine has (the estimate's numbers, and what shrinks them).
    case tooLarge(String)

    /// A setting whose value cannot work.
    case badOption(option: Setting, problem: String)
    /// A model file the trainer cannot train (not a recognised ViT, adapter instead of backbone, ...).
    case badModel(path: String, problem: String)
    /// Training data that cannot be used.
    case badData(path: String, problem: String)
    /// A training state that does not fit this run.
    case badState(path: String, problem: String)
    /// Stopped by a signal after writing the state; the `resume` setting continues.
    case interrupted(statePath: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .invalidShape(why):
            return "shape mismatch: \(why); pass buffers whose lengths match the stated sizes"
        case let .labelOutOfRange(what, i, y, c):
            return "\(what): label \(y) at position \(i) is outside 0..<\(c); labels must be class indices of the head"
        case let .invalidArgument(why):
            return "invalid argument: \(why)"
        case let .unknownClass(c, why):
            return "unknown class \(c): \(why)"
        case let .notEnoughImages(c, have, want):
            return "class \(c) has \(have) training images but \(want) shots were requested; lower the shot count or drop the class"
        case let .emptySet(why):
            return "empty set: \(why)"
        case let .tooLarge(why):
            return "too large for this machine: \(why)"
        case let .badOption(o, p): return Self.sentence("\(o)", p)
        case let .badModel(p, why): return Self.sentence(p, why)
        case let .badData(p, why): return Self.sentence(p, why)
        case let .badState(p, why):
            return Self.sentence(p, why) + " Start without \(Setting("resume")) (or in an empty output folder) to train from the beginning."
        case let .interrupted(p): return "interrupted; training state saved to \(p). Run it again with \(Setting("resume")) to continue."
        }
    }

    /// "subject: problem." — without repeating the subject when a wrapped error already starts with it, and without a
    /// second full stop.
    static func sentence(_ subject: String, _ problem: String) -> String {
        let body = problem.hasPrefix(subject + ": ") ? String(problem.dropFirst(subject.count + 2)) : problem
        return "\(subject): \(body)" + (body.hasSuffix(".") ? "" : ".")
    }
}
