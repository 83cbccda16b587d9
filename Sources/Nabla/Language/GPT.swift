import Foundation

/// The shape of a ``GPT``.
public struct GPTConfiguration: Sendable, Codable, Equatable {
    public var vocabularySize: Int
    /// The longest context (learned positions).
    public var contextLength: Int
    public var layers: Int
    public var heads: Int
    public var embedding: Int
    public var dropout: Double

    public init(vocabularySize: Int, contextLength: Int = 64, layers: Int = 4, heads: Int = 4, embedding: Int = 128, dropout: Double = 0) {
        (self.vocabularySize, self.contextLength, self.layers, self.heads, self.embedding, self.dropout) =
            (vocabularySize, contextLength, layers, heads, embedding, dropout)
    }

    /// Whether the sizes fit together; the reason when not.
    public var problem: String? {
        if vocabularySize < 1 { return "the vocabulary is empty" }
        if contextLength < 1 { return "the context length must be at least 1, got \(contextLength)" }
        if layers < 1 || heads < 1 || embedding < 1 { return "layers, heads and embedding width must be positive, got \(layers), \(heads), \(embedding)" }
        if embedding % heads != 0 { return "the embedding width \(embedding) is not divisible by \(heads) heads" }
        if !(dropout >= 0 && dropout < 1) { return "dropout \(dropout) is not in [0, 1)" }
        return nil
    }
}

/// Causal multi-head self-attention of a GPT block: one [3C, C] projection to queries, keys and
/// values (no bias), softmax(q kᵀ/√d + causal mask) v per head, heads concatenated, an output
/// projection [C, C].
public final class CausalSelfAttention<Scalar: TensorScalar>: Module<Scalar> {
    public let attention: Linear<Scalar>
    public let projection: Linear<Scalar>
    public let heads: Int
    let dropout: Dropout<Scalar>

    init(_ c: GPTConfiguration) {
        attention = Linear(inputSize: c.embedding, outputSize: 3 * c.embedding, bias: false)
        projection = Linear(inputSize: c.embedding, outputSize: c.embedding, bias: false)
        heads = c.heads
        dropout = Dropout(probability: c.dropout)
        super.init()
    }

    public override func namedChildren() -> [(String, Any)] { [("c_attn", attention), ("c_proj", projection), ("dropout", dropout)] }

    /// x [B, T, C] → [B, T, C].
    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        var ignored: (k: Tensor<Scalar>, v: Tensor<Scalar>)?
        return forward(x, keeping: &ignored)
    }

    /// The forward pass, also handing back the keys and values [B, H, T, d] (for a cache).
    func forward(_ x: Tensor<Scalar>, keeping kv: inout (k: Tensor<Scalar>, v: Tensor<Scalar>)?) -> Tensor<Scalar> {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        let d = c / heads
        let qkv = attention(x.reshaped(to: [b * t, c])).reshaped(to: [b, t, 3, heads, d]).permuted([2, 0, 3, 1, 4])   // [3, B, H, T, d]
        let q = qkv.slice(axis: 0, start: 0, end: 1).reshaped(to: [b, heads, t, d])
        let k = qkv.slice(axis: 0, start: 1, end: 2).reshaped(to: [b, heads, t, d])
        let v = qkv.slice(axis: 0, start: 2, end: 3).reshaped(to: [b, heads, t, d])
        kv = (k, v)
        let y = scaledDotProductAttention(query: q, key: k, value: v, causal: true).output   // [B, H, T, d]
        let merged = y.permuted([0, 2, 1, 3]).reshaped(to: [b * t, c])
        return dropout(projection(merged)).reshaped(to: [b, t, c])
    }

    /// One new position with the keys and values of the earlier ones (`cache`, [1, H, S, d]
    /// each, appended to): x [1, 1, C] → [1, 1, C]. Not recorded for differentiation.
    func step(_ x: Tensor<Scalar>, cache: inout (k: Tensor<Scalar>, v: Tensor<Scalar>)?) -> Tensor<Scalar> {
        let c = x.shape[2], d = c / heads
        let qkv = attention(x.reshaped(to: [1, c])).reshaped(to: [3, heads, 1, d])
        let q = qkv.slice(axis: 0, start: 0, end: 1).reshaped(to: [1, heads, 1, d])
        var k = qkv.slice(axis: 0, start: 1, end: 2).reshaped(to: [1, heads, 1, d])
        var v = qkv.slice(axis: 0, start: 2, end: 3).reshaped(to: [1, heads, 1, d])
        if let old = cache {
            k = Tensor.concatenate([old.k, k], axis: 2)
            v = Tensor.concatenate([old.v, v], axis: 2)
        }
        cache = (k, v)
        let y = scaledDotProductAttention(query: q, key: k, value: v).output   // [1, H, 1, d]
        return projection(y.reshaped(to: [1, c])).reshaped(to: [1, 1, c])
    }
}

