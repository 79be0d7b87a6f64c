import Foundation

/// Everything that can go wrong loading or writing data sets (image folders, IDX, .npy).
/// Each case names the file and the problem; `description` adds what to do about it.
public enum DataError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// A system call failed (open, read, write, rename...).
    case io(path: String, operation: String, errno: Int32)
    /// A data set root or class folder is missing or is not a folder.
    case notAFolder(path: String)
    /// An image folder has no class sub-folders.
    case noClasses(path: String)
    /// A folder's class is not in the class list built from another folder (usually train/).
    case unknownClass(root: String, name: String, known: Int)
    /// The same class name appears twice in a caller-supplied class list.
    case duplicateClass(name: String)
    /// An image that cannot be decoded (only thrown when loading with `strict: true`; otherwise reported as skipped).
    case badImage(path: String, reason: String)
    /// An IDX (MNIST-style) file is malformed.
    case badIDX(path: String, problem: String)
    /// A gzip stream is corrupt or truncated.
    case badGzip(path: String, problem: String)
    /// The Fashion-MNIST files are not installed.
    case fashionMNISTMissing(directory: String, file: String)
    /// An .npy file is malformed or holds something that cannot be used as asked.
    case badNPY(path: String, problem: String)
    /// Image and label files or arrays disagree.
    case mismatch(what: String, problem: String)
    /// The preprocessing settings cannot work.
    case badPreprocessing(problem: String)
    /// Nothing determines a model's image pipeline (no stored record, no family default, too few options).
    case pipelineUnknown(model: String, problem: String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .io(p, op, e):
            return "\(p): \(op) failed: \(String(cString: strerror(e))). Check that the path exists and is readable/writable."
        case let .notAFolder(p):
            return "\(p): not a folder. Pass the data set folder that holds one sub-folder per class."
        case let .noClasses(p):
            return "\(p): no class sub-folders found. An image folder needs one sub-folder per class (ImageFolder layout)."
        case let .unknownClass(root, name, known):
            return
                "\(root): class folder '\(name)' is not among the \(known) classes of the training folder. Train and test folders must hold the same class names; rename or remove '\(name)'."
        case let .duplicateClass(name):
            return "class '\(name)' appears twice in the class list; class names must be unique."
        case let .badImage(p, why):
            return "\(p): cannot decode image: \(why). Remove or replace the file, or load without strict mode to skip it."
        case let .badIDX(p, why):
            return "\(p): invalid IDX file: \(why). The file is corrupt or not an MNIST-style IDX file; fetch it again."
        case let .badGzip(p, why):
            return "\(p): corrupt gzip data: \(why). The file is damaged or truncated; fetch it again."
        case let .fashionMNISTMissing(dir, file):
            return
                "\(dir): Fashion-MNIST file \(file) is missing. Install it with `apt-get install dataset-fashion-mnist`, or pass the folder that holds the four *-idx*-ubyte.gz files."
        case let .badNPY(p, why):
            return "\(p): unusable .npy file: \(sentence(why))"
        case let .mismatch(what, why):
            return "\(what): \(sentence(why))"
        case let .badPreprocessing(why):
            return "invalid preprocessing: \(sentence(why))"
        case let .pipelineUnknown(model, why):
            return "\(model): its image pipeline is not known: \(sentence(why))"
        }
    }

    /// Ends a problem text with exactly one full stop, whether or not it came with one.
    private func sentence(_ text: String) -> String { text.hasSuffix(".") ? text : text + "." }
}
