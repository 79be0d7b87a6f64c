import Foundation
import GSLoRAAdapters
import GSLoRAData
import GSLoRAFormat
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `mpirun -np 2 gslora-train …` against one process on TinyRun's data, with dropout: GS-LoRA, GS-LoRA++, `pretrain`
/// and an all-parameter baseline give the single-process weights within the summation-order tolerance with identical
/// evaluation counts, and a run interrupted under one N and resumed under another reaches the uninterrupted adapter.
/// Runs wherever Open MPI's mpirun is installed (scripts/ci-mpi.sh installs it in CI); skipped only without it.
///
/// The tolerance: each AdamW step moves a weight by at most ≈lr (|m̂|/√v̂ ≤ 1, plus lr·wd·|w| of decay). The ranks
/// re-associate float32 sums (each rank's share of the batch, then the allreduce), which perturbs m̂/√v̂ by ≈1e-6
/// relative except where a gradient sits near AdamW's eps, where one step itself can differ by up to lr. Bound: 1 % of
/// the most any weight could have moved, 0.01·lr·steps (lr the peak learning rate).
final class MPITrainCommandTests: XCTestCase {
    func mpirun() throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw XCTSkip("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev; scripts/ci-mpi.sh does)")
    }

    /// One BLAS/OpenMP thread per process: the ranks share the machine's cores.
    let environment = ["OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"]
    let mpiArgs = ["--allow-run-as-root", "--oversubscribe", "-np", "2"]

    func run(_ executable: String, _ args: [String]) throws -> (code: Int32, out: String, err: String) {
        try CommandRunner.run(executable: URL(fileURLWithPath: executable), args, environment: environment)
    }

    /// TinyRun's images as .npy files in `dir` (`perClass` training images of each of the 6 classes) and the data
    /// options that name them.
    func tinyData(_ dir: String, perClass: Int = 6) throws -> [String] {
        for (name, set) in [("train", try TinyRun.images(perClass: perClass, seed: 11)), ("test", try TinyRun.images(perClass: 3, seed: 12))] {
            try NPY.write(set.images, to: "\(dir)/\(name)-x.npy")
            try set.labels.map(Float.init).withUnsafeBufferPointer { try NPY.write($0, shape: [set.labels.count], to: "\(dir)/\(name)-y.npy") }
        }
        return [
            "--data", dir + "/train-x.npy", "--labels", dir + "/train-y.npy", "--test-data", dir + "/test-x.npy",
            "--test-labels", dir + "/test-y.npy"
        ]
    }

    /// Batch 5: the ranks hold 2 and 3 rows of each batch (unequal shares are the harder case). GS-LoRA runs add
    /// `--rank 2`.
    func forgetArgs(_ backbone: String, _ data: [String], epochs: Int = 3) -> [String] {
        ["forget", backbone] + data + [
            "--forget", "0", "--epochs", "\(epochs)", "--batch-size", "5", "--data-ratio", "1",
            "--eval-batch", "7", "--dropout", "0.1", "--json"
        ]
    }

    /// The largest |a − b| over the tensors of two .gslr files (same names in the same order), with `nonZero` a check
    /// that every tensor of `a` trained (is not all zero; an all-parameter method may leave some tensors alone).
    func maxDifference(_ a: String, _ b: String, nonZero: Bool = true) throws -> Double {
        let x = try GSLRFile.open(a).allTensors(), y = try GSLRFile.open(b).allTensors()
        XCTAssertEqual(x.map(\.name), y.map(\.name))
        var worst = 0.0
        for (s, t) in zip(x, y) {
            let u = try s.floats(), v = try t.floats()
            if nonZero { XCTAssertGreaterThan(u.map { abs($0) }.max() ?? 0, 0, "\(s.name) is all zero") }
            worst = max(worst, zip(u, v).map { abs(Double($0) - Double($1)) }.max() ?? 0)
        }
        return worst
    }

    /// Runs a one-process and a two-rank forget job with `extra` options; checks the adapters and metrics agree.
    func compareForget(_ name: String, extra: [String], lr: Double, metricKeys: [String]) throws {
        let mpi = try mpirun()
        let dir = try temporaryDirectory(name)
        let args = forgetArgs(try TinyRun.backboneFile(in: dir), try tinyData(dir)) + ["--rank", "2"] + extra
        let train = try CommandRunner.binary("gslora-train").path
        let one = try run(train, args + ["-o", dir + "/one"])
        XCTAssertEqual(one.code, 0, one.err)
        let two = try run(mpi, mpiArgs + [train] + args + ["-o", dir + "/two"])
        XCTAssertEqual(two.code, 0, two.err)
        guard one.code == 0, two.code == 0 else { return }

        let a = dir + "/one/task-1.gslr", b = dir + "/two/task-1.gslr"
        let steps = try XCTUnwrap(AdapterFile.open(a).info.task.metrics["steps"])
        let bound = 0.01 * lr * steps, worst = try maxDifference(a, b)
        print("\(name): mpirun -np 2 vs 1 process: \(Int(steps)) steps, max |Δ| \(worst) (bound \(bound))")
        XCTAssertLessThanOrEqual(worst, bound)
        // The evaluation counts (accuracies over the same test images) are identical.
        let ma = try AdapterFile.open(a).info.task.metrics, mb = try AdapterFile.open(b).info.task.metrics
        for key in metricKeys {
            XCTAssertNotNil(ma[key], key)
            XCTAssertEqual(ma[key], mb[key], key)
        }
        XCTAssertTrue(!two.out.isEmpty && !two.out.contains("}\n{"), "one JSON report (rank 0's): \(two.out)")
    }

    func testTwoRanksTrainTheSingleProcessAdapter() throws {
        try compareForget("mpi-gslora", extra: [], lr: 0.01, metricKeys: ["before_acc_r", "before_acc_f", "acc_r", "acc_f"])
    }

    /// GS-LoRA++: prototypes from sharded embeddings, the prototype hinge gated on the global K_f, the EMA model.
    func testTwoRanksTrainTheSingleProcessPlusAdapter() throws {
        try compareForget(
            "mpi-plus", extra: ["--plus", "--prototype-weight", "0.05", "--prototype-margin", "1", "--ema-start", "0"],
            lr: 0.01, metricKeys: ["before_acc_r", "before_acc_f", "acc_r", "acc_f", "ema_acc_r", "ema_acc_f"])
    }

    /// `pretrain`: every parameter's gradient summed over the ranks (bucketed allreduces), rank 0 writing.
    func testTwoRanksPretrainTheSingleProcessModel() throws {
        let mpi = try mpirun()
        let dir = try temporaryDirectory("mpi-pretrain")
        let args =
            ["pretrain"] + (try tinyData(dir)) + [
                "--image-size", "8", "--patch-size", "4", "--channels", "1", "--width", "16",
                "--depth", "2", "--heads", "2", "--mlp-width", "32", "--epochs", "2",
                "--batch-size", "5", "--lr", "1e-3", "--warmup-epochs", "0", "--dropout", "0.1", "--json"
            ]
        let train = try CommandRunner.binary("gslora-train").path
        let one = try run(train, args + ["-o", dir + "/one.gslr"])
        XCTAssertEqual(one.code, 0, one.err)
        let two = try run(mpi, mpiArgs + [train] + args + ["-o", dir + "/two.gslr"])
        XCTAssertEqual(two.code, 0, two.err)
        guard one.code == 0, two.code == 0 else { return }
        // 36 images in batches of 5: 8 steps per epoch (the last batch of 1 leaves one rank without rows).
        let steps = 2.0 * 8, bound = 0.01 * 1e-3 * steps, worst = try maxDifference(dir + "/one.gslr", dir + "/two.gslr")
        print("pretrain: mpirun -np 2 vs 1 process: \(Int(steps)) steps, max |Δ| \(worst) (bound \(bound))")
        XCTAssertLessThanOrEqual(worst, bound)
        struct Report: Decodable { var epochs: [Epoch]; struct Epoch: Decodable { var test_acc: Double; var test_acc_margin: Double } }
        let ra = try JSONDecoder().decode(Report.self, from: Data(one.out.utf8)), rb = try JSONDecoder().decode(Report.self, from: Data(two.out.utf8))
        XCTAssertEqual(ra.epochs.map(\.test_acc), rb.epochs.map(\.test_acc))
        XCTAssertEqual(ra.epochs.map(\.test_acc_margin), rb.epochs.map(\.test_acc_margin))
    }

    /// The all-parameter baselines: EWC (importance batches shared out, penalty added once after the sum), DER++
    /// (a teacher, a summed term, a second retain batch), LIRF (attention transfer at the half-way stream) and
    /// SCRUB-S (phases, distance to the averaged model). Each writes the whole backbone.
    func testTwoRanksTrainTheSingleProcessBaselines() throws {
        let mpi = try mpirun()
        let dir = try temporaryDirectory("mpi-baselines")
        let data = try tinyData(dir)
        let backbone = try TinyRun.backboneFile(in: dir)
        let train = try CommandRunner.binary("gslora-train").path
        for (method, lr, extra) in [("ewc", 1e-4, [String]()), ("der++", 1e-3, []), ("lirf", 1e-4, []), ("scrub-s", 1e-4, ["--super-epochs", "1"])] {
            let args = forgetArgs(backbone, data, epochs: 2) + ["--method", method] + extra
            let one = try run(train, args + ["-o", dir + "/\(method)-one"])
            XCTAssertEqual(one.code, 0, "\(method): \(one.err)")
            let two = try run(mpi, mpiArgs + [train] + args + ["-o", dir + "/\(method)-two"])
            XCTAssertEqual(two.code, 0, "\(method): \(two.err)")
            guard one.code == 0, two.code == 0 else { continue }
            func task(_ out: String) throws -> [String: Any] {
                let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
                return try XCTUnwrap((report["tasks"] as? [[String: Any]])?.first)
            }
            let ta = try task(one.out), tb = try task(two.out)
            let steps = try XCTUnwrap(ta["steps"] as? Double)
            let bound = 0.01 * lr * steps
            let worst = try maxDifference(dir + "/\(method)-one/task-1.gslr", dir + "/\(method)-two/task-1.gslr", nonZero: false)
            // The comparison means something only if training moved the weights by more than the bound.
            let moved = try maxDifference(backbone, dir + "/\(method)-one/task-1.gslr", nonZero: false)
            print("\(method): mpirun -np 2 vs 1 process: \(Int(steps)) steps, max |Δ| \(worst) (bound \(bound); moved \(moved))")
            XCTAssertLessThanOrEqual(worst, bound, method)
            XCTAssertGreaterThan(moved, bound, "\(method): training must move the weights by more than the bound")
            for key in ["before", "after"] {
                XCTAssertEqual(ta[key] as? NSDictionary, tb[key] as? NSDictionary, "\(method) \(key)")
            }
        }
    }

    /// Starts `args` (a gslora-train run writing `--log log`), sends SIGTERM once the log holds a step, and returns
    /// the exit status. Under mpirun the signal goes to every rank (mpirun's children); the ranks agree on the step to
    /// stop after.
    func interrupted(_ executable: String, _ args: [String], log: String, mpi: Bool) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), text.contains("\"step\"") { break }
            usleep(2000)
        }
        let targets = mpi ? Self.children(of: p.processIdentifier) : [p.processIdentifier]
        for pid in targets { kill(pid, SIGTERM) }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// The processes whose parent is `pid` (from /proc).
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }
    }

    /// A run interrupted under 2 ranks and resumed by one process, and one interrupted as one process and resumed
    /// under 2 ranks, both reach the uninterrupted one-process adapter within the tolerance above (the state holds
    /// no trace of N: factors, AdamW moments, step counters and the loaders' position in their streams).
    func testResumeWithAnotherNumberOfRanks() throws {
        let mpi = try mpirun()
        let dir = try temporaryDirectory("mpi-resume")
        // 40 training images per class and batch 2: 120 steps per epoch, so the signal lands mid-run.
        let args = forgetArgs(try TinyRun.backboneFile(in: dir), try tinyData(dir, perClass: 40), epochs: 2) + ["--rank", "2", "--batch-size", "2"]
        let train = try CommandRunner.binary("gslora-train").path
        let straight = try run(train, args + ["-o", dir + "/straight"])
        XCTAssertEqual(straight.code, 0, straight.err)
        let steps = try XCTUnwrap(AdapterFile.open(dir + "/straight/task-1.gslr").info.task.metrics["steps"])
        let bound = 0.01 * 0.01 * steps
        for (name, firstMPI) in [("two-then-one", true), ("one-then-two", false)] {
            let out = dir + "/" + name, log = dir + "/\(name).jsonl"
            let first =
                firstMPI
                ? try interrupted(mpi, mpiArgs + [train] + args + ["-o", out, "--log", log], log: log, mpi: true)
                : try interrupted(train, args + ["-o", out, "--log", log], log: log, mpi: false)
            XCTAssertEqual(first, 130, "\(name): the interrupted run exits 130 (it must not finish before the signal)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/state.gslr"), "\(name): state saved")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/task-1.gslr"), "\(name): no adapter yet")
            let resumeArgs = args + ["-o", out, "--resume"]
            let second = firstMPI ? try run(train, resumeArgs) : try run(mpi, mpiArgs + [train] + resumeArgs)
            XCTAssertEqual(second.code, 0, "\(name): \(second.err)")
            guard first == 130, second.code == 0 else { continue }
            let worst = try maxDifference(dir + "/straight/task-1.gslr", out + "/task-1.gslr")
            print("resume \(name): \(Int(steps)) steps, adapter max |Δ| against the uninterrupted run \(worst) (bound \(bound))")
            XCTAssertLessThanOrEqual(worst, bound, name)
        }
    }
}
