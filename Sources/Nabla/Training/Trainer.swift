import Foundation

/// How a ``Trainer`` runs: epochs, batches, early stopping, checkpoints.
public struct TrainingOptions: Sendable {
    /// The most epochs to run (a resumed run counts the epochs already done).
    public var epochs: Int
    /// Samples per step: nil for the whole training set (batch gradient descent), 1 for
    /// stochastic gradient descent, anything between for mini-batches.
    public var batchSize: Int?
    public var shuffle: Bool
    /// Seeds the batch order (with the epoch number).
    public var seed: UInt64
    /// Stop when the validation loss (the training loss without validation data) has not
    /// improved by `minimumImprovement` for this many epochs.
    public var patience: Int?
    public var minimumImprovement: Double
    /// After early stopping, put back the weights of the best epoch.
    public var restoreBestWeights: Bool
    /// Stop when the training loss changes by less than this between epochs.
    public var lossChangeTolerance: Double?
    /// Where to write checkpoints (atomically), if anywhere.
    public var checkpointPath: String?
    /// The least time between two checkpoints written to disk, in seconds (0: after every
    /// epoch). Each epoch's state is kept in memory; the last one is always written when
    /// training ends, stops or is interrupted, so at most this much work is lost to a crash,
    /// and short epochs do not spend their time waiting for the disk.
    public var checkpointInterval = 10.0

    public init(epochs: Int = 100, batchSize: Int? = 32, shuffle: Bool = true, seed: UInt64 = 0, patience: Int? = nil,
                minimumImprovement: Double = 0, restoreBestWeights: Bool = true, lossChangeTolerance: Double? = nil,
                checkpointPath: String? = nil) {
        require(epochs >= 0 && (batchSize ?? 1) > 0 && (patience ?? 1) > 0,
                     "TrainingOptions: epochs \(epochs), batch size \(batchSize.map(String.init) ?? "full") and patience must be positive")
        (self.epochs, self.batchSize, self.shuffle, self.seed, self.patience) = (epochs, batchSize, shuffle, seed, patience)
        (self.minimumImprovement, self.restoreBestWeights, self.lossChangeTolerance, self.checkpointPath) =
            (minimumImprovement, restoreBestWeights, lossChangeTolerance, checkpointPath)
    }
}

/// What happened in one epoch.
public struct EpochRecord: Sendable, Codable, Equatable {
    public var epoch: Int
    /// Mean training loss over the epoch's batches (weighted by batch size).
    public var trainLoss: Double
    /// Validation metrics (at least `loss` when there is validation data).
    public var validation: [String: Double]
    public var learningRate: Double
    public var seconds: Double

    public init(epoch: Int, trainLoss: Double, validation: [String: Double] = [:], learningRate: Double, seconds: Double = 0) {
        (self.epoch, self.trainLoss, self.validation, self.learningRate, self.seconds) = (epoch, trainLoss, validation, learningRate, seconds)
    }
}

/// Why training stopped.
public enum StopReason: String, Sendable, Codable {
    case maxEpochs = "reached the maximum number of epochs"
    case earlyStopping = "early stopping: no improvement for `patience` epochs"
    case lossConverged = "the training loss changed by less than the tolerance"
    case stoppedByCallback = "a callback asked to stop"
    case interrupted = "interrupted"
}

public struct TrainingHistory: Sendable, Codable {
    public var records: [EpochRecord] = []
    public var stopReason: StopReason?
    public var bestEpoch: Int?
    public var bestLoss: Double?

    public init(records: [EpochRecord] = [], stopReason: StopReason? = nil) {
        self.records = records
        self.stopReason = stopReason
    }

    /// A sentence for the user when training ran out of epochs while the training loss was still
    /// falling fast (by more than 1 % an epoch over the last five, or 5 % over the last one):
    /// the model has not converged, and more epochs or a larger learning rate would help.
    public var stillImprovingNote: String? {
        guard stopReason == .maxEpochs, records.count >= 2 else { return nil }
        let losses = records.map(\.trainLoss)
        let span = Swift.min(5, losses.count - 1)
        let (then, now) = (losses[losses.count - 1 - span], losses[losses.count - 1])
        guard then.isFinite, now.isFinite, then > 0, now < then else { return nil }
        let perEpoch = 1 - Foundation.pow(now / then, 1 / Double(span))
        let last = 1 - now / losses[losses.count - 2]
        guard perEpoch > 0.01 || last > 0.05 else { return nil }
        let percent = (perEpoch * 1000).rounded() / 10
        return "the training loss was still falling (\(percent) % an epoch over the last \(span) epoch\(span == 1 ? "" : "s")) when the epochs ran out: more epochs or a larger learning rate may help"
    }
}

