import Foundation

/// What can go wrong running over several processes. Each message says what failed and what to do.
public enum ClusterError: Error, CustomStringConvertible, LocalizedError {
    /// Started by an MPI launcher, but Open MPI's library cannot be loaded or lacks a symbol gslora needs.
    case noMPI(String)
    /// An MPI call returned an error code.
    case failed(String)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case .noMPI(let s), .failed(let s): return s
        }
    }
}
