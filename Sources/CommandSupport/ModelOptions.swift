import ArgumentParser
import GSLoRAConvert

/// `--heads` and `--channels` of every command that loads a .pth or .safetensors model: the values its tensors do not
/// fix when no config file beside it and no architecture of spec/MODELS.md decides them.
public struct ModelOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Attention heads of a .pth/.safetensors model (its num_heads). Needed only when no config file beside it "
                + "and no published architecture decides them; the error then lists the candidates.", valueName: "N"))
    public var heads: Int?

    @Option(
        help: ArgumentHelp(
            "Image channels of a .pth/.safetensors face model, when its patch embedding fits more than one count.",
            valueName: "N"))
    public var channels: Int?

    public init() {}

    public func validate() throws {
        if let h = heads, h < 1 { throw ValidationError("--heads must be positive") }
        if let c = channels, c < 1 { throw ValidationError("--channels must be positive") }
    }

    /// Import options carrying these values.
    public var importOptions: ImportOptions { ImportOptions(heads: heads, channels: channels) }
}
