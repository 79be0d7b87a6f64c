import Foundation
import GSLoRAFormat

extension Converter {
    /// A flat state dict in `tensors` order, as `torch.save(model.state_dict())` writes it; returns the file size.
    /// (The caller has already refused an output that is one of `inputs`.)
    /// `leaves` are string entries after the tensors (see `pthLeaves`).
    static func writePth(_ path: String, tensors: [Tensor], leaves: [(key: String, value: String)] = [], inputs: [String]) throws -> Int {
        var seen = Set<String>()
        for name in tensors.map(\.name) + leaves.map(\.key) where !seen.insert(name).inserted {
            throw ConvertError.badOutput(file: path, reason: "tensor name '\(name)' is used twice; a state dict needs unique keys")
        }
        try PthWriter.write(path, .dict(tensors.map { (key: $0.name, value: .tensor($0)) } + leaves.map { (key: $0.key, value: .string($0.value)) }))
        return fileSize(path)
    }

    /// An adapter's record, class names and metadata as JSON string entries of its state dict, so the .pth converts
    /// back to the same adapter. loralib loads adapter state dicts with `load_state_dict(sd, strict=False)`, which
    /// lists them as unexpected keys and ignores them. A backbone gets none: it must load strictly.
    static func pthLeaves(_ m: ImportedModel, notices: inout [String]) -> [(key: String, value: String)] {
        guard let a = m.adapter else {
            if m.classes != nil || !(m.merged ?? []).isEmpty {
                notices.append(
                    "the .pth output holds the state dict only; class names and the merged-adapter list are not in it (.safetensors and .gslr keep them)")
            }
            return []
        }
        var leaves = [(key: SafetensorsMetadata.adapter, value: SafetensorsMetadata.encode(a))]
        if let c = m.classes { leaves.append((SafetensorsMetadata.classes, SafetensorsMetadata.encode(c))) }
        let md = m.source == .gslr ? m.metadata : provenance(m).merging(m.metadata) { a, _ in a }
        if !md.isEmpty { leaves.append((SafetensorsMetadata.metadata, SafetensorsMetadata.encode(md))) }
        notices.append(
            "the adapter record is stored as string entries '\(SafetensorsMetadata.adapter)'… of the state dict; load with load_state_dict(sd, strict=False)")
        return leaves
    }

    /// The adapter and the base a PEFT folder is written for: the base's family names the modules, and it must be
    /// the model the adapter was trained on.
    static func peftBinding(_ m: ImportedModel, output: String, options: ConvertOptions) throws -> (AdapterInfo, PeftFolder.Base) {
        guard let info = m.adapter else {
            throw ConvertError.badOutput(
                file: output,
                reason: "only an adapter can be written as a PEFT folder, and \(m.path) is not one. "
                    + "Split a LoRA checkpoint into backbone and adapter first (convert it with \(Setting("adapterOut")) adapter.gslr)")
        }
        guard let basePath = options.importing.base else {
            throw ConvertError.badOutput(
                file: output,
                reason: "a PEFT folder names modules the way the base model does; pass \(Setting("base")) BACKBONE, the model \(m.path) was trained on")
        }
        let base = try PeftFolder.Base.load(basePath, heads: options.importing.heads)
        guard base.fingerprint == info.baseFingerprint else {
            throw ConvertError.badLoRA(
                file: m.path,
                reason:
                    "the adapter was trained on \(info.baseFingerprint), but \(Setting("base")) \(basePath) is \(base.fingerprint); pass the backbone it was trained on (for task t > 1, with tasks 1 … t−1 merged in)"
            )
        }
        return (info, base)
    }
}
