import ArgumentParser
import Foundation
import NablaConformance

/// `nabla fuzz`: the long run of the fuzz suite (the tests run a short one).
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Attack Nabla's parsers, file readers and minimizers with generated and mutated inputs.",
        discussion: """
        Every input must end in a value or in an error that names the file, line or position; every minimization must \
        stop within its limits with a status. A crash or a hang ends the run itself (run it under `timeout`). \
        Example: nabla fuzz --inputs 10000 --objectives 1000
        """)

    @Option(help: "Generated expressions, and as many generated files (CSV, NPY, NPZ, IDX, safetensors).") var inputs: Int = 2000
    @Option(help: "Generated objectives, each minimized by every method.") var objectives: Int = 100
    @Option(help: "Most iterations of each minimization.") var maxIterations: Int = 50
    @Option(help: "Seed of the generators.") var seed: UInt64 = 0
    @Option(help: "Folder for the generated files (default: a temporary folder, removed at the end).") var folder: String?

    func validate() throws {
        guard inputs >= 0, inputs <= 10_000_000, objectives >= 0, objectives <= 1_000_000 else {
            throw ValidationError("--inputs and --objectives must be between 0 and 10000000")
        }
        guard maxIterations >= 1, maxIterations <= 100_000 else { throw ValidationError("--max-iterations must be between 1 and 100000") }
    }

    func run() throws {
        let scratch = folder ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("nabla-fuzz-\(UUID().uuidString)")
        defer { if folder == nil { try? FileManager.default.removeItem(atPath: scratch) } }
        let reports = [Fuzz.expressions(count: inputs, seed: seed),
                       Fuzz.files(count: inputs, seed: seed &+ 1, folder: scratch),
                       Fuzz.objectives(count: objectives, seed: seed &+ 2, maxIterations: maxIterations)]
        for r in reports { print(r) }
        let total = reports.reduce(0) { $0 + $1.inputs }, failed = reports.reduce(0) { $0 + $1.failures.count }
        print("fuzz: \(total - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode.failure }
    }
}
