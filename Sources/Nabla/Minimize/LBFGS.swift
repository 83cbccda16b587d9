/// Limited-memory BFGS with a strong-Wolfe line search, stepped like the established deep-
/// learning implementation: each call of ``step(_:objective:)`` runs up to `maxIterations`
/// iterations (and `maxEvaluations` evaluations) and keeps its curvature history for the next.
///
/// The direction comes from the two-loop recursion over the last `historySize` pairs
/// (s, y) with y·s > 1e-10, scaled by H₀ = y·s / y·y. The first iteration's trial step is
/// min(1, 1/‖g‖₁)·lr, later ones lr.
public final class LBFGS {
    public var learningRate: Double
    public var maxIterations: Int
    public var maxEvaluations: Int
    public var toleranceGradient: Double
    public var toleranceChange: Double
    public var historySize: Int

    /// Iterations and objective evaluations over all calls.
    public private(set) var iterations = 0
    public private(set) var evaluations = 0

    var direction: [Double] = []
    var stepLength = 0.0
    var s: [[Double]] = [], y: [[Double]] = [], rho: [Double] = []
    var hDiag = 1.0
    var previousGradient: [Double] = []

    public init(learningRate: Double = 1, maxIterations: Int = 20, maxEvaluations: Int? = nil,
                toleranceGradient: Double = 1e-7, toleranceChange: Double = 1e-9, historySize: Int = 100) {
        precondition(learningRate > 0 && maxIterations > 0 && historySize > 0, "LBFGS: learning rate, iterations and history must be positive")
        self.learningRate = learningRate
        self.maxIterations = maxIterations
        self.maxEvaluations = maxEvaluations ?? maxIterations * 5 / 4
        self.toleranceGradient = toleranceGradient
        self.toleranceChange = toleranceChange
        self.historySize = historySize
    }

    /// Why a call of ``step(_:objective:)`` returned.
    public enum StopReason: Sendable, Equatable {
        case gradientTolerance, maxIterations, maxEvaluations, stepTolerance, valueChangeTolerance, notDescent, stoppedByCallback
    }

    /// Runs one call: updates `x` in place and returns f at the start of the call.
    /// `onIteration(x, f, g)` is called after every iteration; returning false stops the call.
    @discardableResult
    public func step(_ x: inout [Double], objective: ObjectiveWithGradient,
                     onIteration: (([Double], Double, [Double]) -> Bool)? = nil) -> (initialValue: Double, stop: StopReason) {
        var (f, g) = objective(x)
        let orig = f
        var evals = 1
        evaluations += 1
        if maxAbs(g) <= toleranceGradient { return (orig, .gradientTolerance) }
        var k = 0
        var stop = StopReason.maxIterations
        while k < maxIterations {
            k += 1
            iterations += 1
            if iterations == 1 {
                direction = g.map { -$0 }
                s = []; y = []; rho = []
                hDiag = 1
            } else {
                let n = g.count
                var yk = [Double](repeating: 0, count: n), sk = [Double](repeating: 0, count: n)
                var ys = 0.0, yy = 0.0
                for i in 0..<n {
                    yk[i] = g[i] - previousGradient[i]
                    sk[i] = stepLength * direction[i]
                    ys += yk[i] * sk[i]
                    yy += yk[i] * yk[i]
                }
                if ys > 1e-10 {
                    if s.count == historySize { s.removeFirst(); y.removeFirst(); rho.removeFirst() }
                    s.append(sk); y.append(yk); rho.append(1 / ys)
                    hDiag = ys / yy
                }
                // Two-loop recursion, in place.
                var q = g.map { -$0 }
                var alpha = [Double](repeating: 0, count: s.count)
                q.withUnsafeMutableBufferPointer { qp in
                    for k in stride(from: s.count - 1, through: 0, by: -1) {
                        let a = rho[k] * dot(s[k], qp)
                        alpha[k] = a
                        axpyInPlace(-a, y[k], qp)
                    }
                    for i in 0..<n { qp[i] *= hDiag }
                    for k in 0..<s.count {
                        let beta = rho[k] * dot(y[k], qp)
                        let c = alpha[k] - beta
                        axpyInPlace(c, s[k], qp)
                    }
                }
                direction = q
            }
            previousGradient = g
            let fPrev = f
            stepLength = iterations == 1 ? Swift.min(1, 1 / g.reduce(0) { $0 + Swift.abs($1) }) * learningRate : learningRate
            let gtd = dot(g, direction)
            if gtd > -toleranceChange { stop = .notDescent; break }
            let ls = LineSearch.strongWolfe(objective, x: x, step: stepLength, direction: direction, value: f, gradient: g,
                                            slope: gtd, maxEvaluations: maxEvaluations - evals)
            f = ls.value; g = ls.gradient; stepLength = ls.step
            x = axpy(stepLength, direction, x)
            evals += ls.evaluations
            evaluations += ls.evaluations
            if let onIteration, !onIteration(x, f, g) { stop = .stoppedByCallback; break }
            if k == maxIterations { stop = .maxIterations; break }
            if evals >= maxEvaluations { stop = .maxEvaluations; break }
            if maxAbs(g) <= toleranceGradient { stop = .gradientTolerance; break }
            if maxAbs(direction) * Swift.abs(stepLength) <= toleranceChange { stop = .stepTolerance; break }
            if Swift.abs(f - fPrev) < toleranceChange { stop = .valueChangeTolerance; break }
        }
        return (orig, stop)
    }
}
