import Foundation
import Format

/// The `__metadata__` keys gslora writes into .safetensors files (all values are strings, as the format requires),
/// so a canonical-name export can be read back with its config.
enum SafetensorsMetadata {
    /// "pt": what Hugging Face tools expect of a PyTorch-layout file.
    static let format = "format"
    static let family = "gslora.family"
    /// ModelConfig as JSON.
    static let config = "gslora.config"
    /// "original" or "canonical".
    static let names = "gslora.names"
    /// The checkpoint's other metadata as a JSON object.
    static let metadata = "gslora.metadata"
    /// The image pipeline (PreprocessRecord) as JSON.
    static let preprocess = "gslora.preprocess"

    static func encode<T: Encodable>(_ v: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? enc.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func decodeConfig(_ s: String) -> ModelConfig? {
        try? JSONDecoder().decode(ModelConfig.self, from: Data(s.utf8))
    }

    static func decodePipeline(_ s: String) throws -> PreprocessRecord {
        try JSONDecoder().decode(PreprocessRecord.self, from: Data(s.utf8))
    }

    static func decodeMetadata(_ s: String) -> [String: JSONValue] {
        (try? JSONDecoder().decode([String: JSONValue].self, from: Data(s.utf8))) ?? [:]
    }
}
