import Dispatch
import Foundation

/// The processes of one run and the collective operations data-parallel training and sharded evaluation need.
/// Every rank calls every operation in the same order (MPI's collective rule); buffers are summed in place.
/// `SingleProcess` is the identity, so code written against a communicator runs unchanged without MPI.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Element-wise sum over ranks, in place; every rank ends with the same values.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// `root`'s bytes copied into every rank's buffer (same length everywhere).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    func barrier() throws
    /// Ends every rank of the job with `code` (a failed rank must not leave the others waiting in a collective).
    func abort(code: Int32) -> Never
    /// Bytes this rank handed to collectives and seconds spent in them, since the start.
    var statistics: CommunicationStatistics { get }
}

public struct CommunicationStatistics: Sendable, Equatable {
    public var calls = 0
    public var bytes = 0
    public var seconds = 0.0
    public init() {}
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// This rank's contiguous share of `count` items: ranks get ⌊count/size⌋ or one more, in rank order.
    public func shard(_ count: Int) -> Range<Int> { Self.shard(count, rank: rank, size: size) }

    public static func shard(_ count: Int, rank: Int, size: Int) -> Range<Int> {
        (count * rank / size)..<(count * (rank + 1) / size)
    }

    public func allreduceSum(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    public func allreduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }
}

/// One process: every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
    public var statistics: CommunicationStatistics { CommunicationStatistics() }
}

/// Which communicator this process runs with, from the launcher's environment: under `mpirun` (Open MPI sets
/// OMPI_COMM_WORLD_SIZE), a PMIx/PMI launcher (PMIX_RANK, PMI_RANK — Slurm's `srun --mpi=pmix`), or a Slurm step
/// of more than one task, MPI is loaded at run time and must be there; otherwise the process runs alone and libmpi
/// is never loaded.
public enum Cluster {
    /// Whether the environment says a launcher started this process as one rank of a job.
    public static func launched(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        if environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil || environment["PMI_RANK"] != nil { return true }
        if let n = environment["SLURM_STEP_NUM_TASKS"].flatMap(Int.init), n > 1 { return true }
        return false
    }

    /// The world communicator: MPI when launched by one (initialising it), else `SingleProcess`.
    public static func world(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Communicator {
        guard launched(environment: environment) else { return SingleProcess() }
        return try OpenMPI.initialize(library: environment["GSLORA_LIBMPI"])
    }
}

extension CommunicationStatistics {
    /// Times `body` and counts `bytes` as one collective call.
    mutating func record<R>(bytes: Int, _ body: () throws -> R) rethrows -> R {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            calls += 1
            self.bytes += bytes
            seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        return try body()
    }
}
