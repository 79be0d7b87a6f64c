import Foundation
import GSLoRAFormat

/// Checkpoints that already hold loralib factors (`lora_A` [r, in], `lora_B` [out, r]) are imported as a backbone
/// without them plus an adapter. Because the official scripts save after `eval()`, which adds s·B·A into the weight,
/// a file may hold merged weights; `reconcile` tells the two apart against the base the LoRA was trained on.
public enum LoRAImport {
    /// LoRA factors of a canonical model, checked against its config.
    public struct Factors {
        /// Canonical names, canonical order (per block: fc1.lora_A, fc1.lora_B, fc2.lora_A, fc2.lora_B).
        public var tensors: [Tensor]
        public var rank: Int
        /// Module paths inside a block that carry LoRA, e.g. ["mlp.fc1", "mlp.fc2"].
        public var targets: [String]
    }

    /// Separates LoRA factors from the weights. Returns nil factors when there are none.
    public static func split(_ tensors: [Tensor]) -> (weights: [Tensor], lora: [Tensor]) {
        var w: [Tensor] = [], l: [Tensor] = []
        for t in tensors { if ModelFamilies.isLoRA(t.name) { l.append(t) } else { w.append(t) } }
        return (w, l)
    }

    /// Checks the factors: only on the FFN linears, A and B in pairs, one rank, shapes fitting the config.
    public static func check(_ lora: [Tensor], config c: ModelConfig, file: String) throws -> Factors {
        func bad(_ r: String) -> ConvertError { .badLoRA(file: file, reason: r) }
        var byName: [String: Tensor] = [:]
        for t in lora { byName[t.name] = t }
        guard let first = lora.first else { throw bad("no LoRA factors") }
        guard first.shape.count == 2 else { throw bad("LoRA factor '\(first.name)' has shape \(first.shape); factors are matrices") }
        let r = first.name.hasSuffix(".lora_A") ? first.shape[0] : first.shape[1]
        guard r > 0 else { throw bad("LoRA factor '\(first.name)' has rank 0") }
        var ordered: [Tensor] = []
        var targets: [String] = []
        for i in 0..<c.depth {
            for (name, shape) in ModelFamilies.loraShapes(c, block: i, rank: r) {
                guard let t = byName[name] else { continue }
                guard t.dtype.isFloatingPoint else { throw bad("LoRA factor '\(name)' is \(t.dtype.rawValue), not a float tensor") }
                guard t.shape == shape else {
                    throw bad("LoRA factor '\(name)' has shape \(t.shape), expected \(shape) for rank \(r) (all factors must share one rank)")
                }
                ordered.append(t)
                let module = String(name.dropFirst("blocks.\(i).".count).dropLast(".lora_A".count))
                if !targets.contains(module) { targets.append(module) }
            }
        }
        if ordered.count != lora.count {
            let known = Set(ordered.map(\.name))
            let stray = lora.first { !known.contains($0.name) }!.name
            throw bad(
                "LoRA factor '\(stray)' is not on an FFN linear (mlp.fc1/mlp.fc2) of a block; only FFN LoRA is supported. Convert with \(Setting("raw")) to keep it as a plain tensor"
            )
        }
        for t in ordered {
            let partner = t.name.hasSuffix(".lora_A") ? String(t.name.dropLast(1)) + "B" : String(t.name.dropLast(1)) + "A"
            guard byName[partner] != nil else { throw bad("'\(t.name)' has no partner '\(partner)'") }
        }
        return Factors(tensors: ordered, rank: r, targets: targets)
    }

