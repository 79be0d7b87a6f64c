// swift-tools-version:6.0
import PackageDescription

// A package of its own that uses gslora's format library, as any other package would. It names the gslora package by
// path (the repository root, two levels up); a package elsewhere names its own checkout of gslora, by path or by git URL.
let package = Package(
    name: "ReadGSLR",
    platforms: [.macOS(.v13)],
    products: [.executable(name: "read-gslr", targets: ["ReadGSLR"])],
    dependencies: [.package(name: "gslora", path: "../..")],
    targets: [
        .executableTarget(name: "ReadGSLR", dependencies: [.product(name: "GSLoRAFormat", package: "gslora")])
    ]
)
