import ArgumentParser
import Nabla

/// The short tour: a gradient, its magnitude and direction, and gradient descent following it.
struct Tour: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the gradient of x² + y² + xy at (1, 3) and follow it downhill.")

    @Option(help: "Learning rate of gradient descent.") var learningRate: Double = 0.1
    @Option(help: "Maximum number of gradient-descent steps.") var maxSteps: Int = 200
    @Option(help: "Stop when the gradient's magnitude falls below this.") var tolerance: Double = 1e-8

    func validate() throws {
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate must be a positive number") }
        guard maxSteps >= 0 else { throw ValidationError("--max-steps must not be negative") }
    }

    func run() throws {
        let f = { (v: Tensor<Double>) -> Tensor<Double> in
            let x = v[0], y = v[1]
            return x * x + y * y + x * y
        }
        let start: Tensor<Double> = [1, 3]
        print("Nabla tour: f(x, y) = x² + y² + xy\n")

        let (value, g) = valueWithGradient(at: start, of: f)
        let magnitude = g.norm().scalar
        let h = hessian(at: start, of: f)
        print("1. The gradient at (x, y) = (1, 3), by reverse-mode automatic differentiation")
        print("   f(1, 3)    = \(fmt(value.scalar))")
        print("   ∇f(1, 3)   = \(vectorText(g.scalars))        (∂f/∂x = 2x + y, ∂f/∂y = 2y + x)")
        print("   |∇f|       = \(fmt(magnitude, digits: 10)) = √\(fmt(magnitude * magnitude))")
        print("   direction  = \(vectorText((g / magnitude).scalars, digits: 6))  (steepest ascent; descent goes the opposite way)")
        print("   Hessian    = \(h.rows.map { vectorText($0) }.joined(separator: ", "))  (exact second derivatives, reverse over reverse)")
        let numeric = GradientCheck.numericalGradient(at: start, of: f)
        print("   check      : central differences give \(vectorText(numeric.scalars, digits: 10))\n")

        print("2. Gradient descent from (1, 3): x ← x − \(fmt(learningRate)) ∇f(x)")
        print("   " + pad("step", 6) + pad("x", 14) + pad("y", 14) + pad("f(x, y)", 14) + "|∇f|")
        var x = start
        var step = 0
        var stopReason = "reached the step limit (\(maxSteps))"
        while true {
            let (v, grad) = valueWithGradient(at: x, of: f)
            let gn = grad.norm().scalar
            if step < 5 || step % 25 == 0 || gn < tolerance || step == maxSteps || !gn.isFinite {
                print("   " + pad("\(step)", 6) + pad(fmt(x.scalars[0], digits: 6), 14) + pad(fmt(x.scalars[1], digits: 6), 14)
                      + pad(fmt(v.scalar, digits: 6), 14) + fmt(gn, digits: 4))
            }
            if !gn.isFinite { stopReason = "diverged: the gradient is not finite (try a smaller --learning-rate)"; break }
            if gn < tolerance { stopReason = "converged: |∇f| < \(fmt(tolerance)) after \(step) steps"; break }
            if step == maxSteps { break }
            x = withoutGradients { x - learningRate * grad }
            step += 1
        }
        let final = withoutGradients { f(x) }.scalar
        print("   \(stopReason)")
        print("   minimum found at \(vectorText(x.scalars, digits: 6)) with f = \(fmt(final, digits: 6)); the true minimum is f(0, 0) = 0\n")
        print("Next: `nabla grad 'sin(x)*y^2' --at x=1,y=2 --hessian`, `nabla minimize rosenbrock --method gd,momentum,adam,lbfgs --plot race.svg`, `nabla --help`.")
    }
}
