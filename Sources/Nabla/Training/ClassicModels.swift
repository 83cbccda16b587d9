import Foundation

// Classic models with a fit / predict / score interface. Each objective is written once as a
// differentiable function and handed to a solver (closed form where one exists, so the two can
// check each other).

/// Solves A x = b for symmetric positive definite A (n × n, row-major) by Cholesky; nil when A
/// is not positive definite.
func choleskySolve(_ a: [Double], _ b: [Double], n: Int) -> [Double]? {
    var l = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        for j in 0...i {
            var s = a[i * n + j]
            for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
            if i == j {
                guard s > 0 else { return nil }
                l[i * n + i] = s.squareRoot()
            } else {
                l[i * n + j] = s / l[j * n + j]
            }
        }
    }
    var y = b
    for i in 0..<n { for k in 0..<i { y[i] -= l[i * n + k] * y[k] }; y[i] /= l[i * n + i] }
    for i in stride(from: n - 1, through: 0, by: -1) { for k in (i + 1)..<n { y[i] -= l[k * n + i] * y[k] }; y[i] /= l[i * n + i] }
    return y
}

/// x w + b for each row of x (the prediction of the linear regressors).
func affinePrediction(_ model: String, _ x: Tensor<Double>, _ weights: [Double], _ intercept: Double) -> [Double] {
    require(x.rank == 2 && x.shape[1] == weights.count, "\(model).predict: features \(x.shape) but the model has \(weights.count)")
    let d = weights.count, v = x.scalars
    return (0..<x.shape[0]).map { i in (0..<d).reduce(intercept) { $0 + v[i * d + $1] * weights[$1] } }
}

/// Data a model cannot be fitted to (non-finite values); the message names the model, the row
/// and the column.
public struct FitError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

/// Shapes that disagree are API misuse (a trap naming the shapes); values that are NaN or
/// infinite are bad data (a thrown ``FitError``). Every model's `fit` throws only for the latter
/// (and the MLPs also when training diverges).
func checkFit(_ model: String, _ x: Tensor<Double>, _ count: Int, targets: [Double]? = nil) throws {
    require(x.rank == 2 && x.shape[0] == count && count > 0, "\(model).fit: features \(x.shape) and \(count) targets do not agree")
    if let i = x.scalars.firstIndex(where: { !$0.isFinite }) {
        let d = x.shape[1]
        throw FitError(message: "\(model).fit: feature \(i % d) of row \(i / d) is \(x.scalars[i]); the features must be finite")
    }
    if let targets, let i = targets.firstIndex(where: { !$0.isFinite }) {
        throw FitError(message: "\(model).fit: the target of row \(i) is \(targets[i]); targets must be finite")
    }
}

/// Least squares y ≈ X w + b, optionally with an L2 penalty α‖w‖² (ridge), solved in closed
/// form (normal equations on centred data) or by gradient descent on the mean squared error.
public struct LinearRegression: Sendable {
    public enum Solver: Sendable { case closedForm, gradientDescent(learningRate: Double, steps: Int) }
    public var solver: Solver
    /// Ridge penalty α (sum of squared errors + α‖w‖², as scikit-learn's Ridge); 0 for ordinary least squares.
    public var alpha: Double
    public internal(set) var weights: [Double] = []
    public internal(set) var intercept = 0.0
    /// Mean squared error after each gradient-descent step (empty for the closed form).
    public private(set) var lossHistory: [Double] = []
    /// The state of ``partialFit(_:_:learningRate:batchSize:)``.
    var online: OnlineLinearState?

    public init(solver: Solver = .closedForm, alpha: Double = 0) {
        require(alpha >= 0, "LinearRegression: alpha \(alpha) is negative")
        self.solver = solver
        self.alpha = alpha
    }

