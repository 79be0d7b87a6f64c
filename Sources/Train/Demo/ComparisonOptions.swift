import GSLoRATraining

/// What the method comparison (`MethodComparison`) runs: every method of the paper's main table on the demo's protocol (the same
/// pre-trained backbone, class order, tasks and training subsets), in two data settings, plus GS-LoRA at larger α with
/// pruning. The baselines' recipes are the main-table values of `BaselineSettings` (spec/TRAINING.md §B) except for the
/// number of epochs, which the time budget sets (spec/TRAINING.md §7, "The comparison").
public struct ComparisonOptions: Codable, Equatable, Sendable {
    /// One data setting: full data (the demo's ratio) or few-shot (the demo's GS-LoRA++ shots).
    public enum Setting: String, Codable, CaseIterable, Sendable {
        case full, fewShot = "few-shot"
    }

    /// A method of the table: a baseline, or GS-LoRA / GS-LoRA++ with the demo's recipe, or GS-LoRA with α scaled.
    public enum Method: Codable, Equatable, Hashable, Sendable {
        case baseline(BaselineMethod)
        case gslora
        case gsloraPlus
        case gsloraScaledAlpha(Double)

        /// The id used in folder names and in compare.json.
        public var id: String {
            switch self {
            case let .baseline(m): return m.rawValue
            case .gslora: return "gslora"
            case .gsloraPlus: return "gslora++"
            case let .gsloraScaledAlpha(k): return "gslora-alpha\(Int(k))x"
            }
        }

        public var title: String {
            switch self {
            case let .baseline(m):
                let names: [BaselineMethod: String] = [
                    .finetune: "Finetune", .retrain: "Retrain", .l2: "L2", .ewc: "EWC", .mas: "MAS",
                    .lwf: "LwF", .der: "DER", .derpp: "DER++", .fdr: "FDR", .scrub: "SCRUB",
                    .scrubS: "SCRUB-S", .lirf: "LIRF"
                ]
                return names[m] ?? m.rawValue
            case .gslora: return "GS-LoRA"
            case .gsloraPlus: return "GS-LoRA++"
            case let .gsloraScaledAlpha(k): return "GS-LoRA, α ×\(Int(k))"
            }
        }
    }

    /// The eleven baselines in the order of the paper's main table.
    public static let baselines: [BaselineMethod] = [.retrain, .l2, .ewc, .mas, .lwf, .der, .derpp, .fdr, .scrub, .scrubS, .lirf]

    /// How the baselines train in one setting.
    public struct Recipe: Codable, Equatable, Sendable {
        /// Epochs per task of every baseline except SCRUB(-S).
        public var epochs: Int
        /// SCRUB(-S) super-epochs per task (each is 5 forget passes and 10 retain passes).
        public var scrubSuperEpochs: Int
        /// Images per batch.
        public var batchSize: Int
    }

    public var settings: [Setting] = Setting.allCases
    public var full: Recipe
    public var fewShot: Recipe
    public func recipe(_ s: Setting) -> Recipe { s == .full ? full : fewShot }
    /// GS-LoRA rows with α multiplied by these factors (full data only), pruned at `scaledAlphaPruneThreshold`.
    public var alphaFactors: [Double] = [10, 100]
    public var scaledAlphaPruneThreshold = 1e-3

    /// The table's rows for one setting, in order.
    public func methods(_ setting: Setting) -> [Method] {
        Self.baselines.map { .baseline($0) } + [.gslora, .gsloraPlus] + (setting == .full ? alphaFactors.map { .gsloraScaledAlpha($0) } : [])
    }

    public init(quick: Bool = false) {
        if quick {
            full = Recipe(epochs: 1, scrubSuperEpochs: 1, batchSize: 16)
            fewShot = Recipe(epochs: 1, scrubSuperEpochs: 1, batchSize: 48)
        } else {
            // Full data: shortened to fit the whole comparison in an hour on 2 cores (spec/TRAINING.md §7 says what it
            // costs). Few-shot: the official 100 epochs, batch 48 and 10 super-epochs; a task has at most 40 images.
            full = Recipe(epochs: 5, scrubSuperEpochs: 1, batchSize: 32)
            fewShot = Recipe(epochs: 100, scrubSuperEpochs: 10, batchSize: 48)
        }
    }
}
