import ArgumentParser
import Foundation
import Nabla
import NablaConformance
import NablaDistributed



/// A failure that is reported in the run folder's `error.log` and ends the run with status 1.
struct RunFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

nonisolated(unsafe) var interruptRequested: sig_atomic_t = 0

/// `nabla train`: the main job — train a model on a data set and see it learn.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on bundled data or a CSV file, with a progress bar, checkpoints, metrics and plots.",
        discussion: """
        With no arguments: an MLP on the bundled digits data. Everything goes to a run folder (printed at the \
        start): config.json, split.json, checkpoint.safetensors (at most every --checkpoint-every seconds, and at the end), model.safetensors and model.json (for \
        `nabla predict`), metrics.jsonl, TensorBoard event files, loss.svg and metric.svg, summary.json.
        Bundled data: \(Dataset.Bundled.allCases.map(\.rawValue).joined(separator: ", ")).
        Examples:
          nabla train --model logistic --data breast_cancer
          nabla train --data my.csv --target price --model mlp:32,16 --batch full --optimizer sgd --lr 0.05
          nabla train --resume runs/mlp-64-digits-20260101-120000
        """)

    @Option(help: "Bundled data set name, mnist or fashion-mnist (the four IDX files in --data-dir), a CSV file, or an MNIST-style IDX images file (…-images-idx3-ubyte[.gz], labels beside it).") var data: String = "digits"
    @Option(help: "--data mnist|fashion-mnist: the folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, plain or .gz (default: $NABLA_DATA_DIR/NAME, else data/NAME).") var dataDir: String?
    @Option(help: "Target column of a CSV file (default: the last column).") var target: String?
    @Option(help: "CSV columns to one-hot encode, comma-separated (text columns are encoded anyway).") var categorical: String?
    @Option(help: "classification or regression (default: inferred from the target column).") var task: String?
    @Option(help: "linear, logistic, svm, mlp:H1,H2,... (hidden layer sizes), or cnn:C1,C2,.../H1,... (3×3 convolution channels, each followed by 2×2 max pooling / dense sizes; +bn adds batch norm; cnn alone is cnn:32,64/256+bn) for square one-channel images; generative models of images: vae:H1,...,LATENT (+gaussian for a Gaussian pixel likelihood; vae alone is vae:400,20), gan:LATENT, cgan:LATENT (class-conditional).") var model: String = "mlp:64"
    @Option(help: "Activation of the MLP's hidden layers: relu, tanh, sigmoid, gelu.") var activation: String = "relu"
    @Option(help: "Dropout probability after each hidden layer.") var dropout: Double = 0
    @Option(help: "Samples per step: full (batch gradient descent), 1 (stochastic), or N (mini-batch) (default 32; cnn, gan and cgan 64; vae 128).") var batch: String?
    @Option(help: "sgd, momentum, nesterov, adam, adamw, adamax, nadam, radam, rmsprop, adagrad, adadelta (default: adam; linear, logistic and svm are solved exactly unless --optimizer or --lr is given).") var optimizer: String?
    @Option(name: .customLong("lr"), help: "Learning rate (default: 1e-3 for the Adam family and RMSprop, 1 for Adadelta, 0.01 otherwise).") var learningRate: Double?
    @Option(help: "Momentum of momentum and nesterov.") var momentum: Double = 0.9
    @Option(help: "Weight decay (decoupled for adamw).") var weightDecay: Double = 0
    @Option(help: "Learning-rate schedule: constant, cosine, step:EPOCHS,GAMMA, exponential:GAMMA (per epoch), onecycle, warmup:STEPS (default: constant; cosine for a cnn).") var schedule: String?
    @Option(help: "Clip gradients to this global L2 norm.") var clip: Double?
    @Option(help: "Most epochs (default 60; with --resume, the saved run's).") var epochs: Int?
    @Option(help: "Early stopping: epochs without improvement of the validation loss.") var patience: Int?
    @Option(help: "Early stopping: smallest improvement that counts.") var minDelta: Double = 0
    @Option(help: "Stop when the training loss changes by less than this between epochs.") var tolerance: Double?
    @Option(help: "L1 penalty strength on the weights.") var l1: Double = 0
    @Option(help: "L2 penalty strength on the weights (λ/2 ‖W‖²).") var l2: Double = 0
    @Option(help: "Seed of the split, the initial weights, the batch order and dropout.") var seed: UInt64 = 0
    @Option(help: "Fraction of the data held out for the test.") var test: Double = 0.2
    @Option(help: "Fraction of the data held out for validation (early stopping, curves).") var validation: Double = 0.1
    @Option(help: "Feature scaling fitted on the training rows: standard, minmax, none (default: standard; none for images, whose pixels are scaled to [0, 1]).") var scale: String?
    @Option(help: "Images: seeded random changes to the training images each epoch: shift:N (moved up to N pixels each way), flip (mirrored left–right half the time: clothes, not digits), or shift:N,flip.") var augment: String?
    @Option(help: "Run folder (default: runs/MODEL-DATA-TIME).") var out: String?
    @Option(help: "Continue the run in this folder from its last checkpoint.") var resume: String?
    @Option(help: "Least seconds between checkpoints (0: every epoch); the last epoch's is always written at the end and on Ctrl-C.") var checkpointEvery: Double = 10
    @Flag(help: "At the end, print one JSON object summarizing the run.") var json = false
    @Flag(help: "No progress output.") var quiet = false
    @Flag(help: .hidden) var stopWithParent = false
    @Option(help: "Online learning: read rows from this CSV file as they arrive and learn from each chunk of eight batches once (test, then train), in constant memory.") var stream: String?
    @Option(help: "--stream: the class names, comma-separated (the task is classification); without it, regression.") var classes: String?
    @Flag(help: "--stream: at the end of the file, wait for more rows until Ctrl-C.") var follow = false
    @Option(help: "Project the scaled features on their first K principal components (fitted on the training rows) before the model.") var pca: Int?
    @Option(help: "Fine-tuning: start from the weights of this run's model (those whose names and shapes match; the rest are initialized and listed).") var initFrom: String?
    @Option(help: "Fine-tuning: freeze these layers, comma-separated: Linear layer numbers from 0, or parameter/module names (0.weight).") var freeze: String?
    @Option(help: "Fine-tuning: the learning rate of the last layer (the head), if not --lr.") var headLr: Double?
    @Flag(help: "Run the learning-rate range test instead of training: loss against an exponentially growing rate (lr-finder.svg in the run folder) and the suggested rate.") var findLr = false
    @Flag(help: "Warn (on standard error, once per epoch and parameter) about vanishing, exploding or non-finite gradients, and about plateaus (loss and gradient norm flat for 200 steps).") var checkGradients = false
    @Flag(help: "Data-parallel training across the processes of `mpirun -np N` (a build with --traits MPI): each computes its share of every batch, gradients are averaged; rank 0 prints and writes the run folder.") var distributed = false
    @Option(help: "--distributed: micro-batches per step in each process (gradient accumulation: less memory, the same step).") var accumulate: Int = 1
    @Flag(help: "Classifiers (--model logistic or mlp:… with relu, tanh or sigmoid and no dropout): each step's loss and gradients from one compiled program per batch size (traced once, products by the GEMM kernels, the rest fused).") var compile = false
    @Option(help: "Threads for the kernels (default: every core; with --distributed, the cores divided among the processes on each machine).") var threads: Int?

    func configurationFromFlags() throws -> TrainConfiguration {
        // A convolutional network trains at batch 64 with a cosine decay of the rate by default.
        let cnn = ModelSpec(parsing: model)?.kind == .cnn
        var c = TrainConfiguration(data: data, target: target,
                           categorical: categorical.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? [],
                           task: try task.map { t in guard let v = Task(rawValue: t) else { throw ValidationError("--task must be classification or regression") }; return v },
                           model: model, activation: activation, dropout: dropout, batch: batch ?? (cnn ? "64" : "32"), optimizer: optimizer ?? "adam", learningRate: learningRate,
                           momentum: momentum, weightDecay: weightDecay, schedule: schedule ?? (cnn ? "cosine" : "constant"), clip: clip, epochs: epochs ?? 60,
                           patience: patience, minDelta: minDelta, tolerance: tolerance, l1: l1, l2: l2, seed: seed, test: test,
                           validation: validation, scale: scale ?? (ImageSet(rawValue: data) != nil || data.contains("idx3-ubyte") ? "none" : "standard"),
                           solve: (ModelSpec(parsing: model)?.isConvex ?? false) && optimizer == nil && learningRate == nil && l1 == 0 && pca == nil)
        let frozen = freeze.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        (c.pca, c.initFrom, c.freeze, c.headLearningRate) = (pca, initFrom, frozen?.isEmpty == true ? nil : frozen, headLr)
        c.dataDir = dataDir
        c.augment = augment
        return c
    }

    func validate() throws {
        guard (epochs ?? 1) >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard checkpointEvery >= 0, checkpointEvery.isFinite else { throw ValidationError("--checkpoint-every must be a number of seconds ≥ 0") }
        guard (patience ?? 1) >= 1 else { throw ValidationError("--patience must be at least 1") }
        guard accumulate >= 1 else { throw ValidationError("--accumulate must be at least 1") }
        guard (threads ?? 1) >= 1, (threads ?? 1) <= 1024 else { throw ValidationError("--threads must be between 1 and 1024") }
        if distributed && (stream != nil || findLr) { throw ValidationError("--distributed trains a data set; it does not go with --\(stream != nil ? "stream" : "find-lr")") }
        if compile {
            if distributed || stream != nil || isGenerative {
                throw ValidationError("--compile trains a classifier on one process; it does not go with \(distributed ? "--distributed" : stream != nil ? "--stream" : "--model \(model)")")
            }
            if resume == nil {
                let kind = ModelSpec(parsing: model)?.kind
                guard kind == .mlp || kind == .logistic else { throw ValidationError("--compile trains --model logistic or mlp:H1,...; got --model \(model)") }
                if kind == .logistic && optimizer == nil && learningRate == nil && l1 == 0 && pca == nil {
                    throw ValidationError("--compile: --model logistic is solved exactly unless --optimizer or --lr is given")
                }
                guard dropout == 0 else { throw ValidationError("--compile: dropout has no compiled form; leave out --dropout") }
                guard ["relu", "tanh", "sigmoid"].contains(activation) || kind == .logistic else {
                    throw ValidationError("--compile: the compiled activations are relu, tanh and sigmoid; got --activation \(activation)")
                }
            }
        }
        if isGenerative { return try checkGenerativeFlags() }
        do { try configurationFromFlags().check() } catch let e as RunSettingsError { throw ValidationError(e.message) }
    }


    func run() throws {
        if let stream { return try runStream(stream) }
        if isGenerative {
            if let threads { ComputeBackend.threads = threads }
            return try trainGenerative()
        }
        let world: Communicator
        do { world = distributed ? try Communicator.world() : .single } catch { throw ValidationError("--distributed: \(error)") }
        if let threads { ComputeBackend.threads = threads } else if world.size > 1 { ComputeBackend.threads = world.threadsPerProcess }
        guard world.size > 1 else { return try train(world) }
        // Several processes: one that fails stops them all (none waits for it forever); an
        // interrupted run stops everywhere at the same batch and ends normally.
        do { try train(world) } catch let e as ExitCode where e.rawValue == 130 {
            world.finalize()
            throw e
        } catch let e as ExitCode {
            world.abort("", code: e.rawValue)
        } catch {
            world.abort("error: \(error)")
        }
        world.finalize()
    }

    /// The run, in this process (rank `world.rank` of `world.size`).
    func train(_ world: Communicator) throws {
        let started = Date()
        let primary = world.isPrimary
        // Only rank 0 prints and writes.
        let quiet = self.quiet || !primary, json = self.json && primary
        // 1. The configuration and the run folder (rank 0's, sent to the others).
        var config: TrainConfiguration
        var folder: String
        if !primary {
            (config, folder) = (try configurationFromFlags(), "")
        } else if let resume {
            let path = (resume as NSString).appendingPathComponent("config.json")
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--resume \(resume): no config.json there; give the folder of an earlier run")
            }
            do { config = try TrainConfiguration.decode(data) } catch {
                throw ValidationError("--resume \(resume): \(error)")
            }
            if let epochs { config.epochs = epochs }
            folder = resume
        } else {
            config = try configurationFromFlags()
            if let out {
                // Never train over another run: its model, config and checkpoint would be mixed
                // with this one's.
                if FileManager.default.fileExists(atPath: file(out, "config.json")) {
                    throw ValidationError("--out \(out) already holds a run; continue it with --resume \(out), or choose another folder")
                }
                folder = out
            } else {
                folder = defaultFolder(config)
            }
        }
        if world.size > 1 {
            let encoded = primary ? (try? JSONEncoder().encode(config)) ?? Data() : Data()
            config = try TrainConfiguration.decode(Data(world.broadcast(bytes: [UInt8](encoded))))
            folder = world.broadcast(string: folder)
        }
        if primary { removeAbandonedTemporaryFiles(in: folder) }
        func fail(_ message: String) -> ExitCode {
            printError("\(world.size > 1 ? "rank \(world.rank) of \(world.size): " : "")error: \(message)")
            guard primary else { return ExitCode.failure }
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try? writeAtomically("\(ISO8601DateFormatter().string(from: Date())) error: \(message)\n", to: (folder as NSString).appendingPathComponent("error.log"))
            return ExitCode.failure
        }

        // 2. Data and model; nothing is written but an error log if these fail.
        var sourceCard: ModelCard?
        let prepared: PreparedData
        let spec: ModelSpec
        do {
            // Fine-tuning keeps the source model's input scaling (its first layer was trained on it).
            if let source = config.initFrom {
                guard let data = FileManager.default.contents(atPath: file(source, ModelCard.fileName)) else {
                    throw RunFailure(message: "--init-from \(source): no \(ModelCard.fileName); give the folder of a finished `nabla train` run")
                }
                sourceCard = try ModelCard.decode(data)
            }
            prepared = try PreparedData(config, scaler: sourceCard?.scaler, scalerFeatures: sourceCard?.features)
            guard var s = ModelSpec(parsing: config.model, activation: config.activation, dropout: config.dropout) else { throw RunFailure(message: "bad model '\(config.model)'") }
            s.pca = config.pca
            if s.kind == .cnn && config.pca != nil { throw RunFailure(message: "--pca projects the pixels; a cnn reads them as an image (leave out one of the two)") }
            if let problem = s.problem(inputs: prepared.featureNames.count) { throw RunFailure(message: problem) }
            if config.augment != nil && (ModelSpec.imageShape(inputs: prepared.featureNames.count) == nil || ImageSet(rawValue: config.data) == nil && !config.data.contains("idx3-ubyte")) {
                throw RunFailure(message: "--augment changes images; \(config.data) is not an image set (mnist, fashion-mnist or an IDX images file)")
            }
            guard s.supports(prepared.task) else {
                throw RunFailure(message: "the \(s.kind.rawValue) model does not do \(prepared.task.rawValue) (the target '\(prepared.targetName)' of \(config.data) is \(prepared.task == .regression ? "real-valued" : "a class label")); use \(prepared.task == .regression ? "linear or mlp" : "logistic, svm or mlp")")
            }
            spec = s
        } catch { throw fail("\(error)") }

        if primary { do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            if resume == nil {
                try writeJSON(config, to: file(folder, "config.json"))
                // The split, so that other tools can be compared on the same rows.
                try writeAtomically(OrderedJSON([("train", .array(prepared.rows.train.map { .number(Double($0)) })),
                                                 ("validation", .array(prepared.rows.validation.map { .number(Double($0)) })),
                                                 ("test", .array(prepared.rows.test.map { .number(Double($0)) }))]).text + "\n",
                                    to: file(folder, "split.json"))
            }
        } catch { throw fail("cannot create the run folder \(folder): \(error)") } }

        if !quiet && !json {
            print("\(resume == nil ? "training" : "resuming") \(spec) on \(config.data) (\(prepared.task.rawValue): \(prepared.train.count) train, \(prepared.validation?.count ?? 0) validation, \(prepared.test.count) test samples, \(prepared.featureNames.count) features\(prepared.task == .classification ? ", \(prepared.classNames.count) classes" : ""))")
            print("run folder: \(folder)")
            if world.size > 1 { print("data-parallel over \(world.size) processes (\(world.transport)): each computes its share of every batch of \(config.batch)") }
        }

        // 3. The trainer.
        GlobalRandom.seed(config.seed)
        let network: Sequential<Float> = spec.build(inputs: prepared.featureNames.count, outputs: prepared.outputs)
        let metricName = prepared.task == .classification ? "accuracy" : "r2"
        var trained: TrainingHistory?
        var solvedBy: String?
        var logFiles = "model.safetensors, summary.json"
        if config.solve == true {
            // A convex problem: its optimum, by the solver (no epochs, no checkpoint).
            let solution: ConvexSolution
            do {
                solution = try spec.solve(features: prepared.trainFeatures, labels: prepared.train.labels?.values,
                                      classes: prepared.classNames.count, values: prepared.trainTargets, l2: config.l2)
            } catch { throw fail("\(error)") }
            guard let layer = network.layers.first as? Linear<Float> else { throw fail("internal: \(spec) is not one linear layer") }
            layer.weight.value = Tensor<Float>(converting: solution.weight)
            layer.bias?.value = Tensor<Float>(converting: Tensor(solution.bias))
            solvedBy = solution.method
        } else {
        let batchSize = config.batch == "full" ? nil : Int(config.batch)!
        let batchesPerEpoch = batchSize.map { (prepared.train.count + $0 - 1) / $0 } ?? 1
        let lr = config.learningRate ?? defaultLearningRate(forOptimizer: config.optimizer)
        var transforms: [any GradientTransform] = []
        if let c = config.clip { transforms.append(ClipByGlobalNorm(maxNorm: c)) }
        var optimizer = Optimizer<Float>(rule: try updateRule(named: config.optimizer, momentum: config.momentum, weightDecay: config.weightDecay),
                                         learningRate: lr,
                                         schedule: try learningRateSchedule(config.schedule, epochs: config.epochs, batchesPerEpoch: batchesPerEpoch, learningRate: lr),
                                         transforms: transforms)
        // --pca: the first layer is the projection on the training rows' principal components, frozen.
        if let k = config.pca, let projection = network.layers.first as? Linear<Float> {
            do {
                let fitted = try PCA(components: k, fittedOn: prepared.trainFeatures)
                projection.weight.value = Tensor<Float>(converting: fitted.components)
                let shift = Tensor.matmul(Tensor(shape: [1, fitted.mean.count], scalars: fitted.mean), fitted.components, transposeB: true)
                projection.bias?.value = Tensor<Float>(converting: -shift.reshaped(to: [k]))
                if !quiet && !json { print("PCA: \(k) components keep \(fmt(fitted.explainedVarianceRatio.reduce(0, +) * 100, digits: 4)) % of the variance of the scaled features") }
            } catch { throw fail("--pca: \(error)") }
            projection.freeze()
        }
        // Fine-tuning: another run's weights, frozen layers, the head's own rate.
        if let source = config.initFrom, let sourceCard, resume == nil {
            let path = file(source, "model.safetensors")
            let report: StateLoadReport
            do {
                var archive = try SafeTensors.read(path)
                // A head trained for other outputs (other classes, another task) starts afresh.
                if sourceCard.task != prepared.task || sourceCard.classes != prepared.classNames, let head = network.namedModules.last(where: { $0.module is Linear<Float> }) {
                    archive.tensors = archive.tensors.filter { !$0.key.hasPrefix(head.name + ".") }
                    if !quiet && !json { print("the head (\(head.name)) starts afresh: \(source) predicts \(sourceCard.task == .classification ? "the classes \(sourceCard.classes.joined(separator: ", "))" : sourceCard.target)") }
                }
                report = network.loadMatching(archive)
            } catch { throw fail("--init-from \(source): \(error)") }
            guard !report.loaded.isEmpty else { throw fail("--init-from \(source): no tensor of its model fits this one (\(spec))\n\(report)") }
            if !quiet && !json { print("initialized from \(source): \(report)") }
        }
        if let selectors = config.freeze, !selectors.isEmpty {
            do {
                let frozen = try network.freeze(selectors: selectors)
                if !quiet && !json { print("frozen: \(frozen.joined(separator: ", "))") }
            } catch { throw fail("--freeze: \(error)") }
        }
        if let head = config.headLearningRate {
            let params = network.parameters
            let last = network.layers.last { $0 is Linear<Float> } as! Linear<Float>
            let indices = params.indices.filter { i in params[i] === last.weight || params[i] === last.bias }
            optimizer.groups.append(ParameterGroup(indices: indices, learningRateScale: head / lr))
        }
        let checkpointPath = file(folder, "checkpoint.safetensors")
        var options = TrainingOptions(epochs: config.epochs, batchSize: batchSize, shuffle: true, seed: config.seed, patience: config.patience,
                                      minimumImprovement: config.minDelta, restoreBestWeights: true, lossChangeTolerance: config.tolerance,
                                      checkpointPath: primary ? checkpointPath : nil)
        options.checkpointInterval = checkpointEvery
        let weights = network.namedParameters.filter { $0.name.hasSuffix("weight") }.map(\.parameter)
        let train = prepared.train
        // Augmentation draws from the seed, the epoch and the row, so a resumed run augments as
        // an uninterrupted one.
        let augmentation = try config.augment.map { try ImageAugmentation(parsing: $0) }
        let side = ModelSpec.imageShape(inputs: prepared.featureNames.count)
        weak var current: Trainer<Float>?
        // A batch's rows (augmented when asked).
        func batchRows(_ rows: [Int]) -> Tensor<Float> {
            let x = train.x.indexSelect(axis: 0, indices: rows)
            guard let augmentation, let (_, h, w) = side else { return x }
            return augmentation.apply(x, indices: rows, height: h, width: w, seed: config.seed, epoch: current?.epoch ?? 0)
        }
        let trainer = Trainer(model: network, optimizer: optimizer, trainingCount: train.count, options: options) { m, rows in
            let x = batchRows(rows)
            var loss = spec.loss((m as! Sequential<Float>)(x), classes: train.labels.map { l in IndexTensor(rows.map { l.values[$0] }) },
                                 values: train.values?.indexSelect(axis: 0, indices: rows))
            if config.l2 > 0 { loss = loss + l2Penalty(weights, strength: config.l2) }
            if config.l1 > 0 { loss = loss + l1Penalty(weights, strength: config.l1) }
            return loss
        }
        current = trainer
        if compile {
            guard let labels = train.labels, let loss = CompiledClassifierLoss(network, l1: config.l1, l2: config.l2), spec.kind != .svm else {
                let why = train.labels == nil ? " on a regression target" : config.dropout > 0 ? " with dropout \(config.dropout)"
                    : spec.kind == .mlp ? " with \(config.activation) activations" : ""
                throw fail("--compile trains classifiers (--model logistic or mlp:… with relu, tanh or sigmoid, no dropout); this run's model is \(spec)\(why)")
            }
            loss.attach(to: trainer) { rows in (batchRows(rows), rows.map { labels.values[$0] }) }
        }
        let evaluationSet = prepared.validation ?? prepared.train
        trainer.validate = { m in prepared.evaluate(m as! Sequential<Float>, spec: spec, on: evaluationSet) }
        // Rank 0's checkpoint, read once and sent to every process (which need not see its disk).
        var received: SafeTensors.Archive?
        var parallel: DataParallel<Float>?
        if world.size > 1 {
            let p = DataParallel(model: network as Module<Float>, communicator: world, accumulationSteps: accumulate)
            p.synchronizeParameters()
            p.attach(to: trainer)
            parallel = p
            if resume != nil {
                let bytes = world.broadcast(bytes: primary ? [UInt8](FileManager.default.contents(atPath: checkpointPath) ?? Data()) : [])
                if !bytes.isEmpty {
                    do { received = try SafeTensors.decode(Data(bytes), path: checkpointPath) } catch { throw fail("cannot resume from \(resume!): \(error)") }
                }
            }
        }
        if let resume, world.size > 1 ? received == nil : !FileManager.default.fileExists(atPath: checkpointPath) {
            // Stopped before its first checkpoint: the same settings and seed from the start give
            // the same run.
            if !quiet && !json { print("no checkpoint in \(resume) yet: starting the run from its first epoch") }
        } else if let resume {
            do { try received.map { try trainer.resume(from: $0, path: checkpointPath) } ?? trainer.resume(from: checkpointPath) } catch {
                throw fail("cannot resume from \(resume): \(error)")
            }
            if trainer.epoch >= config.epochs && primary {
                printError("note: the run already has \(counted(trainer.epoch, "epoch")); pass --epochs N with N > \(trainer.epoch) to train further")
            }
        }

        parallel?.separateRandomStreams()   // (after a resume, which restores rank 0's)

        if findLr {
            let test: LearningRateRangeTest
            do { test = try trainer.findLearningRate() } catch { throw fail("\(error)") }
            let plot = file(folder, "lr-finder.svg")
            // Up to where the loss has clearly diverged, so that the fall stays visible.
            let shown = test.rates.indices.filter { test.smoothedLosses[$0] <= 1.5 * test.smoothedLosses[0] }
            let chart = LinePlot(title: "Learning-rate range test: \(spec) on \(config.data)", xLabel: "learning rate (log10)", yLabel: "training loss",
                                 series: [LinePlot.Series(name: "loss", points: shown.map { (Foundation.log10(test.rates[$0]), Swift.min(test.losses[$0], 1.5 * test.smoothedLosses[0])) }),
                                          LinePlot.Series(name: "smoothed", points: shown.map { (Foundation.log10(test.rates[$0]), test.smoothedLosses[$0]) })]
                                    + (test.suggestion.map { s in [LinePlot.Series(name: "suggested \(fmt(s, digits: 2))", points: [(Foundation.log10(s), test.smoothedLosses.min()!), (Foundation.log10(s), test.smoothedLosses[0])])] } ?? []))
            do { try chart.write(to: plot) } catch { throw fail("\(error)") }
            if json {
                print(OrderedJSON([("suggested_learning_rate", test.suggestion.map { .number($0) } ?? .null), ("steps", .number(Double(test.rates.count))),
                                   ("plot", .string(plot)), ("folder", .string(folder))]).text)
            } else if let s = test.suggestion {
                print("suggested learning rate: \(fmt(s, digits: 3)) (the steepest fall of the loss over \(test.rates.count) steps from 1e-07\(test.stoppedEarly ? " until the loss diverged" : " to 10")); the model was not trained")
                print("plot: \(plot); train with: nabla train … --lr \(fmt(s, digits: 3))")
            } else {
                print("the loss never fell over \(test.rates.count) steps; no rate to suggest (plot: \(plot))")
            }
            return
        }

        // 4. Logs: metrics as JSON lines, TensorBoard events, the progress display.
        let display = ProgressDisplay(quiet: quiet || json)
        var board: TensorBoardWriter?
        if primary { do { board = try TensorBoardWriter(folder: folder) } catch { throw fail("\(error)") } }
        trainer.onBatch = { display.batch($0) }
        var logError: Error?
        var lastMetricsWrite = Date.distantPast
        trainer.onEpoch = { record in
            display.epoch(record, metricName: metricName)
            var scalars = ["train/loss": record.trainLoss, "learning_rate": record.learningRate]
            for (k, v) in record.validation { scalars["validation/\(k)"] = v }
            guard primary else { return true }
            do {
                try board?.add(scalars: scalars, step: record.epoch)
                // Rewritten at most every few seconds (and at the end): small epochs stay fast.
                if Date().timeIntervalSince(lastMetricsWrite) >= 2 {
                    try writeMetrics(trainer.history, to: file(folder, "metrics.jsonl"))
                    lastMetricsWrite = Date()
                }
            } catch { logError = error; return false }
            return true
        }
        if checkGradients {
            trainer.plateauDetector = PlateauDetector()
            trainer.onPlateau = { epoch, batch, plateau in printError("warning: epoch \(epoch), batch \(batch): \(plateau)") }
            trainer.gradientMonitor = GradientMonitor()
            var warned: Set<String> = []
            trainer.onGradientWarnings = { epoch, batch, warnings in
                for w in warnings where warned.insert("\(epoch) \(w.parameterName)").inserted {
                    printError("warning: epoch \(epoch), batch \(batch): \(w)")
                }
            }
        }
        signal(SIGINT) { _ in interruptRequested = 1 }
        // A trial of `nabla tune` stops (with its checkpoint) when the search that started it dies.
        let parent = getppid(), watchParent = stopWithParent
        trainer.shouldInterrupt = { interruptRequested != 0 || (watchParent && getppid() != parent) }
        if world.size > 1 {
            // Every process stops at the same batch, whichever saw the signal.
            trainer.shouldInterrupt = { world.allReduce(interruptRequested != 0 ? 1 : 0, .max) > 0 }
        }

        let history: TrainingHistory
        do { history = try trainer.fit() } catch { throw fail("\(error)") }
        guard primary else {
            if history.stopReason == .interrupted { throw ExitCode(130) }
            return
        }
        if let logError { throw fail("cannot write the logs: \(logError)") }
        do { try writeMetrics(history, to: file(folder, "metrics.jsonl")) } catch { throw fail("\(error)") }
        if history.stopReason == .interrupted {
            print("")
            if trainer.epoch == 0 {
                printError("interrupted during the first epoch: there is no checkpoint yet, so nothing to resume; run the command again")
            } else {
                printError("interrupted: the checkpoint of epoch \(trainer.epoch) is in \(checkpointPath); continue with: nabla train --resume \(folder)")
            }
            throw ExitCode(130)
        }
        trained = history
        logFiles = "model.safetensors, checkpoint.safetensors, metrics.jsonl, \(((board?.path ?? "") as NSString).lastPathComponent), loss.svg, metric.svg, summary.json"
        }

        // 5. Results: test metrics, the model for `nabla predict`, plots, the summary (rank 0's job).
        guard primary else { return }
        network.eval()
        let trainMetrics = prepared.evaluate(network, spec: spec, on: prepared.train)
        let testMetrics = prepared.evaluate(network, spec: spec, on: prepared.test)
        let card = ModelCard(spec: spec, task: prepared.task, features: prepared.featureNames, target: prepared.targetName,
                             classes: prepared.classNames, scaler: prepared.scaler, outputs: prepared.outputs,
                             targetMean: prepared.task == .regression ? prepared.targetMean : nil,
                             targetScale: prepared.task == .regression ? prepared.targetScale : nil)
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let cardJSON = String(decoding: try encoder.encode(card), as: UTF8.self)
            try network.save(to: file(folder, "model.safetensors"), metadata: ["nabla.model": cardJSON])
            try writeJSON(card, to: file(folder, "model.json"))
            if let trained { try writePlots(trained, folder: folder, metricName: metricName) }
        } catch { throw fail("cannot write the results: \(error)") }

        var summary: [(String, JSONValue)] = [
            ("data", .string(config.data)), ("model", .string(spec.description)), ("task", .string(prepared.task.rawValue)),
            ("epochs", .number(Double(trained?.records.count ?? 0))), ("stop_reason", .string(solvedBy.map { "solved: \($0)" } ?? trained?.stopReason?.rawValue ?? "")),
            ("seconds", .number(Date().timeIntervalSince(started))), ("run_folder", .string(folder)),
            ("train_samples", .number(Double(prepared.train.count))), ("test_samples", .number(Double(prepared.test.count)))]
        for (k, v) in trainMetrics.sorted(by: { $0.key < $1.key }) { summary.append(("train_\(k)", .number(v))) }
        for (k, v) in testMetrics.sorted(by: { $0.key < $1.key }) { summary.append(("test_\(k)", .number(v))) }
        var confusion: [[Int]]?
        if prepared.task == .classification {
            let predicted = withoutGradients { network.outputs(prepared.test.x) }.argmax(axis: 1)
            confusion = Metrics.confusionMatrix(predicted: predicted, actual: prepared.test.labels!.values, classes: prepared.classNames.count)
            summary.append(("confusion_matrix", .array(confusion!.map { .array($0.map { .number(Double($0)) }) })))
            summary.append(("classes", .array(prepared.classNames.map { .string($0) })))
        }
        let summaryText = OrderedJSON(summary).text
        do { try writeAtomically(summaryText, to: file(folder, "summary.json")) } catch { throw fail("\(error)") }

        if json {
            print(summaryText)
            return
        }
        if let solvedBy {
            print("solved the \(spec) problem exactly: \(solvedBy)")
        } else if let history = trained {
            let n = history.records.count
            print("stopped after \(n) epoch\(n == 1 ? "" : "s"): \(history.stopReason?.rawValue ?? "")\(history.stopReason == .earlyStopping ? " (best epoch \(history.bestEpoch ?? 0) restored)" : "")")
            if let note = history.stillImprovingNote { printError("note: \(note)") }
        }
        if prepared.task == .classification {
            print("train accuracy \(fmt(trainMetrics["accuracy"]!, digits: 4)), test accuracy \(fmt(testMetrics["accuracy"]!, digits: 4)), test loss \(fmt(testMetrics["loss"]!, digits: 4))")
            print(confusionTable(confusion!, classes: prepared.classNames))
        } else {
            print("train R² \(fmt(trainMetrics["r2"]!, digits: 4)), test R² \(fmt(testMetrics["r2"]!, digits: 4)), test MSE \(fmt(testMetrics["mse"]!, digits: 5))")
        }
        print("wrote \(folder)/: \(logFiles)")
        print("took \(fmt(Date().timeIntervalSince(started), digits: 3)) s")
    }

    func defaultFolder(_ c: TrainConfiguration) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        let dataName = ((c.data as NSString).lastPathComponent as NSString).deletingPathExtension
        let modelName = c.model.replacingOccurrences(of: ":", with: "-").replacingOccurrences(of: ",", with: "-")
        let base = "runs/\(modelName)-\(dataName)-\(f.string(from: Date()))"
        var name = base, k = 2
        while FileManager.default.fileExists(atPath: name) { name = "\(base)-\(k)"; k += 1 }
        return name
    }
}