    public mutating func fit(_ x: Tensor<Double>, _ y: [Double]) throws {
        try checkFit("LinearRegression", x, y.count, targets: y)
        let (n, d) = (x.shape[0], x.shape[1])
        switch solver {
        case .closedForm:
            let v = x.scalars
            let xm = (0..<d).map { j in (0..<n).reduce(0) { $0 + v[$1 * d + j] } / Double(n) }
            let ym = y.reduce(0, +) / Double(n)
            var a = [Double](repeating: 0, count: d * d), b = [Double](repeating: 0, count: d)
            for i in 0..<n {
                for j in 0..<d {
                    let cj = v[i * d + j] - xm[j]
                    b[j] += cj * (y[i] - ym)
                    for k in 0...j { a[j * d + k] += cj * (v[i * d + k] - xm[k]) }
                }
            }
            for j in 0..<d { for k in 0..<j { a[k * d + j] = a[j * d + k] }; a[j * d + j] += alpha }
            // Exact normal equations; only a singular system (collinear or constant features)
            // gets a tiny ridge, which picks the smallest-norm solution in the limit.
            var solution = choleskySolve(a, b, n: d)
            if solution == nil {
                var jittered = a
                for j in 0..<d { jittered[j * d + j] += 1e-10 * Swift.max(1, a[j * d + j]) }
                solution = choleskySolve(jittered, b, n: d)
            }
            weights = solution ?? [Double](repeating: 0, count: d)
            intercept = ym - zip(weights, xm).reduce(0) { $0 + $1.0 * $1.1 }
        case let .gradientDescent(lr, steps):
            let yt = Tensor(shape: [n, 1], scalars: y)
            var theta = Tensor<Double>.zeros(shape: [d + 1])
            lossHistory = []
            let alpha = self.alpha
            for _ in 0..<steps {
                let (value, g) = valueWithGradient(at: theta) { t in
                    let w = t.slice(axis: 0, start: 0, end: d).reshaped(to: [d, 1]), b = t.slice(axis: 0, start: d, end: d + 1)
                    let mse = meanSquaredError(Tensor.matmul(x, w) + b, yt)
                    return alpha > 0 ? mse + (w * w).sum() * (alpha / Double(n)) : mse
                }
                lossHistory.append(value.scalar)
                theta = theta - g * lr
            }
            weights = Array(theta.scalars.prefix(d))
            intercept = theta.scalars[d]
        }
    }

    public func predict(_ x: Tensor<Double>) -> [Double] { affinePrediction("LinearRegression", x, weights, intercept) }

    /// R² on (x, y).
    public func score(_ x: Tensor<Double>, _ y: [Double]) -> Double { Metrics.r2(predicted: predict(x), actual: y) }
}

/// L1-penalized least squares (scikit-learn's objective): (1/2n)‖y − X w − b‖² + α‖w‖₁, by
/// proximal gradient steps (FISTA) with soft-thresholding.
public struct Lasso: Sendable {
    public var alpha: Double
    public var maxIterations: Int
    public var tolerance: Double
    public private(set) var weights: [Double] = []
    public private(set) var intercept = 0.0
    public private(set) var iterations = 0

    public init(alpha: Double = 1, maxIterations: Int = 10_000, tolerance: Double = 1e-10) {
        (self.alpha, self.maxIterations, self.tolerance) = (alpha, maxIterations, tolerance)
    }

    public mutating func fit(_ x: Tensor<Double>, _ y: [Double]) throws {
        try checkFit("Lasso", x, y.count, targets: y)
        let (n, d) = (x.shape[0], x.shape[1])
        let xm = x.mean(axes: [0], keepingDimensions: true), ym = y.reduce(0, +) / Double(n)
        let xc = (x - xm).detached(), yc = Tensor(shape: [n, 1], scalars: y.map { $0 - ym })
        // Lipschitz constant of the smooth part: λ_max(XᵀX)/n, by power iteration.
        var v = Tensor<Double>.ones(shape: [d, 1]), lipschitz = 1.0
        for _ in 0..<100 {
            let u = Tensor.matmul(xc, Tensor.matmul(xc, v), transposeA: true)
            lipschitz = u.norm().scalar / Swift.max(v.norm().scalar, 1e-300) / Double(n)
            v = u / Swift.max(u.norm().scalar, 1e-300)
        }
        let step = 1 / Swift.max(lipschitz, 1e-12)
        var w = Tensor<Double>.zeros(shape: [d, 1]), z = w, t = 1.0
        iterations = 0
        for k in 1...maxIterations {
            iterations = k
            let grad = Tensor.matmul(xc, Tensor.matmul(xc, z) - yc, transposeA: true) / Double(n)
            let moved = z - grad * step
            let next = moved.sign() * (moved.abs() - alpha * step).relu()   // soft-thresholding
            let tNext = (1 + (1 + 4 * t * t).squareRoot()) / 2
            z = next + (next - w) * ((t - 1) / tNext)
            let change = (next - w).abs().max().scalar
            w = next
            t = tNext
            if change <= tolerance { break }
        }
        weights = w.scalars
        intercept = ym - zip(weights, xm.scalars).reduce(0) { $0 + $1.0 * $1.1 }
    }

