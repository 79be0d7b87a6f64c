import ArgumentParser
import CommandSupport
import Dispatch
import Foundation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining

/// `gslora-bench train`: one GS-LoRA step (retain + forget batch, rank-8 LoRA on every FFN linear, block groups)
/// and one all-parameters pre-training step on the full-size face transformer with random weights, timed by phase,
/// against PyTorch's anchors on the same machine.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "GS-LoRA step and all-parameters step of the face ViT-P8S8 (112 px, width 512, depth 6, 8 heads, MLP 2048, 100 classes) or --model.")

    @Option(help: "Model (PyTorch anchors: p8s8 only; `sizes` measures PyTorch for every model).")
    var model: BenchModel = .p8s8

    @Option(help: "Images per batch (each of retain and forget for GS-LoRA; the all-parameters step takes twice this).") var batch = 4
    @Option(help: "Timed steps of each kind (after one warm-up step).") var steps = 10
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "Dropout in the timed steps.") var dropout = 0.1
    @Option(help: "Precisions of the GS-LoRA steps, in order (float32, bf16; comma-separated).")
    var precision = "float32,bf16"
    @Flag(help: "Skip the all-parameters step (e.g. to profile the GS-LoRA step alone).") var skipAllParameters = false

    func run() throws {
        try ComputeEnvironment.prepare()
        guard batch > 0, steps > 0, rank > 0 else { throw ValidationError("batch, steps and rank must be positive") }
        let precisions = try precision.split(separator: ",").map { p in
            guard let m = MatmulPrecision(rawValue: String(p)) else { throw ValidationError("unknown precision '\(p)': use float32 or bf16") }
            return m
        }
        print(
            try TrainBenchmark.measure(
                model: model, batch: batch, steps: steps, rank: rank, dropout: Float(dropout), precisions: precisions,
                allParameters: !skipAllParameters))
    }
}

