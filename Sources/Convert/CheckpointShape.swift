import GSLoRAFormat

/// Finds the model's state dict inside whatever a training script saved: a bare state dict, a wrapper such as
/// {"state_dict": ...} / {"model": ...} / {"model_state_dict": ...} / {"net": ...}, DataParallel's `module.` prefixes.
/// Non-tensor leaves (epoch, args, best accuracy...) become metadata; optimizer state is skipped unless asked for.
public enum CheckpointShape {
    /// Keys under which training scripts put the model's weights, in the order they are tried.
    public static let wrapperKeys = ["state_dict", "model_state_dict", "model", "net", "module", "network", "params"]
    /// Keys of training state that is not the model: skipped by default.
    public static let optimizerKeys: Set<String> = [
        "optimizer", "optimizer_state_dict", "optim", "opt", "scheduler",
        "lr_scheduler", "scaler", "amp", "grad_scaler"
    ]

    /// What came out of a checkpoint.
    public struct Unwrapped {
        /// The model's tensors under their state-dict keys (wrapper and `module.` prefix removed), in file order.
        public var stateDict: [Tensor]
        /// Optimizer tensors (only with `keepOptimizer`), under their full dotted path, e.g. "optimizer.state.22.exp_avg".
        public var extra: [Tensor]
        /// Non-tensor leaves under their dotted path.
        public var metadata: [String: JSONValue]
        public var notices: [String]
    }

    /// Every tensor and leaf under its dotted path, nothing skipped (a raw import).
    public static func flattenAll(_ root: CheckpointValue) -> Unwrapped {
        var out = Unwrapped(stateDict: [], extra: [], metadata: [:], notices: [])
        flatten(root, prefix: "", tensors: &out.stateDict, metadata: &out.metadata)
        return out
    }

    public static func unwrap(_ root: CheckpointValue, keepOptimizer: Bool) -> Unwrapped {
        var out = Unwrapped(stateDict: [], extra: [], metadata: [:], notices: [])
        // Walk down wrappers: a dict without tensors of its own whose wrapper key holds a dict with tensors.
        var node = root
        var path = ""
        var outer: [(prefix: String, items: [(key: String, value: CheckpointValue)], chosen: String)] = []
        while case let .dict(items) = node, !items.contains(where: { isTensor($0.value) }),
            let key = wrapperKeys.first(where: { k in items.contains { $0.key == k && containsTensor($0.value) } }),
            outer.count < 4
        {
            outer.append((path, items, key))
            node = items.first { $0.key == key }!.value
            path += key + "."
        }
        if !path.isEmpty { out.notices.append("took the model weights from '\(path.dropLast())'") }

        // Everything beside the chosen wrappers: leaves to metadata, optimizer state skipped or kept.
        for (prefix, items, chosen) in outer {
            for (k, v) in items where k != chosen {
                let p = prefix + k
                var tensors: [Tensor] = []
                var leaves: [String: JSONValue] = [:]
                flatten(v, prefix: p, tensors: &tensors, metadata: &leaves)
                if optimizerKeys.contains(k) {
                    if keepOptimizer {
                        out.extra += tensors
                        out.metadata.merge(leaves) { a, _ in a }
                        out.notices.append("kept \(tensors.count) optimizer tensors from '\(p)'")
                    } else {
                        out.notices.append("skipped optimizer state '\(p)' (\(tensors.count) tensors); pass \(Setting("keepOptimizer")) to keep it")
                    }
                } else {
                    out.metadata.merge(leaves) { a, _ in a }
                    if !tensors.isEmpty {
                        out.notices.append(
                            "skipped \(tensors.count) tensors under '\(p)', which is not the model's state dict; use \(Setting("raw")) to keep every tensor")
                    }
                }
            }
        }

        var tensors: [Tensor] = []
        var leaves: [String: JSONValue] = [:]
        flatten(node, prefix: "", tensors: &tensors, metadata: &leaves)
        for (k, v) in leaves { out.metadata[path + k] = v }

        // DataParallel / DistributedDataParallel prefix every key with "module.".
        let prefix = "module."
        if !tensors.isEmpty, tensors.allSatisfy({ $0.name.hasPrefix(prefix) }) {
            for i in tensors.indices { tensors[i].name.removeFirst(prefix.count) }
            out.notices.append("removed the DataParallel prefix 'module.' from \(tensors.count) keys")
        }
        out.stateDict = tensors
        return out
    }

    static func isTensor(_ v: CheckpointValue) -> Bool {
        if case .tensor = v { return true }
        return false
    }

    static func containsTensor(_ v: CheckpointValue) -> Bool {
        switch v {
        case .tensor: return true
        case let .dict(items): return items.contains { containsTensor($0.value) }
        case let .list(xs), let .tuple(xs): return xs.contains(where: containsTensor)
        default: return false
        }
    }

    /// Depth-first, in container order; dict keys and list indices joined with '.'.
    static func flatten(_ v: CheckpointValue, prefix: String, tensors: inout [Tensor], metadata: inout [String: JSONValue]) {
        func join(_ k: String) -> String { prefix.isEmpty ? k : prefix + "." + k }
        // A bare tensor or value at the top has no key of its own.
        let prefix = prefix.isEmpty && !v.isContainer ? "value" : prefix
        switch v {
        case var .tensor(t):
            t.name = prefix
            tensors.append(t)
        case let .dict(items):
            for (k, x) in items { flatten(x, prefix: join(k), tensors: &tensors, metadata: &metadata) }
        case let .list(xs), let .tuple(xs):
            for (i, x) in xs.enumerated() { flatten(x, prefix: join(String(i)), tensors: &tensors, metadata: &metadata) }
        case let .string(s): metadata[prefix] = .string(s)
        case let .int(i): metadata[prefix] = .int(i)
        case let .float(d): metadata[prefix] = .number(d)
        case let .bool(b): metadata[prefix] = .bool(b)
        case .none: metadata[prefix] = .null
        case let .bytes(b): metadata[prefix] = .string("<\(b.count) bytes>")
        case let .symbol(s): metadata[prefix] = .string(s)
        }
    }
}

extension CheckpointValue {
    var isContainer: Bool {
        switch self {
        case .dict, .list, .tuple: return true
        default: return false
        }
    }
}
