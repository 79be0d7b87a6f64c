import GSLoRAFormat

/// Converts the unpickler's object graph into `CheckpointValue` with an explicit stack (no recursion, however deep
/// the input). Shared objects are converted once; cycles and nesting deeper than `maxDepth` are refused, which
/// also keeps the recursive release of the resulting indirect enum shallow.
enum PickleToCheckpoint {
    /// Checkpoints nest a handful of levels; this leaves ample room while keeping every later recursion safe.
    static let maxDepth = 256
    /// Most values the result may expand to when shared containers are counted at every place they appear; stops a
    /// small pickle of repeated memo references from handing callers an exponentially large tree to walk.
    static let maxExpandedValues = 100_000_000

    static func convert(
        _ root: PValue, file: String, record: String,
        tensor: (PTensor, String) throws -> Tensor
    ) throws -> CheckpointValue {
        var tensors: [ObjectIdentifier: Tensor] = [:]
        func leaf(_ v: PValue, _ path: String) throws -> CheckpointValue? {
            switch v {
            case .none: return CheckpointValue.none
            case let .bool(b): return .bool(b)
            case let .int(i): return .int(i)
            case let .bigInt(b): return .symbol(BigIntText.decimal(b))
            case let .float(d): return .float(d)
            case let .string(s): return .string(s)
            case let .bytes(b): return .bytes(b)
            case let .symbol(s): return .symbol(s)
            case let .global(g): return .symbol(g.name)
            case .storage:
                throw ConvertError.badTensor(file: file, tensor: path, reason: "a bare storage (not wrapped in a tensor) is not supported")
            case let .tensor(t):
                let id = ObjectIdentifier(t)
                if let done = tensors[id] { return .tensor(done) }
                let made = try tensor(t, path)
                tensors[id] = made
                return .tensor(made)
            case .container: return nil
            }
        }
        guard case let .container(top) = root else { return try leaf(root, "")! }

        struct Frame {
            let c: PContainer
            let path: String
            var i = 0
            var out: [CheckpointValue] = []
            var expanded = 1
        }
        var done: [ObjectIdentifier: (value: CheckpointValue, expanded: Int)] = [:]
        var onPath: Set<ObjectIdentifier> = [ObjectIdentifier(top)]
        var stack = [Frame(c: top, path: "")]
        func add(_ v: CheckpointValue, expanded: Int, at c: PContainer) throws {
            let (total, o) = stack[stack.count - 1].expanded.addingReportingOverflow(expanded)
            guard !o, total <= maxExpandedValues else {
                throw ConvertError.badPickle(
                    file: file, record: record, offset: c.offset,
                    reason: "shared references expand the object to more than \(maxExpandedValues) values")
            }
            stack[stack.count - 1].expanded = total
            stack[stack.count - 1].out.append(v)
        }
        while true {
            let f = stack[stack.count - 1]
            if f.i == f.c.items.count {
                let value: CheckpointValue
                switch f.c.kind {
                case .dict, .orderedDict:
                    value = .dict(zip(f.c.keys, f.out).map { (key: PValue.printed($0.0), value: $0.1) })
                case .tuple: value = .tuple(f.out)
                case .list, .set, .frozenset: value = .list(f.out)
                }
                stack.removeLast()
                let id = ObjectIdentifier(f.c)
                onPath.remove(id)
                done[id] = (value, f.expanded)
                if stack.isEmpty { return value }
                try add(value, expanded: f.expanded, at: f.c)
                continue
            }
            let child = f.c.items[f.i]
            let name = f.c.isDict ? PValue.printed(f.c.keys[f.i]) : String(f.i)
            let path = f.path.isEmpty ? name : f.path + "." + name
            stack[stack.count - 1].i += 1
            if let v = try leaf(child, path) {
                try add(v, expanded: 1, at: f.c)
                continue
            }
            guard case let .container(c) = child else { continue }
            let id = ObjectIdentifier(c)
            if let v = done[id] {
                try add(v.value, expanded: v.expanded, at: c)
            } else if onPath.contains(id) {
                throw ConvertError.badPickle(file: file, record: record, offset: c.offset, reason: "the \(c.kind.rawValue) at '\(path)' contains itself")
            } else {
                guard stack.count < maxDepth else {
                    throw ConvertError.badPickle(file: file, record: record, offset: c.offset, reason: "containers nest deeper than \(maxDepth) levels")
                }
                onPath.insert(id)
                stack.append(Frame(c: c, path: path))
            }
        }
    }
}
