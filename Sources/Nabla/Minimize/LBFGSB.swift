/// L-BFGS as SciPy's `L-BFGS-B` runs it on an unconstrained problem (the algorithm of Byrd, Lu,
/// Nocedal and Zhu, version 3.0), step for step: the first trial step is 1/‖g‖₂ and later ones 1;
/// the Moré–Thuente line search with ftol 1e-3, gtol 0.9, xtol 0.1; a curvature pair is kept when
/// yᵀs > ε·(−gᵀs); H₀ = (yᵀs / yᵀy) I; it stops when max |gᵢ| ≤ `gradientTolerance` or when
/// (f_prev − f) ≤ `valueTolerance` · max(|f_prev|, |f|, 1). Used where matching SciPy's (and
/// scikit-learn's) results matters more than the fewest evaluations.
public enum ScipyLBFGSB {
    public struct Result {
        public var x: [Double]
        public var value: Double
        public var gradient: [Double]
        public var iterations: Int
        public var evaluations: Int
        public var converged: Bool
    }

    public static func minimize(_ objective: ObjectiveWithGradient, from x0: [Double], memory: Int = 10,
                                gradientTolerance: Double = 1e-5, valueTolerance: Double = 1e7 * Double.ulpOfOne,
                                maxIterations: Int = 15_000, maxLineSearchSteps: Int = 20) -> Result {
        var x = x0
        var (f, g) = objective(x)
        var evaluations = 1, iterations = 0
        var pairs = CurvaturePairs()
        var d: [Double] = []
        var gamma = 1.0
        if maxAbs(g) <= gradientTolerance { return Result(x: x, value: f, gradient: g, iterations: 0, evaluations: 1, converged: true) }
        while iterations < maxIterations {
            // Direction: the two-loop recursion (the compact form of L-BFGS-B without bounds).
            pairs.direction(gradient: g, hDiag: gamma, into: &d)
            let gd = dot(g, d)
            guard gd < 0 else { break }
            let t0 = iterations == 0 && pairs.count == 0 ? Swift.min(1 / norm2(d), 1e10) : 1
            guard let ls = LineSearch.moreThuente(objective, x: x, step: t0, direction: d, value: f, slope: gd,
                                                  c1: 1e-3, c2: 0.9, xtol: 0.1, minimumStep: 0, maximumStep: 1e10,
                                                  maxEvaluations: maxLineSearchSteps) else { break }
            evaluations += ls.evaluations
            iterations += 1
            let step = scaled(ls.step, d)
            let newG = ls.gradient
            let yk = subtract(newG, g)
            let fPrev = f
            x = axpy(1, step, x)
            f = ls.value
            let oldSlope = gd * ls.step
            g = newG
            if maxAbs(g) <= gradientTolerance { return Result(x: x, value: f, gradient: g, iterations: iterations, evaluations: evaluations, converged: true) }
            if fPrev - f <= valueTolerance * Swift.max(Swift.abs(fPrev), Swift.abs(f), 1) {
                return Result(x: x, value: f, gradient: g, iterations: iterations, evaluations: evaluations, converged: true)
            }
            let ys = dot(yk, step)
            if ys > Double.ulpOfOne * -oldSlope {
                pairs.append(s: step, y: yk, ys: ys, capacity: memory)
                gamma = ys / dot(yk, yk)
            }
        }
        return Result(x: x, value: f, gradient: g, iterations: iterations, evaluations: evaluations, converged: false)
    }
}
