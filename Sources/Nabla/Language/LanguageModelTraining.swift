import Foundation

/// Which model a language-model run trains, parsed from `gpt:LAYERS,HEADS,EMBED` or
/// `lstm:LAYERS,HIDDEN`.
public enum LanguageModelSpec: Sendable, Codable, Equatable, CustomStringConvertible {
    case gpt(layers: Int, heads: Int, embedding: Int)
    case lstm(layers: Int, hidden: Int)

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let numbers = parts.count == 2 ? parts[1].split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) } : []
        switch parts.first {
        case "gpt":
            if parts.count == 1 { self = .gpt(layers: 4, heads: 4, embedding: 128); return }
            guard numbers.count == 3, let l = numbers[0], let h = numbers[1], let e = numbers[2], l > 0, h > 0, e > 0 else {
                throw TextError("--model \(text): write gpt:LAYERS,HEADS,EMBED with positive numbers, e.g. gpt:4,4,128")
            }
            guard e % h == 0 else { throw TextError("--model \(text): the embedding width \(e) is not divisible by \(h) heads") }
            self = .gpt(layers: l, heads: h, embedding: e)
        case "lstm":
            if parts.count == 1 { self = .lstm(layers: 2, hidden: 256); return }
            guard numbers.count == 2, let l = numbers[0], let h = numbers[1], l > 0, h > 0 else {
                throw TextError("--model \(text): write lstm:LAYERS,HIDDEN with positive numbers, e.g. lstm:2,256")
            }
            self = .lstm(layers: l, hidden: h)
        default:
            throw TextError("--model \(text): the models are gpt:LAYERS,HEADS,EMBED and lstm:LAYERS,HIDDEN")
        }
    }

    public var description: String {
        switch self {
        case let .gpt(l, h, e): return "gpt:\(l),\(h),\(e)"
        case let .lstm(l, h): return "lstm:\(l),\(h)"
        }
    }

    public var isGPT: Bool { if case .gpt = self { return true } else { return false } }
}

/// Everything a language-model run is made of, saved with it (`lm.json`) so that `--resume`
/// and `nabla lm sample` rebuild the same model.
public struct LanguageModelSettings: Sendable, Codable, Equatable {
    public var model: LanguageModelSpec
    public var context: Int
    public var batch: Int
    public var iterations: Int
    public var learningRate: Double
    /// The cosine schedule's floor (nil: a constant rate).
    public var minimumLearningRate: Double?
    public var warmup: Int
    /// Decoupled (AdamW) weight decay on the 2-D weights only.
    public var weightDecay: Double
    public var beta2: Double
    public var clip: Double?
    public var dropout: Double
    public var seed: UInt64
    /// Validation every this many iterations, over `evaluationBatches` fixed batches.
    public var evaluationInterval: Int
    public var evaluationBatches: Int

    /// W8's settings (nanoGPT's baby GPT on CPU) or W9's (the character LSTM) for `model`.
    public static func preset(for model: LanguageModelSpec) -> LanguageModelSettings {
        switch model {
        case .gpt:
            return LanguageModelSettings(model: model, context: 64, batch: 12, iterations: 2000, learningRate: 1e-3, minimumLearningRate: 1e-4,
                                         warmup: 100, weightDecay: 0.1, beta2: 0.99, clip: 1, dropout: 0, seed: 1337,
                                         evaluationInterval: 250, evaluationBatches: 20)
        case .lstm:
            return LanguageModelSettings(model: model, context: 64, batch: 32, iterations: 2000, learningRate: 2e-3, minimumLearningRate: nil,
                                         warmup: 0, weightDecay: 0, beta2: 0.999, clip: 1, dropout: 0, seed: 1337,
                                         evaluationInterval: 250, evaluationBatches: 20)
        }
    }

