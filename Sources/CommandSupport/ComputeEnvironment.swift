import Foundation
import GSLoRACluster
import GSLoRAModel

/// A command that runs the model (kernels, OpenBLAS, oneDNN): before it starts, `GsloraCommand.main` checks the
/// kernel choice and sets up the BLAS and OpenMP environment (`ComputeEnvironment.prepare`).
public protocol ComputeCommand {}

/// The process set-up a model-running command needs, done once before its work starts.
public enum ComputeEnvironment {
    /// Refuses a GSLORA_KERNELS value this CPU or build cannot follow, then, when OpenBLAS or libgomp would load with
    /// slow settings (`BLAS.preferredEnvironment`), runs the process again with the variables set (they are read only at
    /// load). Under an MPI launcher the process is not re-executed (Open MPI's MPI_Init then fails in the new image):
    /// set the variables for mpirun/srun instead (README "More than one machine").
    public static func prepare() throws {
        if let problem = KernelLevel.environmentProblem { throw KernelChoiceProblem(error: problem) }
        if Cluster.launched() { return }
        let changes = BLAS.preferredEnvironment(ProcessInfo.processInfo.environment)
        guard !changes.isEmpty else { return }
        for (name, value) in changes { setenv(name, value, 1) }
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        let failure = String(cString: strerror(errno))
        for name in changes.keys { unsetenv(name) }
        let settings = changes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        FileHandle.standardError.write(
            Data("note: could not run again with \(settings) (\(failure)); continuing with the library defaults, which may be slower; set them yourself\n".utf8)
        )
    }
}

/// GSLORA_KERNELS asks for kernels this build or CPU does not have: a usage problem (exit 2).
struct KernelChoiceProblem: Error, CustomStringConvertible, UsageProblem {
    let error: ModelError
    var description: String { error.description }
    var isUsageProblem: Bool { true }
}
