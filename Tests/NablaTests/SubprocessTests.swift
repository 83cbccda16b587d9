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
func runNabla(_ arguments: [String], killAfter seconds: Double? = nil, killWhen condition: (() -> Bool)? = nil) throws -> (status: Int32, out: String, err: String) {
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
    if let condition {
        // Polled while the process runs (its output is small enough for the pipes' buffers).
        while process.isRunning && !condition() { Thread.sleep(forTimeInterval: 0.002) }
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

    /// `nabla lm`: files and data that cannot be used end the command with status 1 and a message
    /// that names the problem (an empty or binary text, a prompt character outside the
    /// vocabulary); a flag out of range is a usage error (64); temperature 0 is greedy decoding.
    @Test func languageModelCommandsRefuseBadInputWithAMessage() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-lm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let empty = folder.appendingPathComponent("empty.txt"), binary = folder.appendingPathComponent("binary.txt")
        let text = folder.appendingPathComponent("text.txt"), run = folder.appendingPathComponent("run").path
        try Data().write(to: empty)
        try Data([0x66, 0xFF, 0xFE, 0x00, 0x80]).write(to: binary)
        try Data(String(repeating: "to be or not to be, that is the question.\n", count: 20).utf8).write(to: text)
        let emptyRun = try runNabla(["lm", "train", "--text", empty.path, "--iters", "1"])
        #expect(emptyRun.status == 1 && emptyRun.err.contains("empty"), "\(emptyRun.status) \(emptyRun.err)")
        let binaryRun = try runNabla(["lm", "train", "--text", binary.path, "--iters", "1"])
        #expect(binaryRun.status == 1 && binaryRun.err.contains("UTF-8"), "\(binaryRun.status) \(binaryRun.err)")
        let trained = try runNabla(["lm", "train", "--text", text.path, "--model", "gpt:1,1,8", "--context", "8", "--batch", "2",
                                    "--iters", "2", "--eval-interval", "1", "--eval-batches", "1", "--out", run, "--json"])
        #expect(trained.status == 0 && trained.out.contains("\"val_loss\""), "\(trained.err)")
        let foreign = try runNabla(["lm", "sample", run, "--prompt", "toZ", "--tokens", "3"])
        #expect(foreign.status == 1 && foreign.err.contains("\"Z\""), "\(foreign.status) \(foreign.err)")
        let negative = try runNabla(["lm", "sample", run, "--temperature", "-1"])
        #expect(negative.status == 64 && negative.err.contains("--temperature"), "\(negative.status) \(negative.err)")
        let greedy = try runNabla(["lm", "sample", run, "--temperature", "0", "--tokens", "5", "--prompt", "to"])
        #expect(greedy.status == 0 && greedy.out.hasPrefix("to"), "\(greedy.status) \(greedy.err)")
        let again = try runNabla(["lm", "sample", run, "--temperature", "0", "--tokens", "5", "--prompt", "to", "--seed", "9"])
        #expect(again.out == greedy.out, "greedy decoding depends on the seed")
    }

    /// `nabla train --data mnist --data-dir DIR --model cnn:…`: a convolutional network trained
    /// from the command line on the four IDX files (slices here), tested on the t10k file; a
    /// spec whose poolings do not fit the image, and a folder without the files, end with
    /// status 1 and a message naming the flag or the files.
    @Test func convolutionalNetworkTrainsOnAnImageSetByName() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-cnn-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = try runNabla(["train", "--data", "mnist", "--data-dir", fixture("mnist-slice"), "--model", "cnn:4/16+bn", "--epochs", "2",
                                "--batch", "32", "--augment", "shift:2,flip", "--out", folder.appendingPathComponent("run").path, "--json", "--quiet"])
        #expect(run.status == 0, "\(run.err)")
        #expect(run.out.contains("\"test_samples\":100") && run.out.contains("\"model\":\"cnn:4/16+bn\""), "\(run.out)")
        // `nabla predict` on the test images: one line per image, the accuracy from the labels beside them.
        let predicted = try runNabla(["predict", folder.appendingPathComponent("run").path, "--data", fixture("mnist-slice") + "/t10k-images-idx3-ubyte.gz"])
        #expect(predicted.status == 0 && predicted.out.split(separator: "\n").count == 101 && predicted.err.contains("accuracy") && predicted.err.contains("100 images"), "\(predicted.err)")
        // `nabla explain` on the images, heat maps as an RGB PNG (input | attribution per row).
        let heat = folder.appendingPathComponent("heat.png").path
        let explained = try runNabla(["explain", folder.appendingPathComponent("run").path, "--data", fixture("mnist-slice") + "/t10k-images-idx3-ubyte.gz",
                                      "--method", "saliency", "--rows", "0,1", "--plot", heat])
        #expect(explained.status == 0, "\(explained.err)")
        let picture = try PNGTests().decode([UInt8](try #require(FileManager.default.contents(atPath: heat), "no heat map")))
        #expect(picture.channels == 3 && picture.width == 2 * 28 * 6 + 3 * 12 && picture.height == 2 * 28 * 6 + 3 * 12, "\(picture.width)×\(picture.height)")
        let deep = try runNabla(["train", "--data", "mnist", "--data-dir", fixture("mnist-slice"), "--model", "cnn:2,2,2,2,2", "--out", folder.appendingPathComponent("deep").path])
        #expect(deep.status == 1 && deep.err.contains("--model cnn:2,2,2,2,2") && deep.err.contains("below 1 × 1"), "\(deep.err)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("deep/model.safetensors").path))
        let notImages = try runNabla(["train", "--data", "digits", "--augment", "flip", "--out", folder.appendingPathComponent("digits").path])
        #expect(notImages.status == 1 && notImages.err.contains("--augment"), "\(notImages.err)")
        let badAugment = try runNabla(["train", "--data", "mnist", "--augment", "rotate"])
        #expect(badAugment.status == 64 && badAugment.err.contains("--augment rotate"), "\(badAugment.err)")
        let missing = try runNabla(["train", "--data", "fashion-mnist", "--data-dir", fixture("fashion-slice"), "--model", "cnn"])
        #expect(missing.status == 1 && missing.err.contains("train-images-idx3-ubyte"), "\(missing.err)")
    }

    /// `nabla train --compile`: the same run as the eager one (the step's gradients from one
    /// compiled program per batch size); models without a compiled form are refused.
    @Test func compiledTrainingFollowsTheEagerRun() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-compiled-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        func summary(_ extra: [String], _ name: String) throws -> [String: Any] {
            let run = try runNabla(["train", "--data", "digits", "--model", "mlp:16", "--epochs", "3", "--l2", "0.001", "--out", folder.appendingPathComponent(name).path,
                                    "--json", "--quiet"] + extra)
            #expect(run.status == 0, "\(run.err)")
            return try #require(try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any], "\(run.out)")
        }
        let eager = try summary([], "eager"), compiled = try summary(["--compile"], "compiled")
        let (le, lc) = (try #require(eager["test_loss"] as? Double), try #require(compiled["test_loss"] as? Double))
        #expect(Swift.abs(le - lc) < 1e-4 * le, "test loss \(lc) compiled, \(le) eager")
        #expect(eager["test_accuracy"] as? Double == compiled["test_accuracy"] as? Double)
        let dropout = try runNabla(["train", "--model", "mlp:16", "--dropout", "0.2", "--compile"])
        #expect(dropout.status == 64 && dropout.err.contains("--dropout"), "\(dropout.err)")
        let regression = try runNabla(["train", "--data", "diabetes", "--compile", "--epochs", "1", "--out", folder.appendingPathComponent("r").path])
        #expect(regression.status == 1 && regression.err.contains("--compile") && regression.err.contains("regression"), "\(regression.err)")
    }

    /// `nabla train --model vae:…` on the MNIST slice: the summary has the test loss per image,
    /// the folder the pictures (valid PNG: samples, reconstructions, and the manifold of a 2-D
    /// latent space); `--resume` with more epochs continues; `nabla sample` draws a grid; a latent
    /// size of 0 and a --class of an unconditional model end with status 1 and the flag named.
    @Test func variationalAutoencoderTrainsAndSamplesFromTheCommandLine() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-vae-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = folder.appendingPathComponent("run").path
        let first = try runNabla(["train", "--data", "mnist", "--data-dir", fixture("mnist-slice"), "--model", "vae:32,2", "--epochs", "1",
                                  "--batch", "64", "--out", run, "--json"])
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.contains("\"test_loss\":") && first.out.contains("\"model\":\"vae:32,2\"") && first.out.contains("\"epochs\":1"), "\(first.out)")
        for name in ["samples.png", "reconstructions.png", "manifold.png"] {
            let bytes = try #require(FileManager.default.contents(atPath: run + "/" + name), "no \(name)")
            let image = try PNGTests().decode([UInt8](bytes))
            #expect(image.channels == 1 && image.width > 28, "\(name): \(image.width)×\(image.height)")
        }
        let more = try runNabla(["train", "--resume", run, "--epochs", "2", "--json"])
        #expect(more.status == 0 && more.out.contains("\"epochs\":2"), "\(more.err)")
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == 2 && metrics[1].contains("\"epoch\":2") && metrics[1].contains("test_loss"), "\(metrics)")
        let grid = folder.appendingPathComponent("grid.png").path
        let sample = try runNabla(["sample", run, "--count", "6", "--columns", "3", "--out", grid])
        #expect(sample.status == 0, "\(sample.err)")
        let image = try PNGTests().decode([UInt8](try #require(FileManager.default.contents(atPath: grid))))
        #expect(image.width == 3 * 28 + 4 * 2 && image.height == 2 * 28 + 3 * 2)
        let zero = try runNabla(["train", "--data", "mnist", "--data-dir", fixture("mnist-slice"), "--model", "vae:400,0", "--out", folder.appendingPathComponent("zero").path])
        #expect(zero.status == 1 && zero.err.contains("--model vae:400,0") && zero.err.contains("latent size"), "\(zero.err)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("zero").path))
        let unconditional = try runNabla(["sample", run, "--class", "3"])
        #expect(unconditional.status == 1 && unconditional.err.contains("--class"), "\(unconditional.err)")
        let noRun = try runNabla(["sample", folder.path])
        #expect(noRun.status == 1 && noRun.err.contains("generative.json"), "\(noRun.err)")
    }

    /// A short fault-injection run (scripts/kill-test does 30): SIGKILL during training, then
    /// --resume reaches the uninterrupted run's weights bit for bit.
    @Test func killedTrainingResumesToTheSameWeights() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-kill-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let settings = ["--data", "digits", "--model", "mlp:16", "--epochs", "30", "--checkpoint-every", "0", "--quiet"]
        let reference = folder.appendingPathComponent("reference").path
        let started = Date()
        let first = try runNabla(["train"] + settings + ["--out", reference])
        let duration = Date().timeIntervalSince(started)
        #expect(first.status == 0, "\(first.err)")
        // Kills as soon as the first checkpoint is written, and at fractions of the uninterrupted
        // run's duration; at least one must land during training (a checkpoint written, the
        // model not yet), or the test would prove nothing.
        var killedDuringTraining = 0
        for (i, fraction) in [0.0, 0.5, 0.8].enumerated() {
            let run = folder.appendingPathComponent("run\(i)").path
            if fraction == 0 {
                _ = try runNabla(["train"] + settings + ["--out", run], killWhen: { FileManager.default.fileExists(atPath: run + "/checkpoint.safetensors") })
            } else {
                _ = try runNabla(["train"] + settings + ["--out", run], killAfter: duration * fraction)
            }
            if FileManager.default.fileExists(atPath: run + "/checkpoint.safetensors") && !FileManager.default.fileExists(atPath: run + "/model.safetensors") {
                killedDuringTraining += 1
            }
            let resumed = FileManager.default.fileExists(atPath: run + "/config.json")
                ? try runNabla(["train", "--resume", run, "--quiet"]) : try runNabla(["train"] + settings + ["--out", run])
            #expect(resumed.status == 0, "\(resumed.err)")
            let a = FileManager.default.contents(atPath: reference + "/model.safetensors"), b = FileManager.default.contents(atPath: run + "/model.safetensors")
            #expect(a != nil && a == b, "run \(i), killed after \(fraction) of \(duration) s: the final weights differ")
            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).filter { $0.hasSuffix(".tmp") }
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
        #expect(killedDuringTraining >= 1, "no kill landed during training (the uninterrupted run took \(duration) s)")
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

/// Bad flags, data and run folders that once crashed, hung or misled: each now ends with a
/// message naming the problem and a non-zero status.
@Suite(.serialized) struct CommandLineRefusalTests {
    @Test(arguments: [
        (["train", "--schedule", ""], "names no schedule"),
        (["train", "--schedule", ":"], "names no schedule"),
        (["train", "--schedule", "step:1e300,0.5"], "whole number of epochs"),
        (["train", "--model", "mlp:99999999999"], "at most 100000"),
        (["train", "--momentum", "nan"], "--momentum must be a finite number"),
        (["train", "--clip", "inf"], "--clip must be a positive number"),
        (["train", "--l2", "-1"], "--l2 must be a finite number"),
        (["train", "--epochs", "-3"], "--epochs must be at least 1"),
        (["train", "--data", "/"], "is a folder"),
        (["train", "--data", "iris", "--target", "no such column"], "no column named 'no such column'"),
        (["train", "--data", "diabetes", "--task", "classification"], "distinct values"),
        (["minimize", "rosenbrock", "--method", "lbfgs", "--constraint", "box:0,1"], "applies only to pgd"),
        (["minimize", "rosenbrock", "--method", "pgd", "--constraint", ""], "--constraint is empty"),
        (["minimize", "rosenbrock", "--method", "pgd", "--constraint", "l1:-5"], "radius must be positive"),
        (["minimize", "rosenbrock", "--dim", "100000", "--method", "bfgs"], "80 GB"),
        (["bench", "rosenbrock", "--sizes", "1"], "outside 2...1000000"),
        (["bench", "mlp", "--batch", "0"], "--batch must be between 1 and 65536"),
        (["bench", "mlp", "--threads", "100000"], "--threads must be at most 1024"),
    ])
    func refusedWithAMessage(_ arguments: [String], _ expected: String) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-refusal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let extra = arguments[0] == "train" ? ["--out", folder, "--quiet"] : []
        let (status, _, err) = try runNabla(arguments + extra)
        #expect(status != 0, "\(arguments) succeeded")
        #expect(err.contains(expected), "\(arguments): '\(expected)' missing from: \(err.prefix(300))")
        #expect(!err.contains("Fatal error") && !err.contains("Backtracing"), "\(arguments) crashed: \(err.prefix(300))")
    }

    @Test func runFoldersAreNeverOverwrittenAndEditedFilesAreRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-folder-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = folder.appendingPathComponent("run").path
        let settings = ["--data", "iris", "--model", "mlp:4", "--epochs", "2", "--quiet"]
        #expect(try runNabla(["train"] + settings + ["--out", run]).status == 0)
        // A leftover temporary file from a killed writer is cleaned up by the next resume.
        FileManager.default.createFile(atPath: run + "/.checkpoint.safetensors.123.abcd.tmp", contents: Data([1, 2]))
        let again = try runNabla(["train"] + settings + ["--out", run])
        #expect(again.status != 0 && again.err.contains("already holds a run"), "\(again.err)")
        #expect(try runNabla(["train", "--resume", run, "--epochs", "3", "--quiet"]).status == 0)
        #expect(!((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).contains { $0.hasSuffix(".tmp") })
        // An edited config.json and model.json: refused with the file and the setting named.
        let configPath = run + "/config.json"
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "\"batch\" : \"32\"", with: "\"batch\" : \"-3\"").write(toFile: configPath, atomically: true, encoding: .utf8)
        let resumed = try runNabla(["train", "--resume", run, "--epochs", "4", "--quiet"])
        #expect(resumed.status != 0 && resumed.err.contains("config.json") && resumed.err.contains("--batch"), "\(resumed.err)")
        let cardPath = run + "/model.json"
        try "{\"spec\": ".write(toFile: cardPath, atomically: true, encoding: .utf8)
        let csv = folder.appendingPathComponent("rows.csv").path
        try "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n5.1,3.5,1.4,0.2\n".write(toFile: csv, atomically: true, encoding: .utf8)
        let predicted = try runNabla(["predict", run, "--data", csv])
        #expect(predicted.status != 0 && predicted.err.contains("model.json cannot be read"), "\(predicted.err)")
    }

    @Test func predictionsQuoteLabelsAndRefuseUnseenCategories() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-predict-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var rows = ["size,color,label"]
        for i in 0..<40 { rows.append("\(i % 7),\(i % 2 == 0 ? "red" : "blue"),\(i % 2 == 0 ? "\"x,y\"" : "plain")") }
        let data = folder.appendingPathComponent("train.csv").path
        try (rows.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
        let run = folder.appendingPathComponent("run").path
        let trained = try runNabla(["train", "--data", data, "--model", "logistic", "--out", run, "--quiet"])
        #expect(trained.status == 0, "\(trained.err)")
        let input = folder.appendingPathComponent("new.csv").path
        try "size,color\n2,red\n".write(toFile: input, atomically: true, encoding: .utf8)
        let out = try runNabla(["predict", run, "--data", input])
        #expect(out.status == 0 && out.out.contains("1,\"x,y\","), "\(out.out)\(out.err)")
        try "size,color\n2,green\n".write(toFile: input, atomically: true, encoding: .utf8)
        let unseen = try runNabla(["predict", run, "--data", input])
        #expect(unseen.status != 0 && unseen.err.contains("'green' is not a value the model was trained on"), "\(unseen.err)")
    }
}

