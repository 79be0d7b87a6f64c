import ArgumentParser
import Foundation
import GSLoRAConvert
import GSLoRAFormat
import GSLoRAModel

/// gslora-convert of a ViT-B/16-sized PyTorch checkpoint as a whole process, against cp of the same file.
struct ConvertBench: ParsableCommand, BenchTools {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a 346 MB torchvision ViT-B/16-shaped .pth to .gslr and .safetensors; compare with cp and report peak memory.")

    @Option(help: "Folder for the temporary files (needs about 1.5 GB free).")
    var dir: String?

    @Option(help: "Repetitions per measurement; the table shows the median.")
    var repeats = 5

    func run() throws {
        let root = (dir ?? NSTemporaryDirectory()) + "/gslora-convert-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let convert = try sibling("gslora-convert")

        // Our own .pth writer makes the input: torch's zip layout, torchvision's keys, noise for weights.
        let pth = root + "/vit_b_16.pth"
        let tensorCount = try writeInput(pth)
        let size = (try FileManager.default.attributesOfItem(atPath: pth)[.size] as? Int) ?? 0
        // A child started with posix_spawn inherits this process's peak RSS as its own ru_maxrss starting point (the
        // kernel records the old address space's high-water mark at exec). The weights are freed by now; reset the
        // mark to what is resident, which is then the floor of every peak measured below.
        _ = PeakRSS.reset()
        let floor = Int((PeakRSS.megabytes() ?? 0) * 1_048_576)
        let heads = ["--heads", "12"]

        var rows: [(String, String, String)] = []
        let copy = root + "/copy.pth"
        let cp = median(
            repeats,
            setup: {
                unlink(copy); sync()
            }
        ) { try run("/bin/cp", [pth, copy]) }
        rows.append(("cp of the .pth (process)", ms(cp), String(format: "%.2f GB/s", Double(size) / 1e9 / cp)))
        let cpSync = median(
            repeats,
            setup: {
                unlink(copy); sync()
            }
        ) {
            try run("/bin/cp", [pth, copy])
            try run("/bin/sync", [copy])
        }
        rows.append(("cp + sync FILE (process, durable like ours)", ms(cpSync), String(format: "%.2f× cp", cpSync / cp)))
        for ext in ["gslr", "safetensors"] {
            let out = root + "/out." + ext
            var peak = 0
            let t = median(
                repeats,
                setup: {
                    unlink(out); sync()
                }
            ) { peak = max(peak, try runMeasuringPeak(convert, [pth, "-o", out] + heads)) }
            rows.append(
                (
                    ".pth → .\(ext), gslora-convert (process)", ms(t),
                    String(format: "%.2f× cp; peak RSS %.0f MB = %.2f× the file", t / cp, Double(peak) / 1e6, Double(peak) / Double(size))
                ))
        }
        // The writer asks for early writeback (sync_file_range) every few MB so the final fsync has little left;
        // in-process conversions with and without it, alternating so both see the same machine load.
        let out = root + "/inproc.gslr"
        let options = ConvertOptions(importing: ImportOptions(heads: 12))
        let defaultStep = FileSink.writebackStep
        defer { FileSink.writebackStep = defaultStep }
        var with: [Double] = [], without: [Double] = []
        for _ in 0..<max(1, repeats) {
            for step in [defaultStep, 0] {
                FileSink.writebackStep = step
                let t = median(
                    1,
                    setup: {
                        unlink(out); sync()
                    }
                ) { _ = try Converter.convert(input: pth, output: out, options: options) }
                if step == 0 { without.append(t) } else { with.append(t) }
            }
        }
        let on = with.sorted()[with.count / 2], off = without.sorted()[without.count / 2]
        rows.append((".pth → .gslr in-process, early writeback every \(defaultStep >> 20) MB", ms(on), String(format: "%.2f× cp", on / cp)))
        rows.append((".pth → .gslr in-process, no early writeback", ms(off), String(format: "%.2f× cp", off / cp)))

        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        print("gslora-bench convert  (median of \(repeats) runs; load average \(load) on \(ProcessInfo.processInfo.activeProcessorCount) cores)")
        print(
            String(
                format: "input: %.1f MB torchvision ViT-B/16-shaped state dict (%d tensors, float32); peak RSS floor (this process) %.0f MB\n",
                Double(size) / 1e6, tensorCount, Double(floor) / 1e6))
        let w0 = rows.map(\.0.count).max() ?? 0, w1 = rows.map(\.1.count).max() ?? 0
        for r in rows {
            print(r.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + String(repeating: " ", count: w1 - r.1.count) + r.1 + "  " + r.2)
        }
        print("\nGoal: within 2× of cp, peak resident memory below the file's size. PyTorch's torch.load + safetensors: ≈2 s as a process, ≈1.2 GB.")
    }

    /// Writes the noise weights as a .pth and returns how many tensors it holds; the weights are freed on return.
    private func writeInput(_ pth: String) throws -> Int {
        let tensors = vitB16Tensors()
        try PthWriter.write(pth, .dict(tensors.map { (key: $0.name, value: CheckpointValue.tensor($0)) }))
        return tensors.count
    }

}
