import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAModel
import GSLoRATraining

/// `gslora-bench sizes`: the matrix of models × cases, each case as its own process (gslora's `case`, then PyTorch's
/// bench/pytorch_vit.py, back to back), so every row's peak memory is that case's alone and both sides see the same
/// machine minute. Prints one table with times, GEMM ceilings, memory and the PyTorch ratios, then the cost-growth table.
struct SizesBench: ParsableCommand, BenchTools {
    static let configuration = CommandConfiguration(
        commandName: "sizes",
        abstract: "Forward, GS-LoRA step and all-parameters step of P8S8, ViT-S/16, ViT-B/16, ViT-L/16 against PyTorch, one process per case.",
        discussion: """
            Each row: median seconds, achieved GFLOP/s, the GEMM ceiling (the case's GEMM FLOPs at the faster of \
            OpenBLAS / oneDNN on the model's qkv, proj, fc1 and fc2 shapes, measured in the case's process right after \
            it), the fraction of that ceiling, peak RSS (the child's VmHWM), and PyTorch's time and peak RSS \
            (getrusage) for the same case, with ratios. PyTorch needs torch and timm: --python, else \
            $GSLORA_BENCH_PYTHON, else bench/.venv/bin/python (bench/make-venv.sh makes it). Without a working \
            Python the gslora rows are printed alone, with a note.

            Examples:
              gslora-bench sizes                                   # the whole matrix, about 15 min on 2 cores
              gslora-bench sizes --models vit-b16 --cases gslora --steps 5
              gslora-bench sizes --python /work/venv/bin/python --all-parameters vit-b16,vit-l16 --json > sizes.json
              gslora-bench sizes --render sizes.json
            """)

    @Option(help: "Models, comma-separated (\(BenchModel.allCases.map(\.rawValue).joined(separator: ", "))).")
    var models = "p8s8,vit-s16,vit-b16,vit-l16"
    @Option(help: "Cases, comma-separated (forward, gslora, allparams).") var cases = "forward,gslora,allparams"
    @Option(help: "Models that run the allparams case (weights, gradients and two AdamW moments: 4× the weights; ViT-L peaked at 8.1 GB, PyTorch at 10.6 GB).")
    var allParameters = "vit-b16"
    @Option(help: "Timed calls or steps per case, after one untimed warm-up.") var steps = 3
    @Option(help: "Python with torch and timm (default: $GSLORA_BENCH_PYTHON, else bench/.venv/bin/python).") var python: String?
    @Option(help: "The PyTorch side's script.") var script = "bench/pytorch_vit.py"
    @Flag(help: "Leave PyTorch out.") var noPytorch = false
    @Flag(help: "Print the rows as JSON (one object with gslora and pytorch per row) instead of the tables.") var json = false
    @Option(help: "Measure nothing: print the tables of a saved --json output.") var render: String?

    func run() throws {
        if let render {
            let rows: [SizesRow]
            do { rows = try JSONDecoder().decode([SizesRow].self, from: try Data(contentsOf: URL(fileURLWithPath: render))) } catch {
                throw BenchFailure("--render \(render): not a saved `sizes --json` output (\(error))")
            }
            print(SizesTable.main(rows) + "\n\n" + SizesTable.growth(rows))
            return
        }
        let models = try list(self.models, BenchModel.self, "--models")
        let kinds = try list(cases, BenchCase.self, "--cases")
        let fullModels = try list(allParameters, BenchModel.self, "--all-parameters")
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let torch = noPytorch ? nil : pythonCommand()
        if torch == nil && !noPytorch {
            FileHandle.standardError.write(Data("note: \(self.pythonNote)\n".utf8))
        }
        let pythonNote = noPytorch ? "--no-pytorch: gslora rows only" : self.pythonNote

        var rows: [SizesRow] = [], failures: [String] = []
        for m in models {
            for k in kinds where k != .allparams || fullModels.contains(m) {
                FileHandle.standardError.write(Data("sizes: \(m.rawValue) \(k.rawValue) (gslora)…\n".utf8))
                // A failed case (e.g. out of memory) is reported and the matrix goes on; the exit code says so.
                let g: SizeCaseResult
                do {
                    let out = try capture(me, ["case", "--model", m.rawValue, "--case", k.rawValue, "--steps", "\(steps)", "--json"])
                    guard let r = try? JSONDecoder().decode(SizeCaseResult.self, from: out) else {
                        throw BenchFailure("printed no result: \(String(decoding: out, as: UTF8.self))")
                    }
                    g = r
                } catch {
                    failures.append("\(m.rawValue) \(k.rawValue): \(error)")
                    FileHandle.standardError.write(Data("error: gslora-bench case \(m.rawValue) \(k.rawValue) failed: \(error)\n".utf8))
                    continue
                }
                var row = SizesRow(gslora: g, pytorch: nil, pytorchNote: torch == nil ? pythonNote : nil)
                if let torch {
                    FileHandle.standardError.write(Data("sizes: \(m.rawValue) \(k.rawValue) (PyTorch)…\n".utf8))
                    do {
                        let p = try capture(torch, [script, "--model", m.rawValue, "--case", k.rawValue, "--steps", "\(steps)"])
                        row.pytorch = try JSONDecoder().decode(PyTorchResult.self, from: p)
                    } catch {
                        row.pytorchNote = "PyTorch failed: \(error)"
                        FileHandle.standardError.write(Data("note: \(m.rawValue) \(k.rawValue): PyTorch failed: \(error)\n".utf8))
                    }
                }
                rows.append(row)
            }
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try enc.encode(rows), as: UTF8.self))
        } else {
            print(SizesTable.main(rows) + "\n\n" + SizesTable.growth(rows))
        }
        if !failures.isEmpty {
            FileHandle.standardError.write(Data(("cases that failed (not in the tables):\n" + failures.joined(separator: "\n") + "\n").utf8))
            throw ExitCode(1)
        }
    }

    private func list<T: RawRepresentable>(_ s: String, _: T.Type, _ option: String) throws -> [T] where T.RawValue == String {
        try s.split(separator: ",").map {
            guard let v = T(rawValue: String($0)) else { throw ValidationError("\(option): unknown value '\($0)'") }
            return v
        }
    }

    private var pythonNote: String {
        "no working Python with torch and timm (tried: \(pythonCandidates.joined(separator: ", ")); bench/make-venv.sh makes one): gslora rows only, no PyTorch comparison"
    }

    private var pythonCandidates: [String] {
        let env = ProcessInfo.processInfo.environment["GSLORA_BENCH_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        return python.map { [$0] } ?? [env, "bench/.venv/bin/python"].compactMap { $0 }
    }

    /// The first candidate that is executable and imports torch and timm.
    private func pythonCommand() -> String? {
        for c in pythonCandidates where FileManager.default.isExecutableFile(atPath: c) {
            if (try? run(c, ["-c", "import torch, timm"], quiet: true)) != nil { return c }
            FileHandle.standardError.write(Data("note: \(c) cannot import torch and timm\n".utf8))
        }
        return nil
    }

    /// Runs a program to completion and returns its standard output (stderr passes through). The child's peak RSS
    /// starts from this process's resident set (vfork shares it until exec), so the high-water mark is reset first.
    private func capture(_ exe: String, _ args: [String]) throws -> Data {
        _ = PeakRSS.reset()
        let path = NSTemporaryDirectory() + "/gslora-sizes-\(getpid()).out"
        defer { unlink(path) }
        _ = try spawnAndWait(exe, args, stdout: path)
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }
}