/// The defaults reach the models' optimum (figures from scikit-learn on the same split and
/// scaling; the README's table), and data that once misled now says what is wrong.
@Suite(.serialized) struct CommandLineResultTests {
    func summary(_ arguments: [String]) throws -> [String: Any] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-result-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let r = try runNabla(["train"] + arguments + ["--out", folder, "--json", "--quiet"])
        #expect(r.status == 0, "\(r.err)")
        return (try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func convexModelsMatchScikitLearn() throws {
        // scikit-learn's LinearRegression() on the run's split: test R² 0.511624506232.
        let linear = try summary(["--data", "diabetes", "--model", "linear"])
        #expect(Swift.abs((linear["test_r2"] as? Double ?? 0) - 0.511624506232) < 1e-6, "\(linear)")
        #expect((linear["stop_reason"] as? String ?? "").hasPrefix("solved"))
        // LogisticRegression() on the run's split: test accuracy 0.9722.
        let logistic = try summary(["--data", "wine", "--model", "logistic"])
        #expect((logistic["test_accuracy"] as? Double ?? 0) >= 0.9722, "\(logistic)")
    }

    @Test func gradientsThatAreNotFiniteAreNotCalledZero() throws {
        let sqrt = try runNabla(["grad", "sqrt(x)", "--at", "x=0"])
        #expect(sqrt.out.contains("undefined: the gradient is not finite") && !sqrt.out.contains("√inf"), "\(sqrt.out)")
        let power = try runNabla(["grad", "x^y", "--at", "x=0,y=0"])
        #expect(power.out.contains("not finite"), "\(power.out)")
    }

    @Test func misleadingDataSaysWhatIsWrong() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("images"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func run(_ file: String, _ text: String) throws -> String {
            let path = folder.appendingPathComponent(file).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return try runNabla(["train", "--data", path, "--out", folder.appendingPathComponent("run-\(file)").path, "--quiet"]).err
        }
        var huge = "a,b,y\n"
        for i in 0..<20 { huge += "\(i),\(i % 3),\(i == 0 ? "1e300" : "\(i).5")\n" }
        #expect(try run("huge.csv", huge).contains("too large"))
        #expect(try run("semicolons.csv", "a;b;y\n1;2;3\n4;5;6\n").contains("comma-separated"))
        // IDX files in a folder called "images": only the file name becomes "labels".
        let images = folder.appendingPathComponent("images/train-images-idx3-ubyte").path
        let labels = folder.appendingPathComponent("images/train-labels-idx1-ubyte").path
        let n = 40
        try Data(Fuzz.idxHeader(type: 8, dims: [UInt32(n), 2, 2]) + (0..<(4 * n)).map { UInt8($0 % 256) }).write(to: URL(fileURLWithPath: images))
        try Data(Fuzz.idxHeader(type: 8, dims: [UInt32(n)]) + (0..<n).map { UInt8($0 % 2) }).write(to: URL(fileURLWithPath: labels))
        let idx = try runNabla(["train", "--data", images, "--epochs", "1", "--out", folder.appendingPathComponent("run-idx").path, "--quiet"])
        #expect(idx.status == 0, "\(idx.err)")
    }

    @Test func aFileSizeLimitEndsInAMessage() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-ulimit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -f 8; exec \"$0\" train --data digits --epochs 1 --out \"$1\" --quiet", try #require(nablaExecutable()).path, folder]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 1, "\(process.terminationReason) \(process.terminationStatus): \(text)")
        #expect(text.contains("cannot write") && text.contains("too large"), "\(text)")
        #expect(!((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).contains { $0.hasSuffix(".tmp") })
    }
}

