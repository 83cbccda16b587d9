import Nabla
import Testing

/// Every primitive (and the composites built on them) against central differences in Double,
/// by the dot-product test ⟨Jᵀc, t⟩ = ⟨c, J t⟩ with random c and t.
struct PrimitiveCase: CustomTestStringConvertible, Sendable {
    let name: String
    let inputs: @Sendable () -> [Tensor<Double>]
    let f: @Sendable ([Tensor<Double>]) -> Tensor<Double>
    /// Smooth at the test points: second derivatives are checked too.
    var smooth = true
    var testDescription: String { name }
}

let primitiveCases: [PrimitiveCase] = [
    .init(name: "add (broadcast)", inputs: { [randn([3, 4], seed: 1), randn([4], seed: 2)] }, f: { $0[0] + $0[1] }),
    .init(name: "sub (broadcast)", inputs: { [randn([2, 3, 1], seed: 3), randn([3, 4], seed: 4)] }, f: { $0[0] - $0[1] }),
    .init(name: "mul (broadcast)", inputs: { [randn([2, 1, 3], seed: 5), randn([1, 4, 1], seed: 6)] }, f: { $0[0] * $0[1] }),
    .init(name: "div", inputs: { [randn([3, 4], seed: 7), positive([3, 1], seed: 8)] }, f: { $0[0] / $0[1] }),
    .init(name: "pow tensor", inputs: { [positive([3, 4], seed: 9), randn([3, 4], seed: 10)] }, f: { Tensor.pow($0[0], $0[1]) }),
    .init(name: "maximum", inputs: { [randn([3, 4], seed: 11), randn([3, 4], seed: 12)] }, f: { Tensor.maximum($0[0], $0[1]) }, smooth: false),
    .init(name: "minimum", inputs: { [randn([3, 4], seed: 13), randn([4], seed: 14)] }, f: { Tensor.minimum($0[0], $0[1]) }, smooth: false),
    .init(name: "neg", inputs: { [randn([5], seed: 15)] }, f: { -$0[0] }),
    .init(name: "exp", inputs: { [randn([5], seed: 16)] }, f: { $0[0].exp() }),
    .init(name: "log", inputs: { [positive([5], seed: 17)] }, f: { $0[0].log() }),
    .init(name: "sqrt", inputs: { [positive([5], seed: 18)] }, f: { $0[0].squareRoot() }),
    .init(name: "abs", inputs: { [randn([5], seed: 19)] }, f: { $0[0].abs() }, smooth: false),
    .init(name: "tanh", inputs: { [randn([5], seed: 20)] }, f: { $0[0].tanh() }),
    .init(name: "sigmoid", inputs: { [randn([5], seed: 21)] }, f: { $0[0].sigmoid() }),
    .init(name: "sin", inputs: { [randn([5], seed: 22)] }, f: { $0[0].sin() }),
    .init(name: "cos", inputs: { [randn([5], seed: 23)] }, f: { $0[0].cos() }),
    .init(name: "tan", inputs: { [randn([5], seed: 24) * 0.5] }, f: { $0[0].tan() }),
    .init(name: "erf", inputs: { [randn([5], seed: 25)] }, f: { $0[0].erf() }),
    .init(name: "pow scalar", inputs: { [positive([5], seed: 26)] }, f: { $0[0].pow(2.5) }),
    .init(name: "relu", inputs: { [randn([6], seed: 27)] }, f: { $0[0].relu() }, smooth: false),
    .init(name: "relu squared (second order through relu's pullback)", inputs: { [randn([6], seed: 29)] },
          f: { $0[0].relu() * $0[0].relu() * $0[0] }),
    .init(name: "leaky relu", inputs: { [randn([6], seed: 28)] }, f: { $0[0].leakyRelu(negativeSlope: 0.1) }, smooth: false),
    .init(name: "elu", inputs: { [randn([6], seed: 29)] }, f: { $0[0].elu(alpha: 1.3) }, smooth: false),
    .init(name: "gelu", inputs: { [randn([6], seed: 30)] }, f: { $0[0].gelu() }),
    .init(name: "gelu tanh", inputs: { [randn([6], seed: 31)] }, f: { $0[0].gelu(approximate: true) }),
    .init(name: "softplus", inputs: { [randn([6], seed: 32) * 3] }, f: { $0[0].softplus(beta: 2, threshold: 4) }, smooth: false),
    .init(name: "clamp", inputs: { [randn([6], seed: 33)] }, f: { $0[0].clamped(min: -0.5, max: 0.7) }, smooth: false),
    .init(name: "where", inputs: { [randn([3, 4], seed: 34), randn([4], seed: 35)] }, f: { Tensor.where(randn([3, 4], seed: 36) .> 0, $0[0], $0[1]) }),
    .init(name: "sum over axes", inputs: { [randn([2, 3, 4], seed: 37)] }, f: { $0[0].sum(axes: [0, 2]) }),
    .init(name: "max", inputs: { [randn([3, 5], seed: 38)] }, f: { $0[0].max(axes: [1]) }, smooth: false),
    .init(name: "min (all)", inputs: { [randn([3, 5], seed: 39)] }, f: { $0[0].min() }, smooth: false),
    .init(name: "reshape", inputs: { [randn([2, 6], seed: 40)] }, f: { $0[0].reshaped(to: [3, 4]) }),
    .init(name: "permute", inputs: { [randn([2, 3, 4], seed: 41)] }, f: { $0[0].permuted([2, 0, 1]) }),
    .init(name: "broadcast", inputs: { [randn([3, 1], seed: 42)] }, f: { $0[0].broadcast(to: [2, 3, 4]) }),
    .init(name: "sum to shape", inputs: { [randn([2, 3, 4], seed: 43)] }, f: { $0[0].summed(toShape: [3, 1]) }),
    .init(name: "take (slice with step)", inputs: { [randn([4, 6], seed: 44)] }, f: { $0[0].slice([(1, 4, 1), (0, 6, 2)]) }),
    .init(name: "scatter add", inputs: { [randn([5], seed: 45)] }, f: { $0[0].scatterAdding(flatIndices: [0, 3, 3, -1, 7], shape: [2, 4]) }),
    .init(name: "gather", inputs: { [randn([3, 5], seed: 46)] }, f: { $0[0].gather(axis: 1, index: IndexTensor(shape: [3, 2], values: [0, 4, 2, 2, 1, 3])) }),
    .init(name: "concatenate", inputs: { [randn([2, 3], seed: 47), randn([2, 1], seed: 48)] }, f: { Tensor.concatenate($0, axis: 1) }),
    .init(name: "stack", inputs: { [randn([2, 3], seed: 49), randn([2, 3], seed: 50)] }, f: { Tensor.stack($0, axis: 1) }),
    .init(name: "matmul", inputs: { [randn([3, 4], seed: 51), randn([4, 5], seed: 52)] }, f: { Tensor.matmul($0[0], $0[1]) }),
    .init(name: "matmul transposed flags", inputs: { [randn([4, 3], seed: 53), randn([5, 4], seed: 54)] },
          f: { Tensor.matmul($0[0], $0[1], transposeA: true, transposeB: true) }),
    .init(name: "linear (bias fused into the product)", inputs: { [randn([3, 4], seed: 57), randn([5, 4], seed: 58), randn([5], seed: 59)] },
          f: { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }),
    .init(name: "linear with ReLU (fused)", inputs: { [randn([3, 4], seed: 57), randn([5, 4], seed: 58), randn([5], seed: 59)] },
          f: { Tensor.linearReLU($0[0], weight: $0[1], bias: $0[2]) }),
    .init(name: "matmul batched broadcast", inputs: { [randn([2, 3, 4], seed: 55), randn([4, 2], seed: 56)] }, f: { Tensor.matmul($0[0], $0[1]) }),
    .init(name: "softmax", inputs: { [randn([3, 5], seed: 57)] }, f: { $0[0].softmax(axis: 1) }),
    .init(name: "log softmax", inputs: { [randn([3, 5], seed: 58)] }, f: { $0[0].logSoftmax(axis: 0) }),
    .init(name: "logsumexp", inputs: { [randn([3, 5], seed: 59)] }, f: { $0[0].logSumExp(axes: [1]) }),
    .init(name: "softmax cross-entropy (fused)", inputs: { [randn([4, 3], seed: 90)] }, f: { $0[0].softmaxCrossEntropy(targets: [0, 2, 1, 2]) }),
    .init(name: "log sigmoid", inputs: { [randn([6], seed: 91) * 3] }, f: { logSigmoid($0[0]) }),
    .init(name: "variance", inputs: { [randn([3, 5], seed: 60)] }, f: { $0[0].variance(axes: [1], correction: 1) }),
    .init(name: "conv2d (stride, padding, dilation, groups)", inputs: { [randn([2, 4, 6, 5], seed: 61), randn([6, 2, 3, 2], seed: 62), randn([6], seed: 63)] },
          f: { $0[0].conv2d(weight: $0[1], bias: $0[2], stride: [2, 1], padding: [1, 1], dilation: [1, 2], groups: 2) }),
    .init(name: "conv2d (ungrouped primitive: stride, padding, dilation)", inputs: { [randn([2, 3, 6, 5], seed: 61), randn([4, 3, 3, 2], seed: 62), randn([4], seed: 63)] },
          f: { $0[0].conv2d(weight: $0[1], bias: $0[2], stride: [2, 1], padding: [1, 2], dilation: [1, 2]) }),
    .init(name: "batch norm (fused, batch statistics)", inputs: { [randn([3, 2, 2, 3], seed: 69), randn([2], seed: 70), randn([2], seed: 71)] },
          f: { Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2]).output }),
    .init(name: "conv1d", inputs: { [randn([2, 3, 9], seed: 64), randn([4, 3, 3], seed: 65)] }, f: { $0[0].conv1d(weight: $0[1], stride: 2, padding: 1) }),
    .init(name: "max pool", inputs: { [randn([1, 2, 5, 5], seed: 66)] }, f: { $0[0].maxPool2d(kernelSize: [3, 3], stride: [2, 2], padding: [1, 1]) }, smooth: false),
    .init(name: "avg pool", inputs: { [randn([1, 2, 5, 5], seed: 67)] }, f: { $0[0].avgPool2d(kernelSize: [3, 3], stride: [2, 2], padding: [1, 1], countIncludingPadding: false) }),
    .init(name: "embedding", inputs: { [randn([6, 3], seed: 68)] }, f: { $0[0].embeddingLookup(IndexTensor(shape: [2, 2], values: [1, 5, 1, 0])) }),
]

