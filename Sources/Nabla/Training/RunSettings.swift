import Foundation

// The settings of a `nabla train` run folder: config.json (how to train) and model.json (how to
// apply the model), with the checks that make an edited or corrupt file an error message rather
// than a crash, and the named optimizers and schedules they refer to.

/// A JSON file of a run folder whose values are checked when it is read back.
public protocol RunSettingsFile: Codable {
    /// The file's name in the run folder, for messages.
    static var fileName: String { get }
    /// Throws ``RunSettingsError`` for a value that cannot be used.
    func check() throws
}

extension RunSettingsFile {
    /// Reads and checks the file's contents: a malformed or edited file is an error that names
    /// the file and the setting, never a crash later.
    public static func decode(_ data: Data) throws -> Self {
        let value: Self
        do { value = try JSONDecoder().decode(Self.self, from: data) } catch {
            throw RunSettingsError("\(fileName) cannot be read: \(describeDecodingError(error))")
        }
        do { try value.check() } catch {
            throw RunSettingsError("\(fileName) holds a setting that cannot be used: \(error)")
        }
        return value
    }
}

/// A setting that cannot be used, in a flag or in a run folder's file.
public struct RunSettingsError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Everything that defines a training run; saved as `config.json` in the run folder so that
/// `--resume` rebuilds the same run.
public struct TrainConfiguration: RunSettingsFile, Sendable, Equatable {
    public var data: String
    public var target: String?
    public var categorical: [String]
    public var task: Task?
    public var model: String
    public var activation: String
    public var dropout: Double
    public var batch: String
    public var optimizer: String
    public var learningRate: Double?
    public var momentum: Double
    public var weightDecay: Double
    public var schedule: String
    public var clip: Double?
    public var epochs: Int
    public var patience: Int?
    public var minDelta: Double
    public var tolerance: Double?
    public var l1: Double
    public var l2: Double
    public var seed: UInt64
    public var test: Double
    public var validation: Double
    public var scale: String
    /// linear, logistic and svm: solve the convex problem exactly instead of training by epochs
    /// (nil in runs saved before this existed: false).
    public var solve: Bool?
    /// Project the scaled features on their first `pca` principal components (fitted on the
    /// training rows) before the model.
    public var pca: Int?
    /// Fine-tuning: the run whose model.safetensors gives the starting weights (those that match).
    public var initFrom: String?
    /// Fine-tuning: frozen layers (Linear layer numbers from 0, or parameter/module names).
    public var freeze: [String]?
    /// Fine-tuning: the learning rate of the last layer (the head), if not the others'.
    public var headLearningRate: Double?
    /// The folder of a named image set's files (`--data mnist --data-dir DIR`; nil: the default).
    public var dataDir: String?
    /// Image data: seeded augmentation of the training images (`shift:N`, `flip`, `shift:N,flip`).
    public var augment: String?

    public init(data: String, target: String? = nil, categorical: [String], task: Task? = nil, model: String, activation: String, dropout: Double, batch: String, optimizer: String, learningRate: Double? = nil, momentum: Double, weightDecay: Double, schedule: String, clip: Double? = nil, epochs: Int, patience: Int? = nil, minDelta: Double, tolerance: Double? = nil, l1: Double, l2: Double, seed: UInt64, test: Double, validation: Double, scale: String, solve: Bool? = nil) {
        self.data = data
        self.target = target
        self.categorical = categorical
        self.task = task
        self.model = model
        self.activation = activation
        self.dropout = dropout
        self.batch = batch
        self.optimizer = optimizer
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.schedule = schedule
        self.clip = clip
        self.epochs = epochs
        self.patience = patience
        self.minDelta = minDelta
        self.tolerance = tolerance
        self.l1 = l1
        self.l2 = l2
        self.seed = seed
        self.test = test
        self.validation = validation
        self.scale = scale
        self.solve = solve
    }
}

