// The standard layers. Each is a few lines over the differentiable ops: the forward pass is
// written once and its derivative comes from the primitives' rules.

/// y = x Wᵀ + b along the last axis. Weight [out, in]; both weight and bias default to
/// U(−1/√in, 1/√in).
public final class Linear<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let weight: Parameter<Scalar>
    public let bias: Parameter<Scalar>?

    public init(inputSize: Int, outputSize: Int, bias: Bool = true,
                weightInitializer: Initializer = .fanInUniform, biasInitializer: Initializer? = nil) {
        require(inputSize > 0 && outputSize > 0, "Linear: sizes must be positive, got \(inputSize) → \(outputSize)")
        weight = Parameter(shape: [outputSize, inputSize], initializer: weightInitializer)
        self.bias = bias ? Parameter(GlobalRandom.withGenerator {
            (biasInitializer ?? .uniform(low: -1 / Double(inputSize).squareRoot(), high: 1 / Double(inputSize).squareRoot()))
                .tensor(shape: [outputSize], using: &$0)
        }) : nil
        super.init()
    }

    /// A layer with the given weight [out, in] and optional bias [out].
    public init(weight: Tensor<Scalar>, bias: Tensor<Scalar>?) {
        require(weight.rank == 2 && (bias == nil || bias!.shape == [weight.shape[0]]),
                     "Linear: weight \(weight.shape) and bias \(bias?.shape ?? []) do not agree")
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
        super.init()
    }

    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> { callAsFunction(x, thenReLU: false) }

    /// The layer followed by a ReLU, as one primitive when there is a bias (``Sequential`` uses it
    /// for a `Linear` followed by `ReLU()`): the same values as `relu(layer(x))`.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>, thenReLU relu: Bool) -> Tensor<Scalar> {
        require(x.rank >= 1 && x.shape.last == weight.shape[1],
                     "Linear: input of shape \(x.shape) does not end in \(weight.shape[1]) features (weight \(weight.shape))")
        // Any leading axes are rows of one product (x is reshaped only when it is not a matrix).
        let features = weight.shape[1]
        let rows = x.rank == 2 ? x : x.reshaped(to: [x.count / features, features])
        let y: Tensor<Scalar>
        if let bias {
            y = relu ? Tensor.linearReLU(rows, weight: weight.value, bias: bias.value)
                     : Tensor.linear(rows, weight: weight.value, bias: bias.value)
        } else {
            let product = Tensor.matmul(rows, weight.value, transposeB: true)
            y = relu ? product.relu() : product
        }
        return x.rank == 2 ? y : y.reshaped(to: Array(x.shape.dropLast()) + [weight.shape[0]])
    }
}

/// 2-D convolution over [N, C, H, W] with weight [out, in/groups, kh, kw].
public final class Conv2d<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let weight: Parameter<Scalar>
    public let bias: Parameter<Scalar>?
    public let stride: [Int], padding: [Int], dilation: [Int], groups: Int

    public init(inputChannels: Int, outputChannels: Int, kernelSize: [Int], stride: [Int] = [1, 1], padding: [Int] = [0, 0],
                dilation: [Int] = [1, 1], groups: Int = 1, bias: Bool = true, weightInitializer: Initializer = .fanInUniform) {
        require(kernelSize.count == 2 && inputChannels % groups == 0 && outputChannels % groups == 0,
                     "Conv2d: \(inputChannels) → \(outputChannels) channels, kernel \(kernelSize), groups \(groups) do not agree")
        let shape = [outputChannels, inputChannels / groups] + kernelSize
        weight = Parameter(shape: shape, initializer: weightInitializer)
        let bound = 1 / Double(Initializer.fans(shape).fanIn).squareRoot()
        self.bias = bias ? Parameter(shape: [outputChannels], initializer: .uniform(low: -bound, high: bound)) : nil
        (self.stride, self.padding, self.dilation, self.groups) = (stride, padding, dilation, groups)
        super.init()
    }

    public convenience init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        self.init(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: [kernelSize, kernelSize],
                  stride: [stride, stride], padding: [padding, padding], dilation: [dilation, dilation], groups: groups, bias: bias)
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        require(x.rank == 4 && x.shape[1] == weight.shape[1] * groups,
                     "Conv2d: input of shape \(x.shape) does not have \(weight.shape[1] * groups) channels in [N, C, H, W]")
        return x.conv2d(weight: weight.value, bias: bias?.value, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}