    public func predict(_ x: Tensor<Double>) -> [Double] { affinePrediction("Lasso", x, weights, intercept) }

    public func score(_ x: Tensor<Double>, _ y: [Double]) -> Double { Metrics.r2(predicted: predict(x), actual: y) }
}

/// Logistic regression, binary (one weight vector, sigmoid) or multinomial (softmax), with the
/// L2 penalty of scikit-learn at strength C:
/// L(W, b) = (1/n) Σ −log p(yᵢ | xᵢ) + ‖W‖² / (2 C n), intercept not penalized.
public struct LogisticRegression: Sendable {
    public enum Solver: String, Sendable, CaseIterable { case lbfgs, newton, gradientDescent = "gd", sgd }
    public var c: Double
    public var solver: Solver
    public var maxIterations: Int
    /// Stop when max |∂L/∂θᵢ| falls to this.
    public var tolerance: Double
    /// L-BFGS and Newton also stop when the relative decrease of L falls to this.
    public var valueTolerance: Double
    public var learningRate: Double
    public var seed: UInt64
    /// [k, d] for k > 2 classes, [1, d] for two.
    public internal(set) var weights: Tensor<Double> = Tensor.zeros(shape: [0, 0])
    public internal(set) var intercepts: [Double] = []
    public internal(set) var classCount = 0
    public private(set) var iterations = 0
    /// The objective at the solution.
    public private(set) var objective = Double.nan
    /// The state of ``partialFit(_:labels:classes:learningRate:batchSize:)``.
    var online: OnlineLinearState?

    /// The defaults are scikit-learn's (`tol` 1e-4 on the gradient, `ftol` 64 ε): the same
    /// solution to about six digits of the objective. Tighten `tolerance` for the exact optimum.
    public init(c: Double = 1, solver: Solver = .lbfgs, maxIterations: Int = 1000, tolerance: Double = 1e-4,
                valueTolerance: Double = 64 * Double.ulpOfOne, learningRate: Double = 0.5, seed: UInt64 = 0) {
        require(c > 0, "LogisticRegression: C \(c) must be positive")
        (self.c, self.solver, self.maxIterations, self.tolerance, self.valueTolerance, self.learningRate, self.seed) =
            (c, solver, maxIterations, tolerance, valueTolerance, learningRate, seed)
    }

    /// The objective as a function of θ = (W row-major, then b) on (x, labels): mean negative
    /// log-likelihood plus ‖W‖² / (2 C n), n = the number of rows of x.
    public static func objectiveFunction(x: Tensor<Double>, labels: [Int], classes k: Int, c: Double) -> (Tensor<Double>) -> Tensor<Double> {
        let (n, d) = (x.shape[0], x.shape[1])
        let rows = k == 2 ? 1 : k
        if k == 2 {
            let y = Tensor(shape: [n, 1], scalars: labels.map(Double.init))
            return { t in
                let w = t.slice(axis: 0, start: 0, end: d).reshaped(to: [d, 1]), b = t.slice(axis: 0, start: d, end: d + 1)
                return binaryCrossEntropy(logits: Tensor.matmul(x, w) + b, targets: y) + (w * w).sum() / (2 * c * Double(n))
            }
        }
        let targets = IndexTensor(labels)
        return { t in
            let w = t.slice(axis: 0, start: 0, end: rows * d).reshaped(to: [rows, d]), b = t.slice(axis: 0, start: rows * d, end: rows * (d + 1))
            return crossEntropy(logits: Tensor.matmul(x, w, transposeB: true) + b, targets: targets) + (w * w).sum() / (2 * c * Double(n))
        }
    }