@Suite(.serialized) struct ExplainCommandTests {
    @Test func explainsARunAndRefusesBadRequests() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-explain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = folder.appendingPathComponent("run").path
        #expect(try runNabla(["train", "--data", "iris", "--model", "mlp:8", "--epochs", "30", "--out", run, "--quiet"]).status == 0)
        let plot = folder.appendingPathComponent("ig.svg").path
        let r = try runNabla(["explain", run, "--data", "iris", "--rows", "0,5", "--json", "--plot", plot])
        #expect(r.status == 0, "\(r.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let importances = try #require(object["importances"] as? [[String: Any]])
        let values = importances.compactMap { $0["importance"] as? Double }
        #expect(importances.count == 4 && values == values.sorted(by: >), "\(importances)")
        let rows = try #require(object["rows"] as? [[String: Any]])
        #expect(rows.count == 2 && (rows[0]["attributions"] as? [Double])?.count == 4)
        #expect(FileManager.default.contents(atPath: plot).map { String(decoding: $0, as: UTF8.self).contains("<svg") } == true)
        let permutation = try runNabla(["explain", run, "--data", "iris", "--method", "permutation"])
        #expect(permutation.status == 0 && permutation.out.contains("drop of accuracy"), "\(permutation.err)")
        // --compare: the second ranking and the rank correlation of the two, per feature name.
        let compared = try runNabla(["explain", run, "--data", "iris", "--compare", "permutation", "--json"])
        let both = try #require(try JSONSerialization.jsonObject(with: Data(compared.out.utf8)) as? [String: Any], "\(compared.err)")
        let comparison = try #require(both["comparison"] as? [String: Any])
        func byFeature(_ list: Any?) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: (list as? [[String: Any]] ?? []).map { ($0["feature"] as! String, $0["importance"] as! Double) })
        }
        let (first, second) = (byFeature(both["importances"]), byFeature(comparison["importances"]))
        let names = first.keys.sorted()
        #expect(names.count == 4 && Set(second.keys) == Set(names) && comparison["method"] as? String == "permutation")
        let correlation = try #require(comparison["rank_correlation"] as? Double)
        #expect(Swift.abs(correlation - rankCorrelation(names.map { first[$0]! }, names.map { second[$0]! })) < 1e-12)
        for (arguments, message) in [([folder.path, "--data", "iris"], "no model.json"),
                                     ([run, "--data", "wine"], "no column"),
                                     ([run, "--data", "iris", "--rows", "150"], "past the last row"),
                                     ([run, "--data", "iris", "--output", "3"], "outside 0..<3"),
                                     ([run, "--data", "iris", "--steps", "0"], "--steps must be between"),
                                     ([run, "--data", "iris", "--compare", "lime"], "--compare must be one of")] {
            let bad = try runNabla(["explain"] + arguments)
            #expect(bad.status != 0 && bad.err.contains(message), "\(arguments): \(bad.err)")
        }
    }
}

