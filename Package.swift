// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "gslora",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        // oneDNN ships no pkg-config file; its header and library sit on the default paths.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // The model's vectorised kernels, built per instruction set (x86-64 baseline / AVX2 / AVX-512, arm64 NEON) and
        // chosen at run time (spec/PLATFORM.md), so no target needs CPU-specific compiler flags.
        .target(name: "CKernels"),

        // Libraries: data flows Format <- Convert, Format <- Apply <- Train.
        .target(name: "Format", dependencies: ["CZlib"]),
        .target(name: "Convert", dependencies: ["Format", "CZlib"]),
        .target(name: "Apply", dependencies: ["Format", "CKernels", "COpenBLAS", "CDNNL", "CZlib", "CTurboJPEG", "CPNG"]),
        .target(name: "Train", dependencies: ["Apply", "Format"]),

        // What several commands share: loading a model to run, progress lines.
        .target(name: "CommandSupport", dependencies: ["Format", "Convert", "Apply", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Thin commands.
        .executableTarget(
            name: "gslora-inspect", dependencies: ["Format", "Convert", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gslora-convert",
            dependencies: ["Format", "Convert", "Apply", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gslora-merge", dependencies: ["Format", "Apply", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gslora-prune", dependencies: ["Format", "Apply", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gslora-infer",
            dependencies: ["Format", "Convert", "Apply", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gslora-eval",
            dependencies: ["Format", "Convert", "Apply", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gslora-train",
            dependencies: ["Format", "Convert", "Apply", "Train", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gslora-demo",
            dependencies: ["Format", "Convert", "Apply", "Train", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Benchmarks, run by hand (bench/README.md); each subcommand prints a table with its anchor.
        .executableTarget(
            name: "gslora-bench",
            dependencies: [
                "Format", "Convert", "Apply", "Train", "CommandSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),

        // Tests mirror Sources; TestSupport finds the fixtures and holds the tolerances.
        .target(name: "TestSupport", dependencies: ["Format"], path: "Tests/TestSupport"),
        .testTarget(name: "FormatTests", dependencies: ["Format", "TestSupport"]),
        .testTarget(name: "ConvertTests", dependencies: ["Convert", "Format", "TestSupport"]),
        .testTarget(name: "ApplyTests", dependencies: ["Apply", "CKernels", "Convert", "Format", "TestSupport"]),
        .testTarget(name: "TrainTests", dependencies: ["Train", "Apply", "Convert", "Format", "TestSupport"])
    ],
    swiftLanguageModes: [.v5]
)