func file(_ folder: String, _ name: String) -> String { (folder as NSString).appendingPathComponent(name) }


func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    try writeAtomically(e.encode(value), to: path)
}

/// One JSON object per epoch, the whole file rewritten atomically.
func writeMetrics(_ h: TrainingHistory, to path: String) throws {
    let lines = h.records.map { r -> String in
        var pairs: [(String, JSONValue)] = [("epoch", .number(Double(r.epoch))), ("train_loss", .number(r.trainLoss))]
        for (k, v) in r.validation.sorted(by: { $0.key < $1.key }) { pairs.append(("val_\(k)", .number(v))) }
        pairs += [("learning_rate", .number(r.learningRate)), ("seconds", .number(r.seconds))]
        return OrderedJSON(pairs).text
    }
    try writeAtomically(lines.map { $0 + "\n" }.joined(), to: path)
}

func writePlots(_ h: TrainingHistory, folder: String, metricName: String) throws {
    let epochs = h.records.map { Double($0.epoch) }
    var lossSeries = [LinePlot.Series(name: "training", points: zip(epochs, h.records.map(\.trainLoss)).map { ($0, $1) })]
    if h.records.contains(where: { $0.validation["loss"] != nil }) {
        lossSeries.append(LinePlot.Series(name: "validation", points: zip(epochs, h.records.map { $0.validation["loss"] ?? .nan }).map { ($0, $1) }))
    }
    try LinePlot(title: "Loss", xLabel: "epoch", yLabel: "loss", series: lossSeries, logarithmic: true).write(to: file(folder, "loss.svg"))
    let metric = LinePlot.Series(name: "validation \(metricName)", points: zip(epochs, h.records.map { $0.validation[metricName] ?? .nan }).map { ($0, $1) })
    try LinePlot(title: metricName == "r2" ? "Validation R²" : "Validation accuracy", xLabel: "epoch", yLabel: metricName, series: [metric]).write(to: file(folder, "metric.svg"))
}

