import Foundation

/// What can go wrong merging, pruning or loading adapters. Each case names the file and says what to do.
public enum AdapterError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// The file is not of the kind the operation needs (a backbone where an adapter is expected, ...).
    case wrongKind(file: String, expected: String, actual: String)
    /// The adapter was trained on other weights than the ones it is being applied to.
    case fingerprintMismatch(adapter: String, expected: String, actual: String, hint: String)
    /// A LoRA factor does not fit the weight it updates, or its partner is missing.
    case badFactor(file: String, tensor: String, problem: String)
    /// The layer a factor pair updates is not in the model.
    case missingTarget(adapter: String, tensor: String, base: String)
    /// A merge produced NaN or infinity (or a value the stored dtype cannot hold).
    case nonFinite(tensor: String, adapter: String, count: Int, problem: String)
    /// A caller-supplied value is unusable (scale count, prune rule, ...).
    case invalidArgument(String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .wrongKind(f, e, a):
            func article(_ w: String) -> String { (w.first.map { "aeiou".contains($0) } ?? false) ? "an \(w)" : "a \(w)" }
            return "\(f): is \(article(a)) file, expected \(article(e)) file."
        case let .fingerprintMismatch(a, e, act, hint):
            return "\(a): the adapter was trained on weights with fingerprint \(e), but it is being applied to weights with fingerprint \(act). \(hint)"
        case let .badFactor(f, t, p):
            return "\(f): LoRA factor '\(t)': \(p). The adapter file does not match the model."
        case let .missingTarget(a, t, b):
            return "\(a): the model \(b) has no weight '\(t)' for this adapter's factors; the adapter belongs to another model layout."
        case let .nonFinite(t, a, n, p):
            return "merging \(a) into '\(t)' gives \(n) non-finite value(s) (\(p)); the adapter is corrupt or its scale is too large."
        case let .invalidArgument(why):
            return why
        }
    }
}