@Suite(.serialized) struct AnomalyCommandTests {
    @Test func fitsOnNormalRowsScoresAndRefusesBadRequests() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-anomaly-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let detector = folder.appendingPathComponent("detector").path
        let fit = try runNabla(["anomaly", "fit", "--data", "breast_cancer", "--normal", "1", "--epochs", "30", "--members", "2", "--out", detector])
        #expect(fit.status == 0, "\(fit.err)")
        let plot = folder.appendingPathComponent("roc.svg").path
        let scored = try runNabla(["anomaly", "score", detector, "--data", "breast_cancer", "--normal", "1", "--json", "--plot", plot])
        #expect(scored.status == 0, "\(scored.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(scored.out.utf8)) as? [String: Any])
        #expect((object["roc_auc"] as? Double ?? 0) > 0.9 && (object["anomalies"] as? Double) == 212, "\(object)")
        #expect(FileManager.default.fileExists(atPath: plot))
        for (arguments, message) in [(["fit", "--data", "breast_cancer", "--normal", "7", "--out", folder.appendingPathComponent("x").path], "no row of breast_cancer"),
                                     (["fit", "--data", "breast_cancer", "--normal", "1", "--out", detector], "already holds a detector"),
                                     (["fit", "--data", "breast_cancer", "--fpr", "0", "--out", folder.appendingPathComponent("y").path], "--fpr must be"),
                                     (["fit", "--data", "breast_cancer", "--scoring", "l1", "--out", folder.appendingPathComponent("y").path], "--scoring must be"),
                                     (["score", detector, "--data", "breast_cancer", "--normal", "9"], "all anomalies"),
                                     (["score", folder.path, "--data", "breast_cancer"], "no model.json")] {
            let bad = try runNabla(["anomaly"] + arguments)
            #expect(bad.status != 0 && bad.err.contains(message), "\(arguments): \(bad.err)")
        }
    }
}

