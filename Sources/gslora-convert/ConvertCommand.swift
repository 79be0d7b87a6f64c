import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAConvert
import GSLoRAData
import GSLoRAFormat

@main
struct ConvertCommand: GsloraCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-convert",
        abstract:
            "Convert a PyTorch (.pth/.pt), .safetensors or .gslr checkpoint to .gslr, .safetensors or .pth; adapters also to and from Hugging Face PEFT folders.",
        discussion: """
            The output format follows the extension of -o; without -o, IN is written as a .gslr beside it (model.pth → \
            model.gslr). Face transformers (GS-LoRA's ViT_face), torchvision ViTs \
            and timm ViTs are recognised from their keys; their config is read off the tensor shapes and their weights \
            are stored under canonical names (spec/MODELS.md). Other layouts are stored as plain tensors. A checkpoint \
            with LoRA factors becomes a backbone plus an adapter file. A .gslr backbone stores its image pipeline \
            (spec/FORMAT.md §4.7): from a timm config.json beside the input (its pretrained_cfg), with the pipeline \
            options overriding it field by field; gslora-infer, -eval and -train use it. The result line goes to stdout, \
            notices (`note:`) to stderr; --json prints the full report (notices too) on stdout instead of the line. An \
            existing output is replaced only with --force, and never an input.

            An adapter written as .safetensors or .pth keeps its record (rank, scaling, groups and norms, task, base \
            fingerprint, classes, metadata): in the safetensors metadata, or as string entries of the .pth state dict \
            (load it with load_state_dict(sd, strict=False), as loralib does). Either converts back to the same adapter.

            PEFT: an output or input that is a folder (a directory, or a path ending in /) is a Hugging Face PEFT LoRA \
            folder (adapter_config.json + adapter_model.safetensors), for PeftModel.from_pretrained(model, folder). Both \
            directions need --base, the backbone the adapter belongs to: its family names the modules, and an exported \
            adapter must have been trained on exactly it. A PEFT folder gslora did not write records no base \
            fingerprint, so it is bound to --base. Only LoRA on the FFN linears with bias "none" can be read (no DoRA, \
            modules_to_save, rank or alpha patterns); use_rslora is supported.

            A merged face model written as .pth has GS-LoRA's ViT_face keys and no LoRA factors: build the official \
            ViT_face with lora_rank=0 and load it strictly, or load it with strict=False into a model with LoRA layers \
            (loralib starts lora_B at zero, so they add nothing).

            Examples:
              gslora-convert face_vit.pth                 (writes face_vit.gslr)
              gslora-convert face_vit.pth -o face_vit.gslr --force
              gslora-convert vit_b_16.pth -o vit_b_16.safetensors --dtype bf16
              gslora-convert tiny.pth -o tiny.gslr --heads 4
              gslora-convert task1.pth -o task1.gslr --base pretrained.pth \\
                  --adapter-out task1.lora.gslr
              gslora-convert edited.gslr -o edited.pth    (original key names)
              gslora-convert ckpt.pth -o all.gslr --raw   (every tensor)
              gslora-convert hub/deit/model.safetensors -o deit.gslr   (pipeline from hub/deit/config.json)
              gslora-convert vit.pth -o vit.gslr --interpolation bicubic --crop-pct 0.9 \\
                  --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
              gslora-convert task1.lora.gslr -o task1_peft/ --base task1.gslr   (PEFT folder)
              gslora-convert peft_out/ -o task1.lora.gslr --base vit.gslr      (from PEFT)

            Exit status: 0 converted, 1 bad input or failed write, 2 usage error.
            """)

    @Argument(help: "The checkpoint to read (.pth/.pt/.bin, .safetensors or .gslr), or a PEFT LoRA folder.")
    var input: String

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp(
            "The file to write; its extension (.gslr, .safetensors, .pth) picks the format; a folder (ending in /) is a PEFT folder (default: IN as .gslr beside it).",
            valueName: "file"))
    var outputOption: String?

    /// -o, or the input's name with .gslr.
    var output: String { outputOption ?? OutputPolicy.beside(input, suffix: ".gslr") }

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

    @Option(help: "The model the LoRA was trained on; tells merged (saved after eval()) from unmerged weights. Required to write or read a PEFT folder.")
    var base: String?

    @Option(help: "Where to write the adapter of a LoRA checkpoint (default: OUT with .adapter.gslr).")
    var adapterOut: String?

    @Option(help: "Tensor names in .safetensors/.pth outputs: original (the family's own keys) or canonical.")
    var names: String = "original"

    @Flag(help: "Keep optimizer state (skipped by default).")
    var keepOptimizer = false

    @Flag(help: "Print the full report as JSON on stdout.")
    var json = false

    @Flag(help: "Replace existing output files (never an input).")
    var force = false

    @OptionGroup(title: "Image pipeline to store (over a timm config.json's pretrained_cfg beside the input)")
    var preprocessOptions: PreprocessOptions

    func validate() throws {
        guard DTypeCast.Target(rawValue: dtype) != nil else { throw ValidationError("--dtype must be f32, f16, bf16 or keep, not '\(dtype)'") }
        guard ConvertOptions.Names(rawValue: names) != nil else { throw ValidationError("--names must be original or canonical, not '\(names)'") }
        guard Converter.OutputFormat(path: output) != nil else {
            throw ValidationError("\(output): unknown output extension; use .gslr, .safetensors, .pth or a folder ending in / (PEFT)")
        }
        if output == input || AtomicFile.sameFile(input, output) {
            throw ValidationError(
                outputOption == nil
                    ? "\(input) is already the .gslr the default output would be; give -o with another path"
                    : "\(output): the output is the input; choose a different output path")
        }
        if let h = heads, h < 1 { throw ValidationError("--heads must be positive") }
        if let c = channels, c < 1 { throw ValidationError("--channels must be positive") }
        if let a = loraAlpha, !(a.isFinite && a > 0) { throw ValidationError("--lora-alpha must be a positive number") }
        if preprocessOptions.preprocess == .direct && preprocessOptions.resize == nil && preprocessOptions.cropPct == nil {
            throw ValidationError("--preprocess direct cannot be stored: a stored pipeline resizes the short side (--resize or --crop-pct) and crops")
        }
    }

    func run() throws {
        let inputs = [input] + [base].compactMap { $0 }
        for path in [output] + [adapterOut].compactMap({ $0 }) { try OutputPolicy.checkFile(path, inputs: inputs, force: force) }
        var options = ConvertOptions(
            importing: ImportOptions(
                raw: raw, heads: heads, channels: channels, keepOptimizer: keepOptimizer,
                loraAlpha: loraAlpha, base: base),
            dtype: DTypeCast.Target(rawValue: dtype)!, names: ConvertOptions.Names(rawValue: names)!,
            adapterOut: adapterOut, force: force)
        if !preprocessOptions.isEmpty {
            let request = try preprocessOptions.request(), input = self.input
            options.pipeline = { (config: ModelConfig, stored: PreprocessRecord?) throws -> PreprocessRecord in
                let choice = try PreprocessChoice.resolve(config: config, stored: stored, modelPath: input, request: request)
                guard let record = choice.record(source: "gslora-convert options; \(choice.origin)") else {
                    throw ValidationError("--preprocess direct cannot be stored: a stored pipeline resizes the short side and crops")
                }
                return record
            }
        }
        let report = try Converter.convert(input: input, output: output, options: options)
        StatusLine().notes(report.notices)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
            return
        }
        print(report.summary)
    }
}
