/// A per-feature affine map x ↦ (x − shift) / scale, fitted on training data only and then
/// applied to every split.
public struct FeatureScaler: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable { case standard, minMax, none }
    public var kind: Kind
    public var shift: [Double]
    public var scale: [Double]

    public init(kind: Kind, shift: [Double], scale: [Double]) {
        require(shift.count == scale.count, "FeatureScaler: \(shift.count) shifts but \(scale.count) scales")
        (self.kind, self.shift, self.scale) = (kind, shift, scale)
    }

    /// Standardization: mean 0 and (population) standard deviation 1 on the training rows; a
    /// constant feature is only centred.
    public static func standard(fittedOn x: Tensor<Double>) -> FeatureScaler {
        let (n, d) = (x.shape[0], x.shape[1])
        let v = x.scalars
        var mean = [Double](repeating: 0, count: d), scale = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += v[i * d + j] } }
        for j in 0..<d { mean[j] /= Double(n) }
        for i in 0..<n { for j in 0..<d { let c = v[i * d + j] - mean[j]; scale[j] += c * c } }
        for j in 0..<d {
            let s = (scale[j] / Double(n)).squareRoot()
            scale[j] = s > 10 * Double.ulpOfOne * Swift.max(1, Swift.abs(mean[j])) ? s : 1
        }
        return FeatureScaler(kind: .standard, shift: mean, scale: scale)
    }

    /// Min-max scaling to [0, 1] on the training rows; a constant feature maps to 0.
    public static func minMax(fittedOn x: Tensor<Double>) -> FeatureScaler {
        let (n, d) = (x.shape[0], x.shape[1])
        let v = x.scalars
        var lo = [Double](repeating: .infinity, count: d), hi = [Double](repeating: -.infinity, count: d)
        for i in 0..<n { for j in 0..<d { lo[j] = Swift.min(lo[j], v[i * d + j]); hi[j] = Swift.max(hi[j], v[i * d + j]) } }
        return FeatureScaler(kind: .minMax, shift: lo, scale: zip(lo, hi).map { $1 > $0 ? $1 - $0 : 1 })
    }

    public static func identity(features d: Int) -> FeatureScaler {
        FeatureScaler(kind: .none, shift: .init(repeating: 0, count: d), scale: .init(repeating: 1, count: d))
    }

    public static func fitted(_ kind: Kind, on x: Tensor<Double>) -> FeatureScaler {
        switch kind {
        case .standard: return standard(fittedOn: x)
        case .minMax: return minMax(fittedOn: x)
        case .none: return identity(features: x.shape[1])
        }
    }

    public func transform(_ x: Tensor<Double>) -> Tensor<Double> {
        require(x.rank == 2 && x.shape[1] == shift.count, "FeatureScaler: input \(x.shape) does not have \(shift.count) features")
        let d = shift.count
        var v = x.scalars
        for i in 0..<x.shape[0] { for j in 0..<d { v[i * d + j] = (v[i * d + j] - shift[j]) / scale[j] } }
        return Tensor(shape: x.shape, scalars: v)
    }

    public func transform(_ data: Dataset) -> Dataset {
        var d = data
        d.features = transform(data.features)
        return d
    }
}

/// The batches of one epoch: `batchSize` rows each (the last may be smaller), in a seeded
/// shuffled order that depends only on the seed and the epoch, so a resumed run sees the same
/// batches.
public struct BatchSampler: Sendable {
    public var count: Int
    public var batchSize: Int
    public var shuffle: Bool
    public var seed: UInt64

    public init(count: Int, batchSize: Int, shuffle: Bool = true, seed: UInt64 = 0) {
        require(count > 0 && batchSize > 0, "BatchSampler: \(count) samples in batches of \(batchSize)")
        (self.count, self.batchSize, self.shuffle, self.seed) = (count, Swift.min(batchSize, count), shuffle, seed)
    }

    public var batchesPerEpoch: Int { (count + batchSize - 1) / batchSize }

    public func batches(epoch: Int) -> [[Int]] {
        var order = Array(0..<count)
        if shuffle {
            var rng = RandomGenerator(seed: seed &+ 0x9E37_79B9 &* UInt64(epoch + 1))
            order = rng.permutation(count)
        }
        return stride(from: 0, to: count, by: batchSize).map { Array(order[$0..<Swift.min(count, $0 + batchSize)]) }
    }
}
