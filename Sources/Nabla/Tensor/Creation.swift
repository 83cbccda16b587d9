extension Tensor {
    @inlinable public static func zeros(shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
    @inlinable public static func ones(shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }
    @inlinable public static func full(shape: [Int], value: Scalar) -> Tensor { Tensor(repeating: value, shape: shape) }
    @inlinable public static func zeros(like t: Tensor) -> Tensor { zeros(shape: t.shape) }
    @inlinable public static func ones(like t: Tensor) -> Tensor { ones(shape: t.shape) }

    /// `start, start + step, ...` below `end` (above it for a negative step).
    @inlinable public static func arange(_ start: Scalar, _ end: Scalar, step: Scalar = 1) -> Tensor {
        require(step != 0, "arange: step must not be zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor(shape: [n], scalars: (0..<n).map { start + Scalar($0) * step })
    }

    /// `count` evenly spaced values from `start` to `end`, both included.
    @inlinable public static func linspace(_ start: Scalar, _ end: Scalar, count: Int) -> Tensor {
        require(count >= 0, "linspace: count must not be negative")
        if count == 1 { return Tensor([start]) }
        let step = (end - start) / Scalar(count - 1)
        return Tensor(shape: [count], scalars: (0..<count).map { $0 == count - 1 ? end : start + Scalar($0) * step })
    }

    /// The n×n identity matrix.
    @inlinable public static func identity(_ n: Int) -> Tensor {
        var s = [Scalar](repeating: 0, count: n * n)
        for i in 0..<n { s[i * n + i] = 1 }
        return Tensor(shape: [n, n], scalars: s)
    }

    /// Elements drawn uniformly from `[low, high)`.
    @inlinable public static func uniform(shape: [Int], low: Scalar = 0, high: Scalar = 1, using generator: inout RandomGenerator) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shapeCount(shape)).map { _ in low + (high - low) * Scalar(generator.nextUniform()) })
    }

    /// Elements drawn from a normal distribution.
    @inlinable public static func normal(shape: [Int], mean: Scalar = 0, standardDeviation: Scalar = 1, using generator: inout RandomGenerator) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shapeCount(shape)).map { _ in mean + standardDeviation * Scalar(generator.nextNormal()) })
    }

    /// 1 with probability `probability`, else 0.
    @inlinable public static func bernoulli(shape: [Int], probability: Double, using generator: inout RandomGenerator) -> Tensor {
        require(probability >= 0 && probability <= 1, "bernoulli: probability \(probability) is not in [0, 1]")
        return Tensor(shape: shape, scalars: (0..<shapeCount(shape)).map { _ in generator.nextUniform() < probability ? 1 : 0 })
    }
}
