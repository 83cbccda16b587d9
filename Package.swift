// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Nabla",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Nabla", targets: ["Nabla"]),
        .library(name: "NablaConformance", targets: ["NablaConformance"]),
        .executable(name: "nabla", targets: ["NablaCLI"]),
    ],
    traits: [
        // Data-parallel training across processes and machines on MPI (Open MPI: libopenmpi-dev).
        // Without it, `Communicator.world()` is one process and everything else builds the same.
        .trait(name: "MPI", description: "Data-parallel training over MPI (needs an MPI library found by pkg-config, e.g. Open MPI)"),
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
        // The MPI C API, with Open MPI's handle macros wrapped in inline functions Swift can call.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"]), .brew(["open-mpi"])]),
        // Communicators and data-parallel training (MPI behind the `MPI` trait).
        .target(name: "NablaDistributed", dependencies: ["Nabla", .target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        // Reader and runner for reference (oracle) case files.
        .target(name: "NablaConformance", dependencies: ["Nabla"]),
        // The `nabla` command-line tool.
        .executableTarget(
            name: "NablaCLI",
            dependencies: ["Nabla", "NablaConformance", "NablaDistributed", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(
            name: "NablaTests",
            dependencies: ["Nabla", "NablaConformance", "NablaDistributed"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