enum TrainBenchmark {
    static func measure(
        model benchModel: BenchModel, batch: Int, steps: Int, rank: Int, dropout: Float, precisions: [MatmulPrecision],
        allParameters: Bool
    ) throws -> String {
        let c = benchModel.config, face = benchModel == .p8s8
        // PyTorch's numbers for the face model (2 threads, MKL); other models: `gslora-bench sizes` measures PyTorch.
        let gsAnchor = face ? "PyTorch 0.92 s" : "", gsMemory = face ? "PyTorch 1.6 GB" : ""
        var rng = SplitMix64(seed: 3)
        let per = c.channels * c.imageSize * c.imageSize
        let retain = (0..<(batch * per)).map { _ in rng.nextUnitFloat() }, forget = (0..<(batch * per)).map { _ in rng.nextUnitFloat() }
        let retainLabels = (0..<batch).map { $0 % 80 }, forgetLabels = (0..<batch).map { 80 + $0 % 20 }
        let fmt = { (x: Double, d: Int) in String(format: "%.\(d)f", x) }
        var rows: [(String, String, String)] = []
        let generic = ["Prescott", "Core2", "Nehalem", "Atom"].contains(BLAS.coreName)
        rows.append(("gslora kernels (GSLORA_KERNELS)", KernelLevel.active.rawValue, "best on this CPU: \(KernelLevel.best.rawValue)"))
        rows.append(
            (
                "OpenBLAS kernel / BLAS threads / cores", "\(BLAS.coreName) / \(BLAS.threads) / \(ProcessInfo.processInfo.activeProcessorCount)",
                generic ? "generic kernel: rerun with OPENBLAS_CORETYPE=Haswell" : ""
            ))
        // The step's products are 2·batch images tall (retain and forget run together).
        let m = 2 * batch * c.numTokens
        let sgemm = ForwardBenchmark.sgemmGFLOPs(m: m, n: c.mlpWidth, k: c.width)
        let brgemm = try ForwardBenchmark.oneDNNGFLOPs(m: m, n: c.mlpWidth, k: c.width)
        let ceiling = max(sgemm, brgemm)
        rows.append(
            (
                "float32 GFLOP/s, \(m)×\(c.mlpWidth)×\(c.width): OpenBLAS / oneDNN", "\(fmt(sgemm, 0)) / \(fmt(brgemm, 0))",
                "the faster is the GEMM ceiling used below"
            ))

        // GS-LoRA step.
        let adapter = try LoRAAdapter(config: c, rank: rank, seed: 2)
        for f in adapter.fc1 + adapter.fc2 { for i in 0..<f.b.count { f.b.pointer[i] = (rng.nextUnitFloat() - 0.5) * 0.02 } }
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 1), adapters: [adapter])
        let step = try GSLoRAStep(model: model, grouping: .block)
        let embeddings = try model.forward(images: retain + forget, batch: 2 * batch).embeddings
        let protos = try PrototypeTable.mean(embeddings: embeddings, labels: retainLabels + forgetLabels, dim: c.width, classes: c.numClasses)
        let settings = try ObjectiveSettings(beta: 0.2, bound: 105, alpha: 1e-4, prototypeForgetWeight: 0.01, prototypeMargin: 18)
        func gsSteps() throws -> [StepTimings] {
            var gs: [StepTimings] = []
            for i in 0...steps {
                let r = try retain.withUnsafeBufferPointer { rp in
                    try forget.withUnsafeBufferPointer { fp in
                        try step.step(
                            retainImages: rp, retainLabels: retainLabels, forgetImages: fp, forgetLabels: forgetLabels,
                            prototypes: protos, settings: settings, lr: 1e-2, dropout: dropout)
                    }
                }
                if i > 0 { gs.append(r.timings) }
            }
            return gs
        }
        func median(_ t: [StepTimings]) -> Double { let v = t.map(\.total).sorted(); return v[v.count / 2] }
        var float32Median: Double? = nil
        for p in precisions {
            // The first (warm-up) step of a bf16 run packs the weights.
            model.precision = p
            let t = try gsSteps()
            switch p {
            case .float32:
                float32Median = median(t)
                let flops =
                    Double(2 * batch) * ModelCost.trainingFLOPs(c, loraRank: rank, allParameters: false, classOnlyLastBlock: !model.allTokensInLastBlock)
                rows += phaseRows(
                    "GS-LoRA step (\(batch)+\(batch) images, rank \(rank), GS-LoRA++ loss; linear layers on oneDNN \(model.f32.implementations.joined(separator: ", ")))",
                    t, flops: flops, ceiling: ceiling,
                    anchor: gsAnchor, fmt: fmt)
            case .bf16:
                rows.append(("GS-LoRA step, --precision bf16 (oneDNN \(model.bf16.implementations.joined(separator: ", ")))", "", ""))
                rows.append(
                    (
                        "  seconds per step (median)", fmt(median(t), 3),
                        (face ? "\(fmt(0.92 / median(t), 2))× faster than PyTorch's 0.92 s" : "")
                            + (float32Median.map { "; float32 here \(fmt($0, 3)) s" } ?? "")
                    ))
                rows.append(
                    (
                        "  forward / backward / loss+head / AdamW",
                        [\StepTimings.forward, \.backward, \.loss, \.update].map { k in
                            let v = t.map { $0[keyPath: k] }.sorted(); return fmt(v[v.count / 2], 3)
                        }.joined(separator: " / "), "seconds"
                    ))
            }
            rows.append(
                (
                    "  peak RSS (VmHWM) after the \(p.rawValue) steps", PeakRSS.megabytes().map { "\(fmt($0, 0)) MB" } ?? "n/a",
                    p == .bf16 ? "packed bf16 weights \(fmt(Double(model.bf16.packedWeightBytes) / 1e6, 1)) MB; \(gsMemory)" : gsMemory
                ))
        }

        if allParameters {
            // All-parameters step (pre-training), on the same 2·batch images.
            let full = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 1))
            let pre = try PretrainStep(model: full)
            let images = retain + forget, labels = retainLabels + forgetLabels
            var ps: [StepTimings] = []
            for i in 0...steps {
                let r = try images.withUnsafeBufferPointer { try pre.step(images: $0, labels: labels, lr: 1e-4, dropout: dropout) }
                if i > 0 { ps.append(r.timings) }
            }
            let allFlops =
                Double(2 * batch) * ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true, classOnlyLastBlock: !full.allTokensInLastBlock)
            rows += phaseRows(
                "all-parameters step (\(2 * batch) images)", ps, flops: allFlops, ceiling: ceiling, anchor: face ? "PyTorch 1.34 s" : "", fmt: fmt)
            rows.append(("  peak RSS (VmHWM) of the whole run", PeakRSS.megabytes().map { "\(fmt($0, 0)) MB" } ?? "n/a", ""))
        }

        let w0 = rows.map(\.0.count).max()!, w1 = rows.map(\.1.count).max()!
        let lines = rows.map {
            $0.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + $0.1.padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + $0.2
        }
        return (["train: \(benchModel.title), random weights, median of \(steps) steps"] + lines).joined(separator: "\n")
    }

    /// Median per phase, and the share a GEMM-bound run would take (GEMM FLOPs at the measured float32 ceiling).
    static func phaseRows(
        _ title: String, _ t: [StepTimings], flops: Double, ceiling: Double, anchor: String,
        fmt: (Double, Int) -> String
    ) -> [(String, String, String)] {
        func median(_ f: (StepTimings) -> Double) -> Double { let v = t.map(f).sorted(); return v[v.count / 2] }
        let total = median(\.total), gemm = flops / (ceiling * 1e9)
        return [
            (title, "", ""),
            ("  seconds per step (median)", fmt(total, 3), anchor),
            (
                "  forward / backward / loss+head / AdamW",
                [median(\.forward), median(\.backward), median(\.loss), median(\.update)].map { fmt($0, 3) }.joined(separator: " / "), "seconds"
            ),
            (
                "  GEMM work", "\(fmt(flops / 1e9, 1)) GFLOP",
                "≈\(fmt(gemm, 3)) s at the float32 ceiling; the rest (≈\(fmt(max(0, total - gemm), 3)) s) is elementwise, attention softmax, GEMM below peak"
            )
        ]
    }
}
