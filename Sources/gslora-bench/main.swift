import ArgumentParser
import CommandSupport

/// Benchmarks run by hand (bench/README.md). Each subcommand makes its own data, measures, and prints a table. The
/// project's exit codes (2 for usage) and flag spelling in library messages, as every gslora command.
struct GsloraBench: GsloraCommand {
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
