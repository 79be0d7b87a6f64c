import GSLoRAFormat

/// Which groups `AdapterPrune` removes. Both act on the norm recorded in the file (`GroupRecord.norm`, which
/// spec/FORMAT.md §4.4 defines as Σ_T ‖T‖_F over the group's factors, spec/TRAINING.md §A.3's reported form).
public enum PruneRule: Equatable, Sendable {
    /// Prune every kept group whose recorded norm is below the threshold (so 0 keeps all).
    case threshold(Double)
    /// Keep the K kept groups with the largest recorded norms (earlier groups win ties), prune the rest.
    case keep(Int)
}

/// One group before and after pruning.
public struct GroupPruneInfo: Codable, Equatable, Sendable {
    public var name: String
    public var members: [String]
    /// The norm in the file: Σ‖T‖_F by the spec.
    public var recordedNorm: Double
    /// Computed from the data (nil when the group was already pruned): Σ_T ‖T‖_F, and the group-lasso
    /// loss form sqrt(Σ_T ‖T‖_F²).
    public var frobeniusSum: Double?
    public var lossNorm: Double?
    public var before: GroupState
    public var after: GroupState
}

/// How much of ΔW = s·B·A the pruning removes, over all layers of one target (e.g. mlp.fc1 in every block) or all.
public struct DeltaChange: Codable, Equatable, Sendable {
    public var target: String
    /// ‖ΔW‖_F of the input adapter and ‖ΔW_pruned − ΔW‖_F.
    public var norm: Double
    public var removed: Double
    /// removed / norm; 0 when ΔW is 0.
    public var relative: Double
}

public struct PruneReport: Codable, Sendable {
    public var input: String
    public var output: String
    public var threshold: Double?
    public var keep: Int?
    public var groups: [GroupPruneInfo]
    /// Groups kept after pruning, pruned by this run, and pruned in all.
    public var kept: Int
    public var newlyPruned: Int
    public var pruned: Int
    public var bytesBefore: Int
    public var bytesAfter: Int
    /// Over every LoRA layer, then per target.
    public var change: DeltaChange
    public var perTarget: [DeltaChange]
    public var outputFingerprint: String
    public var warnings: [String]
}

