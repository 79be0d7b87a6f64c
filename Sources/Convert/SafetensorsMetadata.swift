import Foundation
import GSLoRAFormat

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
    /// An adapter's record (spec/FORMAT.md §4.4) as JSON: the file is an adapter. Also a leaf of .pth adapters.
    static let adapter = "gslora.adapter"
    /// Class names as a JSON array.
    static let classes = "gslora.classes"
    /// A backbone's `merged` list as JSON.
    static let merged = "gslora.merged"

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

    /// The value of metadata `key` (the adapter record, class names, merged list); a damaged value is an error.
    static func decode<T: Decodable>(_ type: T.Type, _ s: String, key: String, file: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(s.utf8))
        } catch {
            throw ConvertError.badLoRA(file: file, reason: "the '\(key)' metadata is not valid (\(error)); the file was edited or damaged")
        }
    }

    static func decodeMetadata(_ s: String) -> [String: JSONValue] {
        (try? JSONDecoder().decode([String: JSONValue].self, from: Data(s.utf8))) ?? [:]
    }
}
