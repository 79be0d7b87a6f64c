import Foundation
import GSLoRAData
import GSLoRATraining

/// How `gslora-demo` runs: where, on what data, and the pre-training and forgetting recipes of its two presets.
public struct DemoOptions: Sendable {
    /// Output folder: pretrained.gslr (the cache), one folder per run, report.md/report.json/plots.
    public var output = "gslora-demo-out"
    /// A Fashion-MNIST IDX folder (Debian's dataset-fashion-mnist by default).
    public var data = FashionMNIST.directory
    public var seed: UInt64 = 1337
    /// Also run GS-LoRA++ with few-shot data.
    public var plus = false
    /// The shortened CI job: a few hundred images, one epoch, a small model; every stage still runs.
    public var quick = false
    /// Use this backbone .gslr instead of pre-training one (it must be a face_vit model for the data).
    public var backbone: String?
    /// Use only the first N training / test images (quick: a few hundred).
    public var trainLimit: Int?
    public var testLimit: Int?
    public var pretrain: PretrainOptions
    /// GS-LoRA (full data, ratio) and GS-LoRA++ (few-shot) recipes.
    public var forgetting: TrainOptions
    public var forgettingPlus: TrainOptions

    /// Forget these classes, one list per task, instead of 2 per task from the seeded class order (both runs).
    public mutating func forget(tasks: [[Int]]) {
        for keyPath in [\DemoOptions.forgetting, \DemoOptions.forgettingPlus] {
            self[keyPath: keyPath].forget = tasks
            self[keyPath: keyPath].tasks = tasks.count
        }
    }

    /// The default job: a 6-block face-style ViT on 28×28 Fashion-MNIST, 4 tasks × 2 classes. Pre-training runs 7
    /// epochs (fewer ended below or too near the 85 % accuracy floor); forgetting uses data ratio 0.1 and 15 epochs per
    /// task, the least that kept every task's Acc_f at 0 and Acc_o within its check. How these were chosen: bench/RESULTS.md.
    public init(seed: UInt64 = 1337, quick: Bool = false) {
        self.seed = seed
        self.quick = quick
        var p = PretrainOptions()
        p.imageSize = 28
        p.patchSize = 7
        p.channels = 1
        p.width = 64
        p.depth = 6
        p.heads = 4
        p.mlpWidth = 256
        p.epochs = 7
        p.batchSize = 128
        p.lr = 2e-3
        p.warmupEpochs = 0
        p.dropout = 0
        p.seed = seed

        var f = TrainOptions()
        f.seed = seed
        f.tasks = 4
        f.classesPerTask = 2
        f.dataRatio = 0.1
        f.epochs = [15]
        f.batchSize = 32
        f.rank = 8
        f.pruneThreshold = 1e-3
        f.evalBatch = 256

        var plusOptions = f
        plusOptions.plus = true
        plusOptions.shots = 4
        plusOptions.batchSize = 4
        // Retain drives the epoch, so 4 shots of 8/6/4/2 retained classes make 8/6/4/2 steps per epoch. lr 3e-2 and 20
        // epochs in task 1: at the paper's 1e-2 the last task's forget images kept their class on this backbone. The
        // recipe is sensitive to seeds and float rounding (bench/RESULTS.md).
        plusOptions.epochs = [20, 30, 30, 100]
        plusOptions.lr = 3e-2
        plusOptions.emaStart = nil
        plusOptions.prototypeMargin = 50
        // The paper's continual few-shot recipe (spec/TRAINING.md §A.7): β and w_f per task, M 50.
        plusOptions.beta = [0.3, 0.4, 0.28, 0.2]
        plusOptions.prototypeForget = [0.015, 0.06, 0.025, 0.012]

        if quick {
            trainLimit = 600
            testLimit = 300
            p.width = 32
            p.depth = 2
            p.heads = 2
            p.mlpWidth = 64
            p.epochs = 1
            p.batchSize = 64
            f.epochs = [1]
            f.dataRatio = 0.5
            f.batchSize = 16
            plusOptions.epochs = [1]
        }
        pretrain = p
        forgetting = f
        forgettingPlus = plusOptions
    }
}
