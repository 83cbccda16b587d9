import Foundation

/// The generator layers draw their initial weights from (and dropout its seed) unless given one.
/// Seed it once for reproducible models, `GlobalRandom.seed(42)`, or build a model inside
/// `GlobalRandom.withSeed(42) { … }` when other threads may draw from it meanwhile.
public enum GlobalRandom {
    nonisolated(unsafe) static var generator = RandomGenerator(seed: 0x6E61626C61)
    static let lock = NSRecursiveLock()

    /// Restarts the global generator. Another thread may draw from it before this thread's next
    /// draw; to build a model reproducibly while other threads use the generator, use
    /// ``withSeed(_:_:)``.
    public static func seed(_ seed: UInt64) {
        lock.lock(); defer { lock.unlock() }
        generator = RandomGenerator(seed: seed)
    }

    /// Runs `body` (building a model, say) with the global generator restarted from `seed` and
    /// held by this thread throughout, so that its draws are the same whatever other threads do.
    public static func withSeed<R>(_ seed: UInt64, _ body: () throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        generator = RandomGenerator(seed: seed)
        return try body()
    }

    /// Runs `body` with exclusive use of the global generator.
    public static func withGenerator<R>(_ body: (inout RandomGenerator) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(&generator)
    }
}

/// How the fans of a weight are counted: `fanIn` keeps the forward pass's variance, `fanOut` the
/// backward pass's.
public enum FanMode: Sendable { case fanIn, fanOut }

/// The nonlinearity after a layer, for the gain of Xavier and Kaiming initialization.
public enum Nonlinearity: Sendable, Equatable {
    case linear, sigmoid, tanh, relu, leakyRelu(negativeSlope: Double), selu

    /// The recommended gain (PyTorch's `calculate_gain`): 1, 1, 5/3, √2, √(2/(1+a²)), 3/4.
    public var gain: Double {
        switch self {
        case .linear, .sigmoid: return 1
        case .tanh: return 5.0 / 3
        case .relu: return 2.0.squareRoot()
        case .leakyRelu(let a): return (2 / (1 + a * a)).squareRoot()
        case .selu: return 0.75
        }
    }
}

/// How a parameter's first values are drawn. Fans follow the usual convention: for a weight of
/// shape [out, in, k…], fan-in = in·∏k and fan-out = out·∏k; a vector has fan-in = fan-out = its
/// length.
public enum Initializer: Sendable, Equatable {
    case zeros
    case ones
    case constant(Double)
    case uniform(low: Double, high: Double)
    case normal(mean: Double, standardDeviation: Double)
    /// U(−a, a) with a = gain·√(6 / (fan-in + fan-out)).
    case xavierUniform(gain: Double = 1)
    /// N(0, σ²) with σ = gain·√(2 / (fan-in + fan-out)).
    case xavierNormal(gain: Double = 1)
    /// U(−b, b) with b = gain·√(3 / fan), gain from the nonlinearity.
    case kaimingUniform(mode: FanMode = .fanIn, nonlinearity: Nonlinearity = .relu)
    /// N(0, σ²) with σ = gain / √fan.
    case kaimingNormal(mode: FanMode = .fanIn, nonlinearity: Nonlinearity = .relu)
    /// A (semi-)orthogonal matrix (rows × ∏ other axes) times gain.
    case orthogonal(gain: Double = 1)
    /// U(−1/√fan-in, 1/√fan-in): the default of Linear, convolutions and recurrent cells, as in
    /// PyTorch (there `kaiming_uniform` with a = √5, which is the same distribution).
    case fanInUniform

    public static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        if shape.count < 2 { let n = shape.first ?? 1; return (n, n) }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// A new tensor of `shape` drawn from `generator`.
    public func tensor<Scalar: TensorScalar>(shape: [Int], using generator: inout RandomGenerator) -> Tensor<Scalar> {
        let (fanIn, fanOut) = Initializer.fans(shape)
        func uniform(_ bound: Double) -> Tensor<Scalar> {
            Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Scalar(-bound + 2 * bound * generator.nextUniform()) })
        }
        func normal(_ mean: Double, _ std: Double) -> Tensor<Scalar> {
            Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Scalar(mean + std * generator.nextNormal()) })
        }
        switch self {
        case .zeros: return Tensor.zeros(shape: shape)
        case .ones: return Tensor.ones(shape: shape)
        case .constant(let v): return Tensor(repeating: Scalar(v), shape: shape)
        case let .uniform(low, high):
            return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Scalar(low + (high - low) * generator.nextUniform()) })
        case let .normal(mean, std): return normal(mean, std)
        case .xavierUniform(let gain): return uniform(gain * (6.0 / Double(fanIn + fanOut)).squareRoot())
        case .xavierNormal(let gain): return normal(0, gain * (2.0 / Double(fanIn + fanOut)).squareRoot())
        case let .kaimingUniform(mode, nl):
            return uniform(nl.gain * (3.0 / Double(mode == .fanIn ? fanIn : fanOut)).squareRoot())
        case let .kaimingNormal(mode, nl):
            return normal(0, nl.gain / Double(mode == .fanIn ? fanIn : fanOut).squareRoot())
        case .fanInUniform: return uniform(1 / Double(fanIn).squareRoot())
        case .orthogonal(let gain):
            require(shape.count >= 2, "orthogonal initializer: shape \(shape) needs at least 2 dimensions")
            let rows = shape[0], cols = shape.dropFirst().reduce(1, *)
            let q = Initializer.orthonormal(rows: rows, cols: cols, using: &generator)
            return Tensor(shape: shape, scalars: q.map { Scalar(gain * $0) })
        }
    }

    /// Row-major rows × cols with orthonormal rows (rows ≤ cols) or columns (rows > cols): the Q
    /// of a QR factorization of a Gaussian matrix, signs fixed by R's diagonal.
    static func orthonormal(rows: Int, cols: Int, using generator: inout RandomGenerator) -> [Double] {
        let (m, n) = (Swift.max(rows, cols), Swift.min(rows, cols))   // factor an m × n matrix, m ≥ n
        var a = (0..<m * n).map { _ in generator.nextNormal() }       // column-major: column j at j*m
        for j in 0..<n {
            // Modified Gram–Schmidt, twice for accuracy.
            for _ in 0..<2 {
                for k in 0..<j {
                    var d = 0.0
                    for i in 0..<m { d += a[k * m + i] * a[j * m + i] }
                    for i in 0..<m { a[j * m + i] -= d * a[k * m + i] }
                }
            }
            var norm = 0.0
            for i in 0..<m { norm += a[j * m + i] * a[j * m + i] }
            norm = norm.squareRoot()
            for i in 0..<m { a[j * m + i] /= norm }
        }
        var out = [Double](repeating: 0, count: rows * cols)
        for j in 0..<n {
            for i in 0..<m {
                // Q is m × n; the result is Q (rows > cols) or Qᵀ (rows ≤ cols).
                if rows >= cols { out[i * cols + j] = a[j * m + i] } else { out[j * cols + i] = a[j * m + i] }
            }
        }
        return out
    }
}

extension Parameter {
    /// A parameter of `shape` drawn by `initializer` from `generator`, or from ``GlobalRandom``.
    public convenience init(shape: [Int], initializer: Initializer, using generator: inout RandomGenerator) {
        self.init(initializer.tensor(shape: shape, using: &generator))
    }

    public convenience init(shape: [Int], initializer: Initializer) {
        self.init(GlobalRandom.withGenerator { initializer.tensor(shape: shape, using: &$0) } as Tensor<Scalar>)
    }
}