/// 1-D convolution over [N, C, L] with weight [out, in/groups, k].
public final class Conv1d<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let weight: Parameter<Scalar>
    public let bias: Parameter<Scalar>?
    public let stride: Int, padding: Int, dilation: Int, groups: Int

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true, weightInitializer: Initializer = .fanInUniform) {
        require(inputChannels % groups == 0 && outputChannels % groups == 0,
                     "Conv1d: \(inputChannels) → \(outputChannels) channels and groups \(groups) do not agree")
        let shape = [outputChannels, inputChannels / groups, kernelSize]
        weight = Parameter(shape: shape, initializer: weightInitializer)
        let bound = 1 / Double(Initializer.fans(shape).fanIn).squareRoot()
        self.bias = bias ? Parameter(shape: [outputChannels], initializer: .uniform(low: -bound, high: bound)) : nil
        (self.stride, self.padding, self.dilation, self.groups) = (stride, padding, dilation, groups)
        super.init()
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        require(x.rank == 3 && x.shape[1] == weight.shape[1] * groups,
                     "Conv1d: input of shape \(x.shape) does not have \(weight.shape[1] * groups) channels in [N, C, L]")
        return x.conv1d(weight: weight.value, bias: bias?.value, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}

/// Max pooling over [N, C, H, W].
public final class MaxPool2d<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let kernelSize: [Int], stride: [Int], padding: [Int]
    public init(kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0]) {
        (self.kernelSize, self.stride, self.padding) = (kernelSize, stride ?? kernelSize, padding)
        super.init()
    }
    public convenience init(_ size: Int) { self.init(kernelSize: [size, size]) }
    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> { x.maxPool2d(kernelSize: kernelSize, stride: stride, padding: padding) }
}

/// Average pooling over [N, C, H, W].
public final class AvgPool2d<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let kernelSize: [Int], stride: [Int], padding: [Int], countIncludingPadding: Bool
    public init(kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0], countIncludingPadding: Bool = true) {
        (self.kernelSize, self.stride, self.padding, self.countIncludingPadding) = (kernelSize, stride ?? kernelSize, padding, countIncludingPadding)
        super.init()
    }
    public convenience init(_ size: Int) { self.init(kernelSize: [size, size]) }
    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        x.avgPool2d(kernelSize: kernelSize, stride: stride, padding: padding, countIncludingPadding: countIncludingPadding)
    }
}

/// Flattens every axis after the first: [N, …] → [N, ∏…].
public final class Flatten<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public override init() { super.init() }
    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        x.reshaped(to: [x.shape.first ?? 1, x.shape.dropFirst().reduce(1, *)])
    }
}

/// A function as a layer: `Lambda { $0.relu() }`.
public final class Lambda<Scalar: TensorScalar>: Module<Scalar>, Layer {
    let body: (Tensor<Scalar>) -> Tensor<Scalar>
    public init(_ body: @escaping (Tensor<Scalar>) -> Tensor<Scalar>) { self.body = body; super.init() }
    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> { body(x) }
}

