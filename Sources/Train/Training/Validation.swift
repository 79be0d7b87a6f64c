/// Checks that a flat buffer holds exactly `rows × cols` values (overflow-checked) before any indexing.
func checkMatrix(_ count: Int, rows: Int, cols: Int, _ what: String) throws {
    guard rows >= 0, cols >= 0 else { throw TrainingError.invalidShape("\(what): negative size \(rows)×\(cols)") }
    let (n, overflow) = rows.multipliedReportingOverflow(by: cols)
    guard !overflow, n == count else {
        throw TrainingError.invalidShape("\(what) holds \(count) values, \(rows)×\(cols) needs \(overflow ? "more than Int.max" : String(n))")
    }
}

/// Checks every label lies in 0..<classes.
func checkLabels(_ labels: [Int], classes: Int, _ what: String) throws {
    for (i, y) in labels.enumerated() where y < 0 || y >= classes {
        throw TrainingError.labelOutOfRange(what: what, index: i, label: y, classes: classes)
    }
}

/// The most classes any Train function accepts: far above every dataset here (100), low enough that per-class
/// tables can never be an unbounded allocation.
public let maxTrainClasses = 1 << 20

func checkClassCount(_ classes: Int, _ what: String) throws {
    guard classes > 0, classes <= maxTrainClasses else {
        throw TrainingError.invalidArgument("\(what): \(classes) classes; expected 1…\(maxTrainClasses)")
    }
}
