import GSLoRAFormat

/// One rank-r LoRA pair on a linear layer: ΔW = scaling·B·A with A [r, in] and B [out, r].
public struct LoRAFactors {
    public let rank: Int
    public let inFeatures: Int
    public let outFeatures: Int
    public let a: FloatBuffer
    public let b: FloatBuffer

    public init(rank: Int, inFeatures: Int, outFeatures: Int, a: FloatBuffer, b: FloatBuffer) {
        precondition(a.count == rank * inFeatures && b.count == outFeatures * rank, "LoRA factor sizes do not match rank \(rank)")
        self.rank = rank
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.a = a
        self.b = b
    }
}

/// A LoRA adapter on the two FFN linears (fc1, fc2) of every block, loralib semantics (spec/TRAINING.md §A.2):
/// y = x·Wᵀ + b + scaling·(x·Aᵀ)·Bᵀ. A model may carry several adapters; their updates add up.
/// The factor buffers are shared references, so an optimizer can update them in place between forward calls.
public final class LoRAAdapter {
    public let rank: Int
    public let scaling: Float
    /// Per block, in block order.
    public let fc1: [LoRAFactors]
    public let fc2: [LoRAFactors]

    public init(rank: Int, scaling: Float, fc1: [LoRAFactors], fc2: [LoRAFactors]) {
        self.rank = rank
        self.scaling = scaling
        self.fc1 = fc1
        self.fc2 = fc2
    }

    /// Reads `blocks.{i}.mlp.fc{1,2}.lora_{A,B}` for every block of `config`; the rank comes from
    /// blocks.0.mlp.fc1.lora_A and every other factor must agree. Tensors with other names are ignored.
    public convenience init(config c: ModelConfig, tensors: [Tensor], scaling: Float) throws {
        guard scaling.isFinite else { throw ModelError.badAdapter("scaling \(scaling) is not finite") }
        var byName: [String: Tensor] = [:]
        for t in tensors where t.name.contains(".lora_") {
            if byName.updateValue(t, forKey: t.name) != nil { throw ModelError.duplicateTensor(t.name) }
        }
        guard let first = byName["blocks.0.mlp.fc1.lora_A"] else { throw ModelError.missingTensor("blocks.0.mlp.fc1.lora_A") }
        guard first.shape.count == 2, first.shape[0] > 0, first.shape[0] <= 4096 else {
            throw ModelError.badAdapter("blocks.0.mlp.fc1.lora_A has shape \(first.shape); expected [rank, \(c.width)] with 1 ≤ rank ≤ 4096")
        }
        let r = first.shape[0]
        func take(_ name: String, _ shape: [Int]) throws -> FloatBuffer {
            guard let t = byName.removeValue(forKey: name) else { throw ModelError.missingTensor(name) }
            guard t.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, actual: t.shape) }
            do { return FloatBuffer(try t.floats()) } catch { throw ModelError.badTensor(tensor: name, problem: "\(error)") }
        }
        func pair(_ p: String, in inF: Int, out: Int) throws -> LoRAFactors {
            LoRAFactors(rank: r, inFeatures: inF, outFeatures: out, a: try take(p + ".lora_A", [r, inF]), b: try take(p + ".lora_B", [out, r]))
        }
        let fc1 = try (0..<c.depth).map { try pair("blocks.\($0).mlp.fc1", in: c.width, out: c.mlpWidth) }
        let fc2 = try (0..<c.depth).map { try pair("blocks.\($0).mlp.fc2", in: c.mlpWidth, out: c.width) }
        if !byName.isEmpty { throw ModelError.unexpectedTensors(byName.keys.sorted()) }
        self.init(rank: r, scaling: scaling, fc1: fc1, fc2: fc2)
    }

    /// A fresh adapter with loralib's initialisation: A ~ U(±gain/√in) (Kaiming-uniform a=√5 gives gain 1),
    /// B = 0, so the adapter starts as a no-op. `scaling` defaults to loralib's lora_alpha/r with alpha 1.
    public convenience init(config c: ModelConfig, rank: Int, scaling: Float? = nil, gain: Float = 1, seed: UInt64) throws {
        guard rank > 0, rank <= 4096 else { throw ModelError.badAdapter("rank \(rank) is outside 1...4096") }
        var rng = SplitMix64(seed: seed)
        func pair(in inF: Int, out: Int) -> LoRAFactors {
            let a = FloatBuffer(count: rank * inF)
            let bound = gain / Float(inF).squareRoot()
            for i in 0..<a.count { a.pointer[i] = (rng.nextUnitFloat() * 2 - 1) * bound }
            return LoRAFactors(rank: rank, inFeatures: inF, outFeatures: out, a: a, b: FloatBuffer(count: out * rank))
        }
        let fc1 = (0..<c.depth).map { _ in pair(in: c.width, out: c.mlpWidth) }
        let fc2 = (0..<c.depth).map { _ in pair(in: c.mlpWidth, out: c.width) }
        self.init(rank: rank, scaling: scaling ?? 1 / Float(rank), fc1: fc1, fc2: fc2)
    }

    /// The factors as canonical float32 tensors (blocks.{i}.mlp.fc{1,2}.lora_{A,B}), block by block.
    public var tensors: [Tensor] {
        var out: [Tensor] = []
        for i in 0..<fc1.count {
            for (name, f) in [("fc1", fc1[i]), ("fc2", fc2[i])] {
                let p = "blocks.\(i).mlp.\(name)"
                out.append(Tensor(name: p + ".lora_A", shape: [f.rank, f.inFeatures], floats: f.a.array))
                out.append(Tensor(name: p + ".lora_B", shape: [f.outFeatures, f.rank], floats: f.b.array))
            }
        }
        return out
    }

    func check(against c: ModelConfig) throws {
        guard fc1.count == c.depth, fc2.count == c.depth else {
            throw ModelError.badAdapter("adapter has \(fc1.count)/\(fc2.count) blocks, the model has \(c.depth)")
        }
        for i in 0..<c.depth {
            guard fc1[i].inFeatures == c.width, fc1[i].outFeatures == c.mlpWidth,
                fc2[i].inFeatures == c.mlpWidth, fc2[i].outFeatures == c.width
            else {
                throw ModelError.badAdapter("block \(i): factor sizes do not match width \(c.width) / mlp \(c.mlpWidth)")
            }
        }
    }
}

extension Linear {
    /// W + Σ scaling·B·A over `updates`, computed out of place in float32; the bias is shared.
    func merging(_ updates: [(LoRAFactors, Float)]) -> Linear {
        if updates.isEmpty { return self }
        let w = FloatBuffer(copying: weight)
        for (f, s) in updates {
            BLAS.gemm(
                m: outFeatures, n: inFeatures, k: f.rank, alpha: s, a: f.b.pointer, lda: f.rank,
                b: f.a.pointer, ldb: inFeatures, beta: 1, c: w.pointer, ldc: inFeatures)
        }
        return Linear(inFeatures: inFeatures, outFeatures: outFeatures, weight: w, bias: bias)
    }
}
