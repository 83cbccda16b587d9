import Nabla

/// API misuse, one call per case, each expected to stop the program with a message that names
/// the operation and the shapes (or the value) at fault. `nabla misuse NAME` runs one; the tests
/// and `scripts/misuse-check` (on a release build, where Swift's `precondition` would drop the
/// message) run them all as subprocesses and read what reaches standard error.
public enum Misuse {
    public struct Case: Sendable {
        public var name: String
        /// Texts the message must contain.
        public var expected: [String]
        public var run: @Sendable () -> Void
    }

    static func m(_ rows: Int, _ cols: Int) -> Tensor<Float> { Tensor(repeating: 1, shape: [rows, cols]) }

    public static let cases: [Case] = [
        Case(name: "broadcast", expected: ["add", "[2, 3]", "[4]"]) { _ = m(2, 3) + Tensor<Float>(repeating: 1, shape: [4]) },
        Case(name: "matmul", expected: ["matmul", "[2, 3]", "[4, 5]"]) { _ = Tensor.matmul(m(2, 3), m(4, 5)) },
        Case(name: "linear-input", expected: ["Linear", "[3, 5]", "4"]) { _ = Linear<Float>(inputSize: 4, outputSize: 2)(m(3, 5)) },
        Case(name: "linear-size", expected: ["Linear", "0"]) { _ = Linear<Float>(inputSize: 0, outputSize: 2) },
        Case(name: "conv2d-channels", expected: ["[1, 2, 8, 8]"]) {
            _ = Conv2d<Float>(inputChannels: 3, outputChannels: 4, kernelSize: [3, 3])(Tensor(repeating: 1, shape: [1, 2, 8, 8]))
        },
        Case(name: "maxpool-window", expected: ["larger than the input", "[1, 1, 2, 2]"]) {
            _ = Tensor<Float>(repeating: 1, shape: [1, 1, 2, 2]).maxPool2d(kernelSize: [4, 4])
        },
        Case(name: "class-label", expected: ["crossEntropy", "0..<3"]) { _ = crossEntropy(logits: m(2, 3), targets: IndexTensor([0, 5])) },
        Case(name: "mse-shapes", expected: ["[2, 3]", "[3, 2]"]) { _ = meanSquaredError(m(2, 3), m(3, 2)) },
        Case(name: "index", expected: ["subscript", "7", "[3]"]) { _ = Tensor<Float>([1, 2, 3])[7] },
        Case(name: "range", expected: ["subscript", "[3]"]) { _ = Tensor<Float>([1, 2, 3])[1..<9] },
        Case(name: "element", expected: ["[2, 2]"]) { _ = m(2, 2)[element: 2, 0] },
        Case(name: "gather", expected: ["gather", "[2, 3]"]) { _ = m(2, 3).gather(axis: 1, index: IndexTensor(shape: [2, 1], values: [0, 9])) },
        Case(name: "index-select", expected: ["[2, 3]"]) { _ = m(2, 3).indexSelect(axis: 0, indices: [5]) },
        Case(name: "reshape", expected: ["reshape", "[2, 3]", "[4, 2]"]) { _ = m(2, 3).reshaped(to: [4, 2]) },
        Case(name: "concatenate", expected: ["concatenate", "[2, 3]", "[2, 4]"]) { _ = Tensor.concatenate([m(2, 3), m(2, 4)], axis: 0) },
        Case(name: "softmax-axis", expected: ["softmax", "2"]) { _ = m(2, 3).softmax(axis: 2) },
        Case(name: "sum-axis", expected: ["sum", "5"]) { _ = m(2, 3).sum(axes: [5]) },
        Case(name: "embedding", expected: ["Embedding", "10"]) { _ = Embedding<Float>(count: 4, dimension: 2)(IndexTensor([10])) },
        Case(name: "lstm-input", expected: ["LSTM", "[1, 2, 5]"]) { _ = LSTM<Float>(inputSize: 3, hiddenSize: 2)(Tensor(repeating: 1, shape: [1, 2, 5])) },
        Case(name: "attention", expected: ["MultiheadAttention", "[1, 2, 6]"]) {
            let x = Tensor<Float>(repeating: 1, shape: [1, 2, 6])
            _ = MultiheadAttention<Float>(embedDimension: 4, heads: 2)(query: x, key: x, value: x)
        },
        Case(name: "batchnorm", expected: ["BatchNorm", "[2, 5]", "3"]) { _ = BatchNorm<Float>(featureCount: 3)(m(2, 5)) },
        Case(name: "not-differentiable", expected: ["gradients", "requiringGradient"]) {
            let x = Tensor<Double>([1, 2])
            _ = gradients(of: (x * x).sum(), wrt: [x])
        },
        Case(name: "optimizer-step", expected: ["Optimizer.step", "[3]", "[2]"]) {
            var optimizer = Optimizer<Float>(rule: SGD(), learningRate: 0.1)
            var parameters = [Tensor<Float>([1, 2])]
            optimizer.step(&parameters, gradients: [Tensor<Float>([1, 2, 3])])
        },
        Case(name: "where", expected: ["where", "[2, 3]", "[4]"]) { _ = Tensor.where(m(2, 3), m(2, 3), Tensor<Float>(repeating: 0, shape: [4])) },
        Case(name: "conv1d-channels", expected: ["[1, 2, 8]"]) {
            _ = Conv1d<Float>(inputChannels: 3, outputChannels: 4, kernelSize: 3)(Tensor(repeating: 1, shape: [1, 2, 8]))
        },
        Case(name: "avgpool-rank", expected: ["avg_pool2d", "[2, 3]"]) { _ = m(2, 3).avgPool2d(kernelSize: [2, 2]) },
        Case(name: "gru-input", expected: ["GRU", "[1, 2, 5]"]) { _ = GRU<Float>(inputSize: 3, hiddenSize: 2)(Tensor(repeating: 1, shape: [1, 2, 5])) },
        Case(name: "rnn-input", expected: ["RNN", "[1, 2, 5]"]) { _ = RNN<Float>(inputSize: 3, hiddenSize: 2)(Tensor(repeating: 1, shape: [1, 2, 5])) },
        Case(name: "layernorm", expected: ["LayerNorm", "[2, 5]"]) { _ = LayerNorm<Float>(shape: [3])(m(2, 5)) },
        Case(name: "sdpa", expected: ["[1, 2, 4]", "[1, 2, 3]"]) {
            _ = scaledDotProductAttention(query: Tensor<Float>(repeating: 1, shape: [1, 2, 4]), key: Tensor(repeating: 1, shape: [1, 2, 3]),
                                          value: Tensor(repeating: 1, shape: [1, 2, 3]))
        },
        Case(name: "stack", expected: ["stack", "[2, 3]", "[3, 2]"]) { _ = Tensor.stack([m(2, 3), m(3, 2)], axis: 0) },
        Case(name: "permute", expected: ["permute", "[2, 3]"]) { _ = m(2, 3).permuted([0, 0]) },
        Case(name: "maximum", expected: ["[2, 3]", "[3, 2]"]) { _ = Tensor.maximum(m(2, 3), m(3, 2)) },
        Case(name: "bce-shapes", expected: ["[2, 3]", "[2, 1]"]) { _ = binaryCrossEntropy(logits: m(2, 3), targets: m(2, 1)) },
        Case(name: "transformer", expected: ["[1, 2, 6]"]) {
            _ = TransformerEncoderLayer<Float>(embedDimension: 4, heads: 2, feedForward: 8, dropout: 0)(Tensor(repeating: 1, shape: [1, 2, 6]))
        },
        Case(name: "dropout-probability", expected: ["Dropout", "1.5"]) { _ = Dropout<Float>(probability: 1.5) },
        Case(name: "compiled-broadcast", expected: ["compiled add", "[2, 3]", "[3, 2]"]) {
            _ = compiled { (xs: [Traced<Float>]) in [xs[0] + xs[1]] }([m(2, 3), m(3, 2)])
        },
        Case(name: "compiled-matmul", expected: ["compiled matmul", "[2, 3]", "[2, 3]"]) {
            _ = compiled { (xs: [Traced<Float>]) in [Traced.matmul(xs[0], xs[1])] }([m(2, 3), m(2, 3)])
        },
        Case(name: "compiled-gradient-of-vector", expected: ["compiled gradient", "[2, 3]"]) {
            _ = compiled { (x: Traced<Float>) in x.exp() }.gradient(at: m(2, 3))
        },
        Case(name: "compiled-hessian-of-matrix", expected: ["compiled hessian", "[2, 3]"]) {
            _ = compiled { (x: Traced<Float>) in x.exp().sum() }.hessian(at: m(2, 3))
        },
    ]

    public static func named(_ name: String) -> Case? { cases.first { $0.name == name } }
}