func confusionTable(_ m: [[Int]], classes: [String]) -> String {
    let width = Swift.max(4, (m.flatMap { $0 }.map { String($0).count } + classes.map(\.count)).max() ?? 4)
    var lines = ["confusion matrix (rows: actual, columns: predicted)"]
    lines.append(String(repeating: " ", count: width + 2) + classes.map { pad(String($0.suffix(width)), width) }.joined(separator: " "))
    for (i, row) in m.enumerated() {
        lines.append(pad(String(classes[i].suffix(width)), width) + "  " + row.map { pad(String($0), width) }.joined(separator: " "))
    }
    return lines.joined(separator: "\n")
}




/// A split of the data as Float tensors.
struct Split {
    var x: Tensor<Float>
    var labels: IndexTensor?
    var values: Tensor<Float>?
    var count: Int { x.shape[0] }
}

/// The data of a run: read, split (stratified, seeded), scaled on the training rows.
struct PreparedData {
    var train: Split, validation: Split?, test: Split
    var task: Task
    var featureNames: [String]
    var classNames: [String]
    var targetName: String
    var scaler: FeatureScaler
    var outputs: Int { task == .classification ? classNames.count : 1 }
    /// The scaled training features in double precision, and the standardized training targets
    /// (regression), for the exact solvers.
    var trainFeatures: Tensor<Double>
    var trainTargets: [Double]?
    /// Regression targets are standardized for training: the network learns (y − mean) / scale.
    var targetMean = 0.0, targetScale = 1.0
    /// The data rows (0-based) of each part, written to the run folder as split.json.
    var rows: (train: [Int], validation: [Int], test: [Int]) = ([], [], [])