    /// The adapter record: one group per block holding the block's factors, with its norm Σ‖T‖_F (spec/FORMAT.md §4.3).
    /// `scaling` defaults to loralib's alpha / rank.
    public static func adapterInfo(
        _ f: Factors, alpha: Double, baseFingerprint: String, scaling: Double? = nil,
        scalingRule: String = "alpha/rank"
    ) throws -> AdapterInfo {
        var groups: [GroupRecord] = []
        for t in f.tensors {
            guard let (i, _) = FamilyKeyMap.splitBlock(t.name, prefix: FamilyKeyMap.canonicalBlockPrefix) else { continue }
            let name = "blocks.\(i)"
            let norm = try sumOfSquares(t).squareRoot()
            if let g = groups.indices.last, groups[g].name == name {
                groups[g].members.append(t.name)
                groups[g].norm += norm
            } else {
                groups.append(GroupRecord(name: name, members: [t.name], norm: norm, state: .kept))
            }
        }
        return AdapterInfo(
            rank: f.rank, alpha: alpha, scaling: scaling ?? alpha / Double(f.rank), scalingRule: scalingRule,
            targets: f.targets, grouping: "block", groups: groups,
            task: TaskRecord(index: 0, forget: [], retain: []), baseFingerprint: baseFingerprint)
    }

    /// `X` for a factor `X.lora_A` / `X.lora_B`, nil for other names.
    static func layer(of name: String) -> String? {
        guard ModelFamilies.isLoRA(name) else { return nil }
        return String(name.dropLast(".lora_A".count))
    }

    static func sumOfSquares(_ t: Tensor) throws -> Double {
        var s = 0.0
        for v in try t.floats() { s += Double(v) * Double(v) }
        return s
    }

    /// s·B·A for factors A [r, in], B [out, r], as float32 row-major [out, in].
    public static func delta(a: Tensor, b: Tensor, scaling: Double) throws -> [Float] {
        let av = try a.floats(), bv = try b.floats()
        let r = a.shape[0], nIn = a.shape[1], nOut = b.shape[0]
        var d = [Float](repeating: 0, count: nOut * nIn)
        av.withUnsafeBufferPointer { A in
            bv.withUnsafeBufferPointer { B in
                d.withUnsafeMutableBufferPointer { D in
                    for o in 0..<nOut {
                        let row = D.baseAddress! + o * nIn
                        for k in 0..<r {
                            let bk = B[o * r + k]
                            let arow = A.baseAddress! + k * nIn
                            for i in 0..<nIn { row[i] += bk * arow[i] }
                        }
                    }
                }
            }
        }
        let s = Float(scaling)
        for i in d.indices { d[i] *= s }
        return d
    }

    /// Whether the checkpoint's weights already contain s·B·A.
    public enum MergeState: String, Codable, Sendable {
        /// W ≈ W_base: the factors are not in the weights (train-mode save).
        case unmerged
        /// W ≈ W_base + s·B·A: an eval-mode save; the backbone is written as W − s·B·A.
        case merged
        /// No base was given; the weights are taken as unmerged.
        case assumedUnmerged = "assumed_unmerged"
    }

