import Foundation
import Nabla
@testable import NablaDistributed
import Testing

/// Data parallelism: the pieces that one process can check, and (in a build with `--traits MPI`
/// and `mpirun` on the PATH) the collectives, the equivalence with one process, and a killed rank.
@Suite struct DataParallelTests {
    /// A small MLP with weights from `seed` (set here, not drawn from the global generator, which
    /// tests running in parallel share).
    func mlp(seed: UInt64) -> Sequential<Double> {
        let model = Sequential(Linear<Double>(inputSize: 5, outputSize: 7), Activation(.tanh), Linear<Double>(inputSize: 7, outputSize: 3))
        var rng = RandomGenerator(seed: seed)
        for p in model.parameters { p.value = Tensor(shape: p.shape, scalars: (0..<p.value.count).map { _ in 0.5 * rng.nextNormal() }) }
        return model
    }

    func data() -> (Tensor<Double>, [Int]) {
        var rng = RandomGenerator(seed: 3)
        return (Tensor(shape: [10, 5], scalars: (0..<50).map { _ in rng.nextNormal() }), (0..<10).map { $0 % 3 })
    }

    /// The backward pass reports each parameter's gradient once, final, the last layer's first.
    @Test func gradientsAreReportedWhenReady() {
        let model = mlp(seed: 1)
        let (x, y) = data()
        var reported: [(Int, Tensor<Double>?)] = []
        let value = model.valueWithGradient({ model(x).softmaxCrossEntropy(targets: y) }, onGradientReady: { reported.append(($0, $1)) })
        let reference = mlp(seed: 1)
        let expected = reference.valueWithGradient { $0(x).softmaxCrossEntropy(targets: y) }
        #expect(value.scalar == expected.scalar)
        #expect(reported.map(\.0).sorted() == [0, 1, 2, 3])
        // Parameters: 0.weight, 0.bias, 2.weight, 2.bias; the last layer's come first.
        let firstLayerAt = reported.firstIndex { $0.0 < 2 }!, lastLayerAt = reported.firstIndex { $0.0 >= 2 }!
        #expect(lastLayerAt < firstLayerAt)
        for (i, g) in reported {
            #expect(g?.scalars == reference.trainableParameters[i].gradient?.scalars, "parameter \(i)")
            #expect(g?.scalars == model.trainableParameters[i].gradient?.scalars)
        }
    }

    /// In one process the data-parallel step is the plain step, with or without micro-batches.
    @Test(arguments: [1, 3, 20])
    func oneProcessGivesThePlainGradient(accumulation: Int) {
        let (x, y) = data()
        let plain = mlp(seed: 2)
        let expected = plain.valueWithGradient { $0(x).softmaxCrossEntropy(targets: y) }
        let model = mlp(seed: 2)
        let parallel = DataParallel(model: model as Module<Double>, communicator: .single, accumulationSteps: accumulation)
        let value = parallel.valueWithGradient(rows: Array(0..<10)) { m, rows in
            (m as! Sequential<Double>)(x.indexSelect(axis: 0, indices: rows)).softmaxCrossEntropy(targets: rows.map { y[$0] })
        }
        #expect(Swift.abs(value - expected.scalar) < 1e-14)
        for (p, q) in zip(model.trainableParameters, plain.trainableParameters) {
            #expect(isClose(p.gradient!, q.gradient!, tolerance: 1e-13))
        }
    }

    /// Buckets fill in reverse parameter order; the first is small, so it is sent early.
    @Test func bucketsFollowReverseParameterOrder() {
        let model = Sequential(Linear<Double>(inputSize: 100, outputSize: 50), Activation(.relu), Linear<Double>(inputSize: 50, outputSize: 10))
        let parallel = DataParallel(model: model as Module<Double>, communicator: .single, bucketBytes: 1 << 20, firstBucketBytes: 600 * 8)
        // 2.bias (10) + 2.weight (500) + 0.bias (50) fit 600 scalars; 0.weight (5000) and the loss go in the next.
        #expect(parallel.bucketSizes == [560 * 8, 5001 * 8])
        let one = DataParallel(model: model as Module<Double>, communicator: .single, bucketBytes: 1 << 20, firstBucketBytes: 1 << 20)
        #expect(one.bucketSizes == [5561 * 8])
    }

