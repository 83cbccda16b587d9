/// Anomaly scores from gradients and models. Every score is "higher is more anomalous".
public enum AnomalyScores {
    /// The maximum-softmax-probability baseline: 1 − max softmax(logits) per row.
    public static func maximumSoftmax<Scalar: TensorScalar>(logits: Tensor<Scalar>) -> [Double] {
        require(logits.rank == 2 && logits.shape[1] >= 2, "maximumSoftmax: logits of shape \(logits.shape) are not [rows, classes ≥ 2]")
        let p = withoutGradients { logits.softmax(axis: 1).max(axes: [1]) }
        return p.scalars.map { 1 - Double($0) }
    }

    /// GradNorm (Huang, Geng and Li, 2021): the L1 norm of the gradient of KL(uniform ‖
    /// softmax(z)) with respect to the last layer's weights, per row, negated (in-distribution rows
    /// have the larger norms). With z = W h + b and p = softmax(z), the gradient with respect to
    /// W is (p − 1/K) hᵀ, whose L1 norm is ‖p − 1/K‖₁ ‖h‖₁.
    ///
    /// - Parameters:
    ///   - features: h, the inputs of the last layer [rows, H].
    ///   - logits: z [rows, K].
    public static func gradNorm<Scalar: TensorScalar>(features h: Tensor<Scalar>, logits z: Tensor<Scalar>) -> [Double] {
        require(h.rank == 2 && z.rank == 2 && h.shape[0] == z.shape[0] && z.shape[1] >= 2,
                "gradNorm: features \(h.shape) and logits \(z.shape) must be [rows, H] and [rows, K ≥ 2]")
        let k = z.shape[1]
        let (p, hs) = withoutGradients { (z.softmax(axis: 1).scalars.map { Double($0) }, h.abs().sum(axes: [1]).scalars.map { Double($0) }) }
        return (0..<z.shape[0]).map { i in
            let deviation = (0..<k).reduce(0.0) { $0 + Swift.abs(p[i * k + $1] - 1 / Double(k)) }
            return -(deviation * hs[i])
        }
    }
}

/// An autoencoder whose reconstruction error scores rows: fitted on normal rows only, anything
/// it cannot rebuild well is unusual. Features are standardized on the fitting rows.
public final class AutoencoderDetector {
    public let hidden: Int, code: Int
    public var epochs: Int, learningRate: Double, batchSize: Int, seed: UInt64
    public private(set) var network: Sequential<Float>?
    public private(set) var scaler: FeatureScaler?
    public private(set) var history = TrainingHistory()

    public init(hidden: Int = 32, code: Int = 8, epochs: Int = 100, learningRate: Double = 1e-3, batchSize: Int = 32, seed: UInt64 = 0) {
        require(hidden > 0 && code > 0 && epochs > 0 && learningRate > 0 && batchSize > 0,
                "AutoencoderDetector: sizes, epochs, learning rate and batch size must be positive")
        (self.hidden, self.code, self.epochs, self.learningRate, self.batchSize, self.seed) = (hidden, code, epochs, learningRate, batchSize, seed)
    }

    /// The network D → hidden → code → hidden → D (tanh), for `d` features.
    public func architecture(features d: Int) -> Sequential<Float> {
        Sequential<Float>(Linear(inputSize: d, outputSize: hidden), Activation(.tanh), Linear(inputSize: hidden, outputSize: code), Activation(.tanh),
                          Linear(inputSize: code, outputSize: hidden), Activation(.tanh), Linear(inputSize: hidden, outputSize: d))
    }

    /// Trains on normal rows [n, d] (mean squared reconstruction error, Adam).
    public func fit(_ x: Tensor<Double>) throws {
        try checkFit("AutoencoderDetector", x, x.shape.first ?? 0)
        let scaler = FeatureScaler.standard(fittedOn: x)
        let xs = Tensor<Float>(converting: scaler.transform(x))
        let net = GlobalRandom.withSeed(seed) { architecture(features: x.shape[1]) }
        let trainer = Trainer(model: net, optimizer: Optimizer(rule: Adam(), learningRate: learningRate), trainingCount: x.shape[0],
                              options: TrainingOptions(epochs: epochs, batchSize: batchSize, seed: seed)) { m, rows in
            let batch = xs.indexSelect(axis: 0, indices: rows)
            return meanSquaredError((m as! Sequential<Float>)(batch), batch)
        }
        history = try trainer.fit()
        net.eval()
        (network, self.scaler) = (net, scaler)
    }

    /// Puts back a fitted detector (see ``DetectorCard``).
    public func restore(network: Sequential<Float>, scaler: FeatureScaler) {
        network.eval()
        (self.network, self.scaler) = (network, scaler)
    }

    /// The mean squared reconstruction error of each row (in standardized units).
    public func score(_ x: Tensor<Double>) -> [Double] {
        guard let network, let scaler else { usageFailure("AutoencoderDetector.score: call fit first") }
        require(x.rank == 2 && x.shape[1] == scaler.shift.count, "AutoencoderDetector.score: rows of shape \(x.shape) for a detector of \(scaler.shift.count) features")
        let xs = Tensor<Float>(converting: scaler.transform(x))
        let error = withoutGradients { let r = network(xs) - xs; return (r * r).mean(axes: [1]) }
        return error.scalars.map { Double($0) }
    }
}
