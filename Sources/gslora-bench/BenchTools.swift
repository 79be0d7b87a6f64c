import ArgumentParser
import Foundation
import GSLoRAFormat

/// What the benchmarks share: synthetic ViT-B/16 weights, medians, and running a program as a whole process.
protocol BenchTools {}

extension BenchTools {
    // MARK: data

    var vitB16Config: ModelConfig {
        ModelConfig(
            family: .torchvisionViT, imageSize: 224, patchSize: 16, width: 768, depth: 12, heads: 12, headDim: 64,
            mlpWidth: 3072, numClasses: 1000, head: .linear, attentionScale: 0.125, layerNormEps: 1e-6, qkvBias: true)
    }

    /// torchvision ViT-B/16's state-dict shapes, filled with noise (random bits compress like real weights: not at all).
    func vitB16Tensors() -> [Tensor] {
        var shapes: [(String, [Int])] = [
            ("class_token", [1, 1, 768]), ("conv_proj.weight", [768, 3, 16, 16]), ("conv_proj.bias", [768]),
            ("encoder.pos_embedding", [1, 197, 768])
        ]
        for i in 0..<12 {
            let p = "encoder.layers.encoder_layer_\(i)."
            shapes += [
                (p + "ln_1.weight", [768]), (p + "ln_1.bias", [768]),
                (p + "self_attention.in_proj_weight", [2304, 768]), (p + "self_attention.in_proj_bias", [2304]),
                (p + "self_attention.out_proj.weight", [768, 768]), (p + "self_attention.out_proj.bias", [768]),
                (p + "ln_2.weight", [768]), (p + "ln_2.bias", [768]),
                (p + "mlp.0.weight", [3072, 768]), (p + "mlp.0.bias", [3072]), (p + "mlp.3.weight", [768, 3072]), (p + "mlp.3.bias", [768])
            ]
        }
        shapes += [("encoder.ln.weight", [768]), ("encoder.ln.bias", [768]), ("heads.head.weight", [1000, 768]), ("heads.head.bias", [1000])]
        return shapes.enumerated().map { i, s in noiseTensor(s.0, s.1, seed: UInt64(i + 1)) }
    }

    func noiseTensor(_ name: String, _ shape: [Int], seed: UInt64) -> Tensor {
        let n = shape.reduce(1, *)
        let owner = ByteOwner.allocate(n * 4)
        let words = UnsafeMutableRawPointer(mutating: owner.base.baseAddress!).assumingMemoryBound(to: UInt32.self)
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        for i in 0..<n {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            words[i] = UInt32(truncatingIfNeeded: x)
        }
        return Tensor(name: name, dtype: .f32, shape: shape, data: Bytes(owner: owner))
    }

    /// A file of about `totalBytes` with 200 tensors (a ViT-B-sized table) that all view one noise buffer.
    func writeUniform(_ path: String, totalBytes: Int) throws {
        let count = 200
        let per = totalBytes / count / 4
        let shared = noiseTensor("shared", [per], seed: 99)
        let tensors = (0..<count).map { Tensor(name: "layer.\($0).weight", dtype: .f32, shape: [per], data: shared.data) }
        try GSLRWriter.write(path, header: GSLRHeader(kind: .backbone, model: vitB16Config), tensors: tensors)
    }

    /// The bytes of `tensors` written back to back with plain write(2): what any writer must at least pay.
    func rawWriteFile(_ path: String, _ tensors: [Tensor], sync: Bool) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw BenchFailure("cannot create \(path)") }
        defer { close(fd) }
        for t in tensors {
            let b = t.data.buffer
            var done = 0
            while done < b.count {
                let n = write(fd, b.baseAddress! + done, b.count - done)
                guard n > 0 else { throw BenchFailure("write to \(path) failed") }
                done += n
            }
        }
        if sync { fsync(fd) }
    }

    // MARK: timing

    func median(_ n: Int, setup: () -> Void = {}, _ body: () throws -> Void) -> Double {
        var times: [Double] = []
        for _ in 0..<max(1, n) {
            setup()
            let t0 = DispatchTime.now().uptimeNanoseconds
            do { try body() } catch { fatalError("benchmark step failed: \(error)") }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }

    /// Runs a program to completion with posix_spawn (Foundation's Process adds tens of ms of its own).
    func run(_ exe: String, _ args: [String], quiet: Bool = false) throws {
        _ = try spawnAndWait(exe, args, stdout: quiet ? "/dev/null" : nil)
    }

    /// Runs a program with its standard output into the file `stdout` (nil: this process's) and waits for it;
    /// returns wait4's resource usage. A nonzero exit is an error naming the command.
    func spawnAndWait(_ exe: String, _ args: [String], stdout: String?) throws -> rusage {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdout { posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600) }
        let argv = ([exe] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, argv, environ)
        guard rc == 0 else { throw BenchFailure("cannot start \(exe): errno \(rc)") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        guard status == 0 else { throw BenchFailure("\(exe) \(args.joined(separator: " ")) failed (wait status \(status))") }
        return usage
    }

    func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1e3) }

    /// Runs a program like `run` and returns its peak resident memory in bytes (wait4's ru_maxrss).
    func runMeasuringPeak(_ exe: String, _ args: [String]) throws -> Int {
        Int(try spawnAndWait(exe, args, stdout: "/dev/null").ru_maxrss) * 1024
    }

    /// A sibling executable of this benchmark binary (all products build into one folder).
    func sibling(_ name: String) throws -> String {
        let path = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchFailure("\(name) not found beside this binary at \(path); build all products first (swift build -c release)")
        }
        return path
    }
}

/// A measurement that could not be made (a file, a child process): exit 1. Usage errors are ValidationErrors (exit 2).
struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// This process's peak resident memory (Linux VmHWM) and resetting it, for the tables' memory rows.
enum PeakRSS {
    /// VmHWM from /proc/self/status, in MB (nil where there is no procfs).
    static func megabytes() -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kb / 1024
    }

    /// Resets VmHWM to the current RSS (Linux: "5" into /proc/self/clear_refs); false where that is not possible.
    static func reset() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }
}