    /// Each rank's share is contiguous; in rank order the shares are the batch, at most one row apart.
    @Test func sharesPartitionTheBatch() {
        let model = mlp(seed: 0)
        for (count, size) in [(10, 3), (64, 2), (1, 2), (7, 7), (5, 8)] {
            let rows = (0..<count).map { 100 + 3 * $0 }
            let shares = (0..<size).map { DataParallel(model: model as Module<Double>, communicator: .unconnected(rank: $0, size: size)).share(of: rows) }
            #expect(shares.flatMap { Array($0) } == rows)
            #expect(shares.map(\.count).max()! - shares.map(\.count).min()! <= 1)
        }
    }
}

// MARK: - Several processes (mpirun)

/// `mpirun` on the PATH, when this build can talk MPI.
let mpirunPath: String? = {
    guard Communicator.isMPIBuild else { return nil }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/mpirun"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}()

/// Starts `nabla arguments` in `processes` processes on this machine, MPI's traffic on shared
/// memory and loopback only.
func startMPI(_ processes: Int, _ arguments: [String]) throws -> (Process, Pipe, Pipe) {
    let nabla = try #require(nablaExecutable(), "the nabla executable was not built beside the tests")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(mpirunPath))
    process.arguments = ["-np", "\(processes)", "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader",
                         "--mca", "oob_tcp_if_include", "lo", nabla.path] + arguments
    var env = ProcessInfo.processInfo.environment
    (env["OMPI_ALLOW_RUN_AS_ROOT"], env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"]) = ("1", "1")
    process.environment = env
    let out = Pipe(), err = Pipe()
    (process.standardOutput, process.standardError) = (out, err)
    try process.run()
    return (process, out, err)
}

func runMPI(_ processes: Int, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let (process, out, err) = try startMPI(processes, arguments)
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite(.serialized, .enabled(if: mpirunPath != nil, "skipped: this build has no MPI (swift test --traits MPI, after scripts/setup --mpi) or mpirun is not on the PATH"))
struct MPITests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-mpi-\(UUID().uuidString)")

    func weights(_ run: URL) throws -> [String: [Double]] {
        try SafeTensors.read(run.appendingPathComponent("model.safetensors").path).tensors.mapValues { $0.doubles }
    }

    func trainLosses(_ run: URL) throws -> [Double] {
        let text = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return text.split(separator: "\n").map { line in
            let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return object["train_loss"] as! Double
        }
    }

    @Test func collectivesGiveTheirKnownAnswers() throws {
        let (status, out, err) = try runMPI(2, ["distributed", "check", "--json", "--elements", "100000"])
        #expect(status == 0, "\(err)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
        #expect(report["processes"] as? Double == 2)
        #expect(report["passed"] as? Bool == true, "\(out)")
        #expect((report["checks"] as? [Any])?.count == 7)
    }

    /// Two processes train what one process trains: the same losses and weights up to rounding,
    /// and the same bits when run again.
    @Test func twoProcessesTrainWhatOneTrains() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let settings = ["train", "--data", "digits", "--model", "mlp:64", "--batch", "64", "--epochs", "5", "--seed", "0", "--quiet"]
        let one = folder.appendingPathComponent("one"), two = folder.appendingPathComponent("two"), again = folder.appendingPathComponent("again")
        let single = try runNabla(settings + ["--out", one.path])
        #expect(single.status == 0, "\(single.err)")
        for run in [two, again] {
            let r = try runMPI(2, settings + ["--distributed", "--out", run.path])
            #expect(r.status == 0, "\(r.err)")
        }
        let (l1, l2) = (try trainLosses(one), try trainLosses(two))
        #expect(l1.count == 5 && l2.count == 5)
        for (a, b) in zip(l1, l2) { #expect(Swift.abs(a - b) <= 1e-5 * Swift.abs(a), "training loss \(a) vs \(b)") }
        let (w1, w2) = (try weights(one), try weights(two))
        #expect(Set(w1.keys) == Set(w2.keys) && !w1.isEmpty)
        for (name, a) in w1 {
            let b = w2[name]!
            let scale = a.map { Swift.abs($0) }.max()!
            #expect(zip(a, b).allSatisfy { Swift.abs($0 - $1) <= 1e-4 * scale }, "\(name)")
        }
        #expect(try weights(two) == weights(again), "two runs with two processes differ")

        // Gradient accumulation: each process's share in two micro-batches, the same steps.
        let accumulated = folder.appendingPathComponent("accumulated")
        let r = try runMPI(2, settings + ["--distributed", "--accumulate", "2", "--out", accumulated.path])
        #expect(r.status == 0, "\(r.err)")
        for (a, b) in zip(l1, try trainLosses(accumulated)) { #expect(Swift.abs(a - b) <= 1e-5 * Swift.abs(a), "accumulated: \(a) vs \(b)") }
    }

    /// A failure in one process (here rank 0 cannot create the run folder) stops them all with a
    /// message naming the rank, rather than leaving the others waiting.
    @Test func aFailingRankStopsEveryRank() throws {
        let started = Date()
        let r = try runMPI(2, ["train", "--distributed", "--epochs", "2", "--out", "/proc/nabla-cannot-write-here/run"])
        #expect(r.status != 0)
        #expect(r.err.contains("rank 0 of 2: error: cannot create the run folder"), "\(r.err.prefix(600))")
        #expect(Date().timeIntervalSince(started) < 60)
    }

    /// SIGKILL on one rank ends the whole job with a message (no hang); the run resumes from its
    /// last checkpoint with one process and with two.
    @Test func aKilledRankStopsTheJobAndTheRunResumes() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = folder.appendingPathComponent("run")
        let checkpoint = run.appendingPathComponent("checkpoint.safetensors").path
        let (mpirun, out, err) = try startMPI(2, ["train", "--distributed", "--data", "digits", "--model", "mlp:32", "--epochs", "100000",
                                                  "--checkpoint-every", "0", "--quiet", "--out", run.path])
        // Wait for a checkpoint, then kill one of the training processes (mpirun's children).
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: checkpoint) && Date() < deadline && mpirun.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        #expect(FileManager.default.fileExists(atPath: checkpoint), "no checkpoint was written")
        let ranks = childProcesses(of: mpirun.processIdentifier)
        #expect(ranks.count == 2, "mpirun's children: \(ranks)")
        let killedAt = Date()
        if let victim = ranks.max() { kill(victim, SIGKILL) }
        while mpirun.isRunning && Date().timeIntervalSince(killedAt) < 60 { Thread.sleep(forTimeInterval: 0.05) }
        let seconds = Date().timeIntervalSince(killedAt)
        if mpirun.isRunning { mpirun.terminate() }
        _ = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        mpirun.waitUntilExit()
        #expect(seconds < 30, "the job took \(seconds) s to stop")
        #expect(mpirun.terminationStatus != 0)
        #expect(message.contains("signal 9") || message.contains("Killed") || message.contains("exited"), "\(message.prefix(600))")

        let saved = try #require(Int(try SafeTensors.read(checkpoint).metadata["trainer.epoch"] ?? ""))
        #expect(saved >= 1)
        let alone = try runNabla(["train", "--resume", run.path, "--epochs", "\(saved + 2)", "--json"])
        #expect(alone.status == 0, "\(alone.err)")
        #expect(alone.out.contains("\"epochs\":\(saved + 2)"), "\(alone.out.suffix(300))")
        let pair = try runMPI(2, ["train", "--distributed", "--resume", run.path, "--epochs", "\(saved + 4)", "--json"])
        #expect(pair.status == 0, "\(pair.err)")
        #expect(pair.out.contains("\"epochs\":\(saved + 4)"), "\(pair.out.suffix(300))")
        #expect(try trainLosses(run).count == saved + 4)
    }

    /// The process ids whose parent is `pid`.
    func childProcesses(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { p in
            guard let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }
    }
}
