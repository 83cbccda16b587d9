/// Checks derivatives computed by automatic differentiation against central differences in
/// `Double`, for any function of one or more tensors.
///
/// The dot-product test draws a random tangent t (one per input) and a random cotangent c and
/// compares three numbers that must agree: ⟨Jᵀc, t⟩ from reverse mode, ⟨c, J t⟩ from forward
/// mode, and ⟨c, (f(x + εt) − f(x − εt)) / 2ε⟩ from central differences. One test covers every
/// input direction at the cost of two evaluations, so it scales to any size.
public enum GradientCheck {
    public struct Report: Sendable, CustomStringConvertible {
        /// ⟨Jᵀc, t⟩ from reverse mode.
        public var reverse: Double
        /// ⟨c, J t⟩ from forward mode.
        public var forward: Double
        /// ⟨c, J t⟩ from central differences.
        public var numeric: Double
        /// Largest disagreement, relative to the size of the terms.
        public var relativeError: Double
        public var tolerance: Double
        public var passed: Bool { relativeError <= tolerance }
        public var description: String {
            "reverse ⟨Jᵀc,t⟩ = \(reverse), forward ⟨c,Jt⟩ = \(forward), central differences = \(numeric), relative error \(relativeError) (tolerance \(tolerance)): \(passed ? "passed" : "FAILED")"
        }
    }

    /// Runs the dot-product test on `f` at `inputs`.
    public static func dotProductTest(at inputs: [Tensor<Double>], seed: UInt64 = 0, epsilon: Double = 1e-6,
                                      tolerance: Double = 1e-6, of f: ([Tensor<Double>]) -> Tensor<Double>) -> Report {
        var rng = RandomGenerator(seed: seed)
        let tangents = inputs.map { Tensor<Double>.normal(shape: $0.shape, using: &rng) }
        let y = withoutGradients { f(inputs) }
        let c = Tensor<Double>.normal(shape: y.shape, using: &rng)

        // Reverse: ⟨Jᵀc, t⟩
        let vars = inputs.map { $0.requiringGradient() }
        let out = withGradientRecording(true) { f(vars) }
        let cot = out.node == nil ? vars.map { Tensor<Double>.zeros(shape: $0.shape) } : gradients(of: out, with: c, wrt: vars)
        let reverse = zip(cot, tangents).reduce(0.0) { $0 + ($1.0 * $1.1).sum().scalar }

        // Forward: ⟨c, J t⟩ along the combined direction, by linearizing s ↦ f(x + s t) at s = 0.
        let direction = { (s: Tensor<Double>) -> Tensor<Double> in
            f(zip(inputs, tangents).map { x, t in x + s * t })
        }
        let jt = jvp(at: Tensor<Double>(0), tangent: Tensor<Double>(1), of: direction)
        let forward = (jt * c).sum().scalar

        // Central differences.
        let plus = withoutGradients { f(zip(inputs, tangents).map { $0 + $1 * epsilon }) }
        let minus = withoutGradients { f(zip(inputs, tangents).map { $0 - $1 * epsilon }) }
        let numeric = (((plus - minus) / (2 * epsilon)) * c).sum().scalar

        let scale = Swift.max(1, Swift.abs(reverse), Swift.abs(numeric))
        let err = Swift.max(Swift.abs(reverse - numeric), Swift.abs(forward - numeric), Swift.abs(reverse - forward)) / scale
        return Report(reverse: reverse, forward: forward, numeric: numeric, relativeError: err, tolerance: tolerance)
    }

    /// The gradient of a scalar function by central differences, element by element.
    public static func numericalGradient(at x: Tensor<Double>, epsilon: Double = 1e-6, of f: (Tensor<Double>) -> Tensor<Double>) -> Tensor<Double> {
        var g = [Double](repeating: 0, count: x.count)
        let base = x.scalars
        withoutGradients {
            for i in 0..<x.count {
                var p = base, m = base
                p[i] += epsilon
                m[i] -= epsilon
                g[i] = (f(Tensor(shape: x.shape, scalars: p)).scalar - f(Tensor(shape: x.shape, scalars: m)).scalar) / (2 * epsilon)
            }
        }
        return Tensor(shape: x.shape, scalars: g)
    }
}