    /// `scaler` (fitted on `scalerFeatures`): use it instead of fitting one, when the features are the same.
    init(_ c: TrainConfiguration, scaler given: FeatureScaler? = nil, scalerFeatures: [String]? = nil) throws {
        let dataset: Dataset
        var testSet: Dataset? = nil
        if let images = ImageSet(rawValue: c.data) {
            // The official training images for training and validation, t10k for the test.
            let (train, test) = try images.load(from: images.folder(c.dataDir))
            dataset = train
            testSet = test
        } else if let bundled = Dataset.Bundled(rawValue: c.data) ?? Dataset.Bundled.allCases.first(where: { "\($0)" == c.data }) {
            dataset = try Dataset.bundled(bundled, target: c.target, task: c.task)
        } else {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: c.data, isDirectory: &isFolder) else {
                throw RunFailure(message: "--data \(c.data): no such file, and not a bundled data set (\(Dataset.Bundled.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard !isFolder.boolValue else {
                throw RunFailure(message: "--data \(c.data) is a folder; give a CSV file, an IDX images file or a bundled data set name")
            }
            if c.data.contains("idx3-ubyte") {
                let labels = IDX.labelsPath(forImages: c.data)
                guard labels != c.data, FileManager.default.fileExists(atPath: labels) else {
                    throw RunFailure(message: "--data \(c.data): no labels file \(labels) beside the images")
                }
                dataset = try Dataset.readIDX(images: c.data, labels: labels)
            } else {
                dataset = try Dataset.readCSV(c.data, target: c.target, categorical: Set(c.categorical), task: c.task)
            }
        }
        if dataset.task == .classification && dataset.classCount < 2 {
            throw RunFailure(message: "\(c.data): the target '\(dataset.targetName)' has only one class")
        }
        let parts: [[Int]]
        if let testSet {
            // A separate test file: the training file splits into validation and training only.
            let v = dataset.splitIndices(fractions: [c.validation, 1 - c.validation], seed: c.seed)
            parts = [Array(0..<testSet.count), v[0], v[1]]
        } else {
            parts = dataset.splitIndices(fractions: [c.test, c.validation, 1 - c.test - c.validation], seed: c.seed)
        }
        guard !parts[0].isEmpty, !parts[2].isEmpty, c.validation == 0 || !parts[1].isEmpty else {
            var reason = "\(c.data): \(dataset.count) samples are too few for the test and validation fractions"
            if dataset.task == .classification {
                let smallest = Dictionary(grouping: dataset.targets, by: { $0 }).values.map(\.count).min() ?? 0
                reason += " (the target '\(dataset.targetName)' is taken as \(dataset.classCount) classes, the smallest with \(smallest) sample\(smallest == 1 ? "" : "s"); each part needs some of every class; --task regression treats it as a number)"
            }
            throw RunFailure(message: reason)
        }
        rows = (train: parts[2], validation: parts[1], test: parts[0])
        let trainSet = dataset.subset(parts[2])
        let scaler = given.flatMap { scalerFeatures == dataset.featureNames ? $0 : nil }
            ?? FeatureScaler.fitted(c.scale == "minmax" ? .minMax : c.scale == "none" ? .none : .standard, on: trainSet.features)
        var (mean, scale) = (0.0, 1.0)
        if dataset.task == .regression {
            let y = trainSet.targets
            mean = y.reduce(0, +) / Double(y.count)
            let variance = y.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(y.count)
            scale = variance > 0 ? variance.squareRoot() : 1
            guard mean.isFinite, scale.isFinite, variance.isFinite else {
                throw RunFailure(message: "\(c.data): the target '\(dataset.targetName)' has values too large to train on (mean \(mean))")
            }
        }
        func make(_ d: Dataset) -> Split {
            let x = Tensor<Float>(converting: scaler.transform(d.features))
            return d.task == .classification ? Split(x: x, labels: d.labels, values: nil)
                : Split(x: x, labels: nil, values: Tensor(shape: [d.count, 1], scalars: d.targets.map { Float(($0 - mean) / scale) }))
        }
        (targetMean, targetScale) = (mean, scale)
        trainFeatures = scaler.transform(trainSet.features)
        // The networks compute in Float: scaled features must fit its range.
        if let bad = trainFeatures.scalars.firstIndex(where: { Swift.abs($0) > Double(Float.greatestFiniteMagnitude) }) {
            let name = dataset.featureNames[bad % dataset.featureNames.count]
            throw RunFailure(message: "\(c.data): feature '\(name)' has values beyond Float's range (±3.4e38) after scaling; use --scale standard or rescale the column")
        }
        trainTargets = dataset.task == .regression ? trainSet.targets.map { ($0 - mean) / scale } : nil
        train = make(trainSet)
        validation = c.validation > 0 ? make(dataset.subset(parts[1])) : nil
        test = make(testSet ?? dataset.subset(parts[0]))
        task = dataset.task
        featureNames = dataset.featureNames
        classNames = dataset.classNames
        targetName = dataset.targetName
        self.scaler = scaler
    }

    /// Loss and accuracy (classification) or R² and MSE (regression) of the model on a split.
    func evaluate(_ model: Sequential<Float>, spec: ModelSpec, on s: Split) -> [String: Double] {
        withoutGradients {
            let out = model.outputs(s.x)
            let loss = Double(spec.loss(out, classes: s.labels, values: s.values).scalar)
            if let labels = s.labels {
                return ["loss": loss, "accuracy": Metrics.accuracy(predicted: out.argmax(axis: 1), actual: labels.values)]
            }
            // Metrics in the target's own units.
            let p = out.scalars.map { Double($0) * targetScale + targetMean }, y = s.values!.scalars.map { Double($0) * targetScale + targetMean }
            return ["loss": loss, "r2": Metrics.r2(predicted: p, actual: y), "mse": Metrics.meanSquaredError(predicted: p, actual: y)]
        }
    }
}
