import CNablaKernels

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

    /// What persists between calls: the last direction and step, the curvature pairs.
    struct History {
        var direction: [Double] = []
        var stepLength = 0.0
        var pairs = CurvaturePairs()
        var hDiag = 1.0
        var previousGradient: [Double] = []
        /// The newest pair's room, reused every iteration.
        var newS: [Double] = [], newY: [Double] = []
    }
    var history = History()

    public init(learningRate: Double = 1, maxIterations: Int = 20, maxEvaluations: Int? = nil,
                toleranceGradient: Double = 1e-7, toleranceChange: Double = 1e-9, historySize: Int = 100) {
        require(learningRate > 0 && maxIterations > 0 && historySize > 0, "LBFGS: learning rate, iterations and history must be positive")
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
        // Work on local copies (the class's stored properties would be checked for exclusive
        // access on every use in the loops) and store them back at the end.
        var h = history
        var iterationCount = iterations, evaluationCount = evaluations
        defer { history = h; iterations = iterationCount; evaluations = evaluationCount }
        var (f, g) = objective(x)
        let orig = f
        var evals = 1
        evaluationCount += 1
        if maxAbs(g) <= toleranceGradient { return (orig, .gradientTolerance) }
        let n = g.count
        var k = 0
        var stop = StopReason.maxIterations
        while k < maxIterations {
            k += 1
            iterationCount += 1
            if iterationCount == 1 {
                h.direction = g.map { -$0 }
                h.pairs.removeAll()
                h.hDiag = 1
            } else {
                // y = g − g_prev and s = t·d, kept only when the curvature condition holds
                // (ys > 1e-10).
                var ys = 0.0, yy = 0.0
                let t = h.stepLength
                if h.newS.count != n { (h.newS, h.newY) = ([Double](repeating: 0, count: n), [Double](repeating: 0, count: n)) }
                h.newY.withUnsafeMutableBufferPointer { yk in h.newS.withUnsafeMutableBufferPointer { sk in
                    for i in 0..<n {
                        yk[i] = g[i] - h.previousGradient[i]
                        sk[i] = t * h.direction[i]
                        yy += yk[i] * yk[i]
                        ys += yk[i] * sk[i]
                    }
                } }
                if ys > 1e-10 {
                    h.pairs.append(s: h.newS, y: h.newY, ys: ys, capacity: historySize)
                    h.hDiag = ys / yy
                }
                h.pairs.direction(gradient: g, hDiag: h.hDiag, into: &h.direction)
            }
            h.previousGradient = g
            let fPrev = f
            h.stepLength = iterationCount == 1 ? Swift.min(1, 1 / g.reduce(0) { $0 + Swift.abs($1) }) * learningRate : learningRate
            let gtd = dot(g, h.direction)
            if gtd > -toleranceChange { stop = .notDescent; break }
            let ls = LineSearch.strongWolfe(objective, x: x, step: h.stepLength, direction: h.direction, value: f, gradient: g,
                                            slope: gtd, maxEvaluations: Swift.min(25, maxEvaluations - evals))
            f = ls.value; g = ls.gradient; h.stepLength = ls.step
            x.withUnsafeMutableBufferPointer { axpyInPlace(h.stepLength, h.direction, $0) }
            evals += ls.evaluations
            evaluationCount += ls.evaluations
            if let onIteration, !onIteration(x, f, g) { stop = .stoppedByCallback; break }
            if k == maxIterations { stop = .maxIterations; break }
            if evals >= maxEvaluations { stop = .maxEvaluations; break }
            if toleranceGradient > 0 && maxAbs(g) <= toleranceGradient { stop = .gradientTolerance; break }
            if toleranceChange > 0 && maxAbs(h.direction) * Swift.abs(h.stepLength) <= toleranceChange { stop = .stepTolerance; break }
            if Swift.abs(f - fPrev) < toleranceChange { stop = .valueChangeTolerance; break }
        }
        return (orig, stop)
    }
}