@Suite(.serialized) struct RLCommandTests {
    @Test func trainsEvaluatesWatchesAndRefusesBadRequests() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-rl-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = folder.appendingPathComponent("run").path
        let trained = try runNabla(["rl", "cartpole", "--algo", "reinforce", "--episodes", "5", "--hidden", "16", "--eval-episodes", "3", "--out", run, "--json"])
        #expect(trained.status == 0, "\(trained.err)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(trained.out.utf8)) as? [String: Any])
        #expect(summary["solved"] as? Bool == false && summary["episodes"] as? Int == 5 && (summary["env_steps"] as? Int ?? 0) >= 5 * 8)
        #expect(summary["folder"] as? String == run && summary["seconds"] is Double && summary["mean_return"] is Double)
        for name in ["agent.json", "policy.safetensors", "metrics.jsonl", "returns.svg", "summary.json", "checkpoint.json"] {
            #expect(FileManager.default.fileExists(atPath: run + "/" + name), "\(name)")
        }
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == 5)
        let evaluated = try runNabla(["rl", "evaluate", run, "--episodes", "3", "--seed", "1000", "--json"])
        let evaluation = try #require(try JSONSerialization.jsonObject(with: Data(evaluated.out.utf8)) as? [String: Any], "\(evaluated.err)")
        #expect(evaluation["mean_return"] as? Double == summary["mean_return"] as? Double && evaluation["std_return"] is Double)
        // Resumed from its last checkpoint (episode 5) to episode 8: the same policy and metrics
        // as eight episodes straight.
        let straight = folder.appendingPathComponent("straight").path
        #expect(try runNabla(["rl", "cartpole", "--algo", "reinforce", "--episodes", "8", "--hidden", "16", "--eval-episodes", "0", "--out", straight, "--quiet"]).status == 0)
        let resumed = try runNabla(["rl", "--resume", run, "--episodes", "8", "--eval-episodes", "0", "--quiet"])
        #expect(resumed.status == 0, "\(resumed.err)")
        for name in ["policy.safetensors", "metrics.jsonl"] {
            #expect(FileManager.default.contents(atPath: run + "/" + name) == FileManager.default.contents(atPath: straight + "/" + name), "\(name)")
        }
        let watched = try runNabla(["rl", "watch", run, "--fps", "0", "--steps", "30"])
        #expect(watched.status == 0 && watched.out.contains("█") && watched.out.contains("episode over"), "\(watched.err)")
        for (arguments, message) in [(["mountaincar"], "unknown environment 'mountaincar' (known: cartpole, pendulum)"),
                                     (["cartpole", "--algo", "dqn"], "unknown algorithm 'dqn' (known: reinforce, a2c, ppo)"),
                                     (["cartpole", "--episodes", "0"], "--episodes must be at least 1"),
                                     (["cartpole", "--out", run], "already holds a run"),
                                     (["evaluate", folder.path], "no agent.json"),
                                     (["--resume", folder.path], "no agent.json")] {
            let bad = try runNabla(["rl"] + arguments)
            #expect(bad.status != 0 && bad.err.contains(message), "\(arguments): \(bad.err)")
        }
    }
}

