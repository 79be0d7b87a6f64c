/// Parses class lists as given on a command line: comma-separated class indices, ranges "0-4" (inclusive) and
/// class names, in any mix. A class name wins over the number it looks like, so a data set whose class folders are
/// named "3", "10" … is addressed by name. The result is sorted and free of duplicates.
public enum ClassSelection {
    public static func parse(_ spec: String, classNames: [String], option: String) throws -> [Int] {
        let byName = Dictionary(classNames.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var out = Set<Int>()
        for raw in spec.split(separator: ",", omittingEmptySubsequences: false) {
            let item = raw.trimmingCharacters()
            guard !item.isEmpty else { throw EvaluationError.badClassList(option: option, problem: "empty item in '\(spec)'") }
            if let i = byName[item] {
                out.insert(i)
            } else if let i = Int(item) {
                try check(i, item, classNames, option)
                out.insert(i)
            } else if let dash = item.firstIndex(of: "-"), let lo = Int(item[..<dash]), let hi = Int(item[item.index(after: dash)...]) {
                guard lo <= hi else { throw EvaluationError.badClassList(option: option, problem: "range '\(item)' runs backwards") }
                try check(lo, item, classNames, option)
                try check(hi, item, classNames, option)
                out.formUnion(lo...hi)
            } else {
                throw EvaluationError.unknownClass(option: option, item: item, known: summary(classNames))
            }
        }
        return out.sorted()
    }

    private static func check(_ i: Int, _ item: String, _ names: [String], _ option: String) throws {
        guard i >= 0 && i < names.count else {
            throw EvaluationError.unknownClass(option: option, item: item, known: "indices 0…\(names.count - 1) (\(summary(names)))")
        }
    }

    static func summary(_ names: [String]) -> String {
        let shown = names.prefix(8).map { "'\($0)'" }.joined(separator: ", ")
        return names.count > 8 ? shown + ", … (\(names.count) in all)" : shown
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