extension TrainConfiguration {
    public static let fileName = "config.json"


    /// Every setting of a run, from flags or from a saved config.json, checked before anything
    /// is built: a value out of range ends here with the flag named, never in a crash later.
    public func check() throws {
        if let a = augment { _ = try ImageAugmentation(parsing: a) }
        let c = self
        guard c.test > 0, c.validation >= 0, c.test + c.validation < 1 else {
            throw RunSettingsError("--test and --validation must be fractions with test > 0 and test + validation < 1 (got \(c.test) and \(c.validation))")
        }
        guard let spec = ModelSpec(parsing: c.model, activation: c.activation, dropout: c.dropout) else {
            throw RunSettingsError("--model '\(c.model)' is not one of linear, logistic, svm, mlp, mlp:H1,H2, cnn or cnn:C1,C2/H1[+bn] (positive sizes); --activation must be relu, tanh, sigmoid or gelu, --dropout in [0, 1)")
        }
        if let widest = spec.hidden.max(), widest > 100_000 {
            throw RunSettingsError("--model \(c.model): a hidden layer of \(widest) units is more than this tool trains (at most 100000)")
        }
        if let widest = spec.channels?.max(), widest > 4096 {
            throw RunSettingsError("--model \(c.model): a convolution of \(widest) channels is more than this tool trains (at most 4096)")
        }
        guard c.batch == "full" || (Int(c.batch) ?? 0) > 0 else { throw RunSettingsError("--batch must be full, 1 or a positive batch size, got '\(c.batch)'") }
        guard c.epochs >= 1, c.epochs <= 10_000_000 else { throw RunSettingsError("--epochs must be between 1 and 10000000, got \(c.epochs)") }
        guard (c.patience ?? 1) >= 1 else { throw RunSettingsError("--patience must be at least 1") }
        guard ["standard", "minmax", "none"].contains(c.scale) else { throw RunSettingsError("--scale must be standard, minmax or none") }
        guard (c.learningRate ?? 1) > 0, c.learningRate?.isFinite ?? true else { throw RunSettingsError("--lr must be a positive number") }
        guard (c.clip ?? 1) > 0, (c.clip ?? 1).isFinite else { throw RunSettingsError("--clip must be a positive number") }
        guard (c.pca ?? 1) >= 1, (c.pca ?? 1) <= 100_000 else { throw RunSettingsError("--pca must be between 1 and 100000 components") }
        guard (c.headLearningRate ?? 1) > 0, (c.headLearningRate ?? 1).isFinite else { throw RunSettingsError("--head-lr must be a positive number") }
        if c.solve == true && (c.initFrom != nil || !(c.freeze ?? []).isEmpty || c.headLearningRate != nil) {
            throw RunSettingsError("--init-from, --freeze and --head-lr fine-tune by training; with a linear, logistic or svm model also give --optimizer or --lr")
        }
        for (flag, value) in [("--momentum", c.momentum), ("--weight-decay", c.weightDecay), ("--l1", c.l1), ("--l2", c.l2), ("--min-delta", c.minDelta)] {
            guard value >= 0, value.isFinite else { throw RunSettingsError("\(flag) must be a finite number ≥ 0, got \(value)") }
        }
        guard c.momentum < 1 else { throw RunSettingsError("--momentum must be below 1, got \(c.momentum)") }
        if let tolerance = c.tolerance { guard tolerance > 0, tolerance.isFinite else { throw RunSettingsError("--tolerance must be a positive number") } }
        _ = try updateRule(named: c.optimizer, momentum: c.momentum, weightDecay: c.weightDecay)
        _ = try learningRateSchedule(c.schedule, epochs: 1, batchesPerEpoch: 1, learningRate: 1)
    }

}

