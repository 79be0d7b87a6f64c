import GSLoRAFormat
import GSLoRAModel

/// A runnable model: a backbone with adapters either folded into its weights or applied live. In both cases the
/// chain of base fingerprints is checked first (each adapter against the backbone plus the adapters before it).
public struct AdaptedModel {
    public let model: ViT
    /// One per adapter, in order.
    public let steps: [MergeStep]
    public let merged: Bool

    /// - Parameters:
    ///   - modelTensors: the names the ViT takes from `weights` (a backbone file may carry other tensors, e.g. kept
    ///     optimizer state, which count in the fingerprint but not in the model); nil means all.
    ///   - merged: fold the adapters into the weights (as gslora-merge would write them) instead of applying them live.
    public static func build(
        config: ModelConfig, weights: MergedWeights, modelTensors: Set<String>? = nil,
        adapters: [AdapterFile], scales: [Double] = [], merged: Bool = false,
        force: Bool = false
    ) throws -> AdaptedModel {
        guard scales.count <= adapters.count else {
            throw AdapterError.invalidArgument("\(scales.count) scales for \(adapters.count) adapters; give at most one per adapter, in order")
        }
        let scale = { (i: Int) in i < scales.count ? scales[i] : 1 }
        var folded = weights
        for (i, a) in adapters.enumerated() { try folded.fold(a, scale: scale(i), force: force) }
        let pick = { (ts: [Tensor]) in modelTensors.map { names in ts.filter { names.contains($0.name) } } ?? ts }
        let vit: ViT
        if merged {
            vit = try ViT(config: config, weights: pick(folded.tensors))
        } else {
            let live = try adapters.enumerated().map { i, a in try a.liveAdapter(config: config, scale: scale(i)) }
            vit = try ViT(config: config, weights: pick(weights.tensors), adapters: live)
        }
        return AdaptedModel(model: vit, steps: folded.steps, merged: merged)
    }
}