/// Removing GS-LoRA groups from an adapter (`gslora-prune`): the pruned groups' tensors leave the file, their
/// records stay with the norm they had and state "pruned".
public enum AdapterPrune {
    /// The pruned header and tensors, and the report (output, sizes and fingerprint not yet filled in).
    public static func plan(_ adapter: AdapterFile, rule: PruneRule) throws -> (header: GSLRHeader, tensors: [Tensor], report: PruneReport) {
        var info = adapter.info
        let byName = Dictionary(adapter.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let keptIdx = info.groups.indices.filter { info.groups[$0].state == .kept }
        let toPrune: Set<Int>
        switch rule {
        case .threshold(let t):
            guard t.isFinite, t >= 0 else { throw AdapterError.invalidArgument("\(Setting("threshold")) must be a finite number ≥ 0, not \(t)") }
            toPrune = Set(keptIdx.filter { info.groups[$0].norm < t })
        case .keep(let k):
            guard k >= 0 else { throw AdapterError.invalidArgument("\(Setting("keep")) must be ≥ 0, not \(k)") }
            let ranked = keptIdx.enumerated().sorted { x, y in
                let a = info.groups[x.element].norm, b = info.groups[y.element].norm
                return a != b ? a > b : x.offset < y.offset
            }.map(\.element)
            toPrune = Set(ranked.dropFirst(k))
        }

        var groups: [GroupPruneInfo] = []
        var warnings: [String] = []
        for (i, g) in info.groups.enumerated() {
            var f: Double? = nil, l: Double? = nil
            if g.state == .kept {
                var sum = 0.0, sq = 0.0
                for m in g.members {
                    guard let t = byName[m] else {
                        throw AdapterError.badFactor(file: adapter.path, tensor: m, problem: "member of kept group '\(g.name)' but not in the file")
                    }
                    let n2 = try squaredNorm(t, file: adapter.path)
                    sum += n2.squareRoot()
                    sq += n2
                }
                f = sum
                l = sq.squareRoot()
                if abs(sum - g.norm) > 1e-4 * max(1, sum) {
                    let form = abs(sq.squareRoot() - g.norm) <= 1e-4 * max(1, sq.squareRoot()) ? " (it equals the loss form sqrt(Σ‖T‖²))" : ""
                    warnings.append("group '\(g.name)': recorded norm \(g.norm) is not Σ‖T‖_F = \(sum)\(form); thresholds apply to the recorded value")
                }
            }
            groups.append(
                GroupPruneInfo(
                    name: g.name, members: g.members, recordedNorm: g.norm, frobeniusSum: f, lossNorm: l,
                    before: g.state, after: toPrune.contains(i) ? .pruned : g.state))
            if toPrune.contains(i) { info.groups[i].state = .pruned }
        }

        let removed = Set(toPrune.flatMap { adapter.info.groups[$0].members })
        let (total, perTarget) = try deltaChange(adapter, removing: removed)
        var header = adapter.header
        header.adapter = info
        let tensors = adapter.tensors.filter { !removed.contains($0.name) }
        let report = PruneReport(
            input: adapter.path, output: "", threshold: { if case .threshold(let t) = rule { return t } else { return nil } }(),
            keep: { if case .keep(let k) = rule { return k } else { return nil } }(), groups: groups,
            kept: info.groups.filter { $0.state == .kept }.count, newlyPruned: toPrune.count,
            pruned: info.groups.filter { $0.state == .pruned }.count, bytesBefore: adapter.fileSize, bytesAfter: 0,
            change: total, perTarget: perTarget, outputFingerprint: "", warnings: warnings)
        return (header, tensors, report)
    }

    /// Prunes `input` by `rule` and writes the result to `output` atomically.
    public static func pruneFile(input: String, output: String, rule: PruneRule) throws -> PruneReport {
        let adapter = try AdapterFile.open(input)
        var (header, tensors, report) = try plan(adapter, rule: rule)
        try GSLRWriter.write(output, header: header, tensors: tensors, inputs: [input])
        let written = try GSLRFile.open(output)
        report.output = output
        report.bytesAfter = written.fileSize
        report.outputFingerprint = written.fingerprint
        return report
    }

    /// ‖ΔW‖_F and ‖ΔW_pruned − ΔW‖_F over all LoRA layers and per target, where a layer loses its whole update
    /// when either factor is removed. ‖s·B·A‖_F² = s²·Σ_ij (BᵀB)_ij (AAᵀ)_ij, in float64: exact up to rounding
    /// without forming the out×in product.
    static func deltaChange(_ adapter: AdapterFile, removing removed: Set<String>) throws -> (DeltaChange, [DeltaChange]) {
        let s = adapter.info.scaling
        var order: [String] = []
        var norm2: [String: Double] = [:], removed2: [String: Double] = [:]
        for p in try adapter.pairs() {
            let target = targetName(p.layer)
            if norm2[target] == nil { order.append(target); norm2[target] = 0; removed2[target] = 0 }
            let d2 = s * s * (try gramProduct(p, file: adapter.path))
            norm2[target]! += d2
            if removed.contains(p.a.name) || removed.contains(p.b.name) { removed2[target]! += d2 }
        }
        func change(_ name: String, _ n2: Double, _ r2: Double) -> DeltaChange {
            let n = n2.squareRoot(), r = r2.squareRoot()
            return DeltaChange(target: name, norm: n, removed: r, relative: n > 0 ? r / n : 0)
        }
        let per = order.map { change($0, norm2[$0]!, removed2[$0]!) }
        return (change("all", norm2.values.reduce(0, +), removed2.values.reduce(0, +)), per)
    }

    /// "mlp.fc1" for "blocks.3.mlp.fc1": the layer's path inside its block (the whole name outside blocks).
    static func targetName(_ layer: String) -> String {
        let parts = layer.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "blocks", !parts[1].isEmpty, parts[1].allSatisfy(\.isNumber) { return String(parts[2]) }
        return layer
    }

    /// ‖B·A‖_F² = Σ_ij (BᵀB)_ij (AAᵀ)_ij.
    static func gramProduct(_ p: LoRAPair, file: String) throws -> Double {
        let a: [Float], b: [Float]
        do { a = try p.a.floats(); b = try p.b.floats() } catch {
            throw AdapterError.badFactor(file: file, tensor: p.layer, problem: "\(error)")
        }
        let r = p.rank, nIn = p.inFeatures, nOut = p.outFeatures
        var ga = [Double](repeating: 0, count: r * r), gb = [Double](repeating: 0, count: r * r)
        for i in 0..<r {
            for j in i..<r {
                var x = 0.0
                for k in 0..<nIn { x += Double(a[i * nIn + k]) * Double(a[j * nIn + k]) }
                ga[i * r + j] = x; ga[j * r + i] = x
            }
        }
        for o in 0..<nOut {
            for i in 0..<r {
                let bi = Double(b[o * r + i])
                for j in 0..<r { gb[i * r + j] += bi * Double(b[o * r + j]) }
            }
        }
        return zip(ga, gb).reduce(0) { $0 + $1.0 * $1.1 }
    }

    static func squaredNorm(_ t: Tensor, file: String) throws -> Double {
        do { return try t.floats().reduce(0) { $0 + Double($1) * Double($1) } } catch {
            throw AdapterError.badFactor(file: file, tensor: t.name, problem: "\(error)")
        }
    }
}
