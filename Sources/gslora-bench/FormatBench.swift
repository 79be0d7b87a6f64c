import ArgumentParser
import Foundation
import GSLoRAFormat
import GSLoRAModel

/// .gslr write/read/inspect/verify speed against cp and zlib, all measured in one run on synthetic files.
struct FormatBench: ParsableCommand, BenchTools {
    static let configuration = CommandConfiguration(
        commandName: "format",
        abstract: "Write and read a ViT-B/16-sized backbone, inspect 1 MB and 1 GB files, verify against zlib crc32.")

    @Option(help: "Folder for the temporary files (needs about 2.5 GB free).")
    var dir: String?

    @Option(help: "Repetitions per measurement; the table shows the median.")
    var repeats = 5

    @Option(name: .customLong("big-mib"), help: "Size of the large inspect/verify file in MiB.")
    var bigMiB = 1024

    func run() throws {
        let root = (dir ?? NSTemporaryDirectory()) + "/gslora-format-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let inspectBinary = try sibling("gslora-inspect")
        var rows: [(String, String, String)] = []

        // 1. A ViT-B/16-shaped backbone (~346 MB of F32).
        let backbone = vitB16Tensors()
        let bytes = backbone.reduce(0) { $0 + $1.data.count }
        let header = GSLRHeader(kind: .backbone, model: vitB16Config)
        let out = root + "/backbone.gslr", copy = root + "/backbone.copy"
        // Before each timed run (untimed): delete the output (freeing a replaced file's blocks is not writing) and
        // sync, so no run waits on the previous one's writeback.
        // With and without the writer's early writeback requests (sync_file_range; without, all of it is left to the
        // final fsync), alternating so both see the same machine load.
        let defaultStep = FileSink.writebackStep
        var early: [Double] = [], late: [Double] = []
        for _ in 0..<max(1, repeats) {
            for step in [defaultStep, 0] {
                FileSink.writebackStep = step
                let t = median(
                    1,
                    setup: {
                        unlink(out); sync()
                    }
                ) { try GSLRWriter.write(out, header: header, tensors: backbone) }
                if step == 0 { late.append(t) } else { early.append(t) }
            }
        }
        FileSink.writebackStep = defaultStep
        let write = early.sorted()[early.count / 2], writeLate = late.sorted()[late.count / 2]
        let cp = median(
            repeats,
            setup: {
                unlink(copy); sync()
            }
        ) { try run("/bin/cp", [out, copy]) }
        let cpSync = median(
            repeats,
            setup: {
                unlink(copy); sync()
            }
        ) {
            try run("/bin/cp", [out, copy])
            try run("/bin/sync", [copy])
        }
        let raw = root + "/raw.bin"
        let rawWrite = median(
            repeats,
            setup: {
                unlink(raw); sync()
            }
        ) { try rawWriteFile(raw, backbone, sync: false) }
        let rawSync = median(
            repeats,
            setup: {
                unlink(raw); sync()
            }
        ) { try rawWriteFile(raw, backbone, sync: true) }
        let mb = Double(bytes) / 1e6
        rows.append(("write 346 MB backbone (stream+CRC+fsync+rename)", ms(write), String(format: "%.2f GB/s", mb / 1e3 / write)))
        rows.append(("  same, no early writeback (sync_file_range off)", ms(writeLate), String(format: "%.2f GB/s", mb / 1e3 / writeLate)))
        rows.append(("cp of the same file (process)", ms(cp), String(format: "write/cp = %.2f×", write / cp)))
        rows.append(("cp + sync FILE (process, durable like ours)", ms(cpSync), String(format: "write/(cp+sync) = %.2f×", write / cpSync)))

        rows.append(("floor: write() of the tensors, no fsync", ms(rawWrite), String(format: "write/floor = %.2f×", write / rawWrite)))
        rows.append(("floor: write() of the tensors + fsync", ms(rawSync), String(format: "write/floor = %.2f×", write / rawSync)))

        let openOnly = median(repeats) { _ = try GSLRFile.open(out) }
        let openTouch = median(repeats) {
            let f = try GSLRFile.open(out)
            var sum = 0
            for t in f.allTensors() {
                let b = t.data.buffer
                var i = 0
                while i < b.count { sum &+= Int(b[i]); i += 4096 }
            }
            blackHole(sum)
        }
        rows.append(("open 346 MB backbone (validate header+table)", ms(openOnly), ""))
        rows.append(("open + touch every page (warm)", ms(openTouch), String(format: "%.1f GB/s", mb / 1e3 / openTouch)))

        // 2. inspect on a 1 MB and a large file: same table shape, so the cost should not move.
        let small = root + "/small.gslr", big = root + "/big.gslr"
        try writeUniform(small, totalBytes: 1 << 20)
        try writeUniform(big, totalBytes: bigMiB << 20)
        let truth = median(repeats) { try run("/bin/true", []) }
        rows.append(("process start baseline (/bin/true)", ms(truth), ""))
        for (label, path) in [("1 MB", small), ("\(bigMiB) MiB", big)] {
            let work = median(repeats * 4) { _ = FileSummary(try GSLRFile.open(path), includeTable: false) }
            let whole = median(repeats * 4) { try run(inspectBinary, [path], quiet: true) }
            let json = median(repeats) { try run(inspectBinary, ["--json", path], quiet: true) }
            rows.append(("inspect \(label): own work (open+summary)", ms(work), "goal < 10 ms"))
            rows.append(("inspect \(label): whole process", ms(whole), "goal < 50 ms"))
            rows.append(("inspect --json \(label): whole process", ms(json), ""))
        }

        // 3. verify against zlib's crc32 over the same mapped bytes.
        let f = try GSLRFile.open(big)
        let bigBytes = f.tensors.reduce(0) { $0 + $1.length }
        _ = f.verify() // warm the page cache
        let verify = median(repeats) { precondition(f.verify().isEmpty) }
        let data = f.mapping.bytes.buffer
        // CRC32.of is one zlib crc32 call per GiB: the raw zlib speed, with no per-tensor bookkeeping.
        let zlib = median(repeats) { blackHole(Int(CRC32.of(data))) }
        let gb = Double(bigBytes) / 1e9
        rows.append(("verify \(bigMiB) MiB (in-process, warm)", ms(verify), String(format: "%.2f GB/s", gb / verify)))
        rows.append(
            ("zlib crc32 over the same bytes", ms(zlib), String(format: "%.2f GB/s; verify/zlib = %.2f×", Double(data.count) / 1e9 / zlib, verify / zlib)))
        let verifyProcess = median(max(1, repeats / 2)) { try run(inspectBinary, ["--verify", big], quiet: true) }
        rows.append(("inspect --verify \(bigMiB) MiB: whole process", ms(verifyProcess), String(format: "%.2f GB/s", gb / verifyProcess)))

        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        print(
            "gslora-bench format  (median of \(repeats)+ runs; files in \(root); load average \(load) on \(ProcessInfo.processInfo.activeProcessorCount) cores)"
        )
        let w = rows.map { $0.0.count }.max()!
        for (a, b, c) in rows {
            print(a.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + String(repeating: " ", count: max(0, 10 - b.count)) + b + "  " + c)
        }
    }
}

@inline(never) func blackHole(_ x: Int) { if x == 0x7FFF_FFFF_1234 { print("") } }
