/// A multilayer perceptron with a fit / predict / score interface, trained by ``Trainer``
/// (mini-batch Adam by default, early stopping on a held-out part of the training data when
/// `validationFraction` > 0).
public final class MLPClassifier {
    public let hidden: [Int]
    public var activation: String
    public var options: TrainingOptions
    public var learningRate: Double
    public var rule: any UpdateRule
    public var validationFraction: Double
    public var seed: UInt64
    public private(set) var network: Sequential<Float>?
    public private(set) var history = TrainingHistory()
    /// The network and optimizer of ``partialFit(_:labels:classes:)``.
    var online: OnlineState?
    func setNetwork(_ n: Sequential<Float>) { network = n }

    public init(hidden: [Int] = [100], activation: String = "relu", epochs: Int = 200, batchSize: Int? = 32, learningRate: Double = 1e-3,
                rule: any UpdateRule = Adam(), patience: Int? = 10, validationFraction: Double = 0.1, seed: UInt64 = 0) {
        require(ModelSpec(parsing: "mlp:" + hidden.map(String.init).joined(separator: ","), activation: activation) != nil,
                     "MLPClassifier: hidden sizes \(hidden) and activation '\(activation)' are not valid")
        self.hidden = hidden
        self.activation = activation
        options = TrainingOptions(epochs: epochs, batchSize: batchSize, seed: seed, patience: validationFraction > 0 ? patience : nil)
        self.learningRate = learningRate
        self.rule = rule
        self.validationFraction = validationFraction
        self.seed = seed
    }

    var spec: ModelSpec { ModelSpec(kind: .mlp, hidden: hidden, activation: activation) }

    /// Trains on features [n, d] and class indices (classification) or values (regression).
    func train(_ x: Tensor<Double>, classes: [Int]?, values: [Double]?, outputs: Int) throws {
        let n = x.shape[0]
        var rng = RandomGenerator(seed: seed)
        let order = rng.permutation(n)
        let held = Int(Double(n) * validationFraction)
        let (validationRows, trainRows) = (Array(order.prefix(held)), Array(order.dropFirst(held)))
        let xf = Tensor<Float>(converting: x)
        let spec = self.spec
        let net: Sequential<Float> = GlobalRandom.withSeed(seed) { spec.build(inputs: x.shape[1], outputs: outputs) }
        func loss(_ m: Sequential<Float>, _ rows: [Int]) -> Tensor<Float> {
            spec.loss(m(xf.indexSelect(axis: 0, indices: rows)), classes: classes.map { c in IndexTensor(rows.map { c[$0] }) },
                      values: values.map { v in Tensor(shape: [rows.count, 1], scalars: rows.map { Float(v[$0]) }) })
        }
        let trainer = Trainer(model: net, optimizer: Optimizer(rule: rule, learningRate: learningRate), trainingCount: trainRows.count,
                              options: options) { m, rows in loss(m as! Sequential<Float>, rows.map { trainRows[$0] }) }
        if held > 0 { trainer.validate = { m in ["loss": Double(loss(m as! Sequential<Float>, validationRows).scalar)] } }
        history = try trainer.fit()
        net.eval()
        network = net
        online = nil
    }

    public func fit(_ x: Tensor<Double>, labels: [Int]) throws {
        require(x.rank == 2 && x.shape[0] == labels.count && labels.allSatisfy { $0 >= 0 }, "MLPClassifier.fit: features \(x.shape) and \(labels.count) labels do not agree")
        try checkFit("MLPClassifier", x, labels.count)
        try train(x, classes: labels, values: nil, outputs: Swift.max(2, (labels.max() ?? 0) + 1))
    }

    func outputs(_ x: Tensor<Double>) -> Tensor<Float> {
        guard let network else { usageFailure("MLPClassifier: call fit before predicting") }
        return withoutGradients { network(Tensor<Float>(converting: x)) }
    }

    /// Class probabilities [n, k].
    public func predictProbabilities(_ x: Tensor<Double>) -> Tensor<Double> { Tensor<Double>(converting: outputs(x).softmax(axis: 1)) }
    public func predict(_ x: Tensor<Double>) -> [Int] { outputs(x).argmax(axis: 1) }
    public func score(_ x: Tensor<Double>, labels: [Int]) -> Double { Metrics.accuracy(predicted: predict(x), actual: labels) }
}

/// An MLP for regression (mean squared error), with the interface of ``MLPClassifier``.
public final class MLPRegressor {
    let core: MLPClassifier
    public init(hidden: [Int] = [100], activation: String = "relu", epochs: Int = 200, batchSize: Int? = 32, learningRate: Double = 1e-3,
                rule: any UpdateRule = Adam(), patience: Int? = 10, validationFraction: Double = 0.1, seed: UInt64 = 0) {
        core = MLPClassifier(hidden: hidden, activation: activation, epochs: epochs, batchSize: batchSize, learningRate: learningRate,
                             rule: rule, patience: patience, validationFraction: validationFraction, seed: seed)
    }
    public var history: TrainingHistory { core.history }
    public func fit(_ x: Tensor<Double>, _ y: [Double]) throws {
        require(x.rank == 2 && x.shape[0] == y.count, "MLPRegressor.fit: features \(x.shape) and \(y.count) targets do not agree")
        try checkFit("MLPRegressor", x, y.count, targets: y)
        try core.train(x, classes: nil, values: y, outputs: 1)
    }
    public func predict(_ x: Tensor<Double>) -> [Double] { core.outputs(x).scalars.map(Double.init) }
    /// R² on (x, y).
    public func score(_ x: Tensor<Double>, _ y: [Double]) -> Double { Metrics.r2(predicted: predict(x), actual: y) }
}