/// Training cannot go on: the loss became NaN or infinite, or a checkpoint does not fit.
public struct TrainingError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Where training is, for progress displays.
public struct TrainingProgress: Sendable {
    public var epoch: Int, epochs: Int
    public var batch: Int, batches: Int
    public var samplesSeen: Int, samplesPerEpoch: Int
    public var loss: Double
    public var seconds: Double
}

/// The training loop: batch, stochastic and mini-batch gradient descent with any optimizer,
/// validation after each epoch, early stopping, checkpoints and exact resumption.
///
/// The loss is given the row indices of a batch, so the data stay with the caller:
///
/// ```swift
/// let trainer = Trainer(model: model, optimizer: Optimizer(rule: Adam(), learningRate: 1e-3),
///                       trainingCount: x.shape[0], options: TrainingOptions(epochs: 20, batchSize: 64)) { m, rows in
///     crossEntropy(logits: m(x.indexSelect(axis: 0, indices: rows)), targets: IndexTensor(rows.map { y[$0] }))
/// }
/// trainer.validate = { m in ["loss": ..., "accuracy": ...] }
/// let history = try trainer.fit()
/// ```
public final class Trainer<Scalar: TensorScalar> {
    public let model: Module<Scalar>
    public var optimizer: Optimizer<Scalar>
    public var options: TrainingOptions
    public let trainingCount: Int
    /// The loss of a batch given its row indices.
    public let loss: (Module<Scalar>, [Int]) -> Tensor<Scalar>
    /// Validation metrics, computed in evaluation mode after each epoch; `loss` drives early stopping.
    public var validate: ((Module<Scalar>) -> [String: Double])?
    /// Called after each epoch (and its checkpoint); return false to stop.
    public var onEpoch: ((EpochRecord) -> Bool)?
    /// Called after each batch.
    public var onBatch: ((TrainingProgress) -> Void)?
    /// Polled before each batch; true stops the run at once (the last checkpoint stays valid).
    public var shouldInterrupt: () -> Bool = { false }
    /// Checks the gradient norms after every backward pass and hands any warnings (vanishing,
    /// exploding, non-finite) to `onGradientWarnings` with the epoch and batch (1-based).
    public var gradientMonitor: GradientMonitor?
    public var onGradientWarnings: ((_ epoch: Int, _ batch: Int, [GradientMonitor.Warning]) -> Void)?
    /// Watches the loss and the gradient norm of every step for plateaus, reported to `onPlateau`.
    public var plateauDetector: PlateauDetector?
    public var onPlateau: ((_ epoch: Int, _ batch: Int, PlateauDetector.Plateau) -> Void)?
    /// Replaces how a step's loss and gradients are computed: given the model and the row indices
    /// of the whole batch, it returns the batch's loss and leaves its gradient in each trainable
    /// parameter. Data-parallel training (`DataParallel` in NablaDistributed) sets it to compute
    /// this process's share of the batch and average the gradients over all processes.
    public var stepGradient: ((Module<Scalar>, [Int]) -> Double)?

    public private(set) var history = TrainingHistory()
    /// The next epoch to run (0-based).
    public private(set) var epoch = 0
    var best: [String: Tensor<Scalar>]?
    var badEpochs = 0
    /// The state after the last finished epoch, when it is not on disk yet.
    var pendingCheckpoint: SafeTensors.Archive?
    var lastCheckpointWrite = Date.distantPast

    public init(model: Module<Scalar>, optimizer: Optimizer<Scalar>, trainingCount: Int, options: TrainingOptions = TrainingOptions(),
                loss: @escaping (Module<Scalar>, [Int]) -> Tensor<Scalar>) {
        require(trainingCount > 0, "Trainer: no training samples")
        self.model = model
        self.optimizer = optimizer
        self.trainingCount = trainingCount
        self.options = options
        self.loss = loss
    }

    var sampler: BatchSampler {
        BatchSampler(count: trainingCount, batchSize: options.batchSize ?? trainingCount, shuffle: options.shuffle && options.batchSize != nil, seed: options.seed)
    }

