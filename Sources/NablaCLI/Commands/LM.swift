import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// What a language-model run folder records besides its checkpoints: the settings, the
/// vocabulary and the text it was trained on.
struct LanguageModelRunCard: Codable {
    var settings: LanguageModelSettings
    var tokenizer: CharacterTokenizer
    var text: String
    static let fileName = "lm.json"

    static func read(_ folder: String) throws -> LanguageModelRunCard {
        guard let data = FileManager.default.contents(atPath: file(folder, fileName)) else {
            throw RunFailure(message: "\(folder): no \(fileName); give the folder of a `nabla lm train` run")
        }
        do { return try JSONDecoder().decode(LanguageModelRunCard.self, from: data) } catch {
            throw RunFailure(message: "\(folder)/\(fileName) cannot be read: \(error)")
        }
    }
}

/// `nabla lm train|sample`: character-level language models.
struct LM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lm",
        abstract: "Character-level language models (GPT, LSTM): train on a text file, sample text.",
        discussion: """
        nabla lm train                                   # a 4-layer GPT on the bundled Shakespeare, 2000 iterations
        nabla lm train --model lstm:2,256 --iters 2000   # the character LSTM
        nabla lm train --text my.txt --model gpt:6,6,192 --context 128 --out runs/mine
        nabla lm train --resume runs/mine --iters 4000   # continue from the last checkpoint
        nabla lm sample runs/mine --prompt "ROMEO:" --tokens 500 --temperature 0.8 --top-k 40
        """,
        subcommands: [TrainLM.self, Sample.self])

    struct TrainLM: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Train a GPT or an LSTM on a text file, with validation in nats and bits per character.",
            discussion: """
            The run folder gets lm.json (settings and vocabulary), checkpoint.safetensors (every --checkpoint-every \
            seconds, at each evaluation and at the end), model.safetensors, metrics.jsonl (one line per evaluation), \
            TensorBoard events, loss.svg, sample.txt and summary.json (--json prints it). Defaults are W8's (GPT: AdamW \
            β₂ 0.99, decay 0.1 on matrices, warmup 100 then cosine to lr/10, clipping 1) or W9's (LSTM: Adam 2e-3).
            """)
        @Option(help: "A UTF-8 text file (default: the bundled Shakespeare, 1 MB).") var text: String?
        @Option(help: "gpt:LAYERS,HEADS,EMBED or lstm:LAYERS,HIDDEN (default gpt:4,4,128).") var model: String = "gpt:4,4,128"
        @Option(help: "Characters per training window (GPT: also its longest context).") var context: Int?
        @Option(help: "Windows per step.") var batch: Int?
        @Option(name: .customLong("iters"), help: "Training iterations (default 2000).") var iterations: Int?
        @Option(name: .customLong("lr"), help: "Peak learning rate (default 1e-3 GPT, 2e-3 LSTM).") var learningRate: Double?
        @Option(help: "The cosine schedule's floor (GPT default: lr/10); 'none' for a constant rate.") var minLr: String?
        @Option(help: "Warm-up iterations (GPT default 100).") var warmup: Int?
        @Option(help: "Decoupled weight decay of the weight matrices (GPT default 0.1).") var weightDecay: Double?
        @Option(help: "Dropout probability (GPT).") var dropout: Double?
        @Option(help: "Clip gradients to this global norm (default 1).") var clip: Double?
        @Option(help: "Seed of the weights and the batches.") var seed: UInt64?
        @Option(help: "Evaluate every this many iterations.") var evalInterval: Int?
        @Option(help: "Batches per evaluation (the same ones each time).") var evalBatches: Int?
        @Option(help: "Run folder (default runs/lm-MODEL-TIME).") var out: String?
        @Option(help: "Continue the run in this folder from its last checkpoint (--iters may raise its length).") var resume: String?
        @Option(help: "Least seconds between checkpoints.") var checkpointEvery: Double = 30
        @Option(help: "Threads for the kernels (default: every core).") var threads: Int?
        @Flag(help: "No progress output.") var quiet = false
        @Flag(help: "At the end, print one JSON object summarizing the run.") var json = false

        func validate() throws {
            guard checkpointEvery >= 0, checkpointEvery.isFinite else { throw ValidationError("--checkpoint-every must be ≥ 0 seconds") }
            if let threads, threads < 1 || threads > 1024 { throw ValidationError("--threads must be between 1 and 1024") }
            if resume == nil { _ = try settings() }
        }

        func settings() throws -> LanguageModelSettings {
            do {
                var s = LanguageModelSettings.preset(for: try LanguageModelSpec(parsing: model))
                if let context { s.context = context }
                if let batch { s.batch = batch }
                if let iterations { s.iterations = iterations }
                if let learningRate {
                    s.learningRate = learningRate
                    if s.minimumLearningRate != nil { s.minimumLearningRate = learningRate / 10 }
                }
                if let minLr { s.minimumLearningRate = minLr == "none" ? nil : try Double(minLr).orThrow(TextError("--min-lr must be a number or 'none'")) }
                if let warmup { s.warmup = warmup }
                if let weightDecay { s.weightDecay = weightDecay }
                if let dropout { s.dropout = dropout }
                if let clip { s.clip = clip }
                if let seed { s.seed = seed }
                if let evalInterval { s.evaluationInterval = evalInterval }
                if let evalBatches { s.evaluationBatches = evalBatches }
                if s.minimumLearningRate != nil && s.warmup >= s.iterations { s.warmup = s.iterations - 1 }
                if s.dropout > 0, !s.model.isGPT { throw TextError("--dropout applies to the GPT only") }
                try s.check()
                return s
            } catch let e as TextError { throw ValidationError(e.message) }
        }

        func run() throws {
            if let threads { ComputeBackend.threads = threads }
            let started = Date()
            // 1. Settings, text, folder.
            var card: LanguageModelRunCard
            let folder: String
            if let resume {
                card = try LanguageModelRunCard.read(resume)
                if let iterations {
                    guard iterations >= 1 else { throw ValidationError("--iters must be at least 1") }
                    card.settings.iterations = iterations
                }
                folder = resume
            } else {
                let s = try settings()
                let path = text ?? TextCorpus.bundledShakespearePath ?? ""
                card = LanguageModelRunCard(settings: s, tokenizer: try CharacterTokenizer(characters: ["\n"]), text: path)
                if let out, FileManager.default.fileExists(atPath: file(out, LanguageModelRunCard.fileName)) {
                    throw RunFailure(message: "--out \(out) already holds a run; continue it with --resume \(out), or choose another folder")
                }
                folder = out ?? defaultFolder(s)
            }
            let corpus: TextCorpus
            do {
                corpus = try TextCorpus(file: card.text, tokenizer: resume == nil ? nil : card.tokenizer)
                try corpus.check(context: card.settings.context)
            } catch let e as TextError { throw RunFailure(message: e.message) }
            card.tokenizer = corpus.tokenizer
            let trainer: LanguageModelTrainer
            do { trainer = try LanguageModelTrainer(settings: card.settings, corpus: corpus) } catch let e as TextError { throw RunFailure(message: e.message) }
            let checkpointPath = file(folder, "checkpoint.safetensors")
            if resume != nil, FileManager.default.fileExists(atPath: checkpointPath) {
                do { try trainer.resume(from: SafeTensors.read(checkpointPath), path: checkpointPath) } catch {
                    throw RunFailure(message: "cannot resume from \(folder): \(error)")
                }
            }
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try writeJSON(card, to: file(folder, LanguageModelRunCard.fileName))
            } catch { throw RunFailure(message: "cannot write the run folder \(folder): \(error)") }
            let s = card.settings
            let show = !quiet && !json
            if show {
                print("\(resume == nil ? "training" : "resuming") \(s.model) (\(trainer.model.module.parameterCount()) parameters) on \(card.text == TextCorpus.bundledShakespearePath ? "the bundled Shakespeare" : card.text): \(corpus.train.count) training and \(corpus.validation.count) validation characters, vocabulary \(corpus.tokenizer.count)")
                print("run folder: \(folder)")
            }

            // 2. Training, with evaluations, checkpoints and logs.
            let board = try? TensorBoardWriter(folder: folder)
            var lastCheckpoint = Date()
            func saveCheckpoint() throws { try SafeTensors.write(trainer.checkpoint(), to: checkpointPath); lastCheckpoint = Date() }
            func writeMetrics() throws {
                let lines = trainer.history.map { e in
                    OrderedJSON([("iter", .number(Double(e.iteration))), ("train_loss", .number(e.trainLoss)), ("val_loss", .number(e.validationLoss)),
                                 ("val_bits_per_char", .number(e.validationLoss / Foundation.log(2))), ("learning_rate", .number(e.learningRate)),
                                 ("seconds", .number(e.seconds))]).text + "\n"
                }
                try writeAtomically(lines.joined(), to: file(folder, "metrics.jsonl"))
            }
            func evaluate() throws {
                let e = trainer.evaluate()
                try? board?.add(scalars: ["train/loss": e.trainLoss, "validation/loss": e.validationLoss, "learning_rate": e.learningRate], step: e.iteration)
                if show {
                    clearLine()
                    print("iter \(pad(String(e.iteration), 5)): train \(fmt(e.trainLoss, digits: 4)), validation \(fmt(e.validationLoss, digits: 4)) nats/char (\(fmt(e.validationLoss / Foundation.log(2), digits: 4)) bits), \(fmt(e.seconds, digits: 3)) s")
                }
                try writeMetrics()
                try saveCheckpoint()
            }
            signal(SIGINT) { _ in interruptRequested = 1 }
            let tty = isatty(STDOUT_FILENO) != 0 && show
            var lastDraw = Date.distantPast, recent: [Double] = []
            do {
                if trainer.history.isEmpty { try evaluate() }
                while trainer.iteration < s.iterations {
                    if interruptRequested != 0 {
                        try saveCheckpoint()
                        if show { clearLine() }
                        printError("interrupted at iteration \(trainer.iteration): the checkpoint is in \(checkpointPath); continue with: nabla lm train --resume \(folder)")
                        throw ExitCode(130)
                    }
                    let loss = trainer.step()
                    guard loss.isFinite else {
                        throw RunFailure(message: "the training loss became \(loss) at iteration \(trainer.iteration); lower --lr")
                    }
                    recent.append(loss)
                    if recent.count > 20 { recent.removeFirst() }
                    if tty && Date().timeIntervalSince(lastDraw) > 0.25 {
                        let perSecond = Double(trainer.iteration) / Swift.max(trainer.trainingSeconds, 1e-9)
                        let eta = Double(s.iterations - trainer.iteration) / Swift.max(perSecond, 1e-9)
                        print("\r\u{1B}[2Kiter \(trainer.iteration)/\(s.iterations) \(bar(Double(trainer.iteration) / Double(s.iterations), width: 24)) loss \(fmt(recent.reduce(0, +) / Double(recent.count), digits: 4))  \(fmt(perSecond * Double(s.batch * s.context), digits: 4)) tokens/s  ETA \(Int(eta)) s", terminator: "")
                        fflush(stdout)
                        lastDraw = Date()
                    }
                    if trainer.iteration % s.evaluationInterval == 0 || trainer.iteration == s.iterations {
                        try evaluate()
                    } else if Date().timeIntervalSince(lastCheckpoint) >= checkpointEvery {
                        try saveCheckpoint()
                    }
                }
                if trainer.history.last?.iteration != trainer.iteration { try evaluate() }
            } catch let e as ExitCode { throw e } catch let e as RunFailure { throw e } catch {
                throw RunFailure(message: "cannot write the run folder \(folder): \(error)")
            }

            // 3. Results: the model, the loss curve, a sample, the summary.
            let last = trainer.history.last!
            var sample = ""
            do {
                try trainer.model.module.save(to: file(folder, "model.safetensors"))
                let iterations = trainer.history.map { Double($0.iteration) }
                try LinePlot(title: "\(s.model) on \((card.text as NSString).lastPathComponent)", xLabel: "iteration", yLabel: "loss (nats/char)",
                             series: [LinePlot.Series(name: "training", points: zip(iterations, trainer.history.map(\.trainLoss)).map { ($0, $1) }),
                                      LinePlot.Series(name: "validation", points: zip(iterations, trainer.history.map(\.validationLoss)).map { ($0, $1) })])
                    .write(to: file(folder, "loss.svg"))
                let ids = try trainer.model.generate(prompt: try corpus.tokenizer.encode("\n"), count: 200, options: SamplingOptions(temperature: 1, topK: nil, seed: 0))
                sample = corpus.tokenizer.decode(ids)
                try writeAtomically(sample, to: file(folder, "sample.txt"))
            } catch { throw RunFailure(message: "cannot write the results to \(folder): \(error)") }
            let summary = OrderedJSON([("model", .string(s.model.description)), ("parameters", .number(Double(trainer.model.module.parameterCount()))),
                                       ("iters", .number(Double(trainer.iteration))), ("train_loss", .number(last.trainLoss)), ("val_loss", .number(last.validationLoss)),
                                       ("val_bits_per_char", .number(last.validationLoss / Foundation.log(2))), ("seconds", .number(trainer.trainingSeconds)),
                                       ("wall_seconds", .number(Date().timeIntervalSince(started))),
                                       ("tokens_per_s", .number(Double(trainer.iteration * s.batch * s.context) / Swift.max(trainer.trainingSeconds, 1e-9))),
                                       ("folder", .string(folder)), ("sample", .string(sample))]).text
            try? writeAtomically(summary, to: file(folder, "summary.json"))
            if json { print(summary); return }
            if show {
                print("trained \(trainer.iteration) iterations in \(fmt(trainer.trainingSeconds, digits: 3)) s: validation loss \(fmt(last.validationLoss, digits: 4)) nats/char (\(fmt(last.validationLoss / Foundation.log(2), digits: 4)) bits)")
                print("a sample (temperature 1):\n\(sample)\n")
                print("wrote \(folder)/: model.safetensors, checkpoint.safetensors, metrics.jsonl, loss.svg, sample.txt, summary.json; sample more with: nabla lm sample \(folder)")
            }
        }

        func defaultFolder(_ s: LanguageModelSettings) -> String {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd-HHmmss"
            let base = "runs/lm-\(s.model.description.replacingOccurrences(of: ":", with: "-").replacingOccurrences(of: ",", with: "-"))-\(f.string(from: Date()))"
            var name = base, k = 2
            while FileManager.default.fileExists(atPath: name) { name = "\(base)-\(k)"; k += 1 }
            return name
        }
    }

    struct Sample: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Continue a prompt with a trained language model, streaming the text as it is drawn.")
        @Argument(help: "The run folder of `nabla lm train`.") var folder: String
        @Option(help: "The text to continue (its characters must be in the run's vocabulary).") var prompt: String = "\n"
        @Option(help: "Characters to generate.") var tokens: Int = 500
        @Option(help: "Softmax temperature (0: greedy, the most likely character each time).") var temperature: Double = 0.8
        @Option(help: "Draw from the k most likely characters only (0: all).") var topK: Int = 40
        @Option(help: "Seed of the draws.") var seed: UInt64 = 0
        @Flag(help: "GPT: run the whole window for every character instead of using the key/value cache (slower; for comparison).") var noCache = false
        @Flag(help: "Print one JSON object (the text, tokens per second) instead of streaming.") var json = false

        func validate() throws {
            guard tokens >= 1, tokens <= 10_000_000 else { throw ValidationError("--tokens must be between 1 and 10000000, got \(tokens)") }
            guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be ≥ 0 (0 means greedy), got \(temperature)") }
            guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0 (0: all characters), got \(topK)") }
            guard !prompt.isEmpty else { throw ValidationError("--prompt is empty; give at least one character (the default is a newline)") }
        }

        func run() throws {
            let card = try LanguageModelRunCard.read(folder)
            let model = AnyLanguageModel(card.settings, vocabularySize: card.tokenizer.count)
            let weights = file(folder, "model.safetensors"), checkpoint = file(folder, "checkpoint.safetensors")
            do {
                if FileManager.default.fileExists(atPath: weights) {
                    try model.module.load(from: weights)
                } else if FileManager.default.fileExists(atPath: checkpoint) {
                    let a = try SafeTensors.read(checkpoint)
                    try model.module.load(SafeTensors.Archive(tensors: a.tensors.filter { $0.key.hasPrefix("model.") }
                        .reduce(into: [:]) { $0[String($1.key.dropFirst(6))] = $1.value }), path: checkpoint)
                } else {
                    throw RunFailure(message: "\(folder) has no model.safetensors or checkpoint yet")
                }
            } catch let e as RunFailure { throw e } catch { throw RunFailure(message: "cannot load the model of \(folder): \(error)") }
            let ids: [Int]
            do { ids = try card.tokenizer.encode(prompt) } catch let e as TextError { throw RunFailure(message: "--prompt: \(e.message)") }
            let options = SamplingOptions(temperature: temperature, topK: topK == 0 ? nil : topK, seed: seed, useCache: !noCache)
            if !json { print(prompt, terminator: ""); fflush(stdout) }
            let start = Date()
            let out: [Int]
            do {
                out = try model.generate(prompt: ids, count: tokens, options: options) { t in
                    if !json { print(card.tokenizer.characters[t], terminator: ""); fflush(stdout) }
                }
            } catch let e as TextError { throw RunFailure(message: e.message) }
            let seconds = Date().timeIntervalSince(start)
            if json {
                print(OrderedJSON([("prompt", .string(prompt)), ("text", .string(card.tokenizer.decode(out))), ("tokens", .number(Double(out.count))),
                                   ("seconds", .number(seconds)), ("tokens_per_s", .number(Double(out.count) / Swift.max(seconds, 1e-9))),
                                   ("cache", .bool(!noCache && card.settings.model.isGPT))]).text)
            } else {
                print("")
                printError("\(out.count) characters in \(fmt(seconds, digits: 3)) s (\(fmt(Double(out.count) / Swift.max(seconds, 1e-9), digits: 4)) per second)")
            }
        }
    }
}

func clearLine() { if isatty(STDOUT_FILENO) != 0 { print("\r\u{1B}[2K", terminator: "") } }

func bar(_ fraction: Double, width: Int) -> String {
    let filled = Swift.max(0, Swift.min(width, Int(fraction * Double(width))))
    return String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
}

extension Optional {
    func orThrow(_ error: Error) throws -> Wrapped {
        guard let self else { throw error }
        return self
    }
}
