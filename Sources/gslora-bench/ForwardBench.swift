import ArgumentParser
import CommandSupport
import Dispatch
import Foundation
import GSLoRAFormat
import GSLoRAModel

/// `gslora-bench forward`: eval-mode throughput and peak memory of the full-size face transformer
/// (GSLORA.md §1.1) on random weights, against PyTorch's anchor on the same machine; float32, then the opt-in bf16
/// precision on the same model and batch.
struct ForwardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Forward pass of the face ViT-P8S8 (112 px, width 512, depth 6, 8 heads, MLP 2048, 100 classes) or --model, random weights.")

    @Option(help: "Model (PyTorch anchors: p8s8 only; `sizes` measures PyTorch for every model).")
    var model: BenchModel = .p8s8

    @Option(help: "Images per forward call.") var batch = 32
    @Option(help: "Timed forward calls (after one warm-up call).") var iterations = 5
    @Option(help: "LoRA rank applied live on every FFN linear (0: none, i.e. merged weights).") var loraRank = 0
    @Flag(help: "Run the last block on every token, not only the class token (same outputs, the work before the shortcut).")
    var allTokens = false

    func run() throws {
        try ComputeEnvironment.prepare()
        let config = model.config
        guard batch > 0, iterations > 0, loraRank >= 0 else { throw ValidationError("batch, iterations must be positive, lora-rank non-negative") }
        let report = try ForwardBenchmark.measure(
            config: config, batch: batch, iterations: iterations, loraRank: loraRank,
            allTokens: allTokens, model: model)
        print(report.table)
    }
}

/// The measurement itself, separate from argument parsing.
enum ForwardBenchmark {
    struct Report {
        var table: String
    }

    static func measure(config c: ModelConfig, batch: Int, iterations: Int, loraRank: Int, allTokens: Bool, model m: BenchModel) throws -> Report {
        let adapters = loraRank > 0 ? [try LoRAAdapter(config: c, rank: loraRank, seed: 2)] : []
        let model = try ViT(config: c, parameters: try ViTParameters.random(config: c, seed: 1), adapters: adapters)
        model.allTokensInLastBlock = allTokens
        var rng = SplitMix64(seed: 3)
        let images = (0..<(batch * c.channels * c.imageSize * c.imageSize)).map { _ in rng.nextUnitFloat() }
        let labels = (0..<batch).map { $0 % c.numClasses }

        let f32 = try timed(model, images: images, batch: batch, labels: labels, iterations: iterations)
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        let (median, best, cpuPerCall) = (f32.median, f32.best, f32.cpuPerCall)
        let flops = Double(batch) * ModelCost.forwardFLOPs(c, loraRank: loraRank, classOnlyLastBlock: !model.allTokensInLastBlock)
        let sgemm = sgemmGFLOPs(m: batch * c.numTokens, n: c.mlpWidth, k: c.width)
        let rss = PeakRSS.megabytes()
        let fmt = { (x: Double, d: Int) in String(format: "%.\(d)f", x) }
        var rows: [(String, String, String)] = []
        // OpenBLAS 0.3.21 falls back to its SSE kernel on CPUs it does not know (spec/PLATFORM.md: OPENBLAS_CORETYPE).
        let generic = ["Prescott", "Core2", "Nehalem", "Atom"].contains(BLAS.coreName)
        rows.append(("gslora kernels (GSLORA_KERNELS)", KernelLevel.active.rawValue, "best on this CPU: \(KernelLevel.best.rawValue)"))
        rows.append(
            (
                "OpenBLAS kernel / BLAS threads / cores", "\(BLAS.coreName) / \(BLAS.threads) / \(ProcessInfo.processInfo.activeProcessorCount)",
                generic ? "generic kernel: rerun with OPENBLAS_CORETYPE=Haswell (or Cooperlake on AVX-512)" : ""
            ))
        rows.append(("batch × timed calls", "\(batch) × \(iterations)", ""))
        rows.append(("LoRA", loraRank > 0 ? "live, rank \(loraRank)" : "none (merged)", ""))
        rows.append(("last block", allTokens ? "every token" : "class token only (K, V for every token)", ""))
        let face = m == .p8s8
        rows.append(
            ("images/s (median call)", fmt(Double(batch) / median, 1), face ? "PyTorch ≈20 (spec/PLATFORM.md: ≈11, noisy)" : "PyTorch: gslora-bench sizes"))
        if face { rows.append(("ratio to PyTorch's 20 images/s", fmt(Double(batch) / median / pyTorchImagesPerSecond, 2) + "×", "issue #4 asks 2×")) }
        rows.append(("images/s (best call)", fmt(Double(batch) / best, 1), ""))
        rows.append(("seconds per call (median)", fmt(median, 3), ""))
        rows.append(
            (
                "CPU seconds per call (all threads)", fmt(cpuPerCall, 3),
                "idle-machine estimate: \(fmt(Double(batch) / (cpuPerCall / cores), 1)) images/s on \(Int(cores)) cores"
            ))
        rows.append(("achieved GFLOP/s", fmt(flops / median / 1e9, 0), "of \(fmt(flops / 1e9, 1)) GFLOP per call"))
        rows.append(
            (
                "sgemm GFLOP/s, \(batch * c.numTokens)×\(c.mlpWidth)×\(c.width)", fmt(sgemm, 0),
                "fraction achieved: \(fmt(flops / median / 1e9 / sgemm * 100, 0)) %"
            ))
        rows.append(("peak RSS (VmHWM)", rss.map { "\(fmt($0, 0)) MB" } ?? "n/a", face ? "PyTorch ≈1200 MB" : ""))
        rows += bf16Rows(
            model, images: images, batch: batch, labels: labels, iterations: iterations, float32Logits: f32.logits,
            flops: flops, cores: cores, face: face)
        let w0 = rows.map(\.0.count).max()!, w1 = rows.map(\.1.count).max()!
        let lines = rows.map {
            $0.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + $0.1.padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + $0.2
        }
        return Report(table: (["forward: \(m.title), eval mode, random weights"] + lines).joined(separator: "\n"))
    }

