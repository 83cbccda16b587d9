/// Scaled dot-product attention: softmax(q kᵀ · scale + mask) v over the last two axes, with
/// any leading batch axes. `scale` defaults to 1/√d; `mask` (added to the scores) is a constant
/// broadcastable to [..., Lq, Lk]; `causal` hides keys after each query. Returns the output
/// [..., Lq, dv] and the attention weights [..., Lq, Lk].
public func scaledDotProductAttention<Scalar: TensorScalar>(
    query q: Tensor<Scalar>, key k: Tensor<Scalar>, value v: Tensor<Scalar>,
    mask: Tensor<Scalar>? = nil, causal: Bool = false, scale: Double? = nil
) -> (output: Tensor<Scalar>, weights: Tensor<Scalar>) {
    require(q.rank >= 2 && k.rank == q.rank && v.rank == q.rank && q.shape.last == k.shape.last
                 && k.shape[k.rank - 2] == v.shape[v.rank - 2],
                 "scaledDotProductAttention: query \(q.shape), key \(k.shape) and value \(v.shape) do not agree")
    let d = q.shape[q.rank - 1], lq = q.shape[q.rank - 2], lk = k.shape[k.rank - 2]
    if causal && mask == nil {
        // Scaling, mask and softmax in one primitive.
        let weights = Tensor.matmul(q, k, transposeB: true).causalSoftmax(scale: scale ?? 1 / Double(d).squareRoot())
        return (Tensor.matmul(weights, v), weights)
    }
    var scores = Tensor.matmul(q, k, transposeB: true) * Scalar(scale ?? 1 / Double(d).squareRoot())
    if let mask { scores = scores + mask.detached() }
    if causal {
        let visible = Tensor<Scalar>(shape: [lq, lk], (0..<lq * lk).map { $0 % lk <= $0 / lk ? 1 : 0 })
        scores = Tensor.where(visible, scores, Tensor(-Scalar.infinity))
    }
    let weights = scores.softmax(axis: -1)
    return (Tensor.matmul(weights, v), weights)
}

/// Multi-head attention, batch first: query [B, L, E], key and value [B, S, E]. The input
/// projections are one [3E, E] weight (rows: W_q, W_k, W_v) and bias, the output projection a
/// ``Linear`` named `out_proj`. Returns the output [B, L, E] and the attention weights averaged
/// over the heads [B, L, S].
public final class MultiheadAttention<Scalar: TensorScalar>: Module<Scalar> {
    public let inProjWeight: Parameter<Scalar>
    public let inProjBias: Parameter<Scalar>
    public let outProj: Linear<Scalar>
    public let embedDimension: Int
    public let heads: Int

    public init(embedDimension e: Int, heads: Int) {
        require(heads > 0 && e % heads == 0, "MultiheadAttention: embedding size \(e) is not divisible by \(heads) heads")
        inProjWeight = Parameter(shape: [3 * e, e], initializer: .xavierUniform())
        inProjBias = Parameter(Tensor.zeros(shape: [3 * e]))
        outProj = Linear(inputSize: e, outputSize: e)
        outProj.bias!.value = Tensor.zeros(shape: [e])
        embedDimension = e
        self.heads = heads
        super.init()
    }

    public override func namedChildren() -> [(String, Any)] {
        [("in_proj_weight", inProjWeight), ("in_proj_bias", inProjBias), ("out_proj", outProj)]
    }

    public func callAsFunction(query: Tensor<Scalar>, key: Tensor<Scalar>, value: Tensor<Scalar>,
                               mask: Tensor<Scalar>? = nil, causal: Bool = false) -> (output: Tensor<Scalar>, weights: Tensor<Scalar>) {
        let e = embedDimension, h = heads, dh = e / h
        require(query.rank == 3 && key.rank == 3 && value.rank == 3 && query.shape[2] == e && key.shape[2] == e
                     && value.shape[2] == e && key.shape[0] == query.shape[0] && value.shape[0] == query.shape[0] && key.shape[1] == value.shape[1],
                     "MultiheadAttention: query \(query.shape), key \(key.shape), value \(value.shape) are not [B, L, \(e)], [B, S, \(e)], [B, S, \(e)]")
        func project(_ x: Tensor<Scalar>, _ i: Int) -> Tensor<Scalar> {
            let w = inProjWeight.value.slice(axis: 0, start: i * e, end: (i + 1) * e)
            let b = inProjBias.value.slice(axis: 0, start: i * e, end: (i + 1) * e)
            let (n, l) = (x.shape[0], x.shape[1])
            let y = Tensor.matmul(x.reshaped(to: [n * l, e]), w, transposeB: true) + b
            return y.reshaped(to: [n, l, h, dh]).permuted([0, 2, 1, 3])   // [B, h, L, dh]
        }
        let (o, a) = scaledDotProductAttention(query: project(query, 0), key: project(key, 1), value: project(value, 2),
                                               mask: mask, causal: causal)
        let (n, l) = (query.shape[0], query.shape[1])
        let merged = o.permuted([0, 2, 1, 3]).reshaped(to: [n, l, e])
        return (outProj(merged), a.mean(axes: [1]))
    }

    /// Self-attention: query, key and value all `x`.
    public func callAsFunction(_ x: Tensor<Scalar>, causal: Bool = false) -> Tensor<Scalar> {
        self(query: x, key: x, value: x, causal: causal).output
    }
}

/// A transformer encoder block (post-norm, as in "Attention Is All You Need"):
/// x ← norm1(x + dropout(self-attention(x))); x ← norm2(x + dropout(W₂ dropout(act(W₁ x)))).
public final class TransformerEncoderLayer<Scalar: TensorScalar>: Module<Scalar>, Layer {
    public let selfAttention: MultiheadAttention<Scalar>
    public let linear1: Linear<Scalar>
    public let linear2: Linear<Scalar>
    public let norm1: LayerNorm<Scalar>
    public let norm2: LayerNorm<Scalar>
    public let dropout: Dropout<Scalar>
    public let causal: Bool

    public init(embedDimension e: Int, heads: Int, feedForward: Int = 2048, dropout p: Double = 0.1, causal: Bool = false) {
        selfAttention = MultiheadAttention(embedDimension: e, heads: heads)
        linear1 = Linear(inputSize: e, outputSize: feedForward)
        linear2 = Linear(inputSize: feedForward, outputSize: e)
        norm1 = LayerNorm(e)
        norm2 = LayerNorm(e)
        dropout = Dropout(probability: p)
        self.causal = causal
        super.init()
    }

    public override func namedChildren() -> [(String, Any)] {
        [("self_attn", selfAttention), ("linear1", linear1), ("linear2", linear2), ("norm1", norm1), ("norm2", norm2), ("dropout", dropout)]
    }

    public func callAsFunction(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        let a = norm1(x + dropout(selfAttention(x, causal: causal)))
        return norm2(a + dropout(linear2(dropout(linear1(a).relu()))))
    }
}
