import Foundation
import GSLoRAData
import GSLoRAFormat

/// Unlabelled model input for inference: an .npy N×C×H×W float32 batch (already preprocessed), one image file,
/// or a folder of images (searched recursively, .jpg/.jpeg/.png, sorted by path).
public enum InferInput {
    /// The float32 [N, C, H, W] batch and a name per image (file path, or "path[i]" for .npy rows).
    public static func load(path: String, preprocessing p: Preprocessing) throws -> (images: Tensor, names: [String]) {
        try p.validate()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EvaluationError.badInput(path: path, problem: "no such file or folder")
        }
        if !isDir.boolValue && path.lowercased().hasSuffix(".npy") {
            let t = try NPY.readImages(path: path, channels: p.channels, height: p.outputHeight, width: p.outputWidth)
            guard t.shape[0] > 0 else { throw EvaluationError.badInput(path: path, problem: "holds no images (N = 0)") }
            return (t, (0..<t.shape[0]).map { "\(path)[\($0)]" })
        }
        let files = isDir.boolValue ? try imageFiles(under: path) : [path]
        guard !files.isEmpty else { throw EvaluationError.badInput(path: path, problem: "no .jpg, .jpeg or .png images in the folder") }
        let size = p.valuesPerImage
        let owner = ByteOwner.allocate(files.count * size * 4)
        let out = UnsafeMutableRawPointer(mutating: owner.base.baseAddress!).assumingMemoryBound(to: Float.self)
        for (i, f) in files.enumerated() {
            let image = try DecodedImage.load(path: f)
            p.apply(image, into: UnsafeMutableBufferPointer(start: out + i * size, count: size))
        }
        let t = Tensor(name: "images", dtype: .f32, shape: [files.count, p.channels, p.outputHeight, p.outputWidth], data: Bytes(owner: owner))
        return (t, files)
    }

    static func imageFiles(under root: String) throws -> [String] {
        guard let e = FileManager.default.enumerator(atPath: root) else {
            throw EvaluationError.badInput(path: root, problem: "cannot list the folder")
        }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            if name.hasPrefix(".") { continue }
            let ext = (name as NSString).pathExtension.lowercased()
            if ImageFolder.imageExtensions.contains(ext) { out.append(root + "/" + rel) }
        }
        return out.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}