    static let pyTorchImagesPerSecond = 20.0

    struct Timing {
        var median, best, cpuPerCall, firstCall: Double
        var logits: [Float]
    }

    /// One untimed warm-up call (its wall time kept as the first-call latency), then `iterations` timed calls.
    static func timed(_ model: ViT, images: [Float], batch: Int, labels: [Int], iterations: Int) throws -> Timing {
        let w0 = DispatchTime.now().uptimeNanoseconds
        let logits = try model.forward(images: images, batch: batch, labels: labels).logits
        let first = Double(DispatchTime.now().uptimeNanoseconds - w0) / 1e9
        var times: [Double] = []
        let cpu0 = clock()
        for _ in 0..<iterations {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try model.forward(images: images, batch: batch, labels: labels)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        // Process CPU time (all threads) per call: on a shared, loaded host wall time mostly measures the
        // neighbours; CPU time divided over the cores estimates an idle machine (BLAS spin-waits count, so it errs low).
        let cpuPerCall = Double(clock() - cpu0) / Double(CLOCKS_PER_SEC) / Double(iterations)
        times.sort()
        return Timing(median: times[times.count / 2], best: times[0], cpuPerCall: cpuPerCall, firstCall: first, logits: logits)
    }

    /// The same model and batch with bf16 frozen linears: throughput, its own peak RSS (the high-water mark is reset
    /// first where the kernel allows), oneDNN's implementation, packed-weight memory and the logits' deviation from
    /// float32. A CPU or library without bf16 support gets one row saying why.
    static func bf16Rows(
        _ model: ViT, images: [Float], batch: Int, labels: [Int], iterations: Int, float32Logits: [Float],
        flops: Double, cores: Double, face: Bool
    ) -> [(String, String, String)] {
        let fmt = { (x: Double, d: Int) in String(format: "%.\(d)f", x) }
        let reset = PeakRSS.reset()
        model.precision = .bf16
        defer { model.precision = .float32 }
        let t: Timing
        do { t = try timed(model, images: images, batch: batch, labels: labels, iterations: iterations) } catch {
            return [("bf16", "unavailable", "\(error)")]
        }
        let ips = Double(batch) / t.median
        var dev = 0.0, ref = 0.0
        for (a, b) in zip(t.logits, float32Logits) {
            dev = max(dev, abs(Double(a) - Double(b)))
            ref = max(ref, abs(Double(b)))
        }
        return [
            ("bf16: images/s (median call)", fmt(ips, 1), face ? "\(fmt(ips / pyTorchImagesPerSecond, 2))× PyTorch's 20 images/s" : ""),
            ("bf16: images/s (best call)", fmt(Double(batch) / t.best, 1), ""),
            ("bf16: seconds per call (median)", fmt(t.median, 3), "first call \(fmt(t.firstCall, 3)) s (packs weights, JITs kernels)"),
            (
                "bf16: CPU seconds per call (all threads)", fmt(t.cpuPerCall, 3),
                "idle-machine estimate: \(fmt(Double(batch) / (t.cpuPerCall / cores), 1)) images/s on \(Int(cores)) cores"
            ),
            ("bf16: achieved GFLOP/s", fmt(flops / t.median / 1e9, 0), ""),
            ("bf16: oneDNN implementation", model.bf16.implementations.joined(separator: ", "), ""),
            (
                "bf16: OpenMP wait policy / threads", "\(env("OMP_WAIT_POLICY") ?? "unset") / \(env("OMP_NUM_THREADS") ?? "all cores")",
                env("OMP_WAIT_POLICY") == nil ? "libgomp spins after each product; OMP_WAIT_POLICY=passive can be faster" : ""
            ),
            ("bf16: packed weights", "\(fmt(Double(model.bf16.packedWeightBytes) / 1e6, 1)) MB", "besides the float32 weights"),
            (
                "bf16: peak RSS (VmHWM)", PeakRSS.megabytes().map { "\(fmt($0, 0)) MB" } ?? "n/a",
                reset ? "high-water mark reset before bf16" : "includes the float32 run (could not reset)"
            ),
            ("bf16: logits vs float32, max |Δ| / max |ref|", String(format: "%.1e", ref > 0 ? dev / ref : dev), "same batch, same weights")
        ]
    }

    static func env(_ name: String) -> String? { ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 } }

