import GSLoRAFormat

/// What a PyTorch checkpoint holds once the restricted unpickler has rebuilt it: containers, plain leaves and
/// tensors (already materialized contiguous, row-major). Nothing here can run code; unknown objects never get this far.
public indirect enum CheckpointValue {
    case tensor(Tensor)
    /// A dict in insertion order (`dict` and `collections.OrderedDict`). Keys are usually strings; ints and others keep
    /// their printed form so a raw import (`ImportOptions.raw`) can name every leaf.
    case dict([(key: String, value: CheckpointValue)])
    case list([CheckpointValue])
    case tuple([CheckpointValue])
    case string(String)
    case int(Int)
    case float(Double)
    case bool(Bool)
    case none
    /// Bytes and the like, kept only to be shown, never interpreted.
    case bytes([UInt8])
    /// A dtype, `torch.device` or `torch.Size` leaf kept by name (e.g. "torch.float32").
    case symbol(String)
}
