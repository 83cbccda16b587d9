extension LineSearch {
    /// The Moré–Thuente line search (MINPACK-2's `dcsrch`/`dcstep`): finds a step satisfying the
    /// strong Wolfe conditions f(x + t d) ≤ f(x) + c1 t g·d and |g(x + t d)·d| ≤ c2 |g·d| by
    /// safeguarded cubic and quadratic interpolation, working on a modified function until the
    /// interval is bracketed. The line search of SciPy's BFGS and of L-BFGS-B.
    public static func moreThuente(_ objective: ObjectiveWithGradient, x: [Double], step t0: Double, direction d: [Double],
                                   value f0: Double, slope g0: Double, c1: Double = 1e-4, c2: Double = 0.9, xtol: Double = 1e-14,
                                   minimumStep: Double = 1e-100, maximumStep: Double = 1e100, maxEvaluations: Int = 100) -> Result? {
        guard g0 < 0 else { return nil }
        let xtrapl = 1.1, xtrapu = 4.0
        var stp = Swift.min(Swift.max(t0, minimumStep), maximumStep)
        var brackt = false, stage = 1
        let gtest = c1 * g0
        var width = maximumStep - minimumStep, width1 = 2 * width
        var (stx, fx, gx) = (0.0, f0, g0)
        var (sty, fy, gy) = (0.0, f0, g0)
        var stmin = 0.0, stmax = stp + xtrapu * stp
        var evals = 0
        var best: Result?
        while evals < maxEvaluations {
            let (f, gVec) = objective(axpy(stp, d, x))
            evals += 1
            let g = dot(gVec, d)
            let current = Result(value: f, gradient: gVec, step: stp, evaluations: evals)
            if f.isFinite && (best == nil || f < best!.value) { best = current }
            let ftest = f0 + stp * gtest
            if stage == 1 && f <= ftest && g >= 0 { stage = 2 }
            // Convergence and the warnings that end the search.
            if f <= ftest && Swift.abs(g) <= c2 * -g0 { return current }
            if brackt && (stp <= stmin || stp >= stmax) { break }
            if brackt && stmax - stmin <= xtol * stmax { break }
            if stp == maximumStep && f <= ftest && g <= gtest { return current }
            if stp == minimumStep && (f > ftest || g >= gtest) { break }
            if !f.isFinite {
                // Outside the function's domain: step back towards the best point.
                stp = stx + 0.5 * (stp - stx)
                brackt = true
                stmin = Swift.min(stx, stp); stmax = Swift.max(stx, stp)
                continue
            }
            if stage == 1 && f <= fx && f > ftest {
                // The modified function ψ(t) = f(t) − f(0) − c1 t g(0) until bracketed.
                var fxm = fx - stx * gtest, fym = fy - sty * gtest, gxm = gx - gtest, gym = gy - gtest
                let fm = f - stp * gtest, gm = g - gtest
                step(&stx, &fxm, &gxm, &sty, &fym, &gym, &stp, fm, gm, &brackt, stmin, stmax)
                fx = fxm + stx * gtest; fy = fym + sty * gtest; gx = gxm + gtest; gy = gym + gtest
            } else {
                step(&stx, &fx, &gx, &sty, &fy, &gy, &stp, f, g, &brackt, stmin, stmax)
            }
            if brackt {
                if Swift.abs(sty - stx) >= 0.66 * width1 { stp = stx + 0.5 * (sty - stx) }
                width1 = width
                width = Swift.abs(sty - stx)
                stmin = Swift.min(stx, sty); stmax = Swift.max(stx, sty)
            } else {
                stmin = stp + xtrapl * (stp - stx)
                stmax = stp + xtrapu * (stp - stx)
            }
            stp = Swift.min(Swift.max(stp, minimumStep), maximumStep)
            if (brackt && (stp <= stmin || stp >= stmax)) || (brackt && stmax - stmin <= xtol * stmax) { stp = stx }
        }
        guard let best, best.value < f0 else { return nil }
        return Result(value: best.value, gradient: best.gradient, step: best.step, evaluations: evals)
    }

    /// One safeguarded step of `dcstep`: a new trial step from the interval endpoints (stx, sty)
    /// and the trial stp, and the updated interval.
    static func step(_ stx: inout Double, _ fx: inout Double, _ dx: inout Double,
                     _ sty: inout Double, _ fy: inout Double, _ dy: inout Double,
                     _ stp: inout Double, _ fp: Double, _ dp: Double, _ brackt: inout Bool,
                     _ stpmin: Double, _ stpmax: Double) {
        let sgnd = dp * (dx / Swift.abs(dx))
        var stpf: Double
        if fp > fx {
            let theta = 3 * (fx - fp) / (stp - stx) + dx + dp
            let s = Swift.max(Swift.abs(theta), Swift.abs(dx), Swift.abs(dp))
            var gamma = s * ((theta / s) * (theta / s) - (dx / s) * (dp / s)).squareRoot()
            if stp < stx { gamma = -gamma }
            let p = (gamma - dx) + theta, q = ((gamma - dx) + gamma) + dp
            let stpc = stx + (p / q) * (stp - stx)
            let stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2) * (stp - stx)
            stpf = Swift.abs(stpc - stx) < Swift.abs(stpq - stx) ? stpc : stpc + (stpq - stpc) / 2
            brackt = true
        } else if sgnd < 0 {
            let theta = 3 * (fx - fp) / (stp - stx) + dx + dp
            let s = Swift.max(Swift.abs(theta), Swift.abs(dx), Swift.abs(dp))
            var gamma = s * ((theta / s) * (theta / s) - (dx / s) * (dp / s)).squareRoot()
            if stp > stx { gamma = -gamma }
            let p = (gamma - dp) + theta, q = ((gamma - dp) + gamma) + dx
            let stpc = stp + (p / q) * (stx - stp)
            let stpq = stp + (dp / (dp - dx)) * (stx - stp)
            stpf = Swift.abs(stpc - stp) > Swift.abs(stpq - stp) ? stpc : stpq
            brackt = true
        } else if Swift.abs(dp) < Swift.abs(dx) {
            let theta = 3 * (fx - fp) / (stp - stx) + dx + dp
            let s = Swift.max(Swift.abs(theta), Swift.abs(dx), Swift.abs(dp))
            var gamma = s * Swift.max(0, (theta / s) * (theta / s) - (dx / s) * (dp / s)).squareRoot()
            if stp > stx { gamma = -gamma }
            let p = (gamma - dp) + theta, q = (gamma + (dx - dp)) + gamma
            let r = p / q
            let stpc: Double
            if r < 0 && gamma != 0 { stpc = stp + r * (stx - stp) } else if stp > stx { stpc = stpmax } else { stpc = stpmin }
            let stpq = stp + (dp / (dp - dx)) * (stx - stp)
            if brackt {
                stpf = Swift.abs(stpc - stp) < Swift.abs(stpq - stp) ? stpc : stpq
                stpf = stp > stx ? Swift.min(stp + 0.66 * (sty - stp), stpf) : Swift.max(stp + 0.66 * (sty - stp), stpf)
            } else {
                stpf = Swift.abs(stpc - stp) > Swift.abs(stpq - stp) ? stpc : stpq
                stpf = Swift.max(stpmin, Swift.min(stpmax, stpf))
            }
        } else {
            if brackt {
                let theta = 3 * (fp - fy) / (sty - stp) + dy + dp
                let s = Swift.max(Swift.abs(theta), Swift.abs(dy), Swift.abs(dp))
                var gamma = s * ((theta / s) * (theta / s) - (dy / s) * (dp / s)).squareRoot()
                if stp > sty { gamma = -gamma }
                let p = (gamma - dp) + theta, q = ((gamma - dp) + gamma) + dy
                stpf = stp + (p / q) * (sty - stp)
            } else {
                stpf = stp > stx ? stpmax : stpmin
            }
        }
        if fp > fx {
            sty = stp; fy = fp; dy = dp
        } else {
            if sgnd < 0 { sty = stx; fy = fx; dy = dx }
            stx = stp; fx = fp; dx = dp
        }
        stp = stpf
    }
}
