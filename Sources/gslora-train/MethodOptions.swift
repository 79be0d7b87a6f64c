import ArgumentParser
import Foundation
import GSLoRATraining

/// `--method` and the baselines' own flags of `gslora-train forget` (defaults: the main-table values of the official
/// scripts, spec/TRAINING.md §B.4). A flag that belongs to other methods is refused, naming them.
struct MethodOptions: ParsableArguments {
    @Option(help: "Forgetting method: gslora (default), gslora++ (as --plus), finetune, retrain, l2, ewc, mas, lwf, der, der++, fdr, scrub, scrub-s, lirf.")
    var method = "gslora"
    @Option(help: "λ: l2 0.1, ewc 10, mas 0.005, der 0.01, der++ 0.005, fdr 50.") var lambda: Double?
    @Option(help: "der++: weight of the CE on the second retain batch (0.005).") var lambdaPlus: Double?
    @Option(help: "lwf: weight of the KD term (0.5).") var lambdaKd: Double?
    @Option(help: "lwf: weight of the retain CE (10).") var lambdaRemain: Double?
    @Option(help: "lwf: KD temperature (2).") var lwfT: Double?
    @Flag(help: "lwf: the KD LwF describes instead of the official one (identically 0).") var lwfIntendedKd = false
    @Option(help: "lirf: temperature (10).") var lirfT: Double?
    @Option(help: "lirf: α (0.1).") var lirfAlpha: Double?
    @Option(help: "lirf: column split S of the logits (default: classes forgotten per task).") var lirfColumns: Int?
    @Option(help: "scrub/scrub-s: smoothing σ (0 / 0.1).") var smoothing: Double?
    @Option(help: "scrub: γ, weight of the retain CE (0.99).") var gamma: Double?
    @Option(help: "scrub: α of the retain KD (0.001).") var scrubAlpha: Double?
    @Option(help: "scrub: KD temperature (2).") var kdT: Double?
    @Option(help: "scrub: β of the averaged model (0.1).") var swaBeta: Double?
    @Option(help: "scrub: super-epochs per task (10; --epochs does not apply).") var superEpochs: Int?
    @Option(help: "Baselines: warm-up epochs from 1e-6 (retrain 5, others 0).") var warmupEpochs: Int?
    @Option(help: "Baselines: forget-label modulus K (default: classes forgotten per task, as the official code).") var relabelModulus: Int?

    static let gslora = ["gslora", "gslora++"]
    static var known: [String] { gslora + BaselineMethod.allCases.map(\.rawValue) }

    /// Which methods a flag belongs to (flags not listed belong to every method).
    static let owners: [String: [String]] = {
        var o: [String: [String]] = [:]
        let baselines = BaselineMethod.allCases.map(\.rawValue)
        for f in ["--rank", "--lora-alpha", "--grouping", "--bnd", "--beta", "--alpha", "--alpha-start-epoch", "--prune-threshold", "--precision"] {
            o[f] = gslora
        }
        for f in ["--plus", "--prototype-weight", "--prototype-margin", "--prototype-retain-weight", "--ema-start", "--ema-decay"] { o[f] = ["gslora++"] }
        o["--lambda"] = ["l2", "ewc", "mas", "der", "der++", "fdr"]
        o["--lambda-plus"] = ["der++"]
        for f in ["--lambda-kd", "--lambda-remain", "--lwf-t", "--lwf-intended-kd"] { o[f] = ["lwf"] }
        for f in ["--lirf-t", "--lirf-alpha", "--lirf-columns"] { o[f] = ["lirf"] }
        for f in ["--smoothing", "--gamma", "--scrub-alpha", "--kd-t", "--swa-beta", "--super-epochs"] { o[f] = ["scrub", "scrub-s"] }
        o["--warmup-epochs"] = baselines
        o["--relabel-modulus"] = baselines.filter { !["retrain", "scrub", "scrub-s"].contains($0) }
        return o
    }()

    /// The long flags on the command line (`--name` or `--name=value`).
    static var given: Set<String> {
        Set(CommandLine.arguments.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=", maxSplits: 1)[0]) })
    }

    /// Usage errors before anything is loaded.
    func validate() throws { _ = try resolvedMethod(plus: Self.given.contains("--plus")) }

    /// The method's name, checked, and every flag given checked against it; `--plus` means gslora++.
    func resolvedMethod(plus: Bool) throws -> String {
        guard Self.known.contains(method) else {
            throw ValidationError("--method: unknown method '\(method)'; known: \(Self.known.joined(separator: ", "))")
        }
        let m = method == "gslora" && plus ? "gslora++" : method
        for flag in Self.given.sorted() {
            guard let owners = Self.owners[flag], !owners.contains(m) else { continue }
            // --plus selects gslora++ from gslora; the GS-LoRA flags also apply to gslora++.
            if m == "gslora++", Self.owners[flag] == Self.gslora { continue }
            throw ValidationError("\(flag) belongs to \(owners.joined(separator: ", ")), not to --method \(m)")
        }
        return m
    }

    /// The baseline's settings, or nil for GS-LoRA(++). `lr` and `weightDecay` are the shared flags' values when given.
    func baselineSettings(method m: String, lr: Double?, weightDecay: Double?) -> BaselineSettings? {
        guard let b = BaselineMethod(rawValue: m) else { return nil }
        var s = BaselineSettings(method: b)
        if let lr { s.lr = lr }
        if let weightDecay { if b.isSCRUB { s.scrubWeightDecay = weightDecay } else { s.weightDecay = weightDecay } }
        if let lambda { s.lambda = lambda }
        if let lambdaPlus { s.lambdaPlus = lambdaPlus }
        if let lambdaKd { s.lwfLambdaKD = lambdaKd }
        if let lambdaRemain { s.lwfLambdaRemain = lambdaRemain }
        if let lwfT { s.lwfTemperature = lwfT }
        s.lwfIntendedKD = lwfIntendedKd
        if let lirfT { s.lirfTemperature = lirfT }
        if let lirfAlpha { s.lirfAlpha = lirfAlpha }
        s.lirfColumns = lirfColumns
        if let smoothing { s.scrubSmoothing = smoothing }
        if let gamma { s.scrubGamma = gamma }
        if let scrubAlpha { s.scrubAlpha = scrubAlpha }
        if let kdT { s.scrubTemperature = kdT }
        if let swaBeta { s.scrubSWABeta = swaBeta }
        if let superEpochs { s.scrubSuperEpochs = superEpochs }
        if let warmupEpochs { s.warmupEpochs = warmupEpochs }
        s.relabelModulus = relabelModulus
        return s
    }
}