@Suite struct PrimitiveGradientTests {
    @Test(arguments: primitiveCases)
    func firstDerivativesMatchCentralDifferences(_ c: PrimitiveCase) {
        let report = GradientCheck.dotProductTest(at: c.inputs(), seed: 7, of: c.f)
        #expect(report.passed, "\(c.name): \(report)")
        #expect(report.reverse != 0, "\(c.name): the test direction gave a zero product; it would prove nothing")
    }

    /// ReLU's pullback passes the cotangent where x > 0 and gives exactly 0 elsewhere, even for
    /// a NaN or infinite cotangent (PyTorch's threshold_backward), in Float and Double.
    @Test func reluPullbackZeroesWhereTheInputIsNotPositive() {
        let x = Tensor<Double>([-1, 0, 2, 3]).requiringGradient()
        let g = gradients(of: x.relu(), with: Tensor([Double.nan, .infinity, 5, -.infinity]), wrt: [x])[0]
        #expect(g.scalars[0] == 0 && g.scalars[1] == 0 && g.scalars[2] == 5 && g.scalars[3] == -.infinity)
        let xf = Tensor<Float>([0.5, -0.5]).requiringGradient()
        #expect(gradients(of: xf.relu(), with: Tensor<Float>([2, .nan]), wrt: [xf])[0].scalars == [2, 0])
    }

    /// The gradient of Σ sin(f(x)) is itself differentiated: exact second derivatives.
    @Test(arguments: primitiveCases.filter(\.smooth))
    func secondDerivativesMatchCentralDifferences(_ c: PrimitiveCase) {
        let inputs = c.inputs()
        let gradientOfF = { (xs: [Tensor<Double>]) -> Tensor<Double> in
            let gs = gradient(at: xs) { c.f($0).sin().sum() }
            return Tensor.concatenate(gs.map { $0.flattened() })
        }
        let report = GradientCheck.dotProductTest(at: inputs, seed: 11, epsilon: 1e-5, tolerance: 1e-5, of: gradientOfF)
        #expect(report.passed, "\(c.name): \(report)")
    }
}
