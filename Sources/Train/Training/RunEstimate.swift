import Foundation
import GSLoRAFormat
import GSLoRAModel

/// What a training run needs before it starts: its peak memory, item by item, and the time of a step at the
/// machine's measured GEMM speed. A run is sized from its config, batch and data set sizes alone (no data is
/// loaded), so one that cannot fit is refused with these numbers before anything is allocated.
public struct RunEstimate: Codable, Sendable, Equatable {
    /// What is trained: LoRA factors on a frozen backbone (GS-LoRA), or every weight (pre-training, baselines).
    public enum Trained: Codable, Sendable, Equatable {
        case lora(rank: Int)
        /// All parameters of a loaded backbone, with this many extra full copies of the weights (a teacher, an
        /// anchor, importances).
        case allParameters(extraCopies: Int)
        /// All parameters of a model made in memory (pre-training).
        case pretraining
    }

    /// The backbone's weights, and the merged or trainable copies the run makes of them.
    public var weightBytes: Int
    /// Training and test images at the model's input size, float32 (preprocessed once, kept for the run).
    public var dataBytes: Int
    /// Activations kept for the backward pass and the backward pass's scratch, for one step's images.
    public var activationBytes: Int
    /// Activations of an evaluation batch.
    public var evaluationBytes: Int
    /// Gradients and AdamW's two moments of what is trained.
    public var optimizerBytes: Int
    /// Runtime, libraries and their thread buffers.
    public var overheadBytes: Int
    /// FLOPs of one step's products (`ModelCost.trainingFLOPs`; the trainers' models run the last block on the class
    /// token alone with class-token pooling, `ViT.allTokensInLastBlock` false, and on every token with mean pooling).
    public var flopsPerStep: Double
    /// The measured GEMM speed the time is predicted at.
    public var gemmGFLOPs: Double

    /// Runtime, libraries and their thread buffers: what the peak of a run with a tiny model holds beyond its items.
    public static let overhead = 64 << 20

    public var peakBytes: Int { weightBytes + dataBytes + activationBytes + evaluationBytes + optimizerBytes + overheadBytes }

    /// The fastest a step can be: its products at the measured GEMM speed (elementwise work and threading add to it).
    public var secondsPerStep: Double { flopsPerStep / (gemmGFLOPs * 1e9) }

    public init(
        config c: ModelConfig, trained: Trained, imagesPerStep: Int, evalBatch: Int, trainImages: Int, testImages: Int,
        gemmGFLOPs: Double
    ) {
        let weights = Double(ModelCost.parameters(c)) * 4
        let values = Double(c.channels) * Double(c.imageSize) * Double(c.imageSize)
        dataBytes = ModelCost.clamped((Double(trainImages) + Double(testImages)) * values * 4)
        evaluationBytes = ModelCost.activationBytes(c, batch: evalBatch, loraRank: 0, training: false)
        overheadBytes = Self.overhead
        self.gemmGFLOPs = gemmGFLOPs
        switch trained {
        case let .lora(rank):
            // The backbone's mapped file (its float32 weights are used in place, not copied) and, from the second task
            // on, the fc1/fc2 weights the finished tasks were folded into (less than one more copy).
            weightBytes = ModelCost.clamped(2 * weights)
            activationBytes = ModelCost.activationBytes(c, batch: imagesPerStep, loraRank: rank, training: true, weightGradients: false)
            optimizerBytes = ModelCost.clamped(3 * Double(ModelCost.loraParameters(c, rank: rank)) * 4)
            flopsPerStep = Double(imagesPerStep) * ModelCost.trainingFLOPs(c, loraRank: rank, allParameters: false, classOnlyLastBlock: c.pooling == "cls")
        case .allParameters, .pretraining:
            // The mapped weights, the trained copy (`FloatBuffer.detach`) and the extra copies; pre-training has the
            // trained copy alone.
            let copies = if case let .allParameters(extra) = trained { 2 + Double(extra) } else { 1.0 }
            weightBytes = ModelCost.clamped(copies * weights)
            activationBytes = ModelCost.activationBytes(c, batch: imagesPerStep, loraRank: 0, training: true)
            optimizerBytes = ModelCost.clamped(3 * weights)
            flopsPerStep = Double(imagesPerStep) * ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true, classOnlyLastBlock: c.pooling == "cls")
        }
    }

    /// Memory this process can still use: the smaller of the kernel's MemAvailable and the cgroup's limit less its
    /// usage (containers); nil where neither can be read.
    public static func availableMemory() -> Int? {
        func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
        var best: Int?
        if let info = read("/proc/meminfo"),
            let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
            let kb = Int(line.split(separator: " ").dropFirst().first ?? "")
        {
            best = kb * 1024
        }
        if let limit = read("/sys/fs/cgroup/memory.max").flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
            let used = read("/sys/fs/cgroup/memory.current").flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        {
            best = min(best ?? Int.max, max(0, limit - used))
        }
        return best
    }

    /// Refuses a run whose predicted peak exceeds `available` bytes, naming every item and what shrinks it.
    public func check(available: Int) throws {
        guard peakBytes > available else { return }
        throw TrainingError.tooLarge(
            "the run needs about \(Self.text(peakBytes)) at its peak (\(breakdown)) but \(Self.text(available)) of memory is available. "
                + "Lower \(Setting("batchSize")) (activations) or the evaluation batch, use less data or smaller images, "
                + "or free memory; \(Setting("skipMemoryCheck")) starts it anyway")
    }

    /// One line for the start of a run: the predicted peak and what it is made of, and the fastest a step can be.
    public var summary: String {
        "predicted: peak memory ≈ \(Self.text(peakBytes)) per process (\(breakdown)); a step takes ≥ "
            + String(format: "%.2f s (%.1f GFLOP at the measured %.0f GFLOP/s GEMM)", secondsPerStep, flopsPerStep / 1e9, gemmGFLOPs)
    }

    /// The items of the peak, largest first.
    public var breakdown: String {
        [
            ("data", dataBytes), ("weights", weightBytes), ("activations", activationBytes), ("evaluation", evaluationBytes),
            ("gradients and AdamW", optimizerBytes), ("runtime", overheadBytes)
        ]
        .filter { $0.1 > 0 }.sorted { $0.1 > $1.1 }.map { "\($0.0) \(Self.text($0.1))" }.joined(separator: ", ")
    }

    /// "1.23 GB" (10⁹ bytes) or "456 MB".
    public static func text(_ bytes: Int) -> String {
        bytes >= 1_000_000_000 ? String(format: "%.2f GB", Double(bytes) / 1e9) : String(format: "%.0f MB", Double(bytes) / 1e6)
    }
}
