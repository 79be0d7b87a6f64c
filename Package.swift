// swift-tools-version:6.0
import PackageDescription

// Four areas, each a folder of modules by concern (area → concern → file); data flows one way:
// Format ← Convert, Format ← Apply (Model, Data, Cluster → Adapters, Evaluation) ← Train (Training → Demo),
// with thin commands on top. Every module name carries the GSLoRA prefix so that it cannot clash in a
// dependency graph; the C shims are named CGSLoRA… for the same reason and are in no product of their own.
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

/// Libraries other packages can depend on: name, path, dependencies.
let libraries: [(String, String, [Target.Dependency])] = [
    // Read, verify and write .gslr files; nothing but zlib.
    ("GSLoRAFormat", "Sources/Format", ["CGSLoRAZlib"]),
    // PyTorch checkpoints (.pth zip and legacy, safe unpickler), safetensors, PEFT folders → .gslr and back.
    ("GSLoRAConvert", "Sources/Convert", ["GSLoRAFormat", "CGSLoRAZlib"]),
    // The ViT forward and backward, LoRA, heads and their kernels (OpenBLAS, oneDNN, the C kernels).
    ("GSLoRAModel", "Sources/Apply/Model", ["GSLoRAFormat", "CGSLoRAKernels", "CGSLoRAOpenBLAS", "CGSLoRADNNL"]),
    // Data sets (image folders, IDX, NPY), image decoding and preprocessing.
    ("GSLoRAData", "Sources/Apply/Data", ["GSLoRAFormat", "CGSLoRAZlib", "CGSLoRATurboJPEG", "CGSLoRAPNG"]),
    // Collectives for running over several processes (Open MPI loaded at run time, or one process).
    ("GSLoRACluster", "Sources/Apply/Cluster", []),
    // Adapter files: open, chain checks, merge into weights in order, prune zeroed groups.
    ("GSLoRAAdapters", "Sources/Apply/Adapters", ["GSLoRAFormat", "GSLoRAModel"]),
    // Batched and sharded forward passes, forgetting metrics, evaluation inputs.
    ("GSLoRAEvaluation", "Sources/Apply/Evaluation", ["GSLoRAFormat", "GSLoRAModel", "GSLoRAData", "GSLoRACluster"]),
    // GS-LoRA(++), the baselines, pre-training: losses, optimizer, protocol, trainer.
    (
        "GSLoRATraining", "Sources/Train/Training",
        ["GSLoRAFormat", "GSLoRAModel", "GSLoRAData", "GSLoRACluster", "GSLoRAAdapters", "GSLoRAEvaluation"]
    ),
    // The forgetting demo and the method comparison: options, runs, reports and plots.
    (
        "GSLoRADemo", "Sources/Train/Demo",
        ["GSLoRAFormat", "GSLoRAConvert", "GSLoRAModel", "GSLoRAData", "GSLoRAAdapters", "GSLoRAEvaluation", "GSLoRATraining"]
    )
]

/// Commands: name and the libraries they use (all also use CommandSupport and ArgumentParser).
let commands: [(String, [Target.Dependency])] = [
    ("gslora-inspect", ["GSLoRAFormat", "GSLoRAConvert"]),
    ("gslora-convert", ["GSLoRAFormat", "GSLoRAConvert", "GSLoRAModel", "GSLoRAData", "GSLoRAAdapters"]),
    ("gslora-merge", ["GSLoRAFormat", "GSLoRAModel", "GSLoRAAdapters"]),
    ("gslora-prune", ["GSLoRAFormat", "GSLoRAAdapters"]),
    ("gslora-infer", ["GSLoRAFormat", "GSLoRAModel", "GSLoRAData", "GSLoRAAdapters", "GSLoRAEvaluation"]),
    ("gslora-eval", ["GSLoRAFormat", "GSLoRAModel", "GSLoRAData", "GSLoRAAdapters", "GSLoRAEvaluation", "GSLoRACluster"]),
    (
        "gslora-train",
        ["GSLoRAFormat", "GSLoRAConvert", "GSLoRAModel", "GSLoRAData", "GSLoRACluster", "GSLoRAAdapters", "GSLoRAEvaluation", "GSLoRATraining"]
    ),
    ("gslora-demo", ["GSLoRAFormat", "GSLoRAModel", "GSLoRAData", "GSLoRAEvaluation", "GSLoRATraining", "GSLoRADemo"]),
    // Benchmarks, run by hand (bench/README.md); each subcommand prints a table with its anchor.
    ("gslora-bench", ["GSLoRAFormat", "GSLoRAConvert", "GSLoRAModel", "GSLoRAData", "GSLoRAAdapters", "GSLoRATraining"])
]

