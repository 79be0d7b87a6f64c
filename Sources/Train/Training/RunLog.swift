import Foundation
import GSLoRAFormat

/// The run log (e.g. run.jsonl): one JSON object per line (every step, every evaluation, every saved state, every finished
/// task), appended and flushed as they happen so a crashed run keeps its log.
public final class RunLog {
    public let path: String
    private let handle: FileHandle
    private let encoder: JSONEncoder

    /// Opens `path` for appending (created when missing).
    public init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TrainingError.badOption(option: Setting("log"), problem: "cannot create \(path)")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw TrainingError.badOption(option: Setting("log"), problem: "cannot open \(path) for writing")
        }
        h.seekToEndOfFile()
        handle = h
        self.path = path
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    deinit { try? handle.close() }

    /// Writes `{"event": event, ...fields of value}`.
    public func write<T: Encodable>(_ event: String, _ value: T) throws {
        var obj: [String: JSONValue] = [:]
        if case .object(let o) = try JSONValue.from(value) { obj = o } else { obj["value"] = try JSONValue.from(value) }
        obj["event"] = .string(event)
        handle.write(try encoder.encode(JSONValue.object(obj)) + Data([0x0A]))
    }

    /// Logs a trainer event.
    public func write(_ e: TrainEvent) throws {
        switch e {
        case let .step(s): try write("step", s)
        case let .evaluated(task, phase, m, h):
            try write("eval", EvalLine(task: task, phase: phase, metrics: m, h: h))
        case let .stateSaved(path): try write("state", ["path": path])
        case let .taskStarted(task, c, nf, nr, steps):
            try write(
                "task_start",
                TaskStartLine(
                    task: task, forget: c.forget, retain: c.retain, old: c.old, missing: c.missing,
                    forgetSamples: nf, retainSamples: nr, steps: steps))
        case let .taskFinished(r): try write("task", r)
        }
    }

    struct EvalLine: Encodable { let task: Int; let phase: String; let metrics: TaskMetrics; let h: Double? }
    struct TaskStartLine: Encodable {
        let task: Int; let forget: [Int]; let retain: [Int]; let old: [Int]; let missing: [Int]
        let forgetSamples: Int; let retainSamples: Int; let steps: Int
        enum CodingKeys: String, CodingKey {
            case task, forget, retain, old, missing, forgetSamples = "forget_samples", retainSamples = "retain_samples", steps
        }
    }
}
