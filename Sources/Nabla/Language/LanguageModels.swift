import Foundation

/// A model of the next token: logits for every position of a batch of token windows.
public protocol LanguageModel: AnyObject {
    associatedtype Scalar: TensorScalar
    var vocabularySize: Int { get }
    /// The longest window the model reads at once (nil: any).
    var contextLength: Int? { get }
    /// Logits [B, T, V] for tokens [B, T].
    func logits(_ tokens: IndexTensor) -> Tensor<Scalar>
}

extension LanguageModel {
    /// Mean cross-entropy (nats per token) of predicting `targets` [B, T] from `tokens` [B, T].
    public func loss(_ tokens: IndexTensor, targets: IndexTensor) -> Tensor<Scalar> {
        logits(tokens).reshaped(to: [tokens.values.count, vocabularySize]).softmaxCrossEntropy(targets: targets.values)
    }
}

extension GPT: LanguageModel {
    public var vocabularySize: Int { configuration.vocabularySize }
    public var contextLength: Int? { configuration.contextLength }
    public func logits(_ tokens: IndexTensor) -> Tensor<Scalar> { self(tokens) }
}

/// The shape of an ``LSTMLanguageModel``.
public struct LSTMLanguageModelConfiguration: Sendable, Codable, Equatable {
    public var vocabularySize: Int
    public var embedding: Int
    public var hidden: Int
    public var layers: Int

    public init(vocabularySize: Int, embedding: Int = 128, hidden: Int = 256, layers: Int = 2) {
        (self.vocabularySize, self.embedding, self.hidden, self.layers) = (vocabularySize, embedding, hidden, layers)
    }

    public var problem: String? {
        if vocabularySize < 1 { return "the vocabulary is empty" }
        if embedding < 1 || hidden < 1 || layers < 1 { return "embedding, hidden size and layers must be positive, got \(embedding), \(hidden), \(layers)" }
        return nil
    }
}

/// A character LSTM: embedding → stacked LSTM → linear to the vocabulary at every position.
/// Initialized as PyTorch does (embedding N(0, 1); every LSTM and output weight and bias
/// U(−1/√hidden, 1/√hidden)).
public final class LSTMLanguageModel<Scalar: TensorScalar>: Module<Scalar>, LanguageModel {
    public let configuration: LSTMLanguageModelConfiguration
    public let embedding: Embedding<Scalar>
    public let lstm: LSTM<Scalar>
    public let head: Linear<Scalar>

    public init(_ c: LSTMLanguageModelConfiguration, generator: inout RandomGenerator) {
        require(c.problem == nil, "LSTMLanguageModel: \(c.problem ?? "")")
        configuration = c
        embedding = Embedding(weight: Tensor(shape: [c.vocabularySize, c.embedding], scalars: (0..<(c.vocabularySize * c.embedding)).map { _ in Scalar(generator.nextNormal()) }))
        lstm = LSTM(inputSize: c.embedding, hiddenSize: c.hidden, layers: c.layers)
        head = Linear(inputSize: c.hidden, outputSize: c.vocabularySize)
        super.init()
        let k = 1 / Double(c.hidden).squareRoot()
        for (name, p) in namedParameters where !name.hasPrefix("embedding") {
            p.value = Tensor(shape: p.shape, scalars: (0..<p.value.count).map { _ in Scalar(-k + 2 * k * generator.nextUniform()) })
        }
    }

    public override func namedChildren() -> [(String, Any)] { [("embedding", embedding), ("lstm", lstm), ("head", head)] }

    public var vocabularySize: Int { configuration.vocabularySize }
    public var contextLength: Int? { nil }

    public func logits(_ tokens: IndexTensor) -> Tensor<Scalar> {
        require(tokens.shape.count == 2, "LSTMLanguageModel: token ids of shape \(tokens.shape) are not [B, T]")
        return run(tokens, state: nil).logits
    }

    /// Logits [B, T, V] and the final state, starting from `state` (nil: zeros).
    public func run(_ tokens: IndexTensor, state: [LSTM<Scalar>.State]?) -> (logits: Tensor<Scalar>, state: [LSTM<Scalar>.State]) {
        let (b, t) = (tokens.shape[0], tokens.shape[1])
        let first = lstm.cells[0]
        let projected: Tensor<Scalar>
        if configuration.vocabularySize <= b * t {
            // Embedding then input projection = a lookup in the projected table E W_ihᵀ + b_ih
            // [V, 4H]: V rows multiplied instead of B·T (the same sums, in another order).
            let table = first.inputProjection(embedding.weight.value)
            projected = table.takeRows(tokens.values).reshaped(to: [b, t, 4 * configuration.hidden])
        } else {
            projected = first.inputProjection(embedding(tokens))
        }
        let (out, s) = lstm(projectedInput: projected, state: state)
        let logits = head(out.reshaped(to: [b * t, configuration.hidden])).reshaped(to: [b, t, configuration.vocabularySize])
        return (logits, s)
    }
}