/// C libraries from Debian's -dev packages, behind module maps in Sources/CLibraries.
let systemLibraries: [Target] = [
    .systemLibrary(
        name: "CGSLoRAOpenBLAS", path: "Sources/CLibraries/CGSLoRAOpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CGSLoRAZlib", path: "Sources/CLibraries/CGSLoRAZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    .systemLibrary(
        name: "CGSLoRATurboJPEG", path: "Sources/CLibraries/CGSLoRATurboJPEG", pkgConfig: "libturbojpeg",
        providers: [.apt(["libturbojpeg0-dev"])]),
    .systemLibrary(name: "CGSLoRAPNG", path: "Sources/CLibraries/CGSLoRAPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
    // oneDNN ships no pkg-config file; its header and library sit on the default paths.
    .systemLibrary(name: "CGSLoRADNNL", path: "Sources/CLibraries/CGSLoRADNNL", providers: [.apt(["libdnnl-dev"])])
]

let package = Package(
    name: "gslora",
    platforms: [.macOS(.v13)],
    products: libraries.map { .library(name: $0.0, targets: [$0.0]) } + commands.map { .executable(name: $0.0, targets: [$0.0]) },
    dependencies: [
        // `swift package generate-documentation --target GSLoRAFormat` (scripts/ci-example.sh checks it has no warnings).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: systemLibraries
        + [
            // The model's vectorised kernels, built per instruction set (x86-64 baseline / AVX2 / AVX-512, arm64
            // NEON) and chosen at run time (spec/PLATFORM.md), so no target needs CPU-specific compiler flags.
            .target(name: "CGSLoRAKernels", path: "Sources/Apply/CKernels")
        ]
        + libraries.map { .target(name: $0.0, dependencies: $0.2, path: $0.1) }
        + [
            // What several commands share: loading a model to run, options, progress lines.
            .target(
                name: "CommandSupport",
                dependencies: [
                    "GSLoRAFormat", "GSLoRAConvert", "GSLoRAModel", "GSLoRAData", "GSLoRACluster", "GSLoRAAdapters", "GSLoRAEvaluation",
                    argumentParser
                ])
        ]
        + commands.map { .executableTarget(name: $0.0, dependencies: $0.1 + ["CommandSupport", argumentParser]) }
        + [
            // Tests mirror the areas; TestSupport finds the fixtures and holds the tolerances.
            .target(name: "TestSupport", dependencies: ["GSLoRAFormat"], path: "Tests/TestSupport"),
            .testTarget(name: "FormatTests", dependencies: ["GSLoRAFormat", "TestSupport"]),
            .testTarget(name: "ConvertTests", dependencies: ["GSLoRAConvert", "GSLoRAFormat", "TestSupport"]),
            .testTarget(
                name: "ApplyTests",
                dependencies: [
                    "GSLoRAModel", "GSLoRAData", "GSLoRACluster", "GSLoRAAdapters", "GSLoRAEvaluation", "CGSLoRAKernels", "GSLoRAConvert",
                    "GSLoRAFormat", "TestSupport"
                ]),
            .testTarget(
                name: "TrainTests",
                dependencies: [
                    "GSLoRATraining", "GSLoRADemo", "GSLoRAModel", "GSLoRAData", "GSLoRACluster", "GSLoRAAdapters", "GSLoRAEvaluation",
                    "GSLoRAConvert", "GSLoRAFormat", "TestSupport", "CommandSupport"
                ])
        ],
    swiftLanguageModes: [.v6]
)