/// A pre-LayerNorm transformer block: x + attention(LN₁(x)), then x + MLP(LN₂(x)) with a 4×
/// hidden layer and exact GELU. No biases anywhere, as nanoGPT's `bias=False`.
public final class GPTBlock<Scalar: TensorScalar>: Module<Scalar> {
    public let norm1: LayerNorm<Scalar>
    public let attention: CausalSelfAttention<Scalar>
    public let norm2: LayerNorm<Scalar>
    public let expand: Linear<Scalar>
    public let contract: Linear<Scalar>
    let dropout: Dropout<Scalar>

    public init(_ c: GPTConfiguration) {
        norm1 = LayerNorm(shape: [c.embedding], bias: false)
        attention = CausalSelfAttention(c)
        norm2 = LayerNorm(shape: [c.embedding], bias: false)
        expand = Linear(inputSize: c.embedding, outputSize: 4 * c.embedding, bias: false)
        contract = Linear(inputSize: 4 * c.embedding, outputSize: c.embedding, bias: false)
        dropout = Dropout(probability: c.dropout)
        super.init()
    }

    public override func namedChildren() -> [(String, Any)] {
        [("ln_1", norm1), ("attn", attention), ("ln_2", norm2), ("mlp.c_fc", expand), ("mlp.c_proj", contract), ("mlp.dropout", dropout)]
    }

    func mlp(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        return dropout(contract(expand(norm2(x).reshaped(to: [b * t, c])).gelu())).reshaped(to: [b, t, c])
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        let h = x + attention(norm1(x))
        return h + mlp(h)
    }

    func step(_ x: Tensor<Scalar>, cache: inout (k: Tensor<Scalar>, v: Tensor<Scalar>)?) -> Tensor<Scalar> {
        let h = x + attention.step(norm1(x), cache: &cache)
        return h + mlp(h)
    }

    func prefill(_ x: Tensor<Scalar>, cache: inout (k: Tensor<Scalar>, v: Tensor<Scalar>)?) -> Tensor<Scalar> {
        let h = x + attention.forward(norm1(x), keeping: &cache)
        return h + mlp(h)
    }
}

/// A GPT language model (nanoGPT's): token and learned position embeddings, pre-LayerNorm blocks
/// of causal self-attention and a 4× GELU MLP, a final LayerNorm, and an output head tied to the
/// token embedding (logits = x · W_teᵀ). Initialized N(0, 0.02), with the residual projections
/// (`attn.c_proj`, `mlp.c_proj`) N(0, 0.02/√(2·layers)).
public final class GPT<Scalar: TensorScalar>: Module<Scalar> {
    public let configuration: GPTConfiguration
    public let tokenEmbedding: Parameter<Scalar>
    public let positionEmbedding: Parameter<Scalar>
    public let blocks: [GPTBlock<Scalar>]
    public let finalNorm: LayerNorm<Scalar>
    let dropout: Dropout<Scalar>