    public mutating func fit(_ x: Tensor<Double>, labels: [Int]) throws {
        try checkFit("LogisticRegression", x, labels.count)
        require(labels.allSatisfy { $0 >= 0 }, "LogisticRegression.fit: labels must be class indices 0, 1, ...")
        let k = Swift.max(2, (labels.max() ?? 0) + 1), d = x.shape[1]
        classCount = k
        let rows = k == 2 ? 1 : k
        let f = LogisticRegression.objectiveFunction(x: x, labels: labels, classes: k, c: c)
        var theta = Tensor<Double>.zeros(shape: [rows * (d + 1)])
        switch solver {
        case .lbfgs:
            // As scikit-learn calls SciPy's L-BFGS-B (memory 10, up to 50 line-search steps).
            let objective = Objective(f, shape: theta.shape)
            let r = ScipyLBFGSB.minimize(objective.valueAndGradient, from: theta.scalars, gradientTolerance: tolerance,
                                         valueTolerance: valueTolerance, maxIterations: maxIterations, maxLineSearchSteps: 50)
            theta = Tensor(r.x)
            iterations = r.iterations
        case .newton:
            var options = MinimizeOptions(maxIterations: maxIterations, gradientTolerance: tolerance)
            options.valueTolerance = valueTolerance
            options.checksCurvature = false   // convex: a stationary point is the minimum
            let r = minimize(f, from: theta, method: .newton, options: options)
            theta = Tensor(r.x)
            iterations = r.iterations
        case .gradientDescent:
            var options = MinimizeOptions(maxIterations: maxIterations, gradientTolerance: tolerance, learningRate: learningRate)
            options.valueTolerance = 0
            options.checksCurvature = false   // convex: a stationary point is the minimum
            let r = minimize(f, from: theta, method: .gradientDescent, options: options)
            theta = Tensor(r.x)
            iterations = r.iterations
        case .sgd:
            // Mini-batches of 32, decaying step lr/√epoch, each batch's objective on its share.
            let n = x.shape[0]
            let sampler = BatchSampler(count: n, batchSize: 32, seed: seed)
            iterations = 0
            for epoch in 0..<maxIterations {
                let lr = learningRate / Double(epoch + 1).squareRoot()
                for rows in sampler.batches(epoch: epoch) {
                    let fb = LogisticRegression.objectiveFunction(x: x.indexSelect(axis: 0, indices: rows).detached(), labels: rows.map { labels[$0] },
                                                          classes: k, c: c * Double(n) / Double(rows.count))
                    theta = theta - gradient(at: theta, of: fb) * lr
                }
                iterations = epoch + 1
            }
        }
        objective = withoutGradients { f(theta).scalar }
        weights = theta.slice(axis: 0, start: 0, end: rows * d).reshaped(to: [rows, d]).detached()
        intercepts = Array(theta.scalars[(rows * d)...])
    }

    /// Class probabilities [n, k].
    public func predictProbabilities(_ x: Tensor<Double>) -> Tensor<Double> {
        require(x.rank == 2 && x.shape[1] == weights.shape[1], "LogisticRegression.predict: features \(x.shape) but the model has \(weights.shape[1])")
        return withoutGradients {
            let z = Tensor.matmul(x, weights, transposeB: true) + Tensor(intercepts)
            if classCount == 2 { let p = z.sigmoid(); return Tensor.concatenate([1 - p, p], axis: 1) }
            return z.softmax(axis: 1)
        }
    }

    public func predict(_ x: Tensor<Double>) -> [Int] { predictProbabilities(x).argmax(axis: 1) }
    public func score(_ x: Tensor<Double>, labels: [Int]) -> Double { Metrics.accuracy(predicted: predict(x), actual: labels) }
}