/// What bench/pytorch_vit.py prints.
struct PyTorchResult: Codable {
    var seconds: Double
    var times: [Double]
    var peakRSSBytes: Int
    var cpuSeconds: Double
    var threads: Int
    var torch: String

    enum CodingKeys: String, CodingKey {
        case seconds, times, threads, torch
        case peakRSSBytes = "peak_rss_bytes", cpuSeconds = "cpu_seconds"
    }
}

struct SizesRow: Codable {
    var gslora: SizeCaseResult
    var pytorch: PyTorchResult?
    var pytorchNote: String?
}

/// The two tables `sizes` prints (Markdown, so they paste into bench/README.md).
enum SizesTable {
    static func f(_ x: Double, _ d: Int) -> String { String(format: "%.\(d)f", x) }
    static func mb(_ b: Int) -> String { f(Double(b) / 1e6, 0) + " MB" }

    static func main(_ rows: [SizesRow]) -> String {
        var lines = [
            "| model | case | gslora s | GFLOP | GFLOP/s | ceiling GFLOP/s (engine) → s | of ceiling | peak RSS | PyTorch s | PyTorch RSS | PyTorch s / gslora s | gslora RSS / PyTorch RSS | CPU s gslora / PyTorch | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        ]
        for r in rows {
            let g = r.gslora
            var cells = [
                g.model, BenchCase(rawValue: g.kind)?.title ?? g.kind, f(g.seconds, 3), f(g.gflop, 1), f(g.achievedGFLOPs, 0),
                "\(f(g.ceilingGFLOPs, 0)) (\(g.ceilingEngine)) → \(f(g.ceilingSeconds, 3))", f(g.ceilingSeconds / g.seconds * 100, 0) + " %",
                mb(g.peakRSSBytes)
            ]
            if let p = r.pytorch {
                cells += [
                    f(p.seconds, 3), mb(p.peakRSSBytes), f(p.seconds / g.seconds, 2) + "×",
                    f(Double(g.peakRSSBytes) / Double(p.peakRSSBytes), 2) + "×", "\(f(g.cpuSeconds, 2)) / \(f(p.cpuSeconds, 2))"
                ]
            } else {
                cells += ["–", "–", "–", "–", f(g.cpuSeconds, 2) + " / –"]
            }
            cells.append(f(g.loadAverage, 1))
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        let notes = Set(rows.compactMap(\.pytorchNote))
        return (lines + notes.sorted().map { "note: \($0)" }).joined(separator: "\n")
    }

    /// Per model: forward FLOPs per image, parameter bytes, and the measured forward b32 and GS-LoRA step.
    static func growth(_ rows: [SizesRow]) -> String {
        var lines = [
            "| model | GFLOP per image (forward) | parameters | forward b32: s, peak RSS | GS-LoRA step 4+4: s, peak RSS |",
            "|---|---|---|---|---|"
        ]
        var seen: [String] = []
        for r in rows where !seen.contains(r.gslora.model) {
            seen.append(r.gslora.model)
            let mine = rows.filter { $0.gslora.model == r.gslora.model }
            func cell(_ k: BenchCase) -> String {
                guard let g = mine.first(where: { $0.gslora.kind == k.rawValue })?.gslora else { return "–" }
                return "\(f(g.seconds, 2)) s, \(mb(g.peakRSSBytes))"
            }
            lines.append(
                "| \(r.gslora.model) | \(f(r.gslora.forwardGFLOPPerImage, 2)) | \(mb(r.gslora.parameterBytes)) | \(cell(.forward)) | \(cell(.gslora)) |")
        }
        return lines.joined(separator: "\n")
    }
}
