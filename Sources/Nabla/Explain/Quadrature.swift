import Foundation

/// Rules for the path integral of integrated gradients: points αₖ in [0, 1] and weights wₖ with
/// ∫₀¹ g(α) dα ≈ Σₖ wₖ g(αₖ). Shared by every path method.
public enum Quadrature: String, Sendable, CaseIterable {
    case gaussLegendre = "gausslegendre"
    case riemannLeft = "riemann_left"
    case riemannRight = "riemann_right"
    case riemannMiddle = "riemann_middle"

    /// The m points and weights of the rule (ascending points).
    public func rule(steps m: Int) -> (points: [Double], weights: [Double]) {
        require(m >= 1, "Quadrature.rule: \(m) steps; at least one is needed")
        switch self {
        case .riemannLeft: return ((0..<m).map { Double($0) / Double(m) }, Array(repeating: 1 / Double(m), count: m))
        case .riemannRight: return ((1...m).map { Double($0) / Double(m) }, Array(repeating: 1 / Double(m), count: m))
        case .riemannMiddle: return ((0..<m).map { (Double($0) + 0.5) / Double(m) }, Array(repeating: 1 / Double(m), count: m))
        case .gaussLegendre:
            let (nodes, weights) = Quadrature.gaussLegendre(m)
            return (nodes.map { (1 + $0) / 2 }, weights.map { $0 / 2 })
        }
    }

    /// The m Gauss–Legendre nodes on [−1, 1] (ascending) and weights, by Newton's method on the
    /// Legendre polynomial Pₘ from Chebyshev starting points.
    static func gaussLegendre(_ m: Int) -> (nodes: [Double], weights: [Double]) {
        var nodes = [Double](repeating: 0, count: m), weights = [Double](repeating: 0, count: m)
        for i in 0..<(m + 1) / 2 {
            var x = cos(Double.pi * (Double(i) + 0.75) / (Double(m) + 0.5))
            var derivative = 0.0
            for _ in 0..<100 {
                // P_m(x) by the three-term recurrence, and P_m'(x).
                var p0 = 1.0, p1 = x
                if m == 1 { p1 = x; p0 = 1 } else {
                    for k in 2...m {
                        let p2 = ((2 * Double(k) - 1) * x * p1 - (Double(k) - 1) * p0) / Double(k)
                        p0 = p1; p1 = p2
                    }
                }
                derivative = Double(m) * (x * p1 - p0) / (x * x - 1)
                let step = p1 / derivative
                x -= step
                if Swift.abs(step) <= 1e-16 * Swift.max(1, Swift.abs(x)) { break }
            }
            // Recompute the derivative at the converged node for the weight.
            var p0 = 1.0, p1 = x
            if m > 1 { for k in 2...m { let p2 = ((2 * Double(k) - 1) * x * p1 - (Double(k) - 1) * p0) / Double(k); p0 = p1; p1 = p2 } }
            derivative = m == 1 ? 1 : Double(m) * (x * p1 - p0) / (x * x - 1)
            let w = 2 / ((1 - x * x) * derivative * derivative)
            nodes[i] = -x; nodes[m - 1 - i] = x
            weights[i] = w; weights[m - 1 - i] = w
        }
        return (nodes, weights)
    }
}
