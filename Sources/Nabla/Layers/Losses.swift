// Loss functions, each a composition of differentiable ops, with the reductions and options of
// the established frameworks (the same formulas, so the same numbers).

/// How per-element losses become the result.
public enum Reduction: String, Sendable, CaseIterable {
    /// The average (for weighted classification losses: divided by the sum of the targets' weights).
    case mean
    case sum
    /// No reduction: one loss per element (or per sample).
    case none
    /// The sum divided by the batch size (axis 0), the mathematically right mean for KL divergence.
    case batchMean

    func apply<Scalar>(_ l: Tensor<Scalar>, batch: Int? = nil) -> Tensor<Scalar> {
        switch self {
        case .mean: return l.mean()
        case .sum: return l.sum()
        case .none: return l
        case .batchMean: return l.sum() / Scalar(batch ?? l.shape.first ?? 1)
        }
    }
}

func checkSameShape<Scalar>(_ op: String, _ a: Tensor<Scalar>, _ b: Tensor<Scalar>) {
    require(a.shape == b.shape, "\(op): input of shape \(a.shape) and target of shape \(b.shape) differ")
}

/// Mean squared error: (input − target)².
public func meanSquaredError<Scalar>(_ input: Tensor<Scalar>, _ target: Tensor<Scalar>, reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("meanSquaredError", input, target)
    let d = input - target
    return reduction.apply(d * d)
}

/// |input − target|.
public func l1Loss<Scalar>(_ input: Tensor<Scalar>, _ target: Tensor<Scalar>, reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("l1Loss", input, target)
    return reduction.apply((input - target).abs())
}

/// 0.5 d²/β where |d| < β, else |d| − 0.5 β.
public func smoothL1Loss<Scalar>(_ input: Tensor<Scalar>, _ target: Tensor<Scalar>, beta: Double = 1, reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("smoothL1Loss", input, target)
    require(beta >= 0, "smoothL1Loss: beta \(beta) is negative")
    let d = input - target, a = d.abs()
    if beta == 0 { return reduction.apply(a) }
    return reduction.apply(Tensor.where(a .< Scalar(beta), d * d * Scalar(0.5 / beta), a - Scalar(0.5 * beta)))
}

/// 0.5 d² where |d| ≤ δ, else δ (|d| − 0.5 δ).
public func huberLoss<Scalar>(_ input: Tensor<Scalar>, _ target: Tensor<Scalar>, delta: Double = 1, reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("huberLoss", input, target)
    require(delta > 0, "huberLoss: delta \(delta) must be positive")
    let d = input - target, a = d.abs()
    return reduction.apply(Tensor.where(a .<= Scalar(delta), d * d * 0.5, (a - Scalar(0.5 * delta)) * Scalar(delta)))
}

func checkClassTargets<Scalar>(_ op: String, _ input: Tensor<Scalar>, _ targets: IndexTensor, _ weight: Tensor<Scalar>?) -> Int {
    require(input.rank == 2 && targets.shape == [input.shape[0]],
                 "\(op): input \(input.shape) must be [N, C] and targets \(targets.shape) must be [N]")
    let c = input.shape[1]
    require(targets.values.allSatisfy { $0 >= 0 && $0 < c }, "\(op): a target class is outside 0..<\(c)")
    require(weight == nil || weight!.shape == [c], "\(op): class weights of shape \(weight!.shape) are not [\(c)]")
    return c
}

/// The entries input[i, targets[i]] as an [N, 1] tensor.
func pickTargets<Scalar>(_ input: Tensor<Scalar>, _ targets: IndexTensor) -> Tensor<Scalar> {
    input.gather(axis: 1, index: IndexTensor(shape: [targets.values.count, 1], values: targets.values))
}

/// Cross-entropy from logits [N, C] and class indices [N], optionally with class weights [C]
/// and label smoothing ε:
/// lᵢ = (1 − ε) w[yᵢ] (−log pᵢ[yᵢ]) + (ε/C) Σ_c w[c] (−log pᵢ[c]). The mean divides by Σᵢ w[yᵢ].
public func crossEntropy<Scalar>(logits: Tensor<Scalar>, targets: IndexTensor, weight: Tensor<Scalar>? = nil,
                                 labelSmoothing eps: Double = 0, reduction: Reduction = .mean) -> Tensor<Scalar> {
    let c = checkClassTargets("crossEntropy", logits, targets, weight)
    require(eps >= 0 && eps <= 1, "crossEntropy: label smoothing \(eps) is not in [0, 1]")
    if weight == nil && eps == 0 && (reduction == .mean || reduction == .sum) {
        let mean = logits.softmaxCrossEntropy(targets: targets.values)   // the fused kernel
        return reduction == .mean ? mean : mean * Scalar(targets.values.count)
    }
    let nlp = -logits.logSoftmax(axis: 1)
    let wy = weight.map { w in w.detached().take(flatIndices: targets.values, shape: [targets.values.count, 1]) }
    var l = pickTargets(nlp, targets)
    if let wy { l = l * wy }
    if eps > 0 {
        let smooth = (weight.map { nlp * $0.detached() } ?? nlp).sum(axes: [1], keepingDimensions: true)
        l = l * Scalar(1 - eps) + smooth * Scalar(eps / Double(c))
    }
    switch reduction {
    case .mean: return wy.map { l.sum() / $0.sum() } ?? l.mean()
    case .none: return l.reshaped(to: [l.count])
    default: return reduction.apply(l)
    }
}