/// An activation function as a layer.
public final class Activation<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public enum Kind: Sendable, Equatable {
        case relu, tanh, sigmoid, gelu, geluTanh, silu, softplus, leakyRelu(Double), elu(Double), softmax(axis: Int), logSoftmax(axis: Int)
    }
    public let kind: Kind
    public init(_ kind: Kind) { self.kind = kind; super.init() }
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        switch kind {
        case .relu: return x.relu()
        case .tanh: return x.tanh()
        case .sigmoid: return x.sigmoid()
        case .gelu: return x.gelu()
        case .geluTanh: return x.gelu(approximate: true)
        case .silu: return x.silu()
        case .softplus: return x.softplus()
        case .leakyRelu(let a): return x.leakyRelu(negativeSlope: a)
        case .elu(let a): return x.elu(alpha: a)
        case .softmax(let axis): return x.softmax(axis: axis)
        case .logSoftmax(let axis): return x.logSoftmax(axis: axis)
        }
    }
}

public func ReLU<Scalar>() -> Activation<Scalar> { Activation(.relu) }
public func Tanh<Scalar>() -> Activation<Scalar> { Activation(.tanh) }
public func Sigmoid<Scalar>() -> Activation<Scalar> { Activation(.sigmoid) }
public func GELU<Scalar>() -> Activation<Scalar> { Activation(.gelu) }

/// Zeroes each element with probability p in training mode and scales the rest by 1/(1 − p);
/// the identity in evaluation mode. Draws from its own generator, seeded from ``GlobalRandom``.
public final class Dropout<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let probability: Double
    public var generator: RandomGenerator

    public init(probability: Double = 0.5) {
        require(probability >= 0 && probability < 1, "Dropout: probability \(probability) is not in [0, 1)")
        self.probability = probability
        generator = RandomGenerator(seed: GlobalRandom.withGenerator { $0.next() })
        super.init()
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        guard isTraining, probability > 0 else { return x }
        let mask = Tensor<Scalar>.bernoulli(shape: x.shape, probability: 1 - probability, using: &generator)
        return x * (mask * Scalar(1 / (1 - probability)))
    }
}

/// Rows of a [count, dimension] table looked up by index. The row `paddingIndex` (if any) gets no
/// gradient. Weight defaults to N(0, 1).
public final class Embedding<Scalar: TensorScalar>: Module<Scalar> {
    public let weight: Parameter<Scalar>
    public let paddingIndex: Int?

    public init(count: Int, dimension: Int, paddingIndex: Int? = nil, initializer: Initializer = .normal(mean: 0, standardDeviation: 1)) {
        require(paddingIndex == nil || (paddingIndex! >= 0 && paddingIndex! < count), "Embedding: padding index \(paddingIndex!) out of range 0..<\(count)")
        var w: Tensor<Scalar> = GlobalRandom.withGenerator { initializer.tensor(shape: [count, dimension], using: &$0) }
        if let p = paddingIndex { w = Embedding.zeroRow(w, p) }
        weight = Parameter(w)
        self.paddingIndex = paddingIndex
        super.init()
    }

    public init(weight: Tensor<Scalar>, paddingIndex: Int? = nil) {
        self.weight = Parameter(weight)
        self.paddingIndex = paddingIndex
        super.init()
    }

    static func zeroRow(_ w: Tensor<Scalar>, _ row: Int) -> Tensor<Scalar> {
        var s = w.scalars
        for j in 0..<w.shape[1] { s[row * w.shape[1] + j] = 0 }
        return Tensor(shape: w.shape, scalars: s)
    }

    public func callAsFunction(_ indices: IndexTensor) -> Tensor<Scalar> {
        require(indices.values.allSatisfy { $0 >= 0 && $0 < weight.shape[0] },
                     "Embedding: an index is outside 0..<\(weight.shape[0])")
        return weight.value.embeddingLookup(indices, paddingIndex: paddingIndex)
    }
}

