import Foundation

/// Standardization statistics updated batch by batch (Welford's algorithm), for data that
/// arrives over time: after any number of updates, ``scaler`` equals `FeatureScaler.standard`
/// fitted on all the rows seen.
public struct RunningStandardizer: Sendable, Equatable, Codable {
    public private(set) var count = 0
    public private(set) var mean: [Double]
    var sumOfSquares: [Double]

    public init(features: Int) {
        require(features > 0, "RunningStandardizer: \(features) features")
        mean = Array(repeating: 0, count: features)
        sumOfSquares = Array(repeating: 0, count: features)
    }

    /// Adds rows [n, d].
    public mutating func update(_ x: Tensor<Double>) {
        require(x.rank == 2 && x.shape[1] == mean.count, "RunningStandardizer.update: rows of shape \(x.shape) for \(mean.count) features")
        let d = mean.count, v = x.scalars
        for i in 0..<x.shape[0] {
            count += 1
            for j in 0..<d {
                let delta = v[i * d + j] - mean[j]
                mean[j] += delta / Double(count)
                sumOfSquares[j] += delta * (v[i * d + j] - mean[j])
            }
        }
    }

    /// The standardization of the rows seen so far (a constant feature is only centred).
    public var scaler: FeatureScaler {
        let scale = zip(sumOfSquares, mean).map { ss, m -> Double in
            let s = count > 0 ? (ss / Double(count)).squareRoot() : 0
            return s > 10 * Double.ulpOfOne * Swift.max(1, Swift.abs(m)) ? s : 1
        }
        return FeatureScaler(kind: .standard, shift: mean, scale: scale)
    }
}

extension Trainer {
    /// One pass over `rows` (indices the loss closure understands) in batches of the options'
    /// size, in the order given, continuing the optimizer's state: learning from rows as they
    /// arrive. Returns the mean loss over the rows. Gradient checks and plateaus are watched as in
    /// ``fit()``; a non-finite loss throws and leaves the model as before that batch.
    @discardableResult
    public func partialFit(rows: [Int]) throws -> Double {
        require(!rows.isEmpty, "Trainer.partialFit: no rows")
        model.train()
        let size = options.batchSize ?? rows.count
        var total = 0.0, start = 0
        while start < rows.count {
            let batch = Array(rows[start..<Swift.min(rows.count, start + size)])
            let value = step(batch, batch: start / size + 1)
            guard value.isFinite else {
                model.clearGradients()
                throw TrainingError(message: "Trainer.partialFit: the loss became \(value) on the batch of rows \(batch.first!)…\(batch.last!); lower the learning rate")
            }
            total += value * Double(batch.count)
            start += size
        }
        model.eval()
        return total / Double(rows.count)
    }
}

extension MLPClassifier {
    /// Learns from new rows without forgetting: one pass (mini-batches of the options' size)
    /// continuing the optimizer's state. The first call builds the network; `classes` (the number
    /// of classes) is needed then, since later rows may bring classes the first ones lack.
    public func partialFit(_ x: Tensor<Double>, labels: [Int], classes: Int? = nil) throws {
        require(x.rank == 2 && x.shape[0] == labels.count && !labels.isEmpty, "MLPClassifier.partialFit: features \(x.shape) and \(labels.count) labels do not agree")
        try checkFit("MLPClassifier.partialFit", x, labels.count)
        if online == nil {
            guard let k = classes, k >= 2 else { throw FitError(message: "MLPClassifier.partialFit: give classes: (at least 2) on the first call") }
            let spec = self.spec, features = x.shape[1]
            let net: Sequential<Float> = GlobalRandom.withSeed(seed) { spec.build(inputs: features, outputs: k) }
            online = OnlineState(network: net, optimizer: Optimizer(rule: rule, learningRate: learningRate), classes: k, features: features)
        }
        let state = online!
        guard x.shape[1] == state.features else { throw FitError(message: "MLPClassifier.partialFit: \(x.shape[1]) features; the model has \(state.features)") }
        if let bad = labels.first(where: { $0 < 0 || $0 >= state.classes }) {
            throw FitError(message: "MLPClassifier.partialFit: label \(bad) is outside the \(state.classes) classes of the first call")
        }
        let xf = Tensor<Float>(converting: x), spec = self.spec
        let trainer = Trainer(model: state.network, optimizer: state.optimizer, trainingCount: labels.count, options: options) { m, rows in
            spec.loss((m as! Sequential<Float>)(xf.indexSelect(axis: 0, indices: rows)), classes: IndexTensor(rows.map { labels[$0] }), values: nil)
        }
        try trainer.partialFit(rows: Array(0..<labels.count))
        state.optimizer = trainer.optimizer
        setNetwork(state.network)
    }
}