/// The negative log-likelihood of class indices [N] under log-probabilities [N, C]:
/// lᵢ = −w[yᵢ] input[i, yᵢ]; the mean divides by Σᵢ w[yᵢ].
public func negativeLogLikelihood<Scalar>(logProbabilities input: Tensor<Scalar>, targets: IndexTensor, weight: Tensor<Scalar>? = nil,
                                          reduction: Reduction = .mean) -> Tensor<Scalar> {
    _ = checkClassTargets("negativeLogLikelihood", input, targets, weight)
    var l = -pickTargets(input, targets)
    let wy = weight.map { w in w.detached().take(flatIndices: targets.values, shape: [targets.values.count, 1]) }
    if let wy { l = l * wy }
    switch reduction {
    case .mean: return wy.map { l.sum() / $0.sum() } ?? l.mean()
    case .none: return l.reshaped(to: [l.count])
    default: return reduction.apply(l)
    }
}

/// Binary cross-entropy of probabilities p ∈ (0, 1) against targets y ∈ [0, 1]:
/// −w (y log p + (1 − y) log(1 − p)), each log clamped below at −100.
public func binaryCrossEntropy<Scalar>(probabilities p: Tensor<Scalar>, targets y: Tensor<Scalar>, weight: Tensor<Scalar>? = nil,
                                       reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("binaryCrossEntropy", p, y)
    var l = -(y * p.log().clamped(min: -100) + (1 - y) * (1 - p).log().clamped(min: -100))
    if let weight { l = l * weight.detached() }
    return reduction.apply(l)
}

/// log σ(x), computed without overflow: −(max(−x, 0) + log(1 + e^−|x|)); derivative σ(−x).
public func logSigmoid<Scalar>(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
    let value = withoutGradients { -((-x).relu() + ((-x.abs()).exp() + 1).log()) }
    return Tensor.recording("log_sigmoid", inputs: [x], output: value) { g in [g * (-x).sigmoid()] }
}

/// Binary cross-entropy from logits, computed stably:
/// −w (pw · y log σ(x) + (1 − y) log(1 − σ(x))), with `positiveWeight` broadcast along the last axis.
public func binaryCrossEntropy<Scalar>(logits x: Tensor<Scalar>, targets y: Tensor<Scalar>, weight: Tensor<Scalar>? = nil,
                                       positiveWeight: Tensor<Scalar>? = nil, reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("binaryCrossEntropy(logits:)", x, y)
    if weight == nil && positiveWeight == nil && (reduction == .sum || reduction == .mean) && !(isRecordingGradients && y.node != nil) {
        let total = x.binaryCrossEntropyLogitsSum(targets: y)   // the fused kernel
        return reduction == .sum ? total : total / Scalar(Swift.max(x.count, 1))
    }
    let positive = positiveWeight.map { y * $0.detached() } ?? y
    var l = -(positive * logSigmoid(x) + (1 - y) * logSigmoid(-x))
    if let weight { l = l * weight.detached() }
    return reduction.apply(l)
}

extension Tensor {
    /// Σ −(y log σ(x) + (1 − y) log(1 − σ(x))) over every element, for logits x (self) and
    /// constant targets y: one pass forward (the sum in double precision, computed as
    /// max(x, 0) − x y + log(1 + e^−|x|)) that also keeps σ(x) − y, so the backward pass is one
    /// multiply. A recorded backward pass (higher order) uses differentiable ops instead.
    @usableFromInline func binaryCrossEntropyLogitsSum(targets y: Tensor) -> Tensor {
        let n = count
        let d = TensorStorage<Scalar>.make(count: n)
        let total = Scalar._binaryCrossEntropyLogits(n, storage.base, y.storage.base, d.base)
        let x = self, shape = self.shape
        return Tensor.record1("binary_cross_entropy_logits_sum", self, output: Tensor(Scalar(total))) { g, _ in
            if isRecordingGradients { return (x.sigmoid() - y) * g }
            return Tensor(storage: d, shape: shape) * g.scalar
        }
    }
}

