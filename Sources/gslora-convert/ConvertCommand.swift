import ArgumentParser
import CommandSupport
import Convert
import Foundation
import Format

@main
struct ConvertCommand: GsloraCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-convert",
        abstract: "Convert a PyTorch (.pth/.pt), .safetensors or .gslr checkpoint to .gslr, .safetensors or .pth.",
        discussion: """
        The output format follows the extension of -o. Face transformers (GS-LoRA's ViT_face), torchvision ViTs \
        and timm ViTs are recognised from their keys; their config is read off the tensor shapes and their weights \
        are stored under canonical names (spec/MODELS.md). Other layouts are stored as plain tensors. A checkpoint \
        with LoRA factors becomes a backbone plus an adapter file. Notices go to stderr when stdout is a terminal; \
        otherwise only the result line is printed (use --json to get everything).

        Examples:
          gslora-convert face_vit.pth -o face_vit.gslr
          gslora-convert vit_b_16.pth -o vit_b_16.safetensors --dtype bf16
          gslora-convert tiny.pth -o tiny.gslr --heads 4
          gslora-convert task1.pth -o task1.gslr --base pretrained.pth \\
              --adapter-out task1.lora.gslr
          gslora-convert edited.gslr -o edited.pth    (original key names)
          gslora-convert ckpt.pth -o all.gslr --raw   (every tensor)

        Exit status: 0 converted, 1 bad input or failed write, 2 usage error.
        """)

    @Argument(help: "The checkpoint to read (.pth/.pt/.bin, .safetensors or .gslr).")
    var input: String

    @Option(name: [.short, .customLong("output")], help: "The file to write; its extension (.gslr, .safetensors, .pth) picks the format.")
    var output: String

    @Flag(help: "Keep every tensor under its full dotted key (optimizer state included); no model layout applied.")
    var raw = false

    @Option(help: "Float dtype of the output: f32, f16, bf16 or keep (integers are never changed).")
    var dtype: String = "keep"

    @Option(help: "Attention heads, when no config file beside the checkpoint and no published architecture decides them (spec/MODELS.md).")
    var heads: Int?

    @Option(help: "Image channels of a face transformer, when its patch embedding fits more than one count.")
    var channels: Int?

    @Option(help: "loralib lora_alpha of the LoRA factors (default 1, so scaling = 1/rank).")
    var loraAlpha: Double?

    @Option(help: "The model the LoRA was trained on; tells merged (saved after eval()) from unmerged weights.")
    var base: String?

    @Option(help: "Where to write the adapter of a LoRA checkpoint (default: OUT with .adapter.gslr).")
    var adapterOut: String?

    @Option(help: "Tensor names in .safetensors/.pth outputs: original (the family's own keys) or canonical.")
    var names: String = "original"

    @Flag(help: "Keep optimizer state (skipped by default).")
    var keepOptimizer = false

    @Flag(help: "Print the full report as JSON on stdout.")
    var json = false

    @Flag(help: "Replace existing output files.")
    var force = false

    func validate() throws {
        guard DTypeCast.Target(rawValue: dtype) != nil else { throw ValidationError("--dtype must be f32, f16, bf16 or keep, not '\(dtype)'") }
        guard ConvertOptions.Names(rawValue: names) != nil else { throw ValidationError("--names must be original or canonical, not '\(names)'") }
        guard Converter.OutputFormat(path: output) != nil else {
            throw ValidationError("\(output): unknown output extension; use .gslr, .safetensors or .pth")
        }
        if output == input || AtomicFile.sameFile(input, output) {
            throw ValidationError("\(output): the output is the input; choose a different output path")
        }
        if let h = heads, h < 1 { throw ValidationError("--heads must be positive") }
        if let c = channels, c < 1 { throw ValidationError("--channels must be positive") }
        if let a = loraAlpha, !(a.isFinite && a > 0) { throw ValidationError("--lora-alpha must be a positive number") }
    }

    func run() throws {
        let options = ConvertOptions(
            importing: ImportOptions(raw: raw, heads: heads, channels: channels, keepOptimizer: keepOptimizer,
                                     loraAlpha: loraAlpha, base: base),
            dtype: DTypeCast.Target(rawValue: dtype)!, names: ConvertOptions.Names(rawValue: names)!,
            adapterOut: adapterOut, force: force)
        let report = try Converter.convert(input: input, output: output, options: options)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
            return
        }
        if isatty(STDOUT_FILENO) == 1 {
            for n in report.notices { FileHandle.standardError.write(Data("note: \(n)\n".utf8)) }
        }
        print(report.summary)
    }
}