@Suite(.serialized) struct PCACommandTests {
    @Test func printsComponentsAndRefusesBadRequests() throws {
        let plot = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-pca-\(UUID().uuidString).svg").path
        defer { try? FileManager.default.removeItem(atPath: plot) }
        let r = try runNabla(["pca", "--data", "iris", "--components", "2", "--json", "--plot", plot])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.err)")
        let ratio = try #require(object["explained_variance_ratio"] as? [Double])
        let components = try #require(object["components"] as? [[Double]])
        // Iris: the first component keeps about 92 % of the variance.
        #expect(ratio.count == 2 && ratio[0] > 0.9 && ratio[0] < 0.94 && components.count == 2 && components[0].count == 4)
        #expect(FileManager.default.contents(atPath: plot).map { String(decoding: $0, as: UTF8.self).contains("<circle") } == true)
        for (arguments, message) in [(["--data", "iris", "--components", "5"], "at most 4"),
                                     (["--data", "iris", "--components", "0"], "--components must be at least 1"),
                                     (["--data", "iris", "--target", "colour"], "no column 'colour'")] {
            let bad = try runNabla(["pca"] + arguments)
            #expect(bad.status != 0 && bad.err.contains(message), "\(arguments): \(bad.err)")
        }
    }
}

@Suite(.serialized) struct FindLearningRateCommandTests {
    @Test func suggestsARateWithoutTraining() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-findlr-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let r = try runNabla(["train", "--data", "iris", "--model", "mlp:8", "--find-lr", "--json", "--out", folder])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.err)")
        let rate = try #require(object["suggested_learning_rate"] as? Double)
        #expect(rate > 1e-7 && rate < 10)
        #expect(FileManager.default.fileExists(atPath: folder + "/lr-finder.svg") && !FileManager.default.fileExists(atPath: folder + "/model.safetensors"))
    }
}

