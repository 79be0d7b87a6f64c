import GSLoRAFormat
import GSLoRAModel

extension AdapterFile {
    /// The adapter for live application (x·Wᵀ + s·(x·Aᵀ)·Bᵀ on every block's fc1 and fc2), `scale` × its scaling.
    /// Layers whose factors were pruned get zero factors (no update). Only FFN LoRA (mlp.fc1 / mlp.fc2) can run
    /// live; other targets must be merged.
    public func liveAdapter(config c: ModelConfig, scale: Double = 1) throws -> LoRAAdapter {
        let s = info.scaling * scale
        guard s.isFinite else { throw AdapterError.invalidArgument("\(path): scale \(scale) × scaling \(info.scaling) is not finite") }
        var byLayer: [String: LoRAPair] = [:]
        for p in try pairs() {
            guard p.layer.hasPrefix("blocks."), p.layer.hasSuffix(".mlp.fc1") || p.layer.hasSuffix(".mlp.fc2") else {
                throw AdapterError.badFactor(
                    file: path, tensor: p.layer + ".lora_A",
                    problem: "only FFN LoRA (blocks.{i}.mlp.fc1/fc2) can be applied live; merge the adapter into the backbone with gslora-merge instead")
            }
            byLayer[p.layer] = p
        }
        let r = info.rank
        func factors(_ layer: String, in inF: Int, out: Int) throws -> LoRAFactors {
            guard let p = byLayer.removeValue(forKey: layer) else {
                return LoRAFactors(rank: r, inFeatures: inF, outFeatures: out, a: FloatBuffer(count: r * inF), b: FloatBuffer(count: out * r))
            }
            guard p.rank == r, p.inFeatures == inF, p.outFeatures == out else {
                throw AdapterError.badFactor(
                    file: path, tensor: layer + ".lora_A",
                    problem: "factors are A \(p.a.shape), B \(p.b.shape); the model needs A [\(r), \(inF)], B [\(out), \(r)] at rank \(r)")
            }
            do {
                return LoRAFactors(rank: r, inFeatures: inF, outFeatures: out, a: FloatBuffer(try p.a.floats()), b: FloatBuffer(try p.b.floats()))
            } catch {
                throw AdapterError.badFactor(file: path, tensor: layer, problem: "\(error)")
            }
        }
        let fc1 = try (0..<c.depth).map { try factors("blocks.\($0).mlp.fc1", in: c.width, out: c.mlpWidth) }
        let fc2 = try (0..<c.depth).map { try factors("blocks.\($0).mlp.fc2", in: c.mlpWidth, out: c.width) }
        if let stray = byLayer.keys.sorted().first {
            throw AdapterError.missingTarget(adapter: path, tensor: stray + ".weight", base: "this \(c.depth)-block model")
        }
        return LoRAAdapter(rank: r, scaling: Float(s), fc1: fc1, fc2: fc2)
    }
}
