import ArgumentParser
import CommandSupport
import Foundation
import GSLoRAFormat

@main
struct Inspect: GsloraCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-inspect",
        abstract: "Show what a .gslr, .pth or .safetensors file holds: kind, model config, tensors, adapter groups, task and fingerprints.",
        discussion: """
            For .gslr it reads only the header and tensor table, so it takes the same time for any file size, unless \
            --verify is given: that reads every byte and checks each tensor's CRC32. PyTorch (.pth, zip or legacy) and \
            safetensors files are read with the same safe loader as gslora-convert (nothing in them is executed); they \
            store no checksums, so their CRCs and fingerprint are computed from the data.

            Examples:
              gslora-inspect face.gslr              summary
              gslora-inspect --tensors task1.gslr   also list every tensor
              gslora-inspect --json *.gslr | jq '.[].fingerprint'
              gslora-inspect --verify model.gslr    check all CRCs (exit 1 on a mismatch)
              gslora-inspect checkpoint.pth         family, config and metadata (epoch, args) of a PyTorch file

            Exit codes: 0 all files fine, 1 a file is unreadable or invalid or fails --verify, 2 usage error.
            """)

    @Argument(help: "Files to inspect.")
    var files: [String]

    @Flag(name: .long, help: "List every tensor.")
    var tensors = false

    @Flag(name: .long, help: "Print a JSON array with one object per file instead of text.")
    var json = false

    @Flag(name: .long, help: "Check every tensor's CRC32 and report each mismatch by tensor name.")
    var verify = false

    @OptionGroup var modelOptions: ModelOptions

    mutating func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one file") }
    }

    mutating func run() throws {
        var summaries: [FileSummary] = []
        var failed = false
        for path in files {
            do {
                let s = try Summarize.file(path, includeTable: tensors, verify: verify, importing: modelOptions.importOptions)
                for m in s.verification?.mismatches ?? [] {
                    failed = true
                    let e = FormatError.crcMismatch(file: path, tensor: m.name, expected: m.expected, actual: m.actual)
                    FileHandle.standardError.write(Data("gslora-inspect: \(e)\n".utf8))
                }
                if json { summaries.append(s) } else { print(Render.text(s), terminator: files.count > 1 ? "\n" : "") }
            } catch {
                failed = true
                FileHandle.standardError.write(Data("gslora-inspect: \(error)\n".utf8))
            }
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(summaries), as: UTF8.self))
        }
        if failed { throw ExitCode(1) }
    }
}
