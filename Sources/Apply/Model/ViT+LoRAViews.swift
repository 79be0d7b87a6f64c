extension ViT {
    /// Block l's adapters on fc1 and fc2 as kernel views over the activations `a` (their x·Aᵀ buffers), with every
    /// B transposed into `acts.loraBt`.
    func loraViews(_ l: Int, a: BlockActivations) -> (fc1: [LoRAView], fc2: [LoRAView]) {
        let m = config.mlpWidth, w = config.width, bt = activations.loraBt
        bt.reserve(adapters.reduce(0) { $0 + $1.rank * (m + w) })
        var off = 0
        func view(_ f: LoRAFactors, _ scale: Float, _ down: FloatBuffer) -> LoRAView {
            let t = bt.pointer + off
            LoRAKernels.transpose(f.b.pointer, rows: f.outFeatures, rank: f.rank, into: t)
            off += f.rank * f.outFeatures
            return LoRAView(rank: f.rank, scale: scale, a: f.a.pointer, bt: t, down: down.pointer)
        }
        var fc1: [LoRAView] = [], fc2: [LoRAView] = []
        for (i, ad) in adapters.enumerated() {
            fc1.append(view(ad.fc1[l], ad.scaling, a.loraFc1[i]))
            fc2.append(view(ad.fc2[l], ad.scaling, a.loraFc2[i]))
        }
        return (fc1, fc2)
    }

    /// `loraViews` with the gradients of `gradients` and ∂(x·Aᵀ) scratch in `dDown` (2 · Σ rank · rows floats).
    func loraGradViews(_ l: Int, a: BlockActivations, rows: Int, gradients: ViTGradients, dDown: FloatBuffer)
        -> (fc1: [LoRAGradView], fc2: [LoRAGradView])
    {
        let (fc1, fc2) = loraViews(l, a: a)
        dDown.reserve(2 * rows * adapters.reduce(0) { $0 + $1.rank })
        var off = 0
        func grad(_ v: LoRAView, _ g: LoRAFactors) -> LoRAGradView {
            defer { off += rows * v.rank }
            return LoRAGradView(view: v, dDown: dDown.pointer + off, dA: g.a.pointer, dB: g.b.pointer)
        }
        return (zip(fc1, gradients.lora).map { grad($0, $1.fc1[l]) }, zip(fc2, gradients.lora).map { grad($0, $1.fc2[l]) })
    }
}