/// Batch normalization over axis 1 of [N, C], [N, C, L] or [N, C, H, W]: BatchNorm1d and
/// BatchNorm2d in one. Training mode normalizes with the batch's mean and biased variance and
/// updates the running estimates (unbiased variance); evaluation mode uses the running ones.
/// `momentum: nil` keeps a cumulative average.
public final class BatchNorm<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let weight: Parameter<Scalar>?
    public let bias: Parameter<Scalar>?
    public let runningMean: Buffer<Scalar>
    public let runningVariance: Buffer<Scalar>
    public let batchesTracked: Buffer<Scalar>
    public let epsilon: Double
    public let momentum: Double?

    public init(featureCount: Int, epsilon: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true) {
        weight = affine ? Parameter(Tensor.ones(shape: [featureCount])) : nil
        bias = affine ? Parameter(Tensor.zeros(shape: [featureCount])) : nil
        runningMean = Buffer(Tensor.zeros(shape: [featureCount]))
        runningVariance = Buffer(Tensor.ones(shape: [featureCount]))
        batchesTracked = Buffer(Tensor(0), isInteger: true)
        self.epsilon = epsilon
        self.momentum = momentum
        super.init()
    }

    public override func namedChildren() -> [(String, Any)] {
        [("weight", weight as Any), ("bias", bias as Any), ("running_mean", runningMean),
         ("running_var", runningVariance), ("num_batches_tracked", batchesTracked)]
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        let c = runningMean.value.count
        require(x.rank >= 2 && x.shape[1] == c, "BatchNorm: input of shape \(x.shape) does not have \(c) features on axis 1")
        if isTraining {
            let n = x.count / c
            require(n > 1, "BatchNorm: training needs more than one value per channel, got input \(x.shape)")
            // One primitive for the normalization and the affine map, with the batch's statistics.
            let (out, mean, variance) = Tensor.batchNorm(x, weight: weight?.value, bias: bias?.value, epsilon: epsilon)
            withoutGradients {
                batchesTracked.value = batchesTracked.value + 1
                let m = Scalar(momentum ?? 1 / Double(batchesTracked.value.scalar))
                runningMean.value = runningMean.value * (1 - m) + mean * m
                runningVariance.value = runningVariance.value * (1 - m) + variance * (m * Scalar(n) / Scalar(n - 1))
            }
            return out
        }
        var channelShape = [Int](repeating: 1, count: x.rank)
        channelShape[1] = c
        let y = (x - runningMean.value.reshaped(to: channelShape)) / (runningVariance.value.reshaped(to: channelShape) + Scalar(epsilon)).squareRoot()
        guard let weight, let bias else { return y }
        return y * weight.value.reshaped(to: channelShape) + bias.value.reshaped(to: channelShape)
    }
}

/// Normalization over the trailing axes `shape`, with biased variance, then an optional
/// element-wise affine map.
public final class LayerNorm<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let normalizedShape: [Int]
    public let weight: Parameter<Scalar>?
    public let bias: Parameter<Scalar>?
    public let epsilon: Double

    /// `bias: false` keeps the learned scale without the shift (as GPT-2-style models do).
    public init(shape: [Int], epsilon: Double = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) {
        normalizedShape = shape
        weight = elementwiseAffine ? Parameter(Tensor.ones(shape: shape)) : nil
        self.bias = elementwiseAffine && bias ? Parameter(Tensor.zeros(shape: shape)) : nil
        self.epsilon = epsilon
        super.init()
    }
    public convenience init(_ size: Int, epsilon: Double = 1e-5) { self.init(shape: [size], epsilon: epsilon) }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        let k = normalizedShape.count
        require(x.rank >= k && Array(x.shape.suffix(k)) == normalizedShape,
                     "LayerNorm: input of shape \(x.shape) does not end in \(normalizedShape)")
        if k == 1 { return Tensor.layerNorm(x, weight: weight?.value, bias: bias?.value, epsilon: epsilon) }
        let axes = Array((x.rank - k)..<x.rank)
        let centered = x - x.mean(axes: axes, keepingDimensions: true)
        let variance = (centered * centered).mean(axes: axes, keepingDimensions: true)
        let y = centered / (variance + Scalar(epsilon)).squareRoot()
        guard let weight else { return y }
        return bias.map { y * weight.value + $0.value } ?? y * weight.value
    }
}