/// What `nabla predict` needs to apply a trained model: the model, its inputs and outputs.
public struct ModelCard: RunSettingsFile, Sendable, Equatable {
    public var spec: ModelSpec
    public var task: Task
    public var features: [String]
    public var target: String
    public var classes: [String]
    public var scaler: FeatureScaler
    public var outputs: Int
    /// Regression: the network predicts (y − targetMean) / targetScale (nil in older runs: y).
    public var targetMean: Double?
    public var targetScale: Double?

    public init(spec: ModelSpec, task: Task, features: [String], target: String, classes: [String], scaler: FeatureScaler, outputs: Int, targetMean: Double? = nil, targetScale: Double? = nil) {
        self.spec = spec
        self.task = task
        self.features = features
        self.target = target
        self.classes = classes
        self.scaler = scaler
        self.outputs = outputs
        self.targetMean = targetMean
        self.targetScale = targetScale
    }
}

extension ModelCard {
    public static let fileName = "model.json"

    /// Checks that the card's parts agree (an edited model.json must not crash `predict`).
    public func check() throws {
        func fail(_ m: String) -> RunSettingsError { RunSettingsError(m) }
        guard !features.isEmpty, features.count <= 10_000_000 else { throw fail("'features' must list between 1 and 10000000 names, it has \(features.count)") }
        guard spec.hidden.allSatisfy({ $0 >= 1 && $0 <= 100_000 }), spec.kind == .mlp || spec.kind == .cnn || spec.hidden.isEmpty else {
            throw fail("'spec.hidden' sizes must be between 1 and 100000, got \(spec.hidden)")
        }
        guard (spec.channels ?? []).allSatisfy({ $0 >= 1 && $0 <= 4096 }), spec.kind == .cnn || spec.channels == nil,
              spec.kind != .cnn || !(spec.channels ?? []).isEmpty else {
            throw fail("'spec.channels' must be 1 to 4096 per convolution, for a cnn only, got \(spec.channels ?? [])")
        }
        if let p = spec.problem(inputs: features.count) { throw fail(p) }
        guard ["relu", "tanh", "sigmoid", "gelu"].contains(spec.activation) else { throw fail("'spec.activation' '\(spec.activation)' is unknown") }
        guard spec.dropout >= 0, spec.dropout < 1 else { throw fail("'spec.dropout' \(spec.dropout) is not in [0, 1)") }
        switch task {
        case .classification:
            guard outputs >= 2, outputs <= 1_000_000, classes.count == outputs else {
                throw fail("a classifier needs 'outputs' ≥ 2 and one class name per output; it has outputs \(outputs) and \(classes.count) classes")
            }
        case .regression:
            guard outputs == 1 else { throw fail("a regression model has 1 output, not \(outputs)") }
            if let s = targetScale { guard s > 0, s.isFinite, (targetMean ?? 0).isFinite else { throw fail("'targetScale' must be positive and finite") } }
        }
        guard scaler.shift.count == features.count, scaler.scale.count == features.count,
              scaler.shift.allSatisfy(\.isFinite), scaler.scale.allSatisfy({ $0.isFinite && $0 != 0 }) else {
            throw fail("'scaler' needs one finite shift and one finite non-zero scale per feature (\(features.count)); it has \(scaler.shift.count) and \(scaler.scale.count)")
        }
    }
}


