/// The optimum of a one-layer model's training problem, found by a solver rather than by epochs
/// of an optimizer: the problems of `linear`, `logistic` and `svm` are convex, so a solver reaches
/// the answer that scikit-learn gives, where a fixed budget of Adam steps may stop short of it.
public struct ConvexSolution: Sendable {
    /// The layer's weight [outputs, inputs] and bias [outputs], in the layout of ``Linear``.
    public var weight: Tensor<Double>
    public var bias: [Double]
    /// How the optimum was found, for the user ("closed form", "L-BFGS, 23 iterations").
    public var method: String
}

extension ModelSpec {
    /// Whether the model is one linear layer on a convex loss (linear, logistic, svm).
    public var isConvex: Bool { kind == .linear || kind == .logistic || kind == .svm }

    /// Solves the model's problem on features `x` [n, d]:
    /// - `linear`: least squares with the penalty λ/2 ‖W‖² on the mean squared error, in
    ///   closed form (scikit-learn's `LinearRegression` for λ = 0, `Ridge` otherwise);
    /// - `logistic`: multinomial (binary for two classes) logistic regression with scikit-learn's
    ///   L2 penalty, C = 1/(n λ), or C = 1 (its default) when λ = 0, by L-BFGS to its tolerance;
    /// - `svm`: one-vs-rest linear SVMs with the squared hinge loss (scikit-learn's `LinearSVC`),
    ///   with the same C, by L-BFGS.
    /// Throws ``FitError`` for non-finite features or targets.
    /// For two classes the scores are (0, z): the same decisions and probabilities as one score z.
    public func solve(features x: Tensor<Double>, labels: [Int]? = nil, classes: Int = 0, values: [Double]? = nil,
                      l2: Double = 0) throws -> ConvexSolution {
        require(isConvex, "ModelSpec.solve: \(self) is not a one-layer convex model")
        require(x.rank == 2 && x.shape[0] > 0, "ModelSpec.solve: features of shape \(x.shape) are not a non-empty [n, d] matrix")
        require(l2 >= 0 && l2.isFinite, "ModelSpec.solve: the L2 strength \(l2) is not a non-negative number")
        let (n, d) = (x.shape[0], x.shape[1])
        let c = l2 > 0 ? 1 / (Double(n) * l2) : 1
        switch kind {
        case .linear:
            guard let values else { usageFailure("ModelSpec.solve: a linear model needs target values") }
            var model = LinearRegression(solver: .closedForm, alpha: Double(n) * l2 / 2)
            try model.fit(x, values)
            return ConvexSolution(weight: Tensor(shape: [1, d], scalars: model.weights), bias: [model.intercept],
                                  method: l2 > 0 ? "closed form (ridge)" : "closed form (least squares)")
        case .logistic, .svm:
            guard let labels else { usageFailure("ModelSpec.solve: a classifier needs labels") }
            require(classes >= 2 && labels.allSatisfy { $0 >= 0 && $0 < classes },
                    "ModelSpec.solve: labels must be classes 0..<\(classes) with at least two classes")
            let weight: Tensor<Double>, bias: [Double], method: String
            if kind == .logistic {
                var model = LogisticRegression(c: c)
                try model.fit(x, labels: labels)
                (weight, bias) = (model.weights, model.intercepts)
                method = "L-BFGS, \(model.iterations) iteration\(model.iterations == 1 ? "" : "s")"
            } else {
                var model = LinearSVM(c: c, loss: .squaredHinge)
                try model.fit(x, labels: labels)
                (weight, bias) = (model.weights, model.intercepts)
                method = "L-BFGS (one-vs-rest)"
            }
            // The fitted models count classes from the labels seen; pad to `classes` outputs.
            var rows = weight.shape[0] == 1 ? [[Double](repeating: 0, count: d)] + weight.rows : weight.rows
            var offsets = weight.shape[0] == 1 ? [0] + bias : bias
            while rows.count < classes { rows.append([Double](repeating: 0, count: d)); offsets.append(-1e30) }
            return ConvexSolution(weight: Tensor(shape: [classes, d], scalars: rows.flatMap { $0 }), bias: offsets, method: method)
        case .mlp, .cnn:
            usageFailure("ModelSpec.solve: an MLP is not convex")
        }
    }
}
