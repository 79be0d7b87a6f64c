import ArgumentParser
import CommandSupport
import Dispatch
import Foundation
import GSLoRAFormat
import GSLoRAModel
import GSLoRATraining

/// `gslora-bench case`: one case of one model in this process (what `sizes` runs as a child per row, so that each
/// row's peak memory is its own), printed as a short table or, with --json, as one JSON line.
struct SizeCaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "case",
        abstract: "One case of the sizes bench (forward, GS-LoRA step or all-parameters step of one model), with its GEMM ceiling.",
        discussion: """
            Examples:
              gslora-bench case --model vit-b16 --case forward
              gslora-bench case --model vit-l16 --case gslora --steps 3 --json
            """)

    @Option(help: "Model.") var model: BenchModel = .vitB16
    @Option(name: .customLong("case"), help: "Case: forward (batch 32, eval), gslora (4 + 4 images, rank 8), allparams (8 images).")
    var kind: BenchCase = .forward
    @Option(help: "Timed calls or steps (after one untimed warm-up).") var steps = 3
    @Flag(help: "Print one JSON line instead of the table.") var json = false
    @Flag(help: "Leave out the GEMM ceiling (its products would show in a profile of this process).") var skipCeiling = false

    func run() throws {
        try ComputeEnvironment.prepare()
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        let r = try SizeCase.measure(model: model, kind: kind, steps: steps, ceiling: !skipCeiling)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(r.summary)
        }
    }
}

/// What one case measured. Times in seconds, work in GFLOP (2 × multiply-adds of every GEMM, elementwise excluded).
struct SizeCaseResult: Codable {
    var model: String
    var kind: String
    var seconds: Double
    var times: [Double]
    var gflop: Double
    /// The GEMM ceiling: the faster engine's GFLOP/s over the case's linear-layer shapes (Σ FLOPs / Σ best times).
    var ceilingGFLOPs: Double
    var ceilingEngine: String
    var openBLASGFLOPs: Double
    var oneDNNGFLOPs: Double
    // NaN when not measured (--skip-ceiling); JSON then carries "nan".
    /// VmHWM right after the timed steps (before the ceiling's buffers are allocated).
    var peakRSSBytes: Int
    var parameterBytes: Int
    /// The model's activation buffers after the timed calls (ViTActivations' public buffers: per block in training,
    /// shared in eval; the per-head Q/K/V copies, backward scratch and GEMM packing are not among them).
    var activationBytes: Int?
    var forwardGFLOPPerImage: Double
    /// Median seconds per phase of a training step (forward, backward, loss, update); empty for the forward case.
    var phases: [String: Double]
    /// Process CPU seconds (all threads) per timed call or step.
    var cpuSeconds: Double
    var loadAverage: Double

    var achievedGFLOPs: Double { gflop / seconds }
    var ceilingSeconds: Double { gflop / ceilingGFLOPs }

