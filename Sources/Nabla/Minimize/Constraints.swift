import Foundation

/// A convex set for constrained minimization, with its Euclidean projection (for projected
/// gradient descent) and its linear minimization oracle (for Frank–Wolfe).
public enum ConvexSet: Sendable, Equatable, CustomStringConvertible {
    /// lower ≤ xᵢ ≤ upper in every coordinate.
    case box(lower: Double, upper: Double)
    /// xᵢ ≥ 0 and Σ xᵢ = radius (the probability simplex for radius 1).
    case simplex(radius: Double)
    /// ‖x‖₁ ≤ radius.
    case l1Ball(radius: Double)
    /// ‖x‖₂ ≤ radius.
    case l2Ball(radius: Double)

    public var description: String {
        switch self {
        case .box(let l, let u): return "box [\(l), \(u)]"
        case .simplex(let r): return "simplex (radius \(r))"
        case .l1Ball(let r): return "L1 ball (radius \(r))"
        case .l2Ball(let r): return "L2 ball (radius \(r))"
        }
    }

    /// The boundary of the set in the plane, for drawing: a closed polygon, or for the simplex
    /// (a segment in two dimensions) an open one.
    public var boundary2D: (points: [(Double, Double)], closed: Bool) {
        switch self {
        case .box(let l, let u): return ([(l, l), (u, l), (u, u), (l, u)], true)
        case .simplex(let r): return ([(r, 0), (0, r)], false)
        case .l1Ball(let r): return ([(r, 0), (0, r), (-r, 0), (0, -r)], true)
        case .l2Ball(let r):
            return ((0..<96).map { k in
                let a = 2 * Double.pi * Double(k) / 96
                return (r * cos(a), r * sin(a))
            }, true)
        }
    }

    /// The closest point of the set to x.
    public func project(_ x: [Double]) -> [Double] {
        switch self {
        case .box(let l, let u): return x.map { Swift.min(Swift.max($0, l), u) }
        case .simplex(let r): return ConvexSet.projectOntoSimplex(x, radius: r)
        case .l1Ball(let r):
            if x.reduce(0, { $0 + Swift.abs($1) }) <= r { return x }
            let p = ConvexSet.projectOntoSimplex(x.map { Swift.abs($0) }, radius: r)
            return zip(x, p).map { $0 < 0 ? -$1 : $1 }
        case .l2Ball(let r):
            let n = norm2(x)
            return n <= r ? x : x.map { $0 * r / n }
        }
    }

    /// A point s of the set minimizing ⟨g, s⟩.
    public func linearMinimizer(_ g: [Double]) -> [Double] {
        switch self {
        case .box(let l, let u): return g.map { $0 > 0 ? l : u }
        case .simplex(let r):
            var s = [Double](repeating: 0, count: g.count)
            if let i = g.indices.min(by: { g[$0] < g[$1] }) { s[i] = r }
            return s
        case .l1Ball(let r):
            var s = [Double](repeating: 0, count: g.count)
            if let i = g.indices.max(by: { Swift.abs(g[$0]) < Swift.abs(g[$1]) }), g[i] != 0 { s[i] = g[i] > 0 ? -r : r }
            return s
        case .l2Ball(let r):
            let n = norm2(g)
            return n == 0 ? g.map { _ in 0 } : g.map { -$0 * r / n }
        }
    }

    /// Euclidean projection onto {x ≥ 0, Σx = r} by sorting (Held, Wolfe and Crowder; Duchi et al.).
    static func projectOntoSimplex(_ v: [Double], radius r: Double) -> [Double] {
        let u = v.sorted(by: >)
        var cumulative = 0.0, theta = 0.0
        for (j, uj) in u.enumerated() {
            cumulative += uj
            let t = (cumulative - r) / Double(j + 1)
            if uj - t > 0 { theta = t }
        }
        return v.map { Swift.max($0 - theta, 0) }
    }
}
