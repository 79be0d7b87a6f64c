/// How LoRA factors are grouped for the group-lasso term (spec/TRAINING.md §A.3).
public enum LoRAGrouping: String, Sendable, CaseIterable {
    /// One group per transformer block: all its A and B factors (the default, and the only one continual runs use).
    case block
    /// One group per LoRA linear {A, B}; every block's first linear, then every block's second, and so on.
    case lora
    /// Every factor on its own, block by block in the order given.
    case matrix
}

/// Where a LoRA factor sits: which block, which linear inside the block, A or B.
public struct LoRASlot: Sendable, Equatable {
    public enum Factor: String, Sendable { case a = "lora_A", b = "lora_B" }
    public var name: String
    public var block: Int
    /// Position of the linear among the block's LoRA linears, in order of first appearance.
    public var linear: Int
    public var factor: Factor

    public init(name: String, block: Int, linear: Int, factor: Factor) {
        self.name = name
        self.block = block
        self.linear = linear
        self.factor = factor
    }

    /// Slots for parameter names in `named_parameters` order. The block is the first path component that is an
    /// integer (`transformer.layers.3…`, `blocks.3…`) or ends in `_<integer>` (`encoder_layer_3`); the linear is the
    /// name with `.lora_A`/`.lora_B` removed.
    public static func parse(_ names: [String]) throws -> [LoRASlot] {
        var linears: [Int: [String]] = [:]
        return try names.map { name in
            let factor: Factor
            if name.hasSuffix(".lora_A") {
                factor = .a
            } else if name.hasSuffix(".lora_B") {
                factor = .b
            } else {
                throw TrainingError.invalidArgument("\(name) is not a LoRA factor (expected a name ending in .lora_A or .lora_B)")
            }
            let prefix = String(name.dropLast(7))
            guard let block = blockIndex(prefix) else {
                throw TrainingError.invalidArgument("\(name): no block index in the name (expected e.g. layers.<i>, blocks.<i>, encoder_layer_<i>)")
            }
            var list = linears[block] ?? []
            let linear: Int
            if let i = list.firstIndex(of: prefix) { linear = i } else { linear = list.count; list.append(prefix) }
            linears[block] = list
            return LoRASlot(name: name, block: block, linear: linear, factor: factor)
        }
    }

    static func blockIndex(_ path: String) -> Int? {
        for part in path.split(separator: ".") {
            if let i = Int(part), i >= 0 { return i }
            if let u = part.lastIndex(of: "_"), let i = Int(part[part.index(after: u)...]), i >= 0 { return i }
        }
        return nil
    }
}

/// L_struct = Σ_g √(Σ_{T∈g} ‖T‖_F²) over groups of LoRA factors, and its gradient.
public struct GroupLasso: Sendable {
    /// Each group lists indices into the tensor list it was built for.
    public let groups: [[Int]]
    public let tensorCount: Int

    /// Explicit groups (e.g. read from a file); every index must be in range and used at most once.
    public init(groups: [[Int]], tensorCount: Int) throws {
        var seen = Set<Int>()
        for g in groups {
            guard !g.isEmpty else { throw TrainingError.invalidArgument("group lasso: an empty group") }
            for i in g {
                guard i >= 0, i < tensorCount else { throw TrainingError.invalidArgument("group lasso: tensor index \(i) outside 0..<\(tensorCount)") }
                guard seen.insert(i).inserted else { throw TrainingError.invalidArgument("group lasso: tensor \(i) is in two groups") }
            }
        }
        self.groups = groups
        self.tensorCount = tensorCount
    }

    /// Groups for the given slots (indices refer to the `slots` order).
    public init(slots: [LoRASlot], grouping: LoRAGrouping) throws {
        guard !slots.isEmpty else { throw TrainingError.emptySet("group lasso over no LoRA factors") }
        let blocks = Array(Set(slots.map(\.block))).sorted()
        var groups: [[Int]] = []
        switch grouping {
        case .block:
            for b in blocks { groups.append(slots.indices.filter { slots[$0].block == b }) }
        case .lora:
            let maxLinear = slots.map(\.linear).max() ?? 0
            for l in 0...maxLinear {
                for b in blocks {
                    let g = slots.indices.filter { slots[$0].block == b && slots[$0].linear == l }
                    if !g.isEmpty { groups.append(g) }
                }
            }
        case .matrix:
            for b in blocks { groups += slots.indices.filter { slots[$0].block == b }.map { [$0] } }
        }
        try self.init(groups: groups, tensorCount: slots.count)
    }

    /// The loss and the per-group norms, logged both ways (§3: the loss form and the reported Σ‖T‖ form).
    public struct Value: Sendable {
        /// Σ_g √(Σ‖T‖_F²): the quantity that is optimised.
        public let loss: Double
        /// √(Σ_{T∈g} ‖T‖_F²) per group.
        public let groupNorms: [Double]
        /// Σ_{T∈g} ‖T‖_F per group: what the official code logs after each task.
        public let reportedNorms: [Double]
        /// Σ_{T∈g} Σ|t| per group: the official code's L1 option.
        public let reportedL1: [Double]
    }

    public func value<T: TrainScalar>(_ tensors: [[T]]) throws -> Value {
        try checkCount(tensors.count)
        let sq = tensors.map { t in t.reduce(0.0) { $0 + Double($1) * Double($1) } }
        let l1 = tensors.map { t in t.reduce(0.0) { $0 + abs(Double($1)) } }
        let norms = groups.map { g in g.reduce(0.0) { $0 + sq[$1] }.squareRoot() }
        let reported = groups.map { g in g.reduce(0.0) { $0 + sq[$1].squareRoot() } }
        let reportedL1 = groups.map { g in g.reduce(0.0) { $0 + l1[$1] } }
        return Value(loss: norms.reduce(0, +), groupNorms: norms, reportedNorms: reported, reportedL1: reportedL1)
    }

    /// scale · ∂L_struct/∂T = scale · T/‖g‖. A group whose norm is exactly 0 gets the zero subgradient (the minimum-norm
    /// element of the subdifferential), where PyTorch would produce NaN. Tensors in no group get zeros.
    public func gradient<T: TrainScalar>(_ tensors: [[T]], scale: Double = 1) throws -> [[T]] {
        try checkCount(tensors.count)
        var out = tensors.map { [T](repeating: 0, count: $0.count) }
        for g in groups {
            let norm = g.reduce(0.0) { acc, i in acc + tensors[i].reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
            guard norm > 0 else { continue }
            let f = scale / norm
            for i in g {
                tensors[i].withUnsafeBufferPointer { src in
                    out[i].withUnsafeMutableBufferPointer { dst in
                        for j in 0..<src.count { dst[j] = T(Double(src[j]) * f) }
                    }
                }
            }
        }
        return out
    }

    private func checkCount(_ n: Int) throws {
        guard n == tensorCount else { throw TrainingError.invalidShape("group lasso built for \(tensorCount) tensors, given \(n)") }
    }
}