    var summary: String {
        let f = { (x: Double, d: Int) in String(format: "%.\(d)f", x) }
        var lines = [
            "\(model) \(kind): median \(f(seconds, 3)) s of \(times.count) (\(times.map { f($0, 3) }.joined(separator: ", ")))",
            "work \(f(gflop, 1)) GFLOP → \(f(achievedGFLOPs, 1)) GFLOP/s",
            "GEMM ceiling \(f(ceilingGFLOPs, 1)) GFLOP/s (\(ceilingEngine); OpenBLAS \(f(openBLASGFLOPs, 1)), oneDNN \(f(oneDNNGFLOPs, 1))) → \(f(ceilingSeconds, 3)) s = \(f(ceilingSeconds / seconds * 100, 0)) % of it",
            "CPU seconds per call or step (all threads) \(f(cpuSeconds, 3))",
            "peak RSS \(f(Double(peakRSSBytes) / 1e6, 0)) MB; parameters \(f(Double(parameterBytes) / 1e6, 0)) MB; activation buffers \(activationBytes.map { f(Double($0) / 1e6, 0) + " MB" } ?? "n/a"); load average \(f(loadAverage, 2))"
        ]
        if !phases.isEmpty {
            lines.append("phases (median s): " + phases.sorted { $0.key < $1.key }.map { "\($0.key) \(f($0.value, 3))" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }
}

enum SizeCase {
    static let forwardBatch = 32, stepBatch = 4, rank = 8
    static let dropout: Float = 0.1

    static func measure(model m: BenchModel, kind: BenchCase, steps: Int, ceiling measureCeiling: Bool = true) throws -> SizeCaseResult {
        let c = m.config
        let per = c.channels * c.imageSize * c.imageSize
        var rng = SplitMix64(seed: 3)
        // The models below run their last block on the class token alone (ViT's default).
        let forwardPerImage = ModelCost.forwardFLOPs(c, classOnlyLastBlock: true)
        var times: [Double] = [], phases: [String: Double] = [:], cpu = 0.0
        // Process CPU seconds (all threads) of the timed iterations: on a shared host the less load-dependent number.
        func counted<R>(_ i: Int, _ body: () throws -> R) rethrows -> R {
            let c0 = cpuSeconds()
            defer { if i > 0 { cpu += cpuSeconds() - c0 } }
            return try body()
        }
        let images: Int, gflop: Double, parameterBytes: Int, activationBytes: Int
        switch kind {
        case .forward:
            images = forwardBatch
            let params = try ViTParameters.random(config: c, seed: 1)
            parameterBytes = params.allBuffers.reduce(0) { $0 + $1.count * 4 }
            let model = try ViT(config: c, parameters: params)
            let x = (0..<(images * per)).map { _ in rng.nextUnitFloat() }
            let labels = (0..<images).map { $0 % c.numClasses }
            for i in 0...steps {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try counted(i) { try model.forward(images: x, batch: images, labels: labels) }
                if i > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
            }
            gflop = Double(images) * forwardPerImage / 1e9
            activationBytes = bytes(of: model.activations)
        case .gslora:
            images = 2 * stepBatch
            let adapter = try LoRAAdapter(config: c, rank: rank, seed: 2)
            // Nonzero B, as after the first steps (B = 0 would make the lasso's gradient and the LoRA products trivial).
            for f in adapter.fc1 + adapter.fc2 { for i in 0..<f.b.count { f.b.pointer[i] = (rng.nextUnitFloat() - 0.5) * 0.02 } }
            let params = try ViTParameters.random(config: c, seed: 1)
            parameterBytes = params.allBuffers.reduce(0) { $0 + $1.count * 4 }
            let model = try ViT(config: c, parameters: params, adapters: [adapter])
            let step = try GSLoRAStep(model: model, grouping: .block)
            let settings = try ObjectiveSettings(beta: 0.2, bound: 105, alpha: 1e-4)
            let retain = (0..<(stepBatch * per)).map { _ in rng.nextUnitFloat() }
            let forget = (0..<(stepBatch * per)).map { _ in rng.nextUnitFloat() }
            let retainLabels = (0..<stepBatch).map { $0 % 80 }, forgetLabels = (0..<stepBatch).map { 80 + $0 % 20 }
            var all: [StepTimings] = []
            for i in 0...steps {
                let r = try counted(i) {
                    try retain.withUnsafeBufferPointer { rp in
                        try forget.withUnsafeBufferPointer { fp in
                            try step.step(
                                retainImages: rp, retainLabels: retainLabels, forgetImages: fp, forgetLabels: forgetLabels,
                                prototypes: nil, settings: settings, lr: 1e-2, dropout: dropout)
                        }
                    }
                }
                if i > 0 { all.append(r.timings) }
            }
            (times, phases) = split(all)
            activationBytes = bytes(of: model.activations)
            gflop = Double(images) * ModelCost.trainingFLOPs(c, loraRank: rank, allParameters: false, classOnlyLastBlock: true) / 1e9
        case .allparams:
            images = 2 * stepBatch
            let params = try ViTParameters.random(config: c, seed: 1)
            parameterBytes = params.allBuffers.reduce(0) { $0 + $1.count * 4 }
            let pre = try PretrainStep(model: try ViT(config: c, parameters: params))
            let x = (0..<(images * per)).map { _ in rng.nextUnitFloat() }
            let labels = (0..<images).map { $0 < stepBatch ? $0 % 80 : 80 + $0 % 20 }
            var all: [StepTimings] = []
            for i in 0...steps {
                let r = try counted(i) { try x.withUnsafeBufferPointer { try pre.step(images: $0, labels: labels, lr: 1e-4, dropout: dropout) } }
                if i > 0 { all.append(r.timings) }
            }
            (times, phases) = split(all)
            activationBytes = bytes(of: pre.model.activations)
            gflop = Double(images) * ModelCost.trainingFLOPs(c, loraRank: 0, allParameters: true, classOnlyLastBlock: true) / 1e9
        }
        let peak = Int((PeakRSS.megabytes() ?? 0) * 1024 * 1024)
        let load = loadAverage()
        let ceiling = measureCeiling ? try GEMMCeiling.measure(c, rows: images * c.numTokens) : (.nan, "not measured", .nan, .nan)
        return SizeCaseResult(
            model: m.rawValue, kind: kind.rawValue, seconds: median(times), times: times, gflop: gflop,
            ceilingGFLOPs: ceiling.best, ceilingEngine: ceiling.engine, openBLASGFLOPs: ceiling.openBLAS,
            oneDNNGFLOPs: ceiling.oneDNN, peakRSSBytes: peak, parameterBytes: parameterBytes, activationBytes: activationBytes,
            forwardGFLOPPerImage: forwardPerImage / 1e9, phases: phases, cpuSeconds: cpu / Double(steps), loadAverage: load)
    }

    /// Bytes of the activation buffers a forward call left, each shared buffer once (see `SizeCaseResult.activationBytes`).
    static func bytes(of a: ViTActivations) -> Int { a.residentFloats * 4 }

    static func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }

    /// Step totals and the median of each phase.
    private static func split(_ t: [StepTimings]) -> ([Double], [String: Double]) {
        (
            t.map(\.total),
            [
                "forward": median(t.map(\.forward)), "backward": median(t.map(\.backward)), "loss": median(t.map(\.loss)),
                "update": median(t.map(\.update))
            ]
        )
    }

    static func cpuSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// The 1-minute load average (getloadavg), the share of the machine other work took while measuring.
    static func loadAverage() -> Double {
        var l = [0.0, 0.0, 0.0]
        return getloadavg(&l, 3) >= 1 ? l[0] : .nan
    }
}

/// The float32 GEMM ceiling of a model's linear layers at a given row count: each engine (OpenBLAS sgemm, oneDNN's
/// float32 matmul, which the linear layers run on) times qkv, proj, fc1 and fc2 of `rows` rows (best of three after a
/// warm-up), and its rate is Σ FLOPs / Σ times; the ceiling is the faster engine's.
enum GEMMCeiling {
    static func measure(_ c: ModelConfig, rows m: Int) throws -> (best: Double, engine: String, openBLAS: Double, oneDNN: Double) {
        let inner = c.heads * c.headDim, w = c.width
        let shapes = [(3 * inner, w), (w, inner), (c.mlpWidth, w), (w, c.mlpWidth)] // (n, k)
        let maxA = shapes.map { m * $0.1 }.max()!, maxB = shapes.map { $0.0 * $0.1 }.max()!, maxC = shapes.map { m * $0.0 }.max()!
        let a = FloatBuffer(count: maxA), b = FloatBuffer(count: maxB), out = FloatBuffer(count: maxC)
        a.fill(0.5)
        b.fill(0.25)
        let flops = shapes.reduce(0.0) { $0 + 2 * Double(m) * Double($1.0) * Double($1.1) }
        func rate(_ product: (Int, Int) throws -> Void) rethrows -> Double {
            var total = 0.0
            for (n, k) in shapes {
                try product(n, k)
                var best = Double.infinity
                for _ in 0..<3 {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try product(n, k)
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                }
                total += best
            }
            return flops / total / 1e9
        }
        let blas = rate { n, k in
            BLAS.gemm(transB: true, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: k, c: out.pointer, ldc: n)
        }
        let mm = F32Matmul()
        let dnnl = try rate { n, k in
            try mm.product(weight: b, outFeatures: n, inFeatures: k, input: a.pointer, rows: m, out: out.pointer, ldc: n)
        }
        return blas >= dnnl ? (blas, "OpenBLAS", blas, dnnl) : (dnnl, "oneDNN", blas, dnnl)
    }
}
