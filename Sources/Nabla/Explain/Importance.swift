/// How much each feature matters to a model over a data set.
public struct FeatureImportance: Sendable {
    /// One value per feature.
    public var importances: [Double]
    /// The spread over repeats (permutation importance), else zeros.
    public var standardDeviations: [Double]

    /// Feature indices from the most to the least important.
    public var ranking: [Int] { importances.indices.sorted { importances[$0] > importances[$1] || (importances[$0] == importances[$1] && $0 < $1) } }

    /// The mean |attribution| of each feature over the rows of `attributions` [N, D].
    public static func meanAbsolute<Scalar: TensorScalar>(_ attributions: Tensor<Scalar>) -> FeatureImportance {
        require(attributions.rank == 2 && attributions.shape[0] > 0, "FeatureImportance.meanAbsolute: attributions of shape \(attributions.shape) are not [rows, features]")
        let m = withoutGradients { attributions.abs().mean(axes: [0]) }.scalars.map { Double($0) }
        return FeatureImportance(importances: m, standardDeviations: Array(repeating: 0, count: m.count))
    }

    /// Permutation importance, as scikit-learn's `permutation_importance` defines it: for each
    /// feature and each of `repeats` seeded shuffles of its column, the drop of `score` (higher is
    /// better: accuracy, R², minus a loss) from its value on the intact data. Works for any
    /// fitted model, the classic ones included, since only `score` sees the model.
    public static func permutation(features x: Tensor<Double>, repeats: Int = 5, seed: UInt64 = 0,
                                   score: (Tensor<Double>) throws -> Double) rethrows -> FeatureImportance {
        require(x.rank == 2 && x.shape[0] > 1, "FeatureImportance.permutation: features of shape \(x.shape) need at least two rows")
        require(repeats >= 1, "FeatureImportance.permutation: \(repeats) repeats; at least one is needed")
        let (n, d) = (x.shape[0], x.shape[1])
        let base = try score(x)
        var rng = RandomGenerator(seed: seed)
        var means = [Double](repeating: 0, count: d), deviations = [Double](repeating: 0, count: d)
        var values = x.scalars
        for j in 0..<d {
            let column = (0..<n).map { values[$0 * d + j] }
            var drops: [Double] = []
            for _ in 0..<repeats {
                let order = rng.permutation(n)
                for i in 0..<n { values[i * d + j] = column[order[i]] }
                drops.append(base - (try score(Tensor(shape: [n, d], scalars: values))))
            }
            for i in 0..<n { values[i * d + j] = column[i] }
            let mean = drops.reduce(0, +) / Double(repeats)
            means[j] = mean
            deviations[j] = (drops.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(repeats)).squareRoot()
        }
        return FeatureImportance(importances: means, standardDeviations: deviations)
    }
}

/// Spearman's rank correlation of two score lists (ties get their mean rank).
public func rankCorrelation(_ a: [Double], _ b: [Double]) -> Double {
    require(a.count == b.count && a.count > 1, "rankCorrelation: lists of \(a.count) and \(b.count) values; need equal lengths of at least 2")
    func ranks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return r
    }
    let (ra, rb) = (ranks(a), ranks(b))
    let n = Double(a.count), ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for i in 0..<a.count { sab += (ra[i] - ma) * (rb[i] - mb); saa += (ra[i] - ma) * (ra[i] - ma); sbb += (rb[i] - mb) * (rb[i] - mb) }
    return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : 0
}