    public func check() throws {
        func bad(_ m: String) -> TextError { TextError(m) }
        guard context >= 1 else { throw bad("--context must be at least 1, got \(context)") }
        guard batch >= 1 else { throw bad("--batch must be at least 1, got \(batch)") }
        guard iterations >= 1 else { throw bad("--iters must be at least 1, got \(iterations)") }
        guard learningRate > 0, learningRate.isFinite else { throw bad("--lr must be a positive number, got \(learningRate)") }
        guard (minimumLearningRate ?? 0) >= 0, (minimumLearningRate ?? 0) <= learningRate else { throw bad("--min-lr must be between 0 and --lr") }
        guard warmup >= 0, warmup < iterations || minimumLearningRate == nil else { throw bad("--warmup must be at least 0 and below --iters") }
        guard weightDecay >= 0, beta2 > 0, beta2 < 1 else { throw bad("--weight-decay must be ≥ 0 and β₂ in (0, 1)") }
        guard (clip ?? 1) > 0 else { throw bad("--clip must be positive") }
        guard dropout >= 0, dropout < 1 else { throw bad("--dropout must be in [0, 1), got \(dropout)") }
        guard evaluationInterval >= 1, evaluationBatches >= 1 else { throw bad("--eval-interval and --eval-batches must be at least 1") }
        if case let .gpt(_, h, e) = model, e % h != 0 { throw bad("--model \(model): the embedding width is not divisible by the heads") }
    }
}

/// A trained or training language model with its tokenizer.
public enum AnyLanguageModel {
    case gpt(GPT<Float>)
    case lstm(LSTMLanguageModel<Float>)

    /// The model of `settings` for `vocabulary` characters, weights from the settings' seed.
    public init(_ settings: LanguageModelSettings, vocabularySize: Int) {
        var g = RandomGenerator(seed: settings.seed)
        switch settings.model {
        case let .gpt(l, h, e):
            self = .gpt(GPT(GPTConfiguration(vocabularySize: vocabularySize, contextLength: settings.context, layers: l, heads: h, embedding: e,
                                             dropout: settings.dropout), generator: &g))
        case let .lstm(l, h):
            self = .lstm(LSTMLanguageModel(LSTMLanguageModelConfiguration(vocabularySize: vocabularySize, embedding: 128, hidden: h, layers: l), generator: &g))
        }
    }

    public var module: Module<Float> {
        switch self { case .gpt(let m): return m; case .lstm(let m): return m }
    }

    public func loss(_ x: IndexTensor, _ y: IndexTensor) -> Tensor<Float> {
        switch self { case .gpt(let m): return m.loss(x, targets: y); case .lstm(let m): return m.loss(x, targets: y) }
    }
}

/// One evaluation of a language-model run: the mean loss (nats per character) over fixed batches.
public struct LanguageModelEvaluation: Sendable, Codable, Equatable {
    public var iteration: Int
    public var trainLoss: Double
    public var validationLoss: Double
    /// Training time so far (evaluations excluded).
    public var seconds: Double
    public var learningRate: Double
}

/// The training loop of a language model: random windows from the training text, AdamW (decay on
/// 2-D weights only) or Adam, warmup and cosine decay, gradient clipping, evaluations on fixed
/// batches, checkpoints from which a run continues exactly.
public final class LanguageModelTrainer {
    public let settings: LanguageModelSettings
    public let corpus: TextCorpus
    public let model: AnyLanguageModel
    public var optimizer: Optimizer<Float>
    public private(set) var iteration = 0
    public private(set) var history: [LanguageModelEvaluation] = []
    /// Seconds of training so far (evaluations excluded), carried across resumptions.
    public private(set) var trainingSeconds = 0.0
    var batches: RandomGenerator

    public init(settings: LanguageModelSettings, corpus: TextCorpus) throws {
        try settings.check()
        try corpus.check(context: settings.context)
        self.settings = settings
        self.corpus = corpus
        model = AnyLanguageModel(settings, vocabularySize: corpus.tokenizer.count)
        optimizer = LanguageModelTrainer.optimizer(for: settings, model: model.module)
        batches = RandomGenerator(seed: settings.seed)
    }

    /// AdamW with decoupled decay on the parameters of two or more axes (embeddings and weight
    /// matrices), none on the rest (LayerNorm scales, biases), as nanoGPT configures it.
    public static func optimizer(for s: LanguageModelSettings, model: Module<Float>) -> Optimizer<Float> {
        let params = model.parameters
        let flat = params.indices.filter { params[$0].value.rank < 2 }
        let schedule: (any LearningRateSchedule)? = s.minimumLearningRate.map { WarmupCosineDecay(warmup: s.warmup, decaySteps: s.iterations, minimum: $0) }
        return Optimizer(rule: Adam(beta1: 0.9, beta2: s.beta2, weightDecay: s.weightDecay, decoupledWeightDecay: true), learningRate: s.learningRate,
                         schedule: schedule, transforms: s.clip.map { [ClipByGlobalNorm(maxNorm: $0)] } ?? [],
                         groups: s.weightDecay > 0 && !flat.isEmpty ? [ParameterGroup(indices: flat, rule: Adam(beta1: 0.9, beta2: s.beta2))] : [])
    }

