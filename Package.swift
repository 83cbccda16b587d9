// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Nabla",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Nabla", targets: ["Nabla"]),
        .library(name: "NablaConformance", targets: ["NablaConformance"]),
        .executable(name: "nabla", targets: ["NablaCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // Hot loops in C: AVX2/FMA variants chosen at run time, BLAS found with dlopen.
        .target(
            name: "CNablaKernels",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("m"), .linkedLibrary("dl", .when(platforms: [.linux])), .linkedLibrary("pthread", .when(platforms: [.linux]))]
        ),
        // Tensor, automatic differentiation, ops, expressions.
        .target(name: "Nabla", dependencies: ["CNablaKernels"], resources: [.copy("Resources")]),
        // Reader and runner for reference (oracle) case files.
        .target(name: "NablaConformance", dependencies: ["Nabla"]),
        // The `nabla` command-line tool.
        .executableTarget(
            name: "NablaCLI",
            dependencies: ["Nabla", "NablaConformance", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(
            name: "NablaTests",
            dependencies: ["Nabla", "NablaConformance"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
