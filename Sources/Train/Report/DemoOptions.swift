import Apply
import Foundation

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

    /// The default job: a 6-block face-style ViT on 28×28 Fashion-MNIST, 4 tasks × 2 classes.
    ///
    /// Budget, measured on the 2-core machine (CPU seconds, all threads, under load): pre-training costs ≈ 190 CPU s
    /// per epoch (≈ 420 images per CPU second); 3 epochs gave 83.5 % plain-cosine test accuracy (79.3 / 81.3 / 83.5
    /// per epoch), below the 85 % floor. 5 epochs gave 85.15 % and then, after a change of summation order in the
    /// forward pass alone, 84.66 %: too close to the floor, hence 7 (≈ 32 s each on 2 idle cores). Forgetting at data
    /// ratio 0.05 × 5 epochs cost ≈ 160 CPU s for all four tasks but left task 4 (95 steps: retain drives the epoch and only 2 classes remain) at Acc_f 49.9 %;
    /// tasks with ≥ 190 steps reached 0 %, so the ratio is 0.1. At 5 epochs per task (task 4: 190 steps) the last task
    /// brought an earlier-forgotten class back (Bag: 92.6 %, Acc_o 15.4 %); at 12 epochs per task, the count the
    /// official Fashion-MNIST comparison uses, Acc_o stayed ≤ 0.05 % in every task (seed 1337) until session 5's
    /// changes (retain and forget in one batch, so other dropout draws; a new GELU; oneDNN's float32 products in
    /// pre-training) moved it to 1.0 / 2.83 % in tasks 2 / 3, over the 2 % check. 15 epochs keep Acc_o ≤ 0.05 %.
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
        // Retain drives the epoch, so 4 shots of 8/6/4/2 retained classes make 8/6/4/2 steps per epoch; the last task
        // keeps only the two shoe classes. At the paper's lr 1e-2 (30/30/30/100 epochs) that task failed on this
        // backbone for some draws: its 4 Shirt images stay Shirt with p ≈ 1, where the pushed-up CE has no gradient,
        // and every clothing image follows them (seed 1337: Acc_f 50 %; seed 2: an old class back at 2.6 %). At lr 3e-2
        // they leave; 20 epochs in task 1 keep its retained classes within bounds (30 lost 6.3 points). This recipe
        // passed every check for forgetting seeds 1, 2, 3 and 1337 on the 7-epoch backbone, but it sits on a knife
        // edge: after session 4's fused kernels (float32 rounding only, parity tests unchanged) seed 1337's task 4
        // lets Bag back (Acc_o 8.0 %), and other seeds on the demo's class-order path fail tasks 1–2 either way. After
        // session 5's changes (one batch for retain and forget, so other dropout draws) it is Acc_o 2.13 % there.
        plusOptions.epochs = [20, 30, 30, 100]
        plusOptions.lr = 3e-2
        plusOptions.emaStart = nil
        plusOptions.prototypeMargin = 50
        // The paper's continual few-shot recipe (GSLORA.md §7): β and w_f per task, M 50.
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