/// A JSON decoding error in words: what was wrong, and where in the file.
public func describeDecodingError(_ error: Error) -> String {
    func path(_ keys: [CodingKey]) -> String { keys.isEmpty ? "the top level" : "'" + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") + "'" }
    switch error as? DecodingError {
    case .typeMismatch(let type, let context)?: return "\(path(context.codingPath)) is not \(type == String.self ? "text" : type == Double.self || type == Int.self ? "a number" : "of the expected kind (\(type))")"
    case .valueNotFound(_, let context)?: return "\(path(context.codingPath)) is missing a value"
    case .keyNotFound(let key, let context)?: return "\(path(context.codingPath + [key])) is missing"
    case .dataCorrupted(let context)?: return "\(path(context.codingPath)): \(context.debugDescription) (the file is not valid JSON, or a value is out of range)"
    default: return "\(error)"
    }
}

/// The default learning rate of `nabla train`'s optimizers.
public func defaultLearningRate(forOptimizer optimizer: String) -> Double {
    switch optimizer {
    case "adam", "adamw", "adamax", "nadam", "radam", "rmsprop": return 1e-3
    case "adadelta": return 1
    default: return 0.01
    }
}

/// An update rule by its `nabla train --optimizer` name.
public func updateRule(named name: String, momentum: Double, weightDecay: Double) throws -> any UpdateRule {
    switch name {
    case "sgd": return SGD(weightDecay: weightDecay)
    case "momentum": return SGD(momentum: momentum, weightDecay: weightDecay)
    case "nesterov": return SGD(momentum: momentum, nesterov: true, weightDecay: weightDecay)
    case "adam": return Adam(weightDecay: weightDecay)
    case "adamw": return Adam(weightDecay: weightDecay == 0 ? 0.01 : weightDecay, decoupledWeightDecay: true)
    case "adamax": return Adamax(weightDecay: weightDecay)
    case "nadam": return NAdam(weightDecay: weightDecay)
    case "radam": return RAdam(weightDecay: weightDecay)
    case "rmsprop": return RMSprop(weightDecay: weightDecay)
    case "adagrad": return Adagrad(weightDecay: weightDecay)
    case "adadelta": return Adadelta(weightDecay: weightDecay)
    default: throw RunSettingsError("--optimizer '\(name)' is not one of sgd, momentum, nesterov, adam, adamw, adamax, nadam, radam, rmsprop, adagrad, adadelta")
    }
}

/// A schedule from its `nabla train --schedule` text (nil for `constant`).
public func learningRateSchedule(_ text: String, epochs: Int, batchesPerEpoch: Int, learningRate: Double) throws -> (any LearningRateSchedule)? {
    let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
    let args = parts.count > 1 ? parts[1].split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) } : []
    guard let kind = parts.first, !kind.isEmpty else {
        throw RunSettingsError("--schedule '\(text)' names no schedule; give constant, cosine, step:E,G, exponential:G, onecycle or warmup:N")
    }
    guard args.allSatisfy({ $0 != nil && $0!.isFinite }) else { throw RunSettingsError("--schedule '\(text)': the arguments must be numbers") }
    let a = args.map { $0! }
    let total = Swift.max(1, epochs * batchesPerEpoch)
    switch kind {
    case "constant": return nil
    case "cosine": return CosineAnnealing(maxSteps: total)
    case "step":
        guard a.count == 2, a[0] >= 1, a[0] <= 1e9, a[0] == a[0].rounded(), a[1] > 0 else {
            throw RunSettingsError("--schedule step:EPOCHS,GAMMA with a whole number of epochs (1 to 10⁹), e.g. step:10,0.5")
        }
        return StepDecay(stepSize: Int(a[0]) * batchesPerEpoch, gamma: a[1])
    case "exponential":
        guard a.count == 1, a[0] > 0 else { throw RunSettingsError("--schedule exponential:GAMMA (per epoch), e.g. exponential:0.95") }
        return ExponentialDecay(gamma: Foundation.pow(a[0], 1 / Double(batchesPerEpoch)))
    case "onecycle": return OneCycle(maxLearningRate: learningRate, totalSteps: total)
    case "warmup":
        guard a.count == 1, a[0] >= 1, a[0] <= 1e12, a[0] == a[0].rounded() else { throw RunSettingsError("--schedule warmup:STEPS with a whole number of steps, e.g. warmup:100") }
        return Warmup(steps: Int(a[0]))
    default: throw RunSettingsError("--schedule '\(text)' is not one of constant, cosine, step:E,G, exponential:G, onecycle, warmup:N")
    }
}
