/// The value and gradient of an objective at a point of Rⁿ.
public typealias ObjectiveWithGradient = ([Double]) -> (value: Double, gradient: [Double])

/// Line searches along a descent direction d from x: they look for a step t that decreases f
/// enough (Armijo) and, for strong Wolfe, also flattens the slope.
public enum LineSearch {
    /// Minimizer of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clamped to
    /// `bounds` (default: the interval between the two points); the middle when no real minimum.
    static func cubicInterpolate(_ x1: Double, _ f1: Double, _ g1: Double, _ x2: Double, _ f2: Double, _ g2: Double,
                                            bounds: (Double, Double)? = nil) -> Double {
        let (lo, hi) = bounds ?? (Swift.min(x1, x2), Swift.max(x1, x2))
        let d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        let d2sq = d1 * d1 - g1 * g2
        if d2sq >= 0 {
            let d2 = d2sq.squareRoot()
            let m = x1 <= x2 ? x2 - (x2 - x1) * (g2 + d2 - d1) / (g2 - g1 + 2 * d2)
                             : x1 - (x1 - x2) * (g1 + d2 - d1) / (g1 - g2 + 2 * d2)
            return Swift.min(Swift.max(m, lo), hi)
        }
        return (lo + hi) / 2
    }

    /// The outcome of a line search.
    public struct Result {
        public var value: Double
        public var gradient: [Double]
        public var step: Double
        public var evaluations: Int
    }

    /// Strong-Wolfe line search (bracketing, then zoom by cubic interpolation), with
    /// c1 = 1e-4, c2 = 0.9 and a fixed bracket tolerance of 1e-9, as in the established L-BFGS
    /// implementations. `f`, `g` and `slope` (= g·d) are at x; `t` is the first trial step.
    public static func strongWolfe(_ objective: ObjectiveWithGradient, x: [Double], step t0: Double, direction d: [Double],
                                              value f: Double, gradient g: [Double], slope gtd: Double,
                                              c1: Double = 1e-4, c2: Double = 0.9, tolerance: Double = 1e-9,
                                              maxEvaluations maxLS: Int = 25) -> Result {
        var t = t0
        let dNorm = maxAbs(d)
        var (fNew, gNew) = objective(axpy(t, d, x))
        var evals = 1
        var gtdNew = dot(gNew, d)
        var (tPrev, fPrev, gPrev, gtdPrev) = (0.0, f, g, gtd)
        var done = false
        var it = 0
        var bracket: [Double] = [], bracketF: [Double] = [], bracketG: [[Double]] = [], bracketGtd: [Double] = []
        while it < maxLS {
            // A non-finite value (outside the function's domain, or an overflow) ends the
            // extrapolation like a value that is too high: the minimum lies before it.
            if !fNew.isFinite || !gtdNew.isFinite || fNew > f + c1 * t * gtd || (it > 1 && fNew >= fPrev) {
                bracket = [tPrev, t]; bracketF = [fPrev, fNew]; bracketG = [gPrev, gNew]; bracketGtd = [gtdPrev, gtdNew]
                break
            }
            if Swift.abs(gtdNew) <= -c2 * gtd {
                bracket = [t]; bracketF = [fNew]; bracketG = [gNew]; done = true
                break
            }
            if gtdNew >= 0 {
                bracket = [tPrev, t]; bracketF = [fPrev, fNew]; bracketG = [gPrev, gNew]; bracketGtd = [gtdPrev, gtdNew]
                break
            }
            var tNext = cubicInterpolate(tPrev, fPrev, gtdPrev, t, fNew, gtdNew, bounds: (t + 0.01 * (t - tPrev), t * 10))
            if !tNext.isFinite { tNext = t * 10 }
            // Still descending after steps of 10¹⁵⁰: the objective is unbounded below along d.
            if !(tNext * dNorm < 1e150) { break }
            (tPrev, fPrev, gPrev, gtdPrev) = (t, fNew, gNew, gtdNew)
            t = tNext
            (fNew, gNew) = objective(axpy(t, d, x))
            evals += 1
            gtdNew = dot(gNew, d)
            it += 1
        }
        if bracket.isEmpty {
            // No bracket within the evaluations allowed (or the step grew without bound): keep
            // the last point if it is lower, else the start.
            if fNew.isFinite && fNew < f && gtdNew.isFinite {
                return Result(value: fNew, gradient: gNew, step: t, evaluations: evals)
            }
            return Result(value: f, gradient: g, step: 0, evaluations: evals)
        }
        // Zoom.
        var insufficientProgress = false
        var (lo, hi) = bracketF[0] <= bracketF[bracketF.count - 1] ? (0, 1) : (1, 0)
        while !done && it < maxLS {
            if Swift.abs(bracket[1] - bracket[0]) * dNorm < tolerance { break }
            t = cubicInterpolate(bracket[0], bracketF[0], bracketGtd[0], bracket[1], bracketF[1], bracketGtd[1])
            if !t.isFinite { t = (bracket[0] + bracket[1]) / 2 }  // a non-finite end: bisect
            let bMax = Swift.max(bracket[0], bracket[1]), bMin = Swift.min(bracket[0], bracket[1])
            let eps = 0.1 * (bMax - bMin)
            if Swift.min(bMax - t, t - bMin) < eps {
                if insufficientProgress || t >= bMax || t <= bMin {
                    t = Swift.abs(t - bMax) < Swift.abs(t - bMin) ? bMax - eps : bMin + eps
                    insufficientProgress = false
                } else {
                    insufficientProgress = true
                }
            } else {
                insufficientProgress = false
            }
            (fNew, gNew) = objective(axpy(t, d, x))
            evals += 1
            gtdNew = dot(gNew, d)
            it += 1
            if !fNew.isFinite || !gtdNew.isFinite || fNew > f + c1 * t * gtd || fNew >= bracketF[lo] {
                bracket[hi] = t; bracketF[hi] = fNew; bracketG[hi] = gNew; bracketGtd[hi] = gtdNew
                (lo, hi) = bracketF[0] <= bracketF[1] ? (0, 1) : (1, 0)
            } else {
                if Swift.abs(gtdNew) <= -c2 * gtd {
                    done = true
                } else if gtdNew * (bracket[hi] - bracket[lo]) >= 0 {
                    bracket[hi] = bracket[lo]; bracketF[hi] = bracketF[lo]; bracketG[hi] = bracketG[lo]; bracketGtd[hi] = bracketGtd[lo]
                }
                bracket[lo] = t; bracketF[lo] = fNew; bracketG[lo] = gNew; bracketGtd[lo] = gtdNew
            }
        }
        guard bracketF[lo].isFinite, bracketF[lo] <= f else { return Result(value: f, gradient: g, step: 0, evaluations: evals) }
        return Result(value: bracketF[lo], gradient: bracketG[lo], step: bracket[lo], evaluations: evals)
    }

    /// Backtracking (Armijo) line search: halves t (by `shrink`) until
    /// f(x + t d) ≤ f(x) + c1 t g·d.
    public static func backtracking(_ objective: ObjectiveWithGradient, x: [Double], step t0: Double, direction d: [Double],
                                               value f: Double, slope gtd: Double, c1: Double = 1e-4, shrink: Double = 0.5,
                                               maxEvaluations: Int = 50) -> Result {
        var t = t0
        var evals = 0
        while true {
            let (fNew, gNew) = objective(axpy(t, d, x))
            evals += 1
            if (fNew.isFinite && fNew <= f + c1 * t * gtd) || evals >= maxEvaluations {
                return Result(value: fNew, gradient: gNew, step: t, evaluations: evals)
            }
            t *= shrink
        }
    }
}