    /// One step on the rows of a batch: the loss and its gradient, the gradient checks and the
    /// plateau watch, then the optimizer's update, unless the loss is not finite (returned as it
    /// is, with no update).
    func step(_ rows: [Int], batch: Int) -> Double {
        let value = stepGradient?(model, rows) ?? Double(model.valueWithGradient { loss($0, rows) }.scalar)
        if let monitor = gradientMonitor {
            let warnings = monitor.check(model)
            if !warnings.isEmpty { onGradientWarnings?(epoch + 1, batch, warnings) }
        }
        if plateauDetector != nil {
            let norm = model.gradientNorms.reduce(0.0) { $0 + $1.norm * $1.norm }.squareRoot()
            if let plateau = plateauDetector!.observe(loss: value, gradientNorm: norm) { onPlateau?(epoch + 1, batch, plateau) }
        }
        if value.isFinite { optimizer.step(model) }
        return value
    }

    /// Runs epochs until a stopping rule holds; returns the history (also in ``history``).
    @discardableResult
    public func fit() throws -> TrainingHistory {
        history.stopReason = nil
        let sampler = self.sampler
        while epoch < options.epochs {
            let start = Date()
            model.train()
            var total = 0.0, seen = 0
            let batches = sampler.batches(epoch: epoch)
            for (b, rows) in batches.enumerated() {
                if shouldInterrupt() {
                    history.stopReason = .interrupted
                    try writePendingCheckpoint()   // the last finished epoch, resumable
                    return history
                }
                let value = step(rows, batch: b + 1)
                guard value.isFinite else {
                    throw TrainingError(message: "the training loss became \(value) at epoch \(epoch + 1), batch \(b + 1); lower the learning rate or clip gradients")
                }
                total += Double(value) * Double(rows.count)
                seen += rows.count
                onBatch?(TrainingProgress(epoch: epoch, epochs: options.epochs, batch: b, batches: batches.count, samplesSeen: seen,
                                          samplesPerEpoch: trainingCount, loss: total / Double(seen), seconds: Date().timeIntervalSince(start)))
            }
            model.eval()
            let validation = validate.map { v in withoutGradients { v(model) } } ?? [:]
            model.train()
            let record = EpochRecord(epoch: epoch + 1, trainLoss: total / Double(seen), validation: validation,
                                     learningRate: optimizer.currentLearningRate, seconds: Date().timeIntervalSince(start))
            history.records.append(record)
            epoch += 1
            let stop = updateStoppingState(record)
            if options.checkpointPath != nil {
                pendingCheckpoint = try checkpoint()
                if stop != nil || epoch >= options.epochs || Date().timeIntervalSince(lastCheckpointWrite) >= options.checkpointInterval {
                    try writePendingCheckpoint()
                }
            }
            if let stop {
                history.stopReason = stop
                if stop == .earlyStopping && options.restoreBestWeights, let best { try model.load(archive(best), path: "best weights") }
                return history
            }
            if let onEpoch, !onEpoch(record) {
                history.stopReason = .stoppedByCallback
                try writePendingCheckpoint()
                return history
            }
        }
        history.stopReason = .maxEpochs   // (the last epoch's checkpoint was written in the loop)
        return history
    }

    func archive(_ state: [String: Tensor<Scalar>]) -> SafeTensors.Archive {
        let integer = Set(model.namedBuffers.filter { $0.buffer.isInteger }.map(\.name))
        return SafeTensors.Archive(tensors: Dictionary(uniqueKeysWithValues: state.map { ($0.key, StoredTensor($0.value, asInteger: integer.contains($0.key))) }))
    }

    /// Early stopping and loss-change bookkeeping after an epoch; the reason to stop, if any.
    func updateStoppingState(_ record: EpochRecord) -> StopReason? {
        let monitored = record.validation["loss"] ?? record.trainLoss
        if history.bestLoss.map({ monitored < $0 - options.minimumImprovement }) ?? true {
            history.bestLoss = monitored
            history.bestEpoch = record.epoch
            badEpochs = 0
            if options.patience != nil && options.restoreBestWeights { best = model.stateDictionary() }
        } else {
            badEpochs += 1
        }
        if let p = options.patience, badEpochs >= p { return .earlyStopping }
        if let tol = options.lossChangeTolerance, history.records.count >= 2,
           Swift.abs(history.records[history.records.count - 2].trainLoss - record.trainLoss) < tol { return .lossConverged }
        return nil
    }

