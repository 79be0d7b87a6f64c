import Foundation
import GSLoRAFormat

/// The comparison methods of the GS-LoRA tables that train the backbone itself (spec/TRAINING.md §7). `finetune` is L2 with
/// λ = 0 (the official code has no separate method).
public enum BaselineMethod: String, CaseIterable, Codable, Sendable {
    case finetune, retrain, l2, ewc, mas, lwf, der, derpp = "der++", fdr, scrub, scrubS = "scrub-s", lirf

    /// Full copies of the weights the method keeps beside the trained ones: the task-start anchor (L2), anchor and
    /// importances (EWC, MAS), the frozen teacher (LwF, DER(++), FDR, LIRF), teacher and averaged model (SCRUB).
    public var weightCopies: Int {
        switch self {
        case .finetune, .retrain: return 0
        case .l2, .lwf, .der, .derpp, .fdr, .lirf: return 1
        case .ewc, .mas, .scrub, .scrubS: return 2
        }
    }

    /// Methods trained on the shuffled union of (relabelled) forget and retain data with a parameter penalty.
    public var isRegularised: Bool { [.finetune, .l2, .ewc, .mas].contains(self) }
    public var usesTeacher: Bool { [.lwf, .der, .derpp, .fdr, .scrub, .scrubS, .lirf].contains(self) }
    public var isSCRUB: Bool { self == .scrub || self == .scrubS }
}

/// Every setting of a baseline, with the main-table values of `scripts/run_cl_forget.sh` as defaults (spec/TRAINING.md §7
/// §4). Fields a method does not use keep their defaults and are not read.
public struct BaselineSettings: Codable, Equatable, Sendable {
    public var method: BaselineMethod
    /// AdamW base learning rate (timm cosine per epoch, min 1e-5) and warm-up epochs from 1e-6.
    public var lr: Double
    public var warmupEpochs: Int
    public var weightDecay = 0.05
    /// λ of L2 / EWC / MAS, DER's λ, FDR's λ.
    public var lambda: Double
    /// DER++: weight of the CE on the second retain batch.
    public var lambdaPlus = 0.0
    /// LwF: weights of the KD and retain CE terms, temperature; `lwfIntendedKD` replaces the official KD (identically 0)
    /// by the KD LwF describes.
    public var lwfLambdaKD = 0.5
    public var lwfLambdaRemain = 10.0
    public var lwfTemperature = 2.0
    public var lwfIntendedKD = false
    /// LIRF: temperature, α, and S, the column split of the logits (`PER_FORGET_CLS`; nil = classes forgotten per task).
    public var lirfTemperature = 10.0
    public var lirfAlpha = 0.1
    public var lirfColumns: Int? = nil
    /// SCRUB(-S): Adam lr (coupled weight decay), smoothing σ, γ, α, KD temperature, SWA β, super-epochs, and the
    /// inner epoch after which the lr drops tenfold.
    public var scrubWeightDecay = 5e-4
    public var scrubSmoothing = 0.0
    public var scrubGamma = 0.99
    public var scrubAlpha = 0.001
    public var scrubTemperature = 2.0
    public var scrubSWABeta = 0.1
    public var scrubSuperEpochs = 10
    public var scrubDecayEpoch = 100
    /// Forget-label rewrite modulus: nil = the official K = number of forget classes (spec/TRAINING.md §7 decision 1).
    public var relabelModulus: Int? = nil

    public init(method: BaselineMethod) {
        self.method = method
        switch method {
        case .finetune: lr = 1e-4; warmupEpochs = 0; lambda = 0
        case .retrain: lr = 3e-4; warmupEpochs = 5; lambda = 0
        case .l2: lr = 1e-4; warmupEpochs = 0; lambda = 0.1
        case .ewc: lr = 1e-4; warmupEpochs = 0; lambda = 10
        case .mas: lr = 1e-4; warmupEpochs = 0; lambda = 0.005
        case .lwf: lr = 1e-4; warmupEpochs = 0; lambda = 0
        case .der: lr = 1e-3; warmupEpochs = 0; lambda = 0.01
        case .derpp: lr = 1e-3; warmupEpochs = 0; lambda = 0.005; lambdaPlus = 0.005
        case .fdr: lr = 1e-3; warmupEpochs = 0; lambda = 50
        case .lirf: lr = 1e-4; warmupEpochs = 0; lambda = 0
        case .scrub: lr = 1e-4; warmupEpochs = 0; lambda = 0
        case .scrubS: lr = 1e-4; warmupEpochs = 0; lambda = 0; scrubSmoothing = 0.1
        }
    }

    /// Refuses settings that cannot work, naming the option.
    public func validate() throws {
        func need(_ ok: Bool, _ option: Setting, _ why: String) throws { if !ok { throw TrainingError.badOption(option: option, problem: why) } }
        try need(lr.isFinite && lr >= 0, Setting("lr"), "must be finite and ≥ 0")
        try need(warmupEpochs >= 0, Setting("warmupEpochs"), "must be ≥ 0")
        try need(weightDecay.isFinite && weightDecay >= 0, Setting("weightDecay"), "must be finite and ≥ 0")
        try need(lambda.isFinite && lambda >= 0, Setting("lambda"), "must be finite and ≥ 0")
        try need(lambdaPlus.isFinite && lambdaPlus >= 0, Setting("lambdaPlus"), "must be finite and ≥ 0")
        try need(lwfLambdaKD.isFinite && lwfLambdaKD >= 0, Setting("lwfLambdaKD"), "must be finite and ≥ 0")
        try need(lwfLambdaRemain.isFinite && lwfLambdaRemain >= 0, Setting("lwfLambdaRemain"), "must be finite and ≥ 0")
        for (t, o) in [
            (lwfTemperature, Setting("lwfTemperature")), (lirfTemperature, Setting("lirfTemperature")), (scrubTemperature, Setting("scrubTemperature"))
        ] {
            try need(t.isFinite && t > 0, o, "temperature must be > 0")
        }
        try need(lirfAlpha.isFinite && (0...1).contains(lirfAlpha), Setting("lirfAlpha"), "must lie in [0, 1]")
        try need(lirfColumns.map { $0 >= 1 } ?? true, Setting("lirfColumns"), "must be ≥ 1")
        try need(scrubSmoothing.isFinite && scrubSmoothing >= 0, Setting("scrubSmoothing"), "must be finite and ≥ 0")
        try need(scrubWeightDecay.isFinite && scrubWeightDecay >= 0, Setting("scrubWeightDecay"), "must be finite and ≥ 0")
        try need(scrubGamma.isFinite, Setting("scrubGamma"), "must be finite")
        try need(scrubAlpha.isFinite, Setting("scrubAlpha"), "must be finite")
        try need(scrubSWABeta.isFinite && scrubSWABeta > 0 && scrubSWABeta <= 1, Setting("scrubSWABeta"), "must lie in (0, 1]")
        try need(scrubSuperEpochs >= 1, Setting("scrubSuperEpochs"), "must be ≥ 1")
        try need(relabelModulus.map { $0 >= 1 } ?? true, Setting("relabelModulus"), "must be ≥ 1")
    }
}
