import Foundation
import Nabla
import NablaConformance
import Testing

/// The `nabla` executable built beside the tests (SwiftPM builds every product for `swift test`).
func nablaExecutable() -> URL? {
    var folder = Bundle.module.bundleURL.deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = folder.appendingPathComponent("nabla")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        folder = folder.deletingLastPathComponent()
    }
    return nil
}

/// Runs `nabla` with `arguments`; (status, standard output, standard error).
func runNabla(_ arguments: [String], killAfter seconds: Double? = nil) throws -> (status: Int32, out: String, err: String) {
    let executable = try #require(nablaExecutable(), "the nabla executable was not built beside the tests")
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    if let seconds {
        Thread.sleep(forTimeInterval: seconds)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile(), errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

@Suite(.serialized) struct SubprocessTests {
    /// Every misuse case stops the program with a message naming the op and the shapes (the
    /// same cases run on a release build in scripts/misuse-check).
    @Test(arguments: Misuse.cases.map(\.name))
    func misuseStopsWithAMessage(_ name: String) throws {
        let expected = try #require(Misuse.named(name)).expected
        let (status, _, err) = try runNabla(["misuse", name])
        #expect(status != 0 && status != 3, "\(name): exit status \(status)")
        for text in expected { #expect(err.contains(text), "\(name): '\(text)' missing from: \(err.prefix(400))") }
    }

    /// A short fault-injection run (scripts/kill-test does 30): SIGKILL during training, then
    /// --resume reaches the uninterrupted run's weights bit for bit.
    @Test func killedTrainingResumesToTheSameWeights() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let settings = ["--data", "iris", "--model", "mlp:8", "--epochs", "40", "--checkpoint-every", "0", "--quiet"]
        let reference = folder.appendingPathComponent("reference").path
        let first = try runNabla(["train"] + settings + ["--out", reference])
        #expect(first.status == 0, "\(first.err)")
        for (i, delay) in [0.3, 0.6, 0.9].enumerated() {
            let run = folder.appendingPathComponent("run\(i)").path
            _ = try runNabla(["train"] + settings + ["--out", run], killAfter: delay)
            let resumed = FileManager.default.fileExists(atPath: run + "/config.json")
                ? try runNabla(["train", "--resume", run, "--quiet"]) : try runNabla(["train"] + settings + ["--out", run])
            #expect(resumed.status == 0, "\(resumed.err)")
            let a = FileManager.default.contents(atPath: reference + "/model.safetensors"), b = FileManager.default.contents(atPath: run + "/model.safetensors")
            #expect(a != nil && a == b, "run \(i), killed after \(delay) s: the final weights differ")
            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).filter { $0.hasSuffix(".tmp") }
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
    }

    @Test func expressionsStartingWithMinusAndNegativeValues() throws {
        let grad = try runNabla(["grad", "-x^2", "--at", "x=-2"])
        #expect(grad.status == 0 && grad.out.contains("gradient   (4)"), "\(grad.out)\(grad.err)")
        let minimize = try runNabla(["minimize", "x^2+y^2", "--from", "-1,2", "--method", "lbfgs"])
        #expect(minimize.status == 0 && minimize.out.contains("converged"), "\(minimize.out)\(minimize.err)")
        let unbounded = try runNabla(["minimize", "x", "--max-iterations", "3"])
        #expect(unbounded.out.contains("unbounded"), "\(unbounded.out)")
    }
}