    // MARK: Checkpoints

    /// Everything needed to continue exactly: weights and buffers, optimizer state, the best
    /// weights so far, the history, the epoch and every dropout generator's state.
    public func checkpoint(metadata: [String: String] = [:]) throws -> SafeTensors.Archive {
        var a = SafeTensors.Archive(metadata: metadata)
        for (k, v) in model.archive().tensors { a.tensors["model." + k] = v }
        let opt = optimizer.archive(for: model)
        for (k, v) in opt.tensors { a.tensors["optimizer." + k] = v }
        a.metadata.merge(opt.metadata) { $1 }
        if let best { for (k, v) in archive(best).tensors { a.tensors["best." + k] = v } }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        a.metadata["trainer.history"] = String(decoding: try encoder.encode(history), as: UTF8.self)
        a.metadata["trainer.epoch"] = String(epoch)
        a.metadata["trainer.bad_epochs"] = String(badEpochs)
        for (name, m) in model.namedModules { if let d = m as? Dropout<Scalar> { a.metadata["trainer.rng.\(name)"] = d.generator.snapshot } }
        return a
    }

    /// Writes the state of the last finished epoch, if it is not on disk yet.
    public func writePendingCheckpoint() throws {
        guard let archive = pendingCheckpoint, let path = options.checkpointPath else { return }
        try SafeTensors.write(archive, to: path)
        pendingCheckpoint = nil
        lastCheckpointWrite = Date()
    }

    public func saveCheckpoint(to path: String, metadata: [String: String] = [:]) throws {
        try SafeTensors.write(checkpoint(metadata: metadata), to: path)
    }

    /// Continues from a checkpoint written by ``saveCheckpoint(to:metadata:)`` for the same model:
    /// the next ``fit()`` picks up at the following epoch exactly as if never interrupted.
    public func resume(from path: String) throws {
        try resume(from: SafeTensors.read(path), path: path)
    }

    /// Continues from a checkpoint already read (or received from another process); `path` names
    /// it in messages.
    public func resume(from a: SafeTensors.Archive, path: String) throws {
        func part(_ prefix: String) -> SafeTensors.Archive {
            SafeTensors.Archive(tensors: a.tensors.filter { $0.key.hasPrefix(prefix) }.reduce(into: [:]) { $0[String($1.key.dropFirst(prefix.count))] = $1.value },
                                metadata: a.metadata)
        }
        guard let epochText = a.metadata["trainer.epoch"], let e = Int(epochText), let historyText = a.metadata["trainer.history"] else {
            throw TrainingError(message: "\(path) is not a training checkpoint (no trainer state in its metadata)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let h: TrainingHistory
        do { h = try decoder.decode(TrainingHistory.self, from: Data(historyText.utf8)) } catch {
            throw TrainingError(message: "\(path): the training history in the checkpoint cannot be read (\(error))")
        }
        guard e >= 0, e == h.records.count, (Int(a.metadata["trainer.bad_epochs"] ?? "0") ?? -1) >= 0 else {
            throw TrainingError(message: "\(path): the checkpoint's epoch \(e) does not match its history of \(counted(h.records.count, "epoch"))")
        }
        for (name, t) in a.tensors where name.hasPrefix("model.") && (t.dtype == .F32 || t.dtype == .F64 || t.dtype == .F16) {
            if let bad = t.doubles.first(where: { !$0.isFinite }) {
                throw TrainingError(message: "\(path): the weights '\(name.dropFirst(6))' hold \(bad); a checkpoint of a diverged run cannot be resumed (start again with a lower --lr)")
            }
        }
        var opt = optimizer
        try opt.restore(part("optimizer."), for: model, path: path)   // checks before anything changes
        try model.load(part("model."), path: path)
        let bestPart = part("best.")
        if !bestPart.tensors.isEmpty {
            best = bestPart.tensors.mapValues { $0.tensor() }
        } else { best = nil }
        for (name, m) in model.namedModules {
            if let d = m as? Dropout<Scalar>, let s = a.metadata["trainer.rng.\(name)"], let g = RandomGenerator(snapshot: s) { d.generator = g }
        }
        optimizer = opt
        history = h
        epoch = e
        badEpochs = Int(a.metadata["trainer.bad_epochs"] ?? "0") ?? 0
    }
}