    /// The BLAS's own speed on the model's biggest GEMM shape, as the ceiling to compare with.
    static func sgemmGFLOPs(m: Int, n: Int, k: Int) -> Double {
        productGFLOPs(m: m, n: n, k: k) { a, b, out in
            BLAS.gemm(transB: true, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: k, c: out.pointer, ldc: n)
        }
    }

    /// The same product on oneDNN's float32 matmul (what the frozen linear layers run on in precision float32).
    static func oneDNNGFLOPs(m: Int, n: Int, k: Int) throws -> Double {
        let mm = F32Matmul()
        return try productGFLOPs(m: m, n: n, k: k) { a, b, out in
            try mm.product(weight: b, outFeatures: n, inFeatures: k, input: a.pointer, rows: m, out: out.pointer, ldc: n)
        }
    }

    /// GFLOP/s of out [m, n] = a [m, k] · bᵀ (b [n, k]), best of three after a warm-up call.
    private static func productGFLOPs(m: Int, n: Int, k: Int, _ run: (FloatBuffer, FloatBuffer, FloatBuffer) throws -> Void) rethrows -> Double {
        let a = FloatBuffer(count: m * k), b = FloatBuffer(count: n * k), out = FloatBuffer(count: m * n)
        a.fill(0.5)
        b.fill(0.25)
        try run(a, b, out)
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try run(a, b, out)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }

}
