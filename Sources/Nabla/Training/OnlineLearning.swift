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
            let value = Double(model.valueWithGradient { loss($0, batch) }.scalar)
            guard value.isFinite else {
                model.clearGradients()
                throw TrainingError(message: "Trainer.partialFit: the loss became \(value) on the batch of rows \(batch.first!)…\(batch.last!); lower the learning rate")
            }
            if let monitor = gradientMonitor {
                let warnings = monitor.check(model)
                if !warnings.isEmpty { onGradientWarnings?(epoch + 1, start / size + 1, warnings) }
            }
            optimizer.step(model)
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