/// A linear support-vector machine, one-vs-rest for more than two classes, minimizing
/// ½‖w‖² + C Σ loss(yᵢ (w·xᵢ + b)) with the hinge loss (by subgradient descent) or the squared
/// hinge (smooth: by L-BFGS).
public struct LinearSVM: Sendable {
    public enum Loss: String, Sendable { case hinge, squaredHinge = "squared_hinge" }
    public var c: Double
    public var loss: Loss
    public var maxIterations: Int
    public private(set) var weights: Tensor<Double> = Tensor.zeros(shape: [0, 0])
    public private(set) var intercepts: [Double] = []
    public private(set) var classCount = 0

    public init(c: Double = 1, loss: Loss = .squaredHinge, maxIterations: Int = 1000) {
        require(c > 0, "LinearSVM: C \(c) must be positive")
        (self.c, self.loss, self.maxIterations) = (c, loss, maxIterations)
    }

    static func objective(x: Tensor<Double>, signs: Tensor<Double>, c: Double, loss: Loss) -> (Tensor<Double>) -> Tensor<Double> {
        let d = x.shape[1]
        return { t in
            let w = t.slice(axis: 0, start: 0, end: d).reshaped(to: [d, 1]), b = t.slice(axis: 0, start: d, end: d + 1)
            let margins = hingeLoss(scores: Tensor.matmul(x, w) + b, labels: signs, squared: loss == .squaredHinge, reduction: .sum)
            return (w * w).sum() * 0.5 + margins * c
        }
    }

    public mutating func fit(_ x: Tensor<Double>, labels: [Int]) throws {
        try checkFit("LinearSVM", x, labels.count)
        let k = Swift.max(2, (labels.max() ?? 0) + 1), (n, d) = (x.shape[0], x.shape[1])
        classCount = k
        let machines = k == 2 ? [1] : Array(0..<k)
        var w: [Double] = [], b: [Double] = []
        for positive in machines {
            let signs = Tensor(shape: [n, 1], scalars: labels.map { $0 == positive ? 1.0 : -1.0 })
            let f = LinearSVM.objective(x: x, signs: signs, c: c, loss: loss)
            var theta = Tensor<Double>.zeros(shape: [d + 1])
            switch loss {
            case .squaredHinge:
                var options = MinimizeOptions(maxIterations: maxIterations, gradientTolerance: 1e-6)
                options.checksCurvature = false   // convex: a stationary point is the minimum
                theta = Tensor(minimize(f, from: theta, method: .lbfgs, options: options).x)
            case .hinge:
                // Subgradient descent with step 1/(λ t) on the objective divided by C n (λ = 1/(C n)),
                // keeping the best iterate (the objective is not monotone along subgradients).
                var best = theta, bestValue = Double.infinity
                for t in 1...maxIterations {
                    let (value, g) = valueWithGradient(at: theta, of: f)
                    if value.scalar < bestValue { bestValue = value.scalar; best = theta }
                    theta = theta - g * (1 / Double(t))   // 1/(λt) on f/(Cn)
                }
                theta = best
            }
            w += theta.scalars.prefix(d)
            b.append(theta.scalars[d])
        }
        weights = Tensor(shape: [machines.count, d], scalars: w)
        intercepts = b
    }

    /// Decision values [n, machines].
    public func decisionFunction(_ x: Tensor<Double>) -> Tensor<Double> {
        require(x.rank == 2 && x.shape[1] == weights.shape[1], "LinearSVM.predict: features \(x.shape) but the model has \(weights.shape[1])")
        return withoutGradients { Tensor.matmul(x, weights, transposeB: true) + Tensor(intercepts) }
    }

    public func predict(_ x: Tensor<Double>) -> [Int] {
        let s = decisionFunction(x)
        return classCount == 2 ? s.scalars.map { $0 > 0 ? 1 : 0 } : s.argmax(axis: 1)
    }

    public func score(_ x: Tensor<Double>, labels: [Int]) -> Double { Metrics.accuracy(predicted: predict(x), actual: labels) }
}
