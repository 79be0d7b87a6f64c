import Foundation
import GSLoRAFormat

/// The resumable state of a forgetting run, written to `OUTDIR/state.gslr` after every epoch and on interrupt.
///
/// File: a `.gslr` of kind `tensors` (spec/FORMAT.md), written atomically. `metadata.gslora_train_state` holds the
/// `Record` below (format version, options, fingerprints, counters, AdamW step counts); the tensors are the live
/// LoRA factors `lora.<name>`, the AdamW moments `adam.exp_avg.<name>` / `adam.exp_avg_sq.<name>`, and the EMA of ΔW
/// `ema.<i>` once it exists. Everything random is derived from the seed and these counters (class order, subsets,
/// LoRA initialisation, batch order replayed epoch by epoch, dropout seeded per step), so a resumed run computes
/// exactly what the uninterrupted run would have.
public struct TrainState {
    public struct Record: Codable, Equatable {
        public var version = 1
        public var options: TrainOptions
        /// The backbone the run started from, and the base of the task in progress.
        public var backboneFingerprint: String
        public var baseFingerprint: String
        /// Fingerprints of the adapter files of the finished tasks, in order.
        public var adapterFingerprints: [String]
        /// 0-based task in progress; the next epoch to run in it and the steps of that epoch already done.
        public var task: Int
        public var epoch: Int
        public var stepInEpoch: Int
        /// Steps done in this task (seeds the dropout of the next one).
        public var taskStep: Int
        /// AdamW step count per factor.
        public var adamSteps: [Int]
        public var emaCount: Int

        enum CodingKeys: String, CodingKey {
            case version, options, backboneFingerprint = "backbone_fingerprint", baseFingerprint = "base_fingerprint"
            case adapterFingerprints = "adapter_fingerprints", task, epoch, stepInEpoch = "step_in_epoch", taskStep = "task_step"
            case adamSteps = "adam_steps", emaCount = "ema_count"
        }
    }

    public static let metadataKey = "gslora_train_state"

    public var record: Record
    /// Per factor (GSLoRAStep order): values, first and second moments.
    public var factors: [[Float]]
    public var expAvg: [[Float]]
    public var expAvgSq: [[Float]]
    public var ema: [[Float]]?

    /// Writes the state atomically to `path`.
    public func write(_ path: String, names: [String], shapes: [[Int]], emaShapes: [[Int]]) throws {
        var tensors: [Tensor] = []
        for (i, n) in names.enumerated() {
            tensors.append(Tensor(name: "lora." + n, shape: shapes[i], floats: factors[i]))
            tensors.append(Tensor(name: "adam.exp_avg." + n, shape: shapes[i], floats: expAvg[i]))
            tensors.append(Tensor(name: "adam.exp_avg_sq." + n, shape: shapes[i], floats: expAvgSq[i]))
        }
        for (i, e) in (ema ?? []).enumerated() { tensors.append(Tensor(name: "ema.\(i)", shape: emaShapes[i], floats: e)) }
        var rec = record
        rec.emaCount = ema?.count ?? 0
        let header = GSLRHeader(kind: .tensors, metadata: [Self.metadataKey: try JSONValue.from(rec)])
        try GSLRWriter.write(path, header: header, tensors: tensors)
    }

    /// Reads a state written by `write`; every tensor is checked against the expected names and sizes.
    public static func read(_ path: String, names: [String], shapes: [[Int]], emaShapes: [[Int]]) throws -> TrainState {
        let file: GSLRFile
        do { file = try GSLRFile.open(path) } catch { throw TrainingError.badState(path: path, problem: "\(error)") }
        guard file.kind == .tensors, let meta = file.header.metadata[metadataKey] else {
            throw TrainingError.badState(path: path, problem: "not a gslora-train state file (no \(metadataKey) metadata)")
        }
        let rec: Record
        do { rec = try meta.decode(Record.self) } catch {
            throw TrainingError.badState(path: path, problem: "its \(metadataKey) record is malformed (\(error))")
        }
        guard rec.version == 1 else { throw TrainingError.badState(path: path, problem: "state version \(rec.version); this gslora-train reads version 1") }
        guard rec.adamSteps.count == names.count else {
            throw TrainingError.badState(path: path, problem: "\(rec.adamSteps.count) optimiser entries for \(names.count) LoRA factors")
        }
        func take(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard file.contains(name) else { throw TrainingError.badState(path: path, problem: "tensor \(name) is missing") }
            let t = try file.tensor(name)
            guard t.dtype == .f32, t.shape == shape else {
                throw TrainingError.badState(path: path, problem: "tensor \(name) is \(t.dtype.rawValue) \(t.shape), expected F32 \(shape)")
            }
            return try t.floats()
        }
        var s = TrainState(record: rec, factors: [], expAvg: [], expAvgSq: [], ema: nil)
        for (n, shape) in zip(names, shapes) {
            s.factors.append(try take("lora." + n, shape))
            s.expAvg.append(try take("adam.exp_avg." + n, shape))
            s.expAvgSq.append(try take("adam.exp_avg_sq." + n, shape))
        }
        if rec.emaCount > 0 {
            guard rec.emaCount == emaShapes.count else {
                throw TrainingError.badState(path: path, problem: "\(rec.emaCount) EMA tensors, the model has \(emaShapes.count) LoRA linears")
            }
            s.ema = try emaShapes.enumerated().map { try take("ema.\($0)", $1) }
        }
        return s
    }

    /// Only the record (to check a run before building its model).
    public static func readRecord(_ path: String) throws -> Record {
        let file: GSLRFile
        do { file = try GSLRFile.open(path) } catch { throw TrainingError.badState(path: path, problem: "\(error)") }
        guard let meta = file.header.metadata[metadataKey] else {
            throw TrainingError.badState(path: path, problem: "not a gslora-train state file (no \(metadataKey) metadata)")
        }
        do { return try meta.decode(Record.self) } catch {
            throw TrainingError.badState(path: path, problem: "its \(metadataKey) record is malformed (\(error))")
        }
    }
}
