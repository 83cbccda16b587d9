import ArgumentParser
import Foundation
import Nabla
import NablaConformance

// `nabla train --model vae|gan|cgan` and `nabla sample`: the command-line side of the
// generative models (Sources/Nabla/Generative holds the models and the training loop).

extension Train {
    /// Whether this invocation trains a generative model (a new run of vae/gan/cgan, or the
    /// resumption of one).
    var isGenerative: Bool {
        if let resume { return FileManager.default.fileExists(atPath: file(resume, GenerativeRunCard.fileName)) }
        return GenerativeSpec.names(model)
    }

    /// The flags of `nabla train` that mean nothing to a generative model, if given.
    func checkGenerativeFlags() throws {
        guard resume == nil else { return }
        if let b = batch { guard let n = Int(b), n >= 1, n <= 65_536 else { throw ValidationError("--batch for --model \(model) must be a number of images from 1 to 65536") } }
        if let lr = learningRate { guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number, got \(lr)") } }
        if distributed || stream != nil || findLr || pca != nil || initFrom != nil {
            throw ValidationError("--model \(model) trains on one process from images; --distributed, --stream, --find-lr, --pca and --init-from are for the other models")
        }
    }

    func trainGenerative() throws {
        let started = Date()
        // 1. The run card: new, or the resumed run's.
        var card: GenerativeRunCard
        let folder: String
        if let resume {
            do { card = try GenerativeRunCard.read(folder: resume) } catch let e as GenerativeError { throw RunFailure(message: e.message) }
            if let epochs { card.settings.epochs = epochs }
            folder = resume
        } else {
            // A model spec that cannot be built is an error of the run (status 1), as for every model.
            let spec: GenerativeSpec
            do { spec = try GenerativeSpec(parsing: model) } catch let e as GenerativeError { throw RunFailure(message: e.message) }
            guard let set = ImageSet(rawValue: data) else {
                throw RunFailure(message: "--model \(model) learns images: --data \(ImageSet.allCases.map(\.rawValue).joined(separator: " or ")) (with --data-dir)")
            }
            var s = GenerativeSettings.preset(for: spec, height: 28, width: 28, classNames: set.classNames)
            if let epochs { s.epochs = epochs }
            if let b = batch { s.batch = Int(b)! }
            if let learningRate { s.learningRate = learningRate }
            s.seed = seed
            card = GenerativeRunCard(settings: s, data: set.rawValue, dataDirectory: dataDir)
            if let out, FileManager.default.fileExists(atPath: file(out, GenerativeRunCard.fileName)) || FileManager.default.fileExists(atPath: file(out, "config.json")) {
                throw ValidationError("--out \(out) already holds a run; continue it with --resume \(out), or choose another folder")
            }
            folder = out ?? generativeFolder(spec, data: set.rawValue)
        }
        let show = !quiet && !json

        // 2. The images; nothing is written if they cannot be read.
        let set = ImageSet(rawValue: card.data)!
        let trainer: GenerativeTrainer
        do {
            let (train, test) = try set.loadRows(from: set.folder(card.dataDirectory))
            let pixels = train.pixels.shape[1], side = Int(Double(pixels).squareRoot())
            guard side * side == pixels else { throw GenerativeError("\(card.data): images of \(pixels) pixels are not square") }
            (card.settings.height, card.settings.width) = (side, side)
            trainer = try GenerativeTrainer(settings: card.settings, train: train, test: test)
        } catch let e as GenerativeError { throw RunFailure(message: e.message) } catch { throw RunFailure(message: "\(error)") }
        let checkpointPath = file(folder, "checkpoint.safetensors")
        if resume != nil, FileManager.default.fileExists(atPath: checkpointPath) {
            do { try trainer.resume(from: SafeTensors.read(checkpointPath), path: checkpointPath) } catch {
                throw RunFailure(message: "cannot resume from \(folder): \(error)")
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try writeJSON(card, to: file(folder, GenerativeRunCard.fileName))
        } catch { throw RunFailure(message: "cannot write the run folder \(folder): \(error)") }
        let s = card.settings
        if show {
            print("\(resume == nil ? "training" : "resuming") \(s.model) (\(trainer.model.module.parameterCount()) parameters) on \(card.data): \(trainer.train.count) training and \(trainer.test.count) test images of \(s.height) × \(s.width)")
            print("run folder: \(folder)")
        }

        // 3. Epochs, each ending with metrics, pictures and a checkpoint.
        let board = try? TensorBoardWriter(folder: folder)
        signal(SIGINT) { _ in interruptRequested = 1 }
        let tty = isatty(STDOUT_FILENO) != 0 && show
        var lastDraw = Date.distantPast
        do {
            while trainer.epoch < s.epochs {
                let record = trainer.runEpoch { batch, batches, loss in
                    if interruptRequested != 0 { return false }
                    if tty && (Date().timeIntervalSince(lastDraw) > 0.25 || batch == batches) {
                        print("\r\u{1B}[2Kepoch \(trainer.epoch + 1)/\(s.epochs) \(bar(Double(batch) / Double(batches), width: 24)) \(batch)/\(batches) loss \(fmt(loss, digits: 5))", terminator: "")
                        fflush(stdout)
                        lastDraw = Date()
                    }
                    return true
                }
                guard let record else {
                    if show { clearLine() }
                    let kept = trainer.epoch == 0 || !FileManager.default.fileExists(atPath: checkpointPath)
                        ? "no epoch had finished, so there is no checkpoint; run the command again"
                        : "the checkpoint of epoch \(trainer.epoch) is in \(checkpointPath); continue with: nabla train --resume \(folder)"
                    printError("interrupted during epoch \(trainer.epoch + 1): \(kept)")
                    throw ExitCode(130)
                }
                guard record.trainLoss.isFinite else {
                    throw RunFailure(message: "the training loss became \(record.trainLoss) in epoch \(record.epoch); lower --lr")
                }
                var scalars = ["train/loss": record.trainLoss]
                if let t = record.testLoss { scalars["test/loss"] = t }
                if let d = record.discriminatorLoss { scalars["train/discriminator_loss"] = d }
                try? board?.add(scalars: scalars, step: record.epoch)
                if show {
                    clearLine()
                    var line = "epoch \(record.epoch)  train loss \(fmt(record.trainLoss, digits: 5))"
                    if let t = record.testLoss { line += "  test loss \(fmt(t, digits: 5))" }
                    if let d = record.discriminatorLoss { line += "  discriminator loss \(fmt(d, digits: 4))" }
                    print(line + "  \(fmt(record.seconds, digits: 3)) s")
                    fflush(stdout)
                }
                try writeGenerativeResults(trainer, folder: folder)
                try SafeTensors.write(trainer.checkpoint(), to: checkpointPath)
            }
        } catch let e as ExitCode { throw e } catch let e as RunFailure { throw e } catch {
            throw RunFailure(message: "cannot write the run folder \(folder): \(error)")
        }

        // 4. The summary.
        let last = trainer.history.last!
        var pairs: [(String, JSONValue)] = [("model", .string(s.model.description)), ("data", .string(card.data)),
                                            ("parameters", .number(Double(trainer.model.module.parameterCount()))),
                                            ("epochs", .number(Double(trainer.epoch))), ("train_loss", .number(last.trainLoss))]
        if let t = last.testLoss { pairs.append(("test_loss", .number(t))) }
        if let d = last.discriminatorLoss { pairs.append(("discriminator_loss", .number(d))) }
        pairs += [("epoch_seconds", .array(trainer.history.map { .number($0.seconds) })),
                  ("seconds", .number(Date().timeIntervalSince(started))), ("run_folder", .string(folder))]
        let summary = OrderedJSON(pairs).text
        try? writeAtomically(summary, to: file(folder, "summary.json"))
        if json { print(summary); return }
        if show {
            let pictures = s.model.isVAE ? "samples.png, reconstructions.png\(s.model.latentSize == 2 ? ", manifold.png" : "")" : "samples.png, samples-epoch-N.png"
            print("wrote \(folder)/: model.safetensors, checkpoint.safetensors, metrics.jsonl, loss.svg, \(pictures), summary.json")
            print("more samples: nabla sample \(folder) --count 64\(s.model.isConditional ? " --class 3" : "") --out grid.png")
        }
    }

    /// After each epoch: the model, metrics.jsonl, loss.svg and the pictures (sample grids; a
    /// VAE's reconstructions and, with a 2-D latent space, its manifold).
    func writeGenerativeResults(_ t: GenerativeTrainer, folder: String) throws {
        try t.model.module.save(to: file(folder, "model.safetensors"))
        let lines = t.history.map { e -> String in
            var p: [(String, JSONValue)] = [("epoch", .number(Double(e.epoch))), ("train_loss", .number(e.trainLoss))]
            if let v = e.testLoss { p.append(("test_loss", .number(v))) }
            if let v = e.discriminatorLoss { p.append(("discriminator_loss", .number(v))) }
            p.append(("seconds", .number(e.seconds)))
            return OrderedJSON(p).text + "\n"
        }
        try writeAtomically(lines.joined(), to: file(folder, "metrics.jsonl"))
        let epochs = t.history.map { Double($0.epoch) }
        var series = [LinePlot.Series(name: t.settings.model.isVAE ? "training (−ELBO per image)" : "generator",
                                      points: zip(epochs, t.history.map(\.trainLoss)).map { ($0, $1) })]
        if t.settings.model.isVAE {
            series.append(LinePlot.Series(name: "test", points: zip(epochs, t.history.map { $0.testLoss ?? .nan }).map { ($0, $1) }))
        } else {
            series.append(LinePlot.Series(name: "discriminator", points: zip(epochs, t.history.map { $0.discriminatorLoss ?? .nan }).map { ($0, $1) }))
        }
        try LinePlot(title: "\(t.settings.model)", xLabel: "epoch", yLabel: "loss", series: series).write(to: file(folder, "loss.svg"))
        // The same codes every epoch, so the grids show the model changing.
        let columns = t.settings.model.isConditional ? t.settings.classNames.count : 8
        let grid = PNGImage.grid(t.samples(count: columns * 8, seed: 0), columns: columns)
        try grid.write(to: file(folder, "samples.png"))
        if !t.settings.model.isVAE { try grid.write(to: file(folder, "samples-epoch-\(t.epoch).png")) }
        if let r = t.reconstructions(count: 32) { try PNGImage.grid(r, columns: 16).write(to: file(folder, "reconstructions.png")) }
        if let m = t.manifold(side: 20) { try PNGImage.grid(m, columns: 20, padding: 0).write(to: file(folder, "manifold.png")) }
    }

    func generativeFolder(_ spec: GenerativeSpec, data: String) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        let base = "runs/\(spec.description.replacingOccurrences(of: ":", with: "-").replacingOccurrences(of: ",", with: "-").replacingOccurrences(of: "+", with: "-"))-\(data)-\(f.string(from: Date()))"
        var name = base, k = 2
        while FileManager.default.fileExists(atPath: name) { name = "\(base)-\(k)"; k += 1 }
        return name
    }
}

/// `nabla sample RUN`: new images from a trained VAE or GAN as a PNG grid.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw new images from a trained generative model (vae, gan, cgan) as a PNG grid.",
        discussion: """
        Examples:
          nabla sample runs/vae-400-20-mnist-… --count 64 --out grid.png
          nabla sample runs/cgan-100-mnist-… --count 64 --class 3 --out threes.png
          nabla sample runs/cgan-100-mnist-… --classifier runs/cnn-mnist-…   (how often a classifier sees the class asked for)
        """)

    @Argument(help: "The run folder of `nabla train --model vae|gan|cgan`.") var folder: String
    @Option(help: "Images to draw.") var count: Int = 64
    @Option(help: "cgan: the class to draw (its index or name; default: the classes in turn).") var `class`: String?
    @Option(help: "The PNG file to write (default: samples.png in the current folder).") var out: String = "samples.png"
    @Option(help: "Images per row of the grid (default: about the square root of --count).") var columns: Int?
    @Option(help: "Seed of the latent codes.") var seed: UInt64 = 0
    @Option(help: "cgan: a classifier run of `nabla train` (on the same images); report how often it labels the samples of each class as that class (--count per class), instead of writing a grid.") var classifier: String?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard count >= 1, count <= 100_000 else { throw ValidationError("--count must be between 1 and 100000, got \(count)") }
        if let columns { guard columns >= 1, columns <= 1000 else { throw ValidationError("--columns must be between 1 and 1000, got \(columns)") } }
        guard classifier == nil || `class` == nil else { throw ValidationError("--classifier checks every class; leave out --class") }
    }

    func run() throws {
        let card: GenerativeRunCard, model: GenerativeModel
        do { (card, model) = try GenerativeRunCard.model(folder: folder) } catch let e as GenerativeError { throw RunFailure(message: e.message) } catch {
            throw RunFailure(message: "\(folder): \(error)")
        }
        let s = card.settings
        var label: Int?
        if let c = `class` {
            guard s.model.isConditional else { throw RunFailure(message: "--class: \(s.model) is not conditioned on classes (train --model cgan for that)") }
            guard let k = Int(c).flatMap({ (0..<s.classNames.count).contains($0) ? $0 : nil }) ?? s.classNames.firstIndex(of: c) else {
                throw RunFailure(message: "--class \(c) is not a class of the run: 0…\(s.classNames.count - 1) or \(s.classNames.joined(separator: ", "))")
            }
            label = k
        }
        if let classifier {
            let trained: TrainedModel
            do { trained = try TrainedModel(runFolder: classifier) } catch { throw RunFailure(message: "--classifier \(error)") }
            guard trained.card.features.count == s.height * s.width, trained.card.task == .classification else {
                throw RunFailure(message: "--classifier \(classifier): its model takes \(trained.card.features.count) features (\(trained.card.task.rawValue)); the samples are \(s.height * s.width) pixels to classify")
            }
            let agreement: ClassAgreement
            do {
                agreement = try model.classAgreement(perClass: count, seed: seed) { rows in
                    trained.outputs(Tensor<Double>(converting: rows)).argmax(axis: 1)
                }
            } catch let e as GenerativeError { throw RunFailure(message: e.message) }
            if json {
                print(OrderedJSON([("model", .string(s.model.description)), ("classifier", .string(classifier)), ("samples", .number(Double(agreement.samples))),
                                   ("agreement", .number(agreement.overall)), ("per_class", .array(agreement.perClass.map { .number($0) }))]).text)
            } else {
                print("the classifier labels \(fmt(agreement.overall * 100, digits: 4)) % of \(agreement.samples) samples as the class asked for")
                for (k, r) in agreement.perClass.enumerated() { print("  \(pad(s.classNames[k], 12)) \(fmt(r * 100, digits: 4)) %") }
            }
            return
        }
        var g = RandomGenerator(seed: seed)
        let rows = model.sample(count: count, label: label, using: &g)
        let images = Tensor<Double>(converting: rows).reshaped(to: [count, s.height, s.width])
        let grid = PNGImage.grid(images, columns: columns ?? (s.model.isConditional && label == nil ? s.classNames.count : nil))
        do { try grid.write(to: out) } catch { throw RunFailure(message: "cannot write \(out): \(error)") }
        if json {
            print(OrderedJSON([("model", .string(s.model.description)), ("count", .number(Double(count))), ("out", .string(out)),
                               ("width", .number(Double(grid.width))), ("height", .number(Double(grid.height)))]).text)
        } else {
            print("wrote \(out): \(count) samples of \(s.model)\(label.map { " (class \(s.classNames[$0]))" } ?? "") on a \(grid.width) × \(grid.height) grid")
        }
    }
}
