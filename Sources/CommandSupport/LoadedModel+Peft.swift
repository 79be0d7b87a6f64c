import Foundation
import GSLoRAAdapters
import GSLoRAConvert
import GSLoRAFormat

extension LoadedModel {
    /// The `--adapter` arguments opened: .gslr adapter files; PEFT LoRA folders, read for this model's family; and
    /// .safetensors / .pth files exported from gslora adapters (their record in the metadata).
    /// A PEFT folder without a gslora record is bound to this model, so it can only come first: a later adapter's
    /// base is the model with the earlier ones merged in, which the folder cannot name.
    func openAdapters(_ paths: [String]) throws -> [AdapterFile] {
        try paths.enumerated().map { i, path in
            if PeftFolder.isFolder(path) {
                let base = PeftFolder.Base(config: config, fingerprint: weights.fingerprint, name: (weights.source as NSString).lastPathComponent)
                let peft = try PeftFolder.read(path, base: base)
                if peft.boundToBase && i > 0 {
                    throw AdapterError.invalidArgument(
                        "\(path): a PEFT folder that records no base fingerprint can only be the first --adapter; "
                            + "convert it with gslora-convert \(path) -o adapter.gslr --base BACKBONE-WITH-EARLIER-TASKS-MERGED")
                }
                for n in peft.notices { FileHandle.standardError.write(Data("note: \(n)\n".utf8)) }
                let header = GSLRHeader(kind: .adapter, classes: peft.classes, adapter: peft.info, metadata: peft.metadata)
                return try AdapterFile(path: path, header: header, tensors: peft.tensors)
            }
            if (try? detectFormat(path: path)) == .gslr { return try AdapterFile.open(path) }
            let m = try ModelImport.load(path)
            guard let info = m.adapter else {
                throw AdapterError.wrongKind(file: path, expected: "adapter", actual: m.config != nil ? "backbone" : "tensors")
            }
            return try AdapterFile(path: path, header: GSLRHeader(kind: .adapter, classes: m.classes, adapter: info, metadata: m.metadata), tensors: m.lora)
        }
    }
}
