import Foundation

/// What the curvature says about the point where a minimization stopped.
public struct CurvatureCheck: Sendable, CustomStringConvertible {
    public enum Verdict: String, Sendable {
        /// Every curvature is positive (or f does not fall along the flat directions).
        case minimum = "a minimum: the curvature is positive in every direction"
        /// The Hessian has a negative eigenvalue.
        case saddle = "a saddle point, not a minimum: the curvature is negative along one direction"
        /// The Hessian is singular and f falls along a flat direction (a monkey saddle).
        case degenerateSaddle = "a degenerate saddle point, not a minimum: f falls along a direction of zero curvature"
    }
    public var verdict: Verdict
    /// The smallest eigenvalue of the Hessian found (exact for small problems, Lanczos for large).
    public var smallestEigenvalue: Double
    /// A unit direction along which f falls (nil at a minimum).
    public var descentDirection: [Double]?
    /// Whether the Hessian was formed whole (false: estimated by Lanczos from Hessian-vector products).
    public var exact: Bool

    public var isSaddle: Bool { verdict != .minimum }
    public var description: String { "\(verdict.rawValue) (smallest Hessian eigenvalue \(smallestEigenvalue)\(exact ? "" : ", Lanczos estimate"))" }

    /// Examines `f` at `x`: the Hessian's spectrum (n ≤ `denseLimit`: the whole matrix; larger:
    /// `lanczosSteps` of Lanczos), and along directions of near-zero curvature, whether f falls
    /// (a step of ε^{1/3} scaled to x, both ways).
    public static func examine(_ f: @escaping (Tensor<Double>) -> Tensor<Double>, at x: Tensor<Double>, denseLimit: Int = 300, lanczosSteps: Int = 40,
                               seed: UInt64 = 0) -> CurvatureCheck {
        let n = x.count
        let op = HessianOperator(at: x, of: f)
        var values: [Double], vectors: [[Double]], exact = true
        if n <= denseLimit {
            (values, vectors) = symmetricEigen(op.matrix().scalars, size: n)
        } else {
            exact = false
            (values, vectors) = lanczos(n: n, steps: Swift.min(n, lanczosSteps), seed: seed) { op(Tensor(shape: x.shape, scalars: $0)).scalars }
        }
        let largest = values.map(Swift.abs).max() ?? 0
        let smallest = values.last ?? 0, direction = vectors.last ?? []
        let tolerance = 1e-6 * Swift.max(1, largest)
        if smallest < -tolerance {
            return CurvatureCheck(verdict: .saddle, smallestEigenvalue: smallest, descentDirection: direction, exact: exact)
        }
        // Flat directions: does f fall along one of them?
        let f0 = f(x).scalar
        let scale = Swift.max(1, x.scalars.map(Swift.abs).max() ?? 0)
        let h = Foundation.cbrt(Double.ulpOfOne) * scale * 10
        for (value, v) in zip(values, vectors) where Swift.abs(value) <= tolerance {
            for sign in [1.0, -1.0] {
                let moved = Tensor(shape: x.shape, scalars: zip(x.scalars, v).map { $0 + sign * h * $1 })
                let f1 = f(moved).scalar
                if f1 < f0 - 1e3 * Double.ulpOfOne * Swift.max(1, Swift.abs(f0)) {
                    return CurvatureCheck(verdict: .degenerateSaddle, smallestEigenvalue: smallest, descentDirection: v.map { sign * $0 }, exact: exact)
                }
            }
        }
        return CurvatureCheck(verdict: .minimum, smallestEigenvalue: smallest, descentDirection: nil, exact: exact)
    }
}

/// Ritz values (descending) and vectors of a symmetric operator from `steps` Lanczos steps with
/// full reorthogonalization, from a seeded random start.
func lanczos(n: Int, steps m: Int, seed: UInt64, apply: ([Double]) -> [Double]) -> (values: [Double], vectors: [[Double]]) {
    var rng = RandomGenerator(seed: seed)
    var q = (0..<n).map { _ in rng.nextNormal() }
    let q0 = q.reduce(0) { $0 + $1 * $1 }.squareRoot()
    q = q.map { $0 / q0 }
    var basis: [[Double]] = [], alpha: [Double] = [], beta: [Double] = []
    for j in 0..<m {
        basis.append(q)
        var w = apply(q)
        let a = zip(w, q).reduce(0.0) { $0 + $1.0 * $1.1 }
        alpha.append(a)
        for _ in 0..<2 {
            for b in basis {
                let c = zip(w, b).reduce(0.0) { $0 + $1.0 * $1.1 }
                for i in 0..<n { w[i] -= c * b[i] }
            }
        }
        let bnorm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if j == m - 1 || bnorm <= 1e-12 * Swift.max(1, Swift.abs(a)) { break }
        beta.append(bnorm)
        q = w.map { $0 / bnorm }
    }
    let k = alpha.count
    var t = [Double](repeating: 0, count: k * k)
    for i in 0..<k { t[i * k + i] = alpha[i] }
    for i in 0..<(k - 1) where i < beta.count { t[i * k + i + 1] = beta[i]; t[(i + 1) * k + i] = beta[i] }
    let (values, small) = symmetricEigen(t, size: k)
    let vectors = small.map { s in (0..<n).map { i in (0..<k).reduce(0.0) { $0 + basis[$1][i] * s[$1] } } }
    return (values, vectors)
}
