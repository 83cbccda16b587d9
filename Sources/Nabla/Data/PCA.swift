import Foundation

/// Principal component analysis: the directions of largest variance of centred data.
///
/// ```swift
/// let pca = try PCA(components: 2, fittedOn: x)        // x: [n, d]
/// let z = pca.transform(x)                              // [n, 2]
/// pca.explainedVarianceRatio                            // share of the variance each keeps
/// ```
///
/// `.exact` eigendecomposes the d × d covariance (cyclic Jacobi rotations, accurate to the last
/// digits; d up to a few thousand). `.randomized` finds the leading components by subspace
/// iteration on the data without forming the covariance (Halko, Martinsson and Tropp, 2011), for
/// wide data. Signs follow scikit-learn: each component's entry of largest magnitude is positive.
public struct PCA: Sendable {
    public enum Solver: String, Sendable, CaseIterable { case exact, randomized }

    /// The per-feature means subtracted before projecting [d].
    public var mean: [Double]
    /// The components, one per row [k, d], orthonormal.
    public var components: Tensor<Double>
    /// The variance along each component (unbiased, over n − 1).
    public var explainedVariance: [Double]
    /// Each component's share of the total variance.
    public var explainedVarianceRatio: [Double]

    public init(components k: Int, fittedOn x: Tensor<Double>, solver: Solver? = nil, iterations: Int = 7, seed: UInt64 = 0) throws {
        guard x.rank == 2, x.shape[0] >= 2, x.shape[1] >= 1 else {
            throw FitError(message: "PCA: data of shape \(x.shape); need [rows ≥ 2, features ≥ 1]")
        }
        let (n, d) = (x.shape[0], x.shape[1])
        guard k >= 1, k <= Swift.min(n, d) else {
            throw FitError(message: "PCA: \(k) components asked of \(n) rows and \(d) features; at most \(Swift.min(n, d))")
        }
        guard x.scalars.allSatisfy(\.isFinite) else { throw FitError(message: "PCA: the data hold NaN or infinite values") }
        let v = x.scalars
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += v[i * d + j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        let centred = Tensor<Double>(shape: [n, d], scalars: (0..<(n * d)).map { v[$0] - mean[$0 % d] })
        let totalVariance = (0..<(n * d)).reduce(0.0) { $0 + centred.scalars[$1] * centred.scalars[$1] } / Double(n - 1)
        let useExact = (solver ?? (d <= 1000 ? .exact : .randomized)) == .exact
        var vectors: [[Double]], values: [Double]
        if useExact {
            let covariance = Tensor.matmul(centred, centred, transposeA: true).scalars.map { $0 / Double(n - 1) }
            (values, vectors) = symmetricEigen(covariance, size: d)
        } else {
            (values, vectors) = randomizedEigen(centred, components: k, iterations: iterations, seed: seed)
        }
        var rows: [Double] = []
        for c in 0..<k {
            var u = vectors[c]
            if let big = u.indices.max(by: { Swift.abs(u[$0]) < Swift.abs(u[$1]) }), u[big] < 0 { u = u.map { -$0 } }
            rows += u
        }
        self.mean = mean
        components = Tensor(shape: [k, d], scalars: rows)
        explainedVariance = Array(values.prefix(k)).map { Swift.max(0, $0) }
        explainedVarianceRatio = explainedVariance.map { totalVariance > 0 ? $0 / totalVariance : 0 }
    }

    /// Projections of rows [n, d] on the components [n, k].
    public func transform(_ x: Tensor<Double>) -> Tensor<Double> {
        require(x.rank == 2 && x.shape[1] == mean.count, "PCA.transform: rows of shape \(x.shape) for a PCA of \(mean.count) features")
        let d = mean.count
        let centred = Tensor<Double>(shape: x.shape, scalars: x.scalars.enumerated().map { $0.element - mean[$0.offset % d] })
        return Tensor.matmul(centred, components, transposeB: true)
    }

    /// Rows back in feature space from their projections [n, k] → [n, d].
    public func inverseTransform(_ z: Tensor<Double>) -> Tensor<Double> {
        require(z.rank == 2 && z.shape[1] == components.shape[0], "PCA.inverseTransform: projections of shape \(z.shape) for \(components.shape[0]) components")
        let back = Tensor.matmul(z, components)
        let d = mean.count
        return Tensor(shape: back.shape, scalars: back.scalars.enumerated().map { $0.element + mean[$0.offset % d] })
    }
}

/// Eigenvalues (descending) and eigenvectors of a symmetric n × n matrix (row-major), by cyclic
/// Jacobi rotations until the off-diagonal part is negligible.
func symmetricEigen(_ matrix: [Double], size n: Int) -> (values: [Double], vectors: [[Double]]) {
    var a = matrix
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    let scale = Swift.max(1e-300, a.reduce(0) { $0 + $1 * $1 }.squareRoot())
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
        if off.squareRoot() <= 1e-15 * scale { break }
        for p in 0..<(n - 1) {
            for q in (p + 1)..<n {
                let apq = a[p * n + q]
                guard apq != 0 else { continue }
                let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                let t = (theta >= 0 ? 1 : -1) / (Swift.abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n {
                    let akp = a[k * n + p], akq = a[k * n + q]
                    a[k * n + p] = c * akp - s * akq
                    a[k * n + q] = s * akp + c * akq
                }
                for k in 0..<n {
                    let apk = a[p * n + k], aqk = a[q * n + k]
                    a[p * n + k] = c * apk - s * aqk
                    a[q * n + k] = s * apk + c * aqk
                }
                for k in 0..<n {
                    let vkp = v[k * n + p], vkq = v[k * n + q]
                    v[k * n + p] = c * vkp - s * vkq
                    v[k * n + q] = s * vkp + c * vkq
                }
            }
        }
    }
    let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
    return (order.map { a[$0 * n + $0] }, order.map { c in (0..<n).map { v[$0 * n + c] } })
}

/// The leading eigenpairs of XᵀX / (n − 1) for centred X [n, d]: subspace iteration from a seeded
/// Gaussian start with a few extra columns, then the exact eigenproblem of the small projection.
func randomizedEigen(_ x: Tensor<Double>, components k: Int, iterations: Int, seed: UInt64) -> (values: [Double], vectors: [[Double]]) {
    let (n, d) = (x.shape[0], x.shape[1])
    let width = Swift.min(d, k + 10)
    var rng = RandomGenerator(seed: seed)
    var q = orthonormalColumns(Tensor<Double>.normal(shape: [d, width], using: &rng))
    for _ in 0..<Swift.max(1, iterations) {
        q = orthonormalColumns(Tensor.matmul(x, Tensor.matmul(x, q), transposeA: true))
    }
    // B = Qᵀ (XᵀX) Q / (n − 1), small and symmetric.
    let xq = Tensor.matmul(x, q)
    let b = Tensor.matmul(xq, xq, transposeA: true).scalars.map { $0 / Double(n - 1) }
    let (values, small) = symmetricEigen(b, size: width)
    let qs = q.scalars
    let vectors = small.prefix(k).map { s in (0..<d).map { i in (0..<width).reduce(0.0) { $0 + qs[i * width + $1] * s[$1] } } }
    return (Array(values.prefix(k)), vectors)
}

/// Gram–Schmidt (twice, for stability) on the columns of a [d, m] matrix.
func orthonormalColumns(_ m: Tensor<Double>) -> Tensor<Double> {
    let (d, w) = (m.shape[0], m.shape[1])
    var cols = (0..<w).map { c in (0..<d).map { m.scalars[$0 * w + c] } }
    for c in 0..<w {
        for _ in 0..<2 {
            for p in 0..<c {
                let dot = zip(cols[c], cols[p]).reduce(0.0) { $0 + $1.0 * $1.1 }
                for i in 0..<d { cols[c][i] -= dot * cols[p][i] }
            }
        }
        let norm = cols[c].reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        cols[c] = norm > 0 ? cols[c].map { $0 / norm } : cols[c]
    }
    return Tensor(shape: [d, w], scalars: (0..<(d * w)).map { cols[$0 % w][$0 / w] })
}
