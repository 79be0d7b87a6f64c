import ArgumentParser
import Foundation
import GSLoRAAdapters

/// The adapter flags of the commands that run a model (gslora-eval, gslora-infer).
public struct AdapterOptions: ParsableArguments {
    @Option(
        name: .customLong("adapter"),
        help: "An adapter to apply: a .gslr adapter, a PEFT LoRA folder, or an adapter exported as .safetensors/.pth (repeatable, in training order).")
    public var adapters: [String] = []

    @Option(name: .customLong("scale"), help: "Multiplier of an adapter's scaling; one per adapter, in order (default 1).")
    public var scales: [Double] = []

    @Flag(help: "Fold the adapters into the weights instead of applying them live.")
    public var merged = false

    @Flag(help: "Apply adapters even when their base fingerprint does not match (prints a warning).")
    public var allowBaseMismatch = false

    public init() {}

    public func validate() throws {
        guard scales.count <= adapters.count else { throw ValidationError("more --scale values than --adapter files") }
    }

    /// The model with the adapters applied; each fingerprint mismatch let through by --allow-base-mismatch is warned about on stderr.
    public func apply(to model: LoadedModel) throws -> AdaptedModel {
        let built = try model.adapted(adapters: adapters, scales: scales, merged: merged, force: allowBaseMismatch)
        for s in built.steps where s.forced {
            FileHandle.standardError.write(
                Data("warning: \(s.adapter) was trained on \(s.expectedBase), applied to \(s.actualBase) (--allow-base-mismatch)\n".utf8))
        }
        return built
    }
}