@Suite(.serialized) struct FineTuneCommandTests {
    @Test func startsFromAnotherRunWithAFrozenLayer() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-finetune-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Two tasks on the same features: iris as it is, and iris with its classes renamed.
        let iris = try String(contentsOfFile: try #require(Dataset.Bundled(rawValue: "iris")?.url?.path), encoding: .utf8)
        let renamed = folder + "/renamed.csv"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let lines = iris.split(separator: "\n").enumerated().map { i, line -> String in
            guard i > 0, let comma = line.lastIndex(of: ",") else { return String(line) }
            return line[..<comma] + ",class" + line[line.index(after: comma)...]
        }
        try lines.joined(separator: "\n").write(toFile: renamed, atomically: true, encoding: .utf8)
        #expect(try runNabla(["train", "--data", "iris", "--model", "mlp:8", "--epochs", "20", "--out", folder + "/source", "--quiet"]).status == 0)
        let tuned = try runNabla(["train", "--data", renamed, "--model", "mlp:8", "--epochs", "5", "--init-from", folder + "/source", "--freeze", "0",
                                  "--head-lr", "0.01", "--out", folder + "/tuned"])
        #expect(tuned.status == 0, "\(tuned.err)")
        #expect(tuned.out.contains("the head (2) starts afresh") && tuned.out.contains("loaded 2 tensors: 0.weight, 0.bias") && tuned.out.contains("frozen: 0.weight, 0.bias"), "\(tuned.out)")
        for (arguments, message) in [(["--init-from", folder + "/nowhere"], "no model.json"),
                                     (["--init-from", folder + "/source", "--freeze", "7"], "7 match no layer"),
                                     (["--head-lr", "-1"], "--head-lr must be a positive number")] {
            let bad = try runNabla(["train", "--data", "iris", "--model", "mlp:8", "--epochs", "1", "--quiet", "--out", folder + "/bad-\(UUID().uuidString)"] + arguments)
            #expect(bad.status != 0 && bad.err.contains(message), "\(arguments): \(bad.err)")
        }
    }
}

