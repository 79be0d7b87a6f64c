import Foundation
import GSLoRAFormat

/// Adapters that come back from other formats: a .safetensors or .pth written from a gslora adapter (its record in
/// the metadata), and Hugging Face PEFT folders.
extension ModelImport {
    /// .pth leaves holding JSON: the adapter record, class names, the .gslr header's metadata.
    static let pthRecordLeaves = [SafetensorsMetadata.adapter, SafetensorsMetadata.classes, SafetensorsMetadata.metadata]

    /// Takes `tensors` as the factors of the adapter whose record is `record`, checked as a .gslr adapter's table is.
    static func adoptAdapter(_ model: inout ImportedModel, record: String, tensors: [Tensor]) throws {
        let info = try SafetensorsMetadata.decode(AdapterInfo.self, record, key: SafetensorsMetadata.adapter, file: model.path)
        for t in tensors {
            guard ModelFamilies.isLoRA(t.name), t.dtype.isFloatingPoint, t.shape.count == 2,
                t.shape[t.name.hasSuffix(".lora_A") ? 0 : 1] == info.rank
            else {
                throw ConvertError.badLoRA(
                    file: model.path,
                    reason: "the file carries an adapter record of rank \(info.rank), but tensor '\(t.name)' "
                        + "(\(t.dtype.rawValue) \(t.shape)) is not one of its factors (…lora_A [r, in], …lora_B [out, r])")
            }
        }
        do {
            _ = try GSLRWriter.plan(GSLRHeader(kind: .adapter, adapter: info), tensors: tensors, file: model.path)
        } catch let e as FormatError {
            throw ConvertError.badLoRA(file: model.path, reason: "the adapter record does not match the tensors: \(e)")
        }
        model.adapter = info
        model.lora = tensors
        model.loraRank = info.rank
        model.loraAlpha = info.alpha
        model.loraTargets = info.targets
    }

    /// A .pth adapter written by gslora: its JSON leaves back into record, classes and metadata.
    static func adoptPthAdapter(_ model: inout ImportedModel, record: String, tensors: [Tensor]) throws {
        if case let .string(s)? = model.metadata[SafetensorsMetadata.classes] {
            model.classes = try SafetensorsMetadata.decode([String].self, s, key: SafetensorsMetadata.classes, file: model.path)
        }
        var md = model.metadata
        for k in pthRecordLeaves { md[k] = nil }
        if case let .string(s)? = model.metadata[SafetensorsMetadata.metadata] {
            md.merge(SafetensorsMetadata.decodeMetadata(s)) { a, _ in a }
        }
        model.metadata = md
        try adoptAdapter(&model, record: record, tensors: tensors)
    }

    /// A PEFT LoRA folder, bound to `options.base` (which names its modules and checks its shapes).
    static func loadPeft(_ dir: String, options: ImportOptions) throws -> ImportedModel {
        guard let basePath = options.base else {
            throw ConvertError.badLoRA(
                file: dir,
                reason: "a PEFT folder does not say which model it belongs to; pass \(Setting("base")) BACKBONE "
                    + "(the model it was trained on): its family names the modules and its fingerprint binds the adapter")
        }
        let base = try PeftFolder.Base.load(basePath, heads: options.heads)
        let a = try PeftFolder.read(dir, base: base)
        var model = ImportedModel(
            path: dir, source: .peft, config: nil, family: nil, weights: [], lora: [], loraRank: nil,
            loraAlpha: nil, loraTargets: [], mergeState: nil, extra: [], metadata: a.metadata,
            classes: a.classes, merged: nil, adapter: nil, notices: a.notices)
        try adoptAdapter(&model, record: SafetensorsMetadata.encode(a.info), tensors: a.tensors)
        return model
    }
}