    /// Compares each LoRA-carrying weight with the base. Merged weights are replaced by W − s·B·A, so that applying
    /// the adapter to the written backbone does not add ΔW twice (spec/TRAINING.md §4 item 13).
    public static func reconcile(
        weights: inout [Tensor], factors: Factors, scaling: Double, base: [Tensor],
        file: String, basePath: String
    ) throws -> MergeState {
        var baseByName: [String: Tensor] = [:]
        for t in base { baseByName[t.name] = t }
        var index: [String: Int] = [:]
        for (i, t) in weights.enumerated() { index[t.name] = i }
        var lora: [String: Tensor] = [:]
        for t in factors.tensors { lora[t.name] = t }

        var states: [(String, MergeState)] = []
        var corrected: [(Int, [Float])] = []
        for t in factors.tensors where t.name.hasSuffix(".lora_A") {
            let module = String(t.name.dropLast(".lora_A".count))
            let wName = module + ".weight"
            guard let wi = index[wName], let b = lora[module + ".lora_B"] else { continue }
            guard let wb = baseByName[wName], wb.shape == weights[wi].shape else {
                throw ConvertError.badLoRA(
                    file: file,
                    reason: "the base \(basePath) has no tensor '\(wName)' of shape \(weights[wi].shape); it is not the model this LoRA was trained on")
            }
            let w = try weights[wi].floats(), w0 = try wb.floats()
            let d = try delta(a: t, b: b, scaling: scaling)
            var offBase = 0.0, offMerged = 0.0, baseNorm = 0.0, deltaNorm = 0.0
            for k in w.indices {
                let x = Double(w[k]), x0 = Double(w0[k]), dk = Double(d[k])
                offBase += (x - x0) * (x - x0)
                offMerged += (x - x0 - dk) * (x - x0 - dk)
                baseNorm += x0 * x0
                deltaNorm += dk * dk
            }
            offBase.formSquareRoot(); offMerged.formSquareRoot(); baseNorm.formSquareRoot(); deltaNorm.formSquareRoot()
            // float32 rounding of W + ΔW stays far below this; a different base or trained weight does not.
            let tol = 1e-5 * baseNorm + 1e-4 * deltaNorm
            if offBase <= tol {
                states.append((wName, .unmerged))
            } else if offMerged <= tol {
                states.append((wName, .merged))
                corrected.append((wi, zip(w, d).map { $0 - $1 }))
            } else {
                throw ConvertError.badLoRA(
                    file: file,
                    reason: "'\(wName)' is neither the base weight nor base + s·B·A "
                        + "(distance to base \(fmt(offBase)), to base + s·B·A \(fmt(offMerged)), ‖s·B·A‖ \(fmt(deltaNorm)), scaling \(scaling)). "
                        + "Check that \(Setting("base")) is the model this LoRA was trained on and that \(Setting("loraAlpha")) is right")
            }
        }
        let merged = states.filter { $0.1 == .merged }.map(\.0)
        if !merged.isEmpty && merged.count != states.count {
            throw ConvertError.badLoRA(
                file: file, reason: "some weights hold s·B·A (\(merged.prefix(3).joined(separator: ", "))) and others do not; the checkpoint is inconsistent")
        }
        for (wi, values) in corrected {
            let old = weights[wi]
            weights[wi] = Tensor(name: old.name, shape: old.shape, floats: values, dtype: old.dtype)
        }
        return merged.isEmpty ? .unmerged : .merged
    }

    static func fmt(_ x: Double) -> String {
        let s = String(format: "%.3g", x)
        return s
    }
}

extension ImportedModel {
    /// The weights of the model PyTorch runs from this checkpoint: with embedded LoRA factors folded in as
    /// W + s·B·A (s = alpha/rank), which is what loralib computes in eval mode; the plain weights otherwise.
    public func runnableWeights() throws -> [Tensor] {
        guard !lora.isEmpty, source != .gslr, let rank = loraRank else { return weights }
        let scaling = (loraAlpha ?? 1) / Double(rank)
        var factors: [String: Tensor] = [:]
        for t in lora { factors[t.name] = t }
        return try weights.map { w in
            guard w.name.hasSuffix(".weight") else { return w }
            let module = String(w.name.dropLast(".weight".count))
            guard let a = factors[module + ".lora_A"], let b = factors[module + ".lora_B"] else { return w }
            let d = try LoRAImport.delta(a: a, b: b, scaling: scaling)
            let sum = zip(try w.floats(), d).map { $0 + $1 }
            return Tensor(name: w.name, shape: w.shape, floats: sum, dtype: w.dtype)
        }
    }
}

extension ImportedModel {
    /// The adapter record of the LoRA factors a .pth/.safetensors backbone carries (base: the backbone without them),
    /// or nil when it carries none.
    public func embeddedAdapter(baseFingerprint: String) throws -> AdapterInfo? {
        guard !lora.isEmpty, source != .gslr, let rank = loraRank else { return nil }
        let f = LoRAImport.Factors(tensors: lora, rank: rank, targets: loraTargets)
        return try LoRAImport.adapterInfo(f, alpha: loraAlpha ?? 1, baseFingerprint: baseFingerprint)
    }
}
