import Foundation
import GSLoRAFormat

/// Accuracy of one class.
public struct ClassResult: Codable, Equatable, Sendable {
    public enum Role: String, Codable, Sendable { case forget, retain, old, other }
    public var index: Int
    public var name: String
    public var samples: Int
    public var correct: Int
    /// Percent; nil without samples.
    public var accuracy: Double?
    public var role: Role
}

/// A forgetting evaluation (spec/TRAINING.md §A.8): accuracy on the forgotten, retained and earlier-forgotten classes,
/// per class, and H against a report of the model before forgetting. Accuracies are percentages over the images of
/// each class set (micro-averaged), nil when the data holds no image of the set.
public struct ForgettingReport: Codable, Sendable {
    public var model: String
    public var adapters: [String]
    /// Whether adapters were merged into the weights (else applied live).
    public var merged: Bool
    public var data: String
    public var samples: Int
    /// "cosine" (argmax of s·cos), "margin" (true label's logit − s·m first, the official face numbers) or "linear".
    public var criterion: String
    public var forget: [Int]
    public var retain: [Int]
    public var old: [Int]
    public var accForget: Double?
    public var accRetain: Double?
    public var accOld: Double?
    /// From the `before` report: its accuracy on this report's forget classes, Δ = before − now, and H.
    public var before: String?
    public var accForgetBefore: Double?
    public var delta: Double?
    public var h: Double?
    public var perClass: [ClassResult]
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case model, adapters, merged, data, samples, criterion, forget, retain, old
        case accForget = "acc_f", accRetain = "acc_r", accOld = "acc_o", before, accForgetBefore = "acc_f_before", delta, h
        case perClass = "per_class", notes
    }

    /// Correct / total over the images of `classes`, from the per-class counts (nil when there are none).
    public func accuracy(over classes: [Int]) -> Double? {
        let rows = perClass.filter { classes.contains($0.index) }
        let n = rows.reduce(0) { $0 + $1.samples }
        return n > 0 ? 100 * Double(rows.reduce(0) { $0 + $1.correct }) / Double(n) : nil
    }
}

/// H and the assembly of a `ForgettingReport`.
public enum ForgettingScore {
    /// H = 2·Δ·Acc_r / (Δ + Acc_r + 1e-8), Δ = Acc_f(before) − Acc_f (spec/TRAINING.md §A.8, the continual engine's form).
    public static func h(forgetBefore: Double, forget: Double, retain: Double) -> Double {
        let drop = forgetBefore - forget
        return 2 * drop * retain / (drop + retain + 1e-8)
    }

    /// Builds the report from predictions. `retain` nil means every class with images that is neither forgotten
    /// nor old. Class sets must be disjoint and within `classNames`.
    public static func report(
        predictions: [Int], labels: [Int], classNames: [String], forget: [Int], retain: [Int]?, old: [Int],
        before: ForgettingReport?, beforePath: String?, criterion: String, model: String, adapters: [String],
        merged: Bool, data: String
    ) throws -> ForgettingReport {
        let k = classNames.count
        guard predictions.count == labels.count else {
            throw EvaluationError.badData(path: data, problem: "\(predictions.count) predictions for \(labels.count) labels")
        }
        if let bad = (labels + forget + old + (retain ?? [])).first(where: { $0 < 0 || $0 >= k }) {
            throw EvaluationError.badData(path: data, problem: "class \(bad) is outside the \(k) classes")
        }
        var samples = [Int](repeating: 0, count: k), correct = [Int](repeating: 0, count: k)
        for (p, y) in zip(predictions, labels) {
            samples[y] += 1
            if p == y { correct[y] += 1 }
        }
        let f = Set(forget), o = Set(old)
        if !f.isDisjoint(with: o) { throw EvaluationError.overlappingClasses("classes \(f.intersection(o).sorted()) are both forgotten and old") }
        let present = (0..<k).filter { samples[$0] > 0 }
        let r = retain ?? present.filter { !f.contains($0) && !o.contains($0) }
        if let retain {
            let both = Set(retain).intersection(f.union(o))
            if !both.isEmpty { throw EvaluationError.overlappingClasses("classes \(both.sorted()) are retained and also forgotten or old") }
        }
        let rs = Set(r)
        var notes: [String] = []
        let perClass = (0..<k).filter { samples[$0] > 0 || f.contains($0) || rs.contains($0) || o.contains($0) }.map { i in
            ClassResult(
                index: i, name: classNames[i], samples: samples[i], correct: correct[i],
                accuracy: samples[i] > 0 ? 100 * Double(correct[i]) / Double(samples[i]) : nil,
                role: f.contains(i) ? .forget : o.contains(i) ? .old : rs.contains(i) ? .retain : .other)
        }
        for (name, set) in [("forget", forget), ("retain", r), ("old", old)] {
            let missing = set.filter { samples[$0] == 0 }
            if !missing.isEmpty {
                notes.append(
                    "no images of \(name) class(es) \(missing.prefix(10).map(String.init).joined(separator: ","))\(missing.count > 10 ? ",…" : "") in the data")
            }
        }
        var report = ForgettingReport(
            model: model, adapters: adapters, merged: merged, data: data, samples: labels.count,
            criterion: criterion, forget: forget, retain: r, old: old, accForget: nil, accRetain: nil,
            accOld: nil, before: beforePath, accForgetBefore: nil, delta: nil, h: nil,
            perClass: perClass, notes: notes)
        report.accForget = report.accuracy(over: forget)
        report.accRetain = report.accuracy(over: r)
        report.accOld = report.accuracy(over: old)
        if let before {
            let path = beforePath ?? "(before)"
            let known = Set(before.perClass.filter { $0.samples > 0 }.map(\.index))
            let missing = forget.filter { !known.contains($0) }
            guard missing.isEmpty else {
                throw EvaluationError.badReport(
                    path: path,
                    problem:
                        "it has no images of forget class(es) \(missing.map(String.init).joined(separator: ",")); evaluate the model before forgetting on the same data"
                )
            }
            if before.criterion != criterion {
                report.notes.append("the \(Setting("before")) report counts accuracy by \(before.criterion), this one by \(criterion)")
            }
            let fb = before.accuracy(over: forget)!
            report.accForgetBefore = fb
            if let af = report.accForget, let ar = report.accRetain {
                report.delta = fb - af
                report.h = h(forgetBefore: fb, forget: af, retain: ar)
            }
        }
        return report
    }

    /// Reads a report saved as JSON (`ForgettingReport` is Codable; gslora-eval writes one).
    public static func readReport(_ path: String) throws -> ForgettingReport {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw EvaluationError.badReport(path: path, problem: "cannot read it (\(error.localizedDescription))")
        }
        do { return try JSONDecoder().decode(ForgettingReport.self, from: data) } catch {
            throw EvaluationError.badReport(path: path, problem: "not a gslora-eval JSON report (\(error))")
        }
    }

    /// Writes `report` as JSON, atomically.
    public static func write(_ report: ForgettingReport, to path: String, inputs: [String]) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let bytes = [UInt8](try enc.encode(report)) + [0x0A]
        try AtomicFile.write(path, inputs: inputs) { try $0.write(bytes) }
    }
}