    /// One iteration on the next random batch; the batch's loss.
    @discardableResult
    public func step() -> Double {
        let start = Date()
        let (x, y) = TextCorpus.batch(from: corpus.train, size: settings.batch, context: settings.context, generator: &batches)
        let module = model.module
        let loss = module.recordedValueWithGradient { model.loss(x, y) }
        optimizer.step(module)
        iteration += 1
        trainingSeconds += Date().timeIntervalSince(start)
        return Double(loss.scalar)
    }

    /// The mean loss over `settings.evaluationBatches` batches of each part, drawn from a
    /// generator seeded 42 each time (the same batches at every evaluation); recorded.
    @discardableResult
    public func evaluate() -> LanguageModelEvaluation {
        let module = model.module
        module.eval()
        defer { module.train() }
        func mean(_ part: [Int]) -> Double {
            var g = RandomGenerator(seed: 42)
            return withoutGradients {
                (0..<settings.evaluationBatches).reduce(0.0) { sum, _ in
                    let (x, y) = TextCorpus.batch(from: part, size: settings.batch, context: settings.context, generator: &g)
                    return sum + Double(model.loss(x, y).scalar)
                } / Double(settings.evaluationBatches)
            }
        }
        let e = LanguageModelEvaluation(iteration: iteration, trainLoss: mean(corpus.train), validationLoss: mean(corpus.validation),
                                        seconds: trainingSeconds, learningRate: optimizer.currentLearningRate)
        history.append(e)
        return e
    }

    // MARK: Checkpoints

    /// The weights, the optimizer's state, the batch generator, the iteration and the history.
    public func checkpoint() throws -> SafeTensors.Archive {
        var a = SafeTensors.Archive()
        for (k, v) in model.module.archive().tensors { a.tensors["model." + k] = v }
        let opt = optimizer.archive(for: model.module)
        for (k, v) in opt.tensors { a.tensors["optimizer." + k] = v }
        a.metadata.merge(opt.metadata) { $1 }
        a.metadata["lm.iteration"] = String(iteration)
        a.metadata["lm.batches"] = batches.snapshot
        a.metadata["lm.seconds"] = String(trainingSeconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        a.metadata["lm.history"] = String(decoding: try encoder.encode(history), as: UTF8.self)
        for (name, m) in model.module.namedModules { if let d = m as? Dropout<Float> { a.metadata["lm.rng.\(name)"] = d.generator.snapshot } }
        return a
    }

    /// Continues from ``checkpoint()``'s archive: the next ``step()`` is the one an uninterrupted
    /// run would take.
    public func resume(from a: SafeTensors.Archive, path: String) throws {
        func part(_ prefix: String) -> SafeTensors.Archive {
            SafeTensors.Archive(tensors: a.tensors.filter { $0.key.hasPrefix(prefix) }.reduce(into: [:]) { $0[String($1.key.dropFirst(prefix.count))] = $1.value },
                                metadata: a.metadata)
        }
        guard let it = a.metadata["lm.iteration"].flatMap(Int.init), it >= 0, let g = a.metadata["lm.batches"].flatMap(RandomGenerator.init(snapshot:)),
              let historyText = a.metadata["lm.history"],
              let h = try? JSONDecoder().decode([LanguageModelEvaluation].self, from: Data(historyText.utf8)) else {
            throw TextError("\(path) is not a language-model checkpoint (no iteration, generator or history in its metadata)")
        }
        var opt = optimizer
        try opt.restore(part("optimizer."), for: model.module, path: path)
        try model.module.load(part("model."), path: path)
        for (name, m) in model.module.namedModules {
            if let d = m as? Dropout<Float>, let s = a.metadata["lm.rng.\(name)"], let r = RandomGenerator(snapshot: s) { d.generator = r }
        }
        optimizer = opt
        iteration = it
        batches = g
        history = h
        trainingSeconds = a.metadata["lm.seconds"].flatMap(Double.init) ?? 0
    }
}