@Suite(.serialized) struct TuneCommandTests {
    @Test func searchesResumesAndRefusesBadSpaces() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-tune-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let search = ["tune", "--data", "iris", "--model", "mlp:4|mlp:8", "--lr", "1e-3..1e-1:log", "--epochs", "5", "--trials", "4", "--jobs", "2", "--out", folder]
        let r = try runNabla(search + ["--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.err)")
        let results = try #require(summary["results"] as? [[String: Any]])
        let validation = results.compactMap { $0["validation"] as? Double }
        #expect(summary["trials"] as? Int == 4 && validation.count == 4 && validation == validation.sorted(by: >))
        #expect((summary["best_run"] as? String).map { FileManager.default.fileExists(atPath: $0 + "/model.safetensors") } == true)
        #expect(FileManager.default.fileExists(atPath: folder + "/tune-lr.svg") && FileManager.default.fileExists(atPath: folder + "/tune-model.svg"))
        let records = try String(contentsOfFile: folder + "/trials.jsonl", encoding: .utf8)
        // The same search again: every trial is already recorded, nothing runs.
        let again = try runNabla(search)
        #expect(again.status == 0 && again.out.contains("4 results already recorded") && !again.out.contains("→ validation"), "\(again.out)")
        #expect(try String(contentsOfFile: folder + "/trials.jsonl", encoding: .utf8) == records)
        for (arguments, message) in [(["--data", "iris", "--lr", "1e-3..1e-1:log", "--colour", "red"], "Unknown option '--colour'"),
                                     (["--data", "iris", "--lr", "1..0.1"], "--lr: '1..0.1' is not a range"),
                                     (["--data", "iris", "--lr", "0.01"], "no flag has a search space")] {
            let bad = try runNabla(["tune", "--trials", "2", "--out", folder + "-bad"] + arguments)
            #expect(bad.status != 0 && bad.err.contains(message), "\(arguments): \(bad.err)")
        }
    }
}

@Suite(.serialized) struct PCATrainingTests {
    @Test func projectsTheInputsInAFrozenFirstLayer() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-pcatrain-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let r = try runNabla(["train", "--data", "iris", "--model", "mlp:8", "--pca", "2", "--epochs", "100", "--lr", "0.01", "--out", folder + "/run", "--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.err)")
        #expect((summary["test_accuracy"] as? Double ?? 0) > 0.8)
        let card = try ModelCard.decode(try #require(FileManager.default.contents(atPath: folder + "/run/model.json")))
        #expect(card.spec.pca == 2 && card.features.count == 4)
        // The saved first layer is the projection: orthonormal rows.
        let model = try TrainedModel(runFolder: folder + "/run")
        let w = (model.network.layers[0] as! Linear<Float>).weight.value
        let gram = Tensor.matmul(w, w, transposeB: true).scalars
        #expect(w.shape == [2, 4] && Swift.abs(gram[0] - 1) < 1e-5 && Swift.abs(gram[1]) < 1e-5 && Swift.abs(gram[3] - 1) < 1e-5)
        let explained = try runNabla(["explain", folder + "/run", "--data", "iris", "--json"])
        #expect(explained.status == 0 && explained.out.contains("importances"), "\(explained.err)")
        let bad = try runNabla(["train", "--data", "iris", "--pca", "9", "--epochs", "1", "--quiet", "--out", folder + "/bad"])
        #expect(bad.status != 0 && bad.err.contains("at most 4"), "\(bad.err)")
    }
}

@Suite(.serialized) struct StreamCommandTests {
    @Test func learnsFromAStreamAndNamesACutRow() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-streamcmd-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let iris = try #require(Dataset.Bundled(rawValue: "iris")?.url?.path)
        let r = try runNabla(["train", "--stream", iris, "--classes", "0,1,2", "--lr", "0.01", "--batch", "8", "--out", folder + "/run", "--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.err)")
        #expect(summary["rows"] as? Int == 150 && summary["prequential_accuracy"] is Double)
        let predicted = try runNabla(["predict", folder + "/run", "--data", iris])
        #expect(predicted.status == 0 && (predicted.out + predicted.err).contains("accuracy"), "\(predicted.err)")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try "a,b,y\n1,2,3\n4,5".write(toFile: folder + "/cut.csv", atomically: true, encoding: .utf8)
        let cut = try runNabla(["train", "--stream", folder + "/cut.csv", "--model", "linear", "--out", folder + "/cut"])
        #expect(cut.status != 0 && cut.err.contains("cut.csv:3: the stream stops mid-row (2 of 3 fields)"), "\(cut.err)")
        let unknown = try runNabla(["train", "--stream", iris, "--classes", "0,1", "--out", folder + "/unknown"])
        #expect(unknown.status != 0 && unknown.err.contains("'2' is not one of the classes 0, 1"), "\(unknown.err)")
    }
}

@Suite(.serialized) struct TuneHalvingCommandTests {
    /// Successive halving through the CLI: every trial runs 2 epochs, the best third goes on to 6
    /// by resuming its run.
    @Test func survivorsResumeWithMoreEpochs() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-halving-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let r = try runNabla(["tune", "--data", "iris", "--model", "mlp:4", "--lr", "1e-3..1e-1:log", "--halving", "--min-epochs", "2", "--epochs", "6",
                              "--trials", "3", "--out", folder, "--json"])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.err)")
        let results = try #require(summary["results"] as? [[String: Any]])
        #expect(results.map { $0["epochs"] as? Int } == [6, 2, 2], "\(results)")
        let best = try #require(summary["best_run"] as? String)
        let metrics = try String(contentsOfFile: best + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(metrics.count == 6)
    }
}
