import ArgumentParser

/// Benchmarks run by hand (bench/README.md). Each subcommand makes its own data, measures, and prints a table.
struct GsloraBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gslora-bench",
        abstract: "Measure gslora against its anchors (cp, zlib, PyTorch numbers). Build with -c release first.",
        subcommands: [
            FormatBench.self,
            ForwardBench.self,
            TrainBench.self,
            ConvertBench.self,
            SizesBench.self,
            SizeCaseCommand.self
        ])
}

GsloraBench.main()