    /// Weights drawn from `generator` (so the model does not depend on the global one).
    public init(_ c: GPTConfiguration, generator: inout RandomGenerator) {
        require(c.problem == nil, "GPT: \(c.problem ?? "")")
        configuration = c
        func normal(_ shape: [Int], _ std: Double) -> Tensor<Scalar> {
            Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Scalar(std * generator.nextNormal()) })
        }
        tokenEmbedding = Parameter(normal([c.vocabularySize, c.embedding], 0.02))
        positionEmbedding = Parameter(normal([c.contextLength, c.embedding], 0.02))
        blocks = (0..<c.layers).map { _ in GPTBlock(c) }
        finalNorm = LayerNorm(shape: [c.embedding], bias: false)
        dropout = Dropout(probability: c.dropout)
        super.init()
        let residualStd = 0.02 / (2 * Double(c.layers)).squareRoot()
        for block in blocks {
            for layer in [block.attention.attention, block.expand] { layer.weight.value = normal(layer.weight.shape, 0.02) }
            for layer in [block.attention.projection, block.contract] { layer.weight.value = normal(layer.weight.shape, residualStd) }
        }
        var seedSource = generator
        for (_, m) in namedModules { if let d = m as? Dropout<Scalar> { d.generator = RandomGenerator(seed: seedSource.next()) } }
    }

    public override func namedChildren() -> [(String, Any)] {
        [("wte", tokenEmbedding), ("wpe", positionEmbedding), ("h", blocks as Any), ("ln_f", finalNorm), ("drop", dropout)]
    }

    /// Logits [B, T, V] for token ids [B, T] (T ≤ the context length).
    public func callAsFunction(_ tokens: IndexTensor) -> Tensor<Scalar> {
        require(tokens.shape.count == 2, "GPT: token ids of shape \(tokens.shape) are not [B, T]")
        let (b, t) = (tokens.shape[0], tokens.shape[1])
        let c = configuration
        require(t >= 1 && t <= c.contextLength, "GPT: a sequence of \(t) tokens does not fit the context of \(c.contextLength)")
        var x = tokenEmbedding.value.embeddingLookup(tokens) + positionEmbedding.value.slice(axis: 0, start: 0, end: t)
        x = dropout(x)
        for block in blocks { x = block(x) }
        let h = finalNorm(x).reshaped(to: [b * t, c.embedding])
        return Tensor.matmul(h, tokenEmbedding.value, transposeB: true).reshaped(to: [b, t, c.vocabularySize])
    }

    /// Mean cross-entropy (nats per token) of predicting `targets` [B, T] from `tokens` [B, T].
    public func loss(_ tokens: IndexTensor, targets: IndexTensor) -> Tensor<Scalar> {
        let logits = self(tokens)
        return logits.reshaped(to: [tokens.values.count, configuration.vocabularySize]).softmaxCrossEntropy(targets: targets.values)
    }

    /// The key/value cache of incremental decoding: each block's keys and values so far.
    public struct Cache {
        var entries: [(k: Tensor<Scalar>, v: Tensor<Scalar>)?]
        public internal(set) var count = 0
        public init(layers: Int) { entries = Array(repeating: nil, count: layers) }
    }

    /// A cache filled with `tokens` (at most the context) in one pass, and the logits [V] of the
    /// token that follows them. Not recorded.
    public func prefill(_ tokens: [Int]) -> (logits: Tensor<Scalar>, cache: Cache) {
        let c = configuration
        require(!tokens.isEmpty && tokens.count <= c.contextLength, "GPT.prefill: \(tokens.count) tokens for a context of \(c.contextLength)")
        return withoutGradients {
            var cache = Cache(layers: c.layers)
            var x = tokenEmbedding.value.embeddingLookup(IndexTensor(shape: [1, tokens.count], values: tokens))
                + positionEmbedding.value.slice(axis: 0, start: 0, end: tokens.count)
            for (i, block) in blocks.enumerated() { x = block.prefill(x, cache: &cache.entries[i]) }
            cache.count = tokens.count
            let last = finalNorm(x.slice(axis: 1, start: tokens.count - 1, end: tokens.count).reshaped(to: [1, c.embedding]))
            return (Tensor.matmul(last, tokenEmbedding.value, transposeB: true).reshaped(to: [c.vocabularySize]), cache)
        }
    }

    /// The logits [V] of the next token after appending `token` at position `cache.count`, using
    /// and extending `cache` (no recomputation of the earlier positions). Not recorded.
    public func nextLogits(after token: Int, cache: inout Cache) -> Tensor<Scalar> {
        let c = configuration
        require(cache.count < c.contextLength, "GPT.nextLogits: the cache holds \(cache.count) positions, the context \(c.contextLength)")
        require(token >= 0 && token < c.vocabularySize, "GPT.nextLogits: token \(token) is outside 0..<\(c.vocabularySize)")
        return withoutGradients {
            var x = tokenEmbedding.value.slice(axis: 0, start: token, end: token + 1)
                + positionEmbedding.value.slice(axis: 0, start: cache.count, end: cache.count + 1)
            x = x.reshaped(to: [1, 1, c.embedding])
            for (i, block) in blocks.enumerated() { x = block.step(x, cache: &cache.entries[i]) }
            cache.count += 1
            return Tensor.matmul(finalNorm(x).reshaped(to: [1, c.embedding]), tokenEmbedding.value, transposeB: true).reshaped(to: [c.vocabularySize])
        }
    }
}
