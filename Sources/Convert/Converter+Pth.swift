import Foundation
import Format

extension Converter {
    /// A flat state dict in `tensors` order, as `torch.save(model.state_dict())` writes it; returns the file size.
    /// (The caller has already refused an output that is one of `inputs`.)
    static func writePth(_ path: String, tensors: [Tensor], inputs: [String]) throws -> Int {
        var seen = Set<String>()
        for t in tensors where !seen.insert(t.name).inserted {
            throw ConvertError.badOutput(file: path, reason: "tensor name '\(t.name)' is used twice; a state dict needs unique keys")
        }
        try PthWriter.write(path, .dict(tensors.map { (key: $0.name, value: .tensor($0)) }))
        return fileSize(path)
    }
}
