import ArgumentParser
import Convert
import Foundation
import Format

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
        let tensors = vitB16Tensors()
        try PthWriter.write(pth, .dict(tensors.map { (key: $0.name, value: CheckpointValue.tensor($0)) }))
        let size = (try FileManager.default.attributesOfItem(atPath: pth)[.size] as? Int) ?? 0
        let heads = ["--heads", "12"]

        var rows: [(String, String, String)] = []
        let copy = root + "/copy.pth"
        let cp = median(repeats, setup: { unlink(copy); sync() }) { try run("/bin/cp", [pth, copy]) }
        rows.append(("cp of the .pth (process)", ms(cp), String(format: "%.2f GB/s", Double(size) / 1e9 / cp)))
        for ext in ["gslr", "safetensors"] {
            let out = root + "/out." + ext
            var peak = 0
            let t = median(repeats, setup: { unlink(out); sync() }) { peak = max(peak, try runMeasuringPeak(convert, [pth, "-o", out] + heads)) }
            rows.append((".pth → .\(ext), gslora-convert (process)", ms(t), String(format: "%.2f× cp; peak RSS %.0f MB = %.2f× the file", t / cp, Double(peak) / 1e6, Double(peak) / Double(size))))
        }

        print(String(format: "input: %.1f MB torchvision ViT-B/16-shaped state dict (%d tensors, float32)\n", Double(size) / 1e6, tensors.count))
        let w0 = rows.map(\.0.count).max() ?? 0, w1 = rows.map(\.1.count).max() ?? 0
        for r in rows { print(r.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + String(repeating: " ", count: w1 - r.1.count) + r.1 + "  " + r.2) }
        print("\nGoal: within 2× of cp, peak resident memory below the file's size. PyTorch's torch.load + safetensors: ≈2 s as a process, ≈1.2 GB.")
    }
}
