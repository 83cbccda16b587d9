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

/// Autoencoders whose reconstruction error scores rows: fitted on normal rows only, anything they
/// cannot rebuild well is unusual. Features are standardized on the fitting rows.
///
/// Each of `members` autoencoders (seeds `seed`, `seed + 1`, …) is trained alone and the
/// detector's score is the mean of theirs, which removes most of the spread one initialization
/// leaves. By default (``Scoring/standardized``) a row's squared residual on each feature is
/// divided by that feature's mean squared residual on the fitting rows: the negative
/// log-likelihood, up to constants, of a Gaussian model of the residuals, so a feature that is
/// always rebuilt well (a blank border pixel) counts for much when it is not, and a noisy one
/// counts for little.
public final class AutoencoderDetector {
    public enum Scoring: String, Sendable, Codable, CaseIterable {
        /// Σⱼ rⱼ² / vⱼ / D, with vⱼ the mean squared residual of feature j on the fitting rows.
        case standardized
        /// Σⱼ rⱼ² / D, the plain mean squared reconstruction error.
        case meanSquaredError
    }

    public let hidden: Int, code: Int, members: Int
    public var epochs: Int, learningRate: Double, batchSize: Int, seed: UInt64
    public var scoring: Scoring
    public private(set) var networks: [Sequential<Float>] = []
    public private(set) var scaler: FeatureScaler?
    /// Per member, each feature's mean squared residual on the fitting rows (floored).
    public private(set) var residualVariances: [[Double]] = []
    /// The first member's training history.
    public private(set) var history = TrainingHistory()

    public init(hidden: Int = 32, code: Int = 8, members: Int = 5, epochs: Int = 100, learningRate: Double = 1e-3, batchSize: Int = 32,
                scoring: Scoring = .standardized, seed: UInt64 = 0) {
        require(hidden > 0 && code > 0 && members > 0 && epochs > 0 && learningRate > 0 && batchSize > 0,
                "AutoencoderDetector: sizes, members, epochs, learning rate and batch size must be positive (hidden \(hidden), code \(code), members \(members), epochs \(epochs), learning rate \(learningRate), batch size \(batchSize))")
        (self.hidden, self.code, self.members, self.epochs, self.learningRate, self.batchSize) = (hidden, code, members, epochs, learningRate, batchSize)
        (self.scoring, self.seed) = (scoring, seed)
    }

    /// The network D → hidden → code → hidden → D (tanh), for `d` features.
    public func architecture(features d: Int) -> Sequential<Float> {
        Sequential<Float>(Linear(inputSize: d, outputSize: hidden), Activation(.tanh), Linear(inputSize: hidden, outputSize: code), Activation(.tanh),
                          Linear(inputSize: code, outputSize: hidden), Activation(.tanh), Linear(inputSize: hidden, outputSize: d))
    }

    /// Trains every member on normal rows [n, d] (mean squared reconstruction error, Adam).
    public func fit(_ x: Tensor<Double>) throws {
        try checkFit("AutoencoderDetector", x, x.shape.first ?? 0)
        let scaler = FeatureScaler.standard(fittedOn: x)
        let xs = Tensor<Float>(converting: scaler.transform(x))
        var networks: [Sequential<Float>] = [], variances: [[Double]] = []
        for m in 0..<members {
            let memberSeed = seed &+ UInt64(m)
            let net = GlobalRandom.withSeed(memberSeed) { architecture(features: x.shape[1]) }
            let trainer = Trainer(model: net, optimizer: Optimizer(rule: Adam(), learningRate: learningRate), trainingCount: x.shape[0],
                                  options: TrainingOptions(epochs: epochs, batchSize: batchSize, seed: memberSeed)) { model, rows in
                let batch = xs.indexSelect(axis: 0, indices: rows)
                return meanSquaredError((model as! Sequential<Float>)(batch), batch)
            }
            let h = try trainer.fit()
            if m == 0 { history = h }
            net.eval()
            networks.append(net)
            variances.append(Self.residualVariance(network: net, rows: xs))
        }
        (self.networks, self.scaler, self.residualVariances) = (networks, scaler, variances)
    }

    /// Each feature's mean squared residual over `rows`, floored at 10⁻⁶ of their mean (and at
    /// 10⁻³⁰) so that a feature rebuilt exactly cannot divide by zero.
    static func residualVariance(network: Sequential<Float>, rows xs: Tensor<Float>) -> [Double] {
        let v = withoutGradients { let r = network(xs) - xs; return (r * r).mean(axes: [0]) }.scalars.map { Double($0) }
        let floor = Swift.max(1e-30, 1e-6 * v.reduce(0, +) / Double(Swift.max(1, v.count)))
        return v.map { Swift.max($0, floor) }
    }

    /// Puts back a fitted detector (see ``DetectorCard``).
    public func restore(networks: [Sequential<Float>], scaler: FeatureScaler, residualVariances: [[Double]]) {
        require(networks.count == members && residualVariances.count == members && residualVariances.allSatisfy { $0.count == scaler.shift.count },
                "AutoencoderDetector.restore: \(networks.count) networks and \(residualVariances.count) residual variances for \(members) members of \(scaler.shift.count) features")
        networks.forEach { $0.eval() }
        (self.networks, self.scaler, self.residualVariances) = (networks, scaler, residualVariances)
    }

    /// Each row's score: the members' mean of their reconstruction errors, weighted as
    /// ``scoring`` says (in standardized units).
    public func score(_ x: Tensor<Double>) -> [Double] {
        guard !networks.isEmpty, let scaler else { usageFailure("AutoencoderDetector.score: call fit first") }
        require(x.rank == 2 && x.shape[1] == scaler.shift.count, "AutoencoderDetector.score: rows of shape \(x.shape) for a detector of \(scaler.shift.count) features")
        let xs = Tensor<Float>(converting: scaler.transform(x))
        let (n, d) = (x.shape[0], x.shape[1])
        var total = [Double](repeating: 0, count: n)
        for (network, variance) in zip(networks, residualVariances) {
            let r = withoutGradients { network(xs) - xs }.scalars
            for i in 0..<n {
                var s = 0.0
                for j in 0..<d {
                    let e = Double(r[i * d + j])
                    s += scoring == .standardized ? e * e / variance[j] : e * e
                }
                total[i] += s / Double(d)
            }
        }
        return total.map { $0 / Double(networks.count) }
    }
}
