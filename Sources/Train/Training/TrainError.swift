/// Everything the Train module refuses, with what was wrong and what to do about it.
public enum TrainError: Error, CustomStringConvertible, Equatable {
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
        }
    }
}
