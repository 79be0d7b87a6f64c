import ArgumentParser
import CommandSupport
import Foundation
import GSLoRACluster
import GSLoRAData
import GSLoRAModel
import GSLoRATraining

/// `gslora-train pretrain`: a face-style ViT with a CosFace head trained from scratch, written as a backbone .gslr.
struct PretrainCommand: ParsableCommand, ComputeCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Train a face-style ViT (CosFace head) from scratch and write it as a backbone .gslr.",
        discussion: """
            Every parameter trains (the CosFace weight too); AdamW with no decay on biases and 1-D tensors; cosine \
            learning rate per epoch with linear warm-up from 1e-6 (spec/TRAINING.md §A.10). Images are used as they are (resized \
            to --image-size, values in [0,1]). The last epoch's weights are written, with the data's class names.

            Under mpirun or srun (README "More than one machine") every global batch is split across the ranks and the \
            gradients are summed, with the same results as one process up to float32 summation order; rank 0 alone \
            writes OUTPUT (which every rank must see) and reports.

            Before it starts, the run prints its predicted peak memory and the fastest an epoch can be, and refuses a \
            peak above the memory available (shared among the ranks on one machine; --skip-memory-check starts it \
            anyway). Every image is kept at --image-size: (train + test images) × channels × size² × 4 bytes, 10.5 GB \
            for Fashion-MNIST at 112×112×3. The rest grows with the batch, depth, width and tokens as \
            `gslora-train forget --help` gives.

            Examples:
              gslora-train pretrain --data fashion-mnist --image-size 28 --patch-size 7 --channels 1 --width 64 \\
                  --depth 4 --heads 4 --mlp-width 128 --epochs 10 --batch-size 128 --lr 1e-3 -o fmnist.gslr
              gslora-train pretrain --data faces/ -o face.gslr      (the paper's 112 px, patch 8, width 512, depth 6 model)
            """)

    @Option(help: "Training data: image folder (train/ + test/), IDX folder, `fashion-mnist`, or .npy images.") var data: String
    @Option(help: "Test data (default: DATA's test split).") var testData: String?
    @Option(help: "Labels .npy for .npy training images.") var labels: String?
    @Option(help: "Labels .npy for .npy test images.") var testLabels: String?
    @Option(name: [.short, .customLong("output")], help: "The backbone .gslr to write.") var output: String
    @Option(help: "Input side in pixels.") var imageSize = 112
    @Option(help: "Patch side in pixels.") var patchSize = 8
    @Option(help: "Image channels (1 or 3).") var channels = 3
    @Option(help: "Embedding width.") var width = 512
    @Option(help: "Transformer blocks.") var depth = 6
    @Option(help: "Attention heads.") var heads = 8
    @Option(help: "MLP hidden width.") var mlpWidth = 2048
    @Option(help: "CosFace scale s.") var s = 64.0
    @Option(help: "CosFace margin m.") var m = 0.35
    @Option(help: "Epochs.") var epochs = 10
    @Option(help: "Images per batch.") var batchSize = 64
    @Option(help: "Peak learning rate.") var lr = 6e-4
    @Option(help: "Final learning rate.") var minLR = 1e-5
    @Option(help: "Warm-up epochs (linear from 1e-6).") var warmupEpochs = 1
    @Option(help: "AdamW weight decay.") var weightDecay = 0.05
    @Option(help: "Dropout.") var dropout = 0.1
    @Option(help: "Seed of weights, batch order and dropout.") var seed: UInt64 = 1337
    @Option(help: "Append every step's numbers as JSON lines to this file.") var log: String?
    @Flag(help: "Print the final report as JSON on stdout.") var json = false
    @Flag(help: "Start even when the predicted peak memory exceeds what the machine has available.") var skipMemoryCheck = false
    @Flag(help: "Replace an existing output file (never an input).") var force = false

    func run() throws { try ClusterRun.run(train) }

    /// The run; under MPI every rank trains its share of each batch and rank 0 alone writes the model and reports.
    func train(_ world: Communicator) throws {
        try OutputPolicy.checkFile(output, inputs: [data, testData, labels, testLabels, log].compactMap { $0 }, force: force)
        var o = PretrainOptions()
        o.imageSize = imageSize
        o.patchSize = patchSize
        o.channels = channels
        o.width = width
        o.depth = depth
        o.heads = heads
        o.mlpWidth = mlpWidth
        o.s = s
        o.m = m
        o.epochs = epochs
        o.batchSize = batchSize
        o.lr = lr
        o.minLR = minLR
        o.warmupEpochs = warmupEpochs
        o.weightDecay = weightDecay
        o.dropout = dropout
        o.seed = seed
        let counts = try TrainData.imageCounts(data: data, testData: testData)
        // The class count is the data's; 10 stands in for it here (the head is a sliver of the model).
        let estimate = RunEstimate(
            config: try o.config(classes: 10), trained: .pretraining, imagesPerStep: batchSize, evalBatch: o.evalBatch,
            trainImages: counts.train, testImages: counts.test, gemmGFLOPs: ModelCost.measureGEMMSpeed())
        let console = Console()
        if world.isRoot {
            let steps = counts.train / batchSize + (counts.train % batchSize == 0 ? 0 : 1)
            console.message(estimate.summary + "; an epoch of \(steps) steps ≥ " + ProgressLine.duration(estimate.secondsPerStep * Double(steps)))
        }
        if !skipMemoryCheck, let available = RunEstimate.availableMemory() {
            try estimate.check(available: available / ClusterRun.processesOnThisMachine)
        }
        let pre = Preprocessing.direct(size: imageSize, channels: channels)
        let d = try TrainData.load(
            data: data, testData: testData, labels: labels, testLabels: testLabels, classNames: nil,
            classes: 1 << 16, preprocessing: pre)
        let runLog = world.isRoot ? try log.map { try RunLog(path: $0) } : nil
        let trainer = try Pretrainer(options: o, data: d)
        trainer.communicator = world
        let start = Date()
        if world.isRoot {
            trainer.onEvent = { e in
                switch e {
                case let .step(epoch, step, steps, loss, acc, ips):
                    try? runLog?.write("step", ["epoch": Double(epoch), "step": Double(step), "loss": loss, "train_acc": acc, "images_per_s": ips])
                    let done = Double(epoch * steps + step), total = Double(o.epochs * steps)
                    let eta = Date().timeIntervalSince(start) / done * (total - done)
                    console.progress(
                        String(
                            format: "epoch %d/%d  step %d/%d  loss %.4f  train acc %.1f  %.0f img/s  ETA ",
                            epoch + 1, o.epochs, step, steps, loss, acc, ips) + ProgressLine.duration(eta))
                case let .epochFinished(r):
                    try? runLog?.write("epoch", r)
                    console.message(
                        String(
                            format: "epoch %d/%d: loss %.4f  train acc %.2f  test acc %.2f (margin %.2f)  lr %.3g  %.1fs",
                            r.epoch + 1, o.epochs, r.loss, r.trainAccuracy, r.testAccuracy, r.testAccuracyMargin, r.lr, r.seconds))
                }
            }
        }
        let report = try trainer.run(output: output)
        guard world.isRoot else { return }
        if let last = report.epochs.last {
            console.message(
                output
                    + String(
                        format: ": %d parameters, %d classes, test acc %.2f (margin %.2f), %.0fs", report.parameters,
                        d.train.classNames.count, last.testAccuracy, last.testAccuracyMargin, report.seconds))
        }
        if json { try Console.json(report) }
    }
}
