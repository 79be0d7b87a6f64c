import Foundation

/// What can go wrong building or running a model. Each case names the tensor or input and says what to do.
public enum ModelError: Error, CustomStringConvertible, Equatable, LocalizedError {
    /// The config cannot describe a runnable ViT (non-positive sizes, image not divisible by the patch, ...).
    case badConfig(String)
    /// A weight the config requires is absent.
    case missingTensor(String)
    /// A weight has the wrong shape.
    case shapeMismatch(tensor: String, expected: [Int], actual: [Int])
    /// A weight is not a float tensor or its bytes do not match its shape.
    case badTensor(tensor: String, problem: String)
    /// A tensor the config does not use (usually a name-mapping mistake upstream).
    case unexpectedTensors([String])
    /// The same tensor name appears twice.
    case duplicateTensor(String)
    /// A LoRA adapter does not fit the model (rank, per-block factors, scaling).
    case badAdapter(String)
    /// A forward call's input does not match the model (image buffer size, labels).
    case badInput(String)
    /// The requested batch needs more memory than the cap.
    case tooLarge(String)
    /// A oneDNN call of the bf16 precision did not succeed: which call and its status.
    case oneDNN(call: String, status: String)
    /// The CPU lacks the instruction-set features a requested kernel level needs (named).
    case cpuLacks(String)
    /// GSLORA_KERNELS names no kernel level of this build.
    case badKernelRequest(String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case .badConfig(let why):
            return "model config: \(why); the config comes from the converted file, re-convert it or fix the header"
        case .missingTensor(let name):
            return "weights: tensor \"\(name)\" is missing; the file does not hold a complete model of this config"
        case let .shapeMismatch(name, expected, actual):
            return "weights: tensor \"\(name)\" has shape \(actual), the config needs \(expected); the weights and config disagree"
        case let .badTensor(name, problem):
            return "weights: tensor \"\(name)\": \(problem)"
        case .unexpectedTensors(let names):
            let shown = names.prefix(5).joined(separator: ", ") + (names.count > 5 ? ", … (\(names.count) in all)" : "")
            return "weights: tensors the config does not use: \(shown); check the name mapping of the converter"
        case .duplicateTensor(let name):
            return "weights: tensor \"\(name)\" appears twice"
        case .badAdapter(let why):
            return "LoRA adapter: \(why)"
        case .badInput(let why):
            return "forward input: \(why)"
        case .tooLarge(let why):
            return "batch too large: \(why); use a smaller batch"
        case let .oneDNN(call, status):
            let hint =
                status == "unimplemented"
                ? "oneDNN has no bfloat16 matrix product for this CPU (it needs AVX-512, and AVX512-BF16 or AMX to be fast); use precision float32"
                : "use precision float32, or report it with the oneDNN version (libdnnl 2.6)"
            return "oneDNN: \(call) failed with status \(status); \(hint)"
        case .cpuLacks(let what):
            return "this CPU lacks \(what)"
        case .badKernelRequest(let why):
            return why
        }
    }
}
