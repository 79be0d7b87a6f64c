import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAData
import GSLoRAEvaluation
import GSLoRAFormat
import GSLoRAModel

@main
struct InferCommand: GsloraCommand, ComputeCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-infer",
        abstract: "Run a model (with adapters) on images; write logits or embeddings as .npy and print the top classes.",
        discussion: """
            INPUT is an .npy batch of preprocessed float32 images (N×C×H×W, or one C×H×W image), an image file \
            (.jpg/.png), or a folder of images (searched recursively, sorted by path); images go through the model's \
            input pipeline: the one stored in the .gslr (or a timm config.json beside a checkpoint), else the family's \
            default, with --mean/--std/--interpolation/--resize/--crop-pct overriding it; it is printed on stderr. Adapters apply live (x·Wᵀ + s·(x·Aᵀ)·Bᵀ) unless --merged; either \
            way each adapter's base fingerprint is checked against the model plus the adapters before it. Logits are \
            without margin (s·cos for a CosFace head); probabilities are their softmax.

            Examples:
              gslora-infer face.gslr photo.jpg
              gslora-infer face.gslr --adapter task1.gslr faces/ -o logits.npy --top 3
              gslora-infer vit_b_16.pth batch.npy --embeddings -o emb.npy --json
              gslora-infer deit.safetensors photo.jpg --mean 0.485,0.456,0.406 \\
                  --std 0.229,0.224,0.225 --interpolation bicubic --crop-pct 0.9
              gslora-infer face.gslr --adapter t1.gslr --adapter t2.gslr --merged --force \\
                  batch.npy -o logits.npy

            Notes and warnings go to stderr; an existing -o file is replaced only with --force.

            Exit status: 0 done, 1 bad input or failed check, 2 usage error.
            """)

    @Argument(help: "The model: a backbone .gslr, or a .pth/.safetensors ViT.")
    var model: String

    @Argument(help: "Images: an .npy N×C×H×W float32 batch, an image file or a folder of images.")
    var input: String

    @OptionGroup var adapterOptions: AdapterOptions

    @OptionGroup var precisionOption: PrecisionOption

    @OptionGroup(title: "Image pipeline") var preprocessOptions: PreprocessOptions

    @Option(name: [.short, .customLong("output")], help: "Write the logits (or embeddings) as a float32 .npy here.")
    var output: String?

    @Flag(help: "Write the pooled embeddings [N, width] instead of the logits.")
    var embeddings = false

    @Option(help: "How many top classes to print per image.")
    var top: Int = 5

    @Option(help: "Images per forward batch.")
    var batchSize: Int = 64

    @OptionGroup var modelOptions: ModelOptions

    @Flag(help: "Print the top classes as JSON.")
    var json = false

    @Flag(help: "Replace an existing -o file (never an input).")
    var force = false

    func validate() throws {
        guard top >= 0 else { throw ValidationError("--top must be ≥ 0") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        if let o = output {
            guard o.lowercased().hasSuffix(".npy") else { throw ValidationError("\(o): the output is written as .npy; name it *.npy") }
            for i in [model, input] + adapterOptions.adapters where i == o || AtomicFile.sameFile(i, o) {
                throw ValidationError("\(o): the output is also an input; choose a different output path")
            }
        }
    }

    struct Prediction: Codable {
        struct Entry: Codable {
            var index: Int
            var name: String?
            var logit: Float
            var probability: Double
        }
        var input: String
        var top: [Entry]
    }

    func run() throws {
        if let output { try OutputPolicy.checkFile(output, inputs: [model, input] + adapterOptions.adapters, force: force) }
        let loaded = try LoadedModel.load(model, options: modelOptions)
        let c = loaded.config
        StatusLine().notes(loaded.notices)
        let built = try adapterOptions.apply(to: loaded)
        precisionOption.apply(to: built.model)
        let pre = try preprocessOptions.pipeline(for: c, stored: loaded.preprocess, modelPath: model, inputs: [input])
        let (images, names) = try InferInput.load(path: input, preprocessing: pre)
        let n = images.shape[0]
        let progress = Progress("infer")
        let floats = UnsafeBufferPointer(start: images.data.buffer.baseAddress?.assumingMemoryBound(to: Float.self), count: images.count)
        // NaN/Inf input gives NaN logits, which would print as probabilities: refuse it, naming the image.
        let perImage = n > 0 ? images.count / n : 0
        if let bad = floats.firstIndex(where: { !$0.isFinite }) {
            let i = bad / max(perImage, 1)
            let count = floats.reduce(0) { $1.isFinite ? $0 : $0 + 1 }
            throw EvaluationError.badInput(
                path: input,
                problem: "image \(i) (\(names[i])) holds a value that is NaN or infinite (\(count) such values in the input); give finite pixel values")
        }
        let (logits, emb) = try withExtendedLifetime(images) {
            try BatchedForward.run(
                built.model, images: floats, count: n, embeddings: embeddings, batchSize: batchSize,
                progress: progress.update)
        }
        if let row = (0..<n).first(where: { i in (0..<c.numClasses).contains { !logits[i * c.numClasses + $0].isFinite } }) {
            throw EvaluationError.badInput(
                path: input, problem: "the model's logits for image \(row) (\(names[row])) are not finite; the weights or the input overflow float32")
        }
        if let output {
            if let emb {
                try emb.withUnsafeBufferPointer { try NPY.write($0, shape: [n, c.width], to: output) }
            } else {
                try logits.withUnsafeBufferPointer { try NPY.write($0, shape: [n, c.numClasses], to: output) }
            }
        }
        let classes = loaded.classes
        let predictions = (0..<n).map { i in
            Prediction(
                input: names[i],
                top: BatchedForward.top(logits, row: i, width: c.numClasses, k: top).map {
                    Prediction.Entry(index: $0.index, name: classes?[$0.index], logit: $0.value, probability: $0.probability)
                })
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(predictions), as: UTF8.self))
        } else {
            for p in predictions {
                let shown = p.top.map { e in "\(e.name ?? String(e.index)) \(String(format: "%.3f", e.probability))" }.joined(separator: ", ")
                print("\(p.input): \(shown)")
            }
        }
        if let output, !json {
            FileHandle.standardError.write(
                Data("wrote \(embeddings ? "embeddings" : "logits") [\(n), \(embeddings ? c.width : c.numClasses)] to \(output)\n".utf8))
        }
    }
}
