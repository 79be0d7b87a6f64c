import ArgumentParser
import GSLoRAModel

extension MatmulPrecision: ExpressibleByArgument {}

/// `--precision` of the commands that run a model (gslora-infer, gslora-eval, gslora-train forget).
public struct PrecisionOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Arithmetic of the frozen linear layers: float32 (default; what parity with PyTorch is tested on) or bf16 "
                + "(about 2× faster on CPUs with AMX or AVX512-BF16, about 1e-3 relative error per product; LoRA, "
                + "LoRA and its gradients, attention and the head stay float32).",
            valueName: "float32|bf16"))
    public var precision: MatmulPrecision = .float32

    public init() {}

    /// Sets the model's precision; bf16 weights are packed on its first forward call.
    public func apply(to model: ViT) { model.precision = precision }
}
