import ArgumentParser
import Foundation
import GSLoRACluster

/// Runs a command's work on the world communicator (`Cluster.world`). Alone, errors propagate as usual. As one rank
/// of an MPI job, an error is printed naming the rank and the whole job is aborted with exit 1 (2 for a usage error,
/// `usageMessage(of:)`), so no rank waits forever in a collective for a rank that failed; on success MPI is finalised.
public enum ClusterRun {
    public static func run<R>(_ body: (Communicator) throws -> R) throws -> R {
        let world = try Cluster.world()
        guard let mpi = world as? OpenMPI else { return try body(world) }
        let result: R
        do {
            result = try body(mpi)
        } catch let code as ExitCode {
            // Every rank stops at the same step (training's stop flag is agreed on): end MPI and exit with the code.
            try mpi.finalize()
            throw code
        } catch {
            fail(mpi, usageMessage(of: error) ?? "\(error)", code: usageMessage(of: error) != nil ? 2 : 1)
        }
        let st = mpi.statistics
        if mpi.isRoot {
            FileHandle.standardError.write(
                Data(
                    String(
                        format: "note: rank 0 of %d: %d collectives, %d bytes sent into them, %.3f s in them\n",
                        mpi.size, st.calls, st.bytes, st.seconds
                    ).utf8))
        }
        try mpi.finalize()
        return result
    }

    /// How many ranks of this job share this machine (Open MPI's local size, Slurm's tasks on this node), 1 alone:
    /// each holds its own model and data, so a memory check divides what is available among them.
    public static var processesOnThisMachine: Int {
        let env = ProcessInfo.processInfo.environment
        let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"].lazy.compactMap { env[$0].flatMap { Int($0) } }.first
        return max(1, local ?? 1)
    }

    private static func fail(_ mpi: OpenMPI, _ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("error: rank \(mpi.rank) of \(mpi.size): \(message)\n".utf8))
        mpi.abort(code: code)
    }
}