/// What ``MLPClassifier/partialFit(_:labels:classes:)`` keeps between calls.
final class OnlineState {
    let network: Sequential<Float>
    var optimizer: Optimizer<Float>
    let classes: Int, features: Int
    init(network: Sequential<Float>, optimizer: Optimizer<Float>, classes: Int, features: Int) {
        (self.network, self.optimizer, self.classes, self.features) = (network, optimizer, classes, features)
    }
}

/// What the classic models' `partialFit` keeps between calls: the parameters θ and Adam's state
/// (values, copied with the model).
public struct OnlineLinearState: @unchecked Sendable {
    var theta: Tensor<Double>
    var optimizer: Optimizer<Double>
    let classes: Int, features: Int

    /// One pass over the rows in mini-batches of `batchSize`, each a step on `objective(rows)`.
    mutating func pass(rows n: Int, batchSize: Int, objective: ([Int]) -> (Tensor<Double>) -> Tensor<Double>) throws {
        var start = 0
        while start < n {
            let rows = Array(start..<Swift.min(n, start + batchSize))
            let (value, gradient) = valueWithGradient(at: theta, of: objective(rows))
            guard value.scalar.isFinite else { throw FitError(message: "partialFit: the loss became \(value.scalar); lower the learning rate") }
            optimizer.step(&theta, gradient: gradient)
            start += batchSize
        }
    }
}

extension LinearRegression {
    /// Learns from new rows: one pass of mini-batch Adam steps on the mean squared error (plus
    /// α‖w‖² / rows of the batch), continuing from the last call's weights and optimizer state.
    public mutating func partialFit(_ x: Tensor<Double>, _ y: [Double], learningRate: Double = 0.01, batchSize: Int = 32) throws {
        try checkFit("LinearRegression.partialFit", x, y.count, targets: y)
        let d = x.shape[1]
        var state = online ?? OnlineLinearState(theta: Tensor.zeros(shape: [d + 1]), optimizer: Optimizer(rule: Adam(), learningRate: learningRate), classes: 1, features: d)
        guard state.features == d else { throw FitError(message: "LinearRegression.partialFit: \(d) features; the model has \(state.features)") }
        let alpha = self.alpha
        try state.pass(rows: y.count, batchSize: batchSize) { rows in
            let xb = x.indexSelect(axis: 0, indices: rows), yb = Tensor(shape: [rows.count, 1], scalars: rows.map { y[$0] })
            return { t in
                let w = t.slice(axis: 0, start: 0, end: d).reshaped(to: [d, 1]), b = t.slice(axis: 0, start: d, end: d + 1)
                let r = Tensor.matmul(xb, w) + b - yb
                return (r * r).mean() + (w * w).sum() * (alpha / Double(rows.count))
            }
        }
        online = state
        weights = Array(state.theta.scalars.prefix(d))
        intercept = state.theta.scalars[d]
    }
}

extension LogisticRegression {
    /// Learns from new rows: one pass of mini-batch Adam steps on the objective of ``fit``
    /// (cross-entropy plus ‖W‖² / (2 C · rows of the batch)), continuing from the last call. The
    /// first call needs `classes`, since later rows may bring classes the first lack.
    public mutating func partialFit(_ x: Tensor<Double>, labels: [Int], classes: Int? = nil, learningRate: Double = 0.01, batchSize: Int = 32) throws {
        try checkFit("LogisticRegression.partialFit", x, labels.count)
        let d = x.shape[1]
        if online == nil {
            guard let k = classes, k >= 2 else { throw FitError(message: "LogisticRegression.partialFit: give classes: (at least 2) on the first call") }
            online = OnlineLinearState(theta: Tensor.zeros(shape: [(k == 2 ? 1 : k) * (d + 1)]), optimizer: Optimizer(rule: Adam(), learningRate: learningRate), classes: k, features: d)
        }
        var state = online!
        guard state.features == d else { throw FitError(message: "LogisticRegression.partialFit: \(d) features; the model has \(state.features)") }
        if let bad = labels.first(where: { $0 < 0 || $0 >= state.classes }) {
            throw FitError(message: "LogisticRegression.partialFit: label \(bad) is outside the \(state.classes) classes of the first call")
        }
        let (k, c) = (state.classes, self.c)
        try state.pass(rows: labels.count, batchSize: batchSize) { rows in
            LogisticRegression.objectiveFunction(x: x.indexSelect(axis: 0, indices: rows), labels: rows.map { labels[$0] }, classes: k, c: c)
        }
        online = state
        let rows = k == 2 ? 1 : k
        classCount = k
        weights = state.theta.slice(axis: 0, start: 0, end: rows * d).reshaped(to: [rows, d]).detached()
        intercepts = Array(state.theta.scalars[(rows * d)...])
    }
}
