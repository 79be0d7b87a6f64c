import Foundation
import GSLoRAFormat
import GSLoRAModel

/// What can go wrong evaluating or running inference. Each case names the input and says what to do.
public enum EvaluationError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// A class list names a class the model or data does not have.
    case unknownClass(option: String, item: String, known: String)
    /// A class list is malformed (empty item, reversed range, ...).
    case badClassList(option: String, problem: String)
    /// Two class sets that must be disjoint share classes.
    case overlappingClasses(String)
    /// Data that cannot be evaluated (no files, labels that do not fit, ...).
    case badData(path: String, problem: String)
    /// A report to compare with (the `before` setting) that cannot be used.
    case badReport(path: String, problem: String)
    /// An input to inference that cannot be used.
    case badInput(path: String, problem: String)
    /// The model file holds no runnable model.
    case notAModel(path: String, problem: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .unknownClass(o, item, known):
            return "\(o): unknown class '\(item)'. Give class indices, ranges like 0-4 or class names; known classes: \(known)."
        case let .badClassList(o, p):
            return "\(o): \(p). Write a comma list of indices, ranges (0-4) or class names."
        case let .overlappingClasses(why):
            return "\(why). A class can be in only one of the forget, retain and old sets."
        case let .badData(p, why):
            return "\(p): \(why)."
        case let .badReport(p, why):
            return "\(p): unusable \(Setting("before")) report: \(why). Pass a report saved as JSON (gslora-eval \(Setting("output")) REPORT.json writes one)."
        case let .badInput(p, why):
            return "\(p): \(why)."
        case let .notAModel(p, why):
            return "\(p): \(why). Give a backbone .gslr (gslora-convert makes one) or a recognised .pth/.safetensors ViT."
        }
    }
}
