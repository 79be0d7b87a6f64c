import GSLoRAFormat

/// How the commands spell a library `Setting`: the flag a user types for it. The libraries name settings by their
/// API property names, which ArgumentParser turns into flags by the same kebab-case rule; `exceptions` lists the
/// properties whose command flag has another name.
public enum FlagSpelling {
    /// API name → flag, where the flag is not `--` + the kebab-case of the name.
    public static let exceptions: [String: String] = [
        // TrainOptions
        "bound": "--bnd",
        "prototypeForget": "--prototype-weight",
        "prototypeRetain": "--prototype-retain-weight",
        // BaselineSettings: the command's flags drop the method prefix or shorten "temperature".
        "lwfLambdaKD": "--lambda-kd",
        "lwfLambdaRemain": "--lambda-remain",
        "lwfTemperature": "--lwf-t",
        "lirfTemperature": "--lirf-t",
        "scrubTemperature": "--kd-t",
        "scrubSmoothing": "--smoothing",
        "scrubGamma": "--gamma",
        "scrubWeightDecay": "--weight-decay",
        "scrubSWABeta": "--swa-beta",
        "scrubSuperEpochs": "--super-epochs",
        // LoRAMerge.mergeFiles(scales:): one --scale per adapter.
        "scales": "--scale"
    ]

    /// The flag for the setting named `name`, e.g. "classesPerTask" → "--classes-per-task", "minLR" → "--min-lr".
    public static func flag(_ name: String) -> String { exceptions[name] ?? "--" + kebabCase(name) }

    /// ArgumentParser's rule: a word starts at an upper-case letter after a lower-case one or a digit, and at the
    /// last capital of a run followed by a lower-case letter ("scrubSWABeta" → "scrub-swa-beta").
    public static func kebabCase(_ name: String) -> String {
        let c = Array(name)
        var out = ""
        for (i, ch) in c.enumerated() {
            if ch.isUppercase && i > 0 {
                let prev = c[i - 1]
                let nextIsLower = i + 1 < c.count && c[i + 1].isLowercase
                if prev.isLowercase || prev.isNumber || (prev.isUppercase && nextIsLower) { out.append("-") }
            }
            out.append(contentsOf: ch.lowercased())
        }
        return out
    }
}