/// The hinge loss of scores against labels ±1: max(0, 1 − y s) (`squared`: its square).
public func hingeLoss<Scalar>(scores s: Tensor<Scalar>, labels y: Tensor<Scalar>, squared: Bool = false, reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("hingeLoss", s, y)
    let m = (1 - y * s).relu()
    return reduction.apply(squared ? m * m : m)
}

/// The multi-class margin loss: lᵢ = (1/C) Σ_{j ≠ yᵢ} w[yᵢ] max(0, margin − x[i, yᵢ] + x[i, j])^p, p ∈ {1, 2}.
public func multiMarginLoss<Scalar>(_ input: Tensor<Scalar>, targets: IndexTensor, p: Int = 1, margin: Double = 1,
                                    weight: Tensor<Scalar>? = nil, reduction: Reduction = .mean) -> Tensor<Scalar> {
    let c = checkClassTargets("multiMarginLoss", input, targets, weight)
    require(p == 1 || p == 2, "multiMarginLoss: p must be 1 or 2, got \(p)")
    let n = input.shape[0]
    var others = [Scalar](repeating: 1, count: n * c)
    for (i, y) in targets.values.enumerated() { others[i * c + y] = 0 }
    var m = (input - pickTargets(input, targets) + Scalar(margin)).relu()
    if p == 2 { m = m * m }
    m = m * Tensor(shape: [n, c], scalars: others)
    if let weight { m = m * weight.detached().take(flatIndices: targets.values, shape: [n, 1]) }
    let l = m.sum(axes: [1]) / Scalar(c)
    return reduction.apply(l)
}

/// Kullback–Leibler divergence with `input` = log q: t (log t − input), or eᵗ (t − input) when
/// the target is given as log t. Use `.batchMean` for the true KL divergence per sample.
public func klDivergence<Scalar>(logInput input: Tensor<Scalar>, target t: Tensor<Scalar>, logTarget: Bool = false,
                                 reduction: Reduction = .mean) -> Tensor<Scalar> {
    checkSameShape("klDivergence", input, t)
    let l: Tensor<Scalar>
    if logTarget {
        l = t.exp() * (t - input)
    } else {
        let positive = t .> 0
        l = Tensor.where(positive, t * (Tensor.where(positive, t, Tensor(1)).log() - input), Tensor(0))
    }
    return reduction.apply(l)
}

/// The cosine embedding loss of pairs of rows against labels ±1: 1 − cos for y = 1, and
/// max(0, cos − margin) for y = −1, with cos = x₁·x₂ / √((|x₁|² + 10⁻¹²)(|x₂|² + 10⁻¹²)).
public func cosineEmbeddingLoss<Scalar>(_ x1: Tensor<Scalar>, _ x2: Tensor<Scalar>, labels y: Tensor<Scalar>, margin: Double = 0,
                                        reduction: Reduction = .mean) -> Tensor<Scalar> {
    require(x1.rank == 2 && x1.shape == x2.shape && y.shape == [x1.shape[0]],
                 "cosineEmbeddingLoss: inputs \(x1.shape) and \(x2.shape) must be the same [N, D] and labels \(y.shape) [N]")
    let dot = (x1 * x2).sum(axes: [1])
    let n1 = (x1 * x1).sum(axes: [1]) + Scalar(1e-12), n2 = (x2 * x2).sum(axes: [1]) + Scalar(1e-12)
    let cos = dot / (n1 * n2).squareRoot()
    let l = Tensor.where(y .> 0, 1 - cos, (cos - Scalar(margin)).relu())
    return reduction.apply(l)
}

// MARK: Regularization

/// λ Σ |θ| over the given parameters (add it to a loss for L1 regularization).
public func l1Penalty<Scalar>(_ parameters: [Parameter<Scalar>], strength: Double) -> Tensor<Scalar> {
    parameters.reduce(Tensor<Scalar>(0)) { $0 + $1.value.abs().sum() } * Scalar(strength)
}

/// (λ/2) Σ θ² over the given parameters (add it to a loss for L2 regularization; its gradient is λ θ).
public func l2Penalty<Scalar>(_ parameters: [Parameter<Scalar>], strength: Double) -> Tensor<Scalar> {
    parameters.reduce(Tensor<Scalar>(0)) { $0 + ($1.value * $1.value).sum() } * Scalar(strength / 2)
}
