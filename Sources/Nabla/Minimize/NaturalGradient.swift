/// Natural-gradient descent for classifiers with a categorical likelihood
/// p(y | x, θ) = softmax(z(x, θ))_y — softmax and logistic regression, and small networks.
///
/// The step is θ ← θ − lr (F + λI)⁻¹ ∇L, where L is the mean cross-entropy and F the Fisher
/// information: exact, F = (1/N) Σᵢ Jᵢᵀ (diag pᵢ − pᵢ pᵢᵀ) Jᵢ with Jᵢ = ∂zᵢ/∂θ (the
/// Jacobian of the logits, by forward mode), or empirical, F = (1/N) Σᵢ gᵢ gᵢᵀ with the
/// per-sample gradients gᵢ = Jᵢᵀ (pᵢ − e_yᵢ). Preconditioning by F makes the step invariant to
/// how the model is parametrized, which is what rescues plain gradient descent on badly scaled
/// features.
public struct NaturalGradientDescent {
    public enum Fisher: Sendable { case exact, empirical }
    public var learningRate: Double
    /// λ added to the diagonal of F.
    public var damping: Double
    public var fisher: Fisher

    public init(learningRate: Double = 1, damping: Double = 1e-4, fisher: Fisher = .exact) {
        require(learningRate > 0 && damping >= 0, "NaturalGradientDescent: learning rate must be positive and damping non-negative")
        self.learningRate = learningRate
        self.damping = damping
        self.fisher = fisher
    }

    /// The Fisher information at θ (P × P, P = θ.count) for `logits(θ)` of shape [N, K].
    public func fisherInformation(at theta: Tensor<Double>, labels: [Int], logits: (Tensor<Double>) -> Tensor<Double>) -> Tensor<Double> {
        let p = theta.count
        let z = withoutGradients { logits(theta) }
        require(z.rank == 2 && z.shape[0] == labels.count, "natural gradient: logits must be [N, K] with one label per row, got \(z.shape) for \(labels.count) labels")
        let (n, k) = (z.shape[0], z.shape[1])
        let jac = jacobian(at: theta.flattened(), mode: .byColumns) { logits($0.reshaped(to: theta.shape)) }.reshaped(to: [n, k, p])
        let probs = withoutGradients { z.softmax(axis: 1) }
        switch fisher {
        case .exact:
            // A = diag(p) − p pᵀ per sample: [N, K, K]
            let outer = Tensor.matmul(probs.reshaped(to: [n, k, 1]), probs.reshaped(to: [n, 1, k]))
            let eye = Tensor<Double>.identity(k).reshaped(to: [1, k, k])
            let a = eye * probs.reshaped(to: [n, 1, k]) - outer
            let f = Tensor.matmul(Tensor.matmul(jac, a, transposeA: true), jac)  // [N, P, P]
            return f.mean(axes: [0])
        case .empirical:
            var onehot = [Double](repeating: 0, count: n * k)
            for (i, y) in labels.enumerated() { onehot[i * k + y] = 1 }
            let residual = probs - Tensor(shape: [n, k], scalars: onehot)
            let g = Tensor.matmul(jac, residual.reshaped(to: [n, k, 1]), transposeA: true).reshaped(to: [n, p])
            return Tensor.matmul(g, g, transposeA: true) / Double(n)
        }
    }

    /// Mean cross-entropy of `logits` against `labels`.
    public static func loss(_ z: Tensor<Double>, labels: [Int]) -> Tensor<Double> {
        -z.logSoftmax(axis: 1).gather(axis: 1, index: IndexTensor(shape: [labels.count, 1], values: labels)).mean()
    }

    /// One step; returns the loss before it.
    @discardableResult
    public func step(_ theta: inout Tensor<Double>, labels: [Int], logits: @escaping (Tensor<Double>) -> Tensor<Double>) -> Double {
        let (value, g) = valueWithGradient(at: theta) { NaturalGradientDescent.loss(logits($0), labels: labels) }
        let f = fisherInformation(at: theta, labels: labels, logits: logits)
        let p = theta.count
        var h = f.rows
        for i in 0..<p { h[i][i] += damping }
        let direction = Minimizer.dampedNewtonStep(h, g.scalars)  // solves (F + λI) d = −g
        theta = withoutGradients { theta + Tensor(shape: theta.shape, scalars: direction) * learningRate }
        return value.scalar
    }
}
