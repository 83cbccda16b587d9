/// Which output of a model an attribution explains, row by row.
public enum AttributionTarget<Scalar: TensorScalar> {
    /// Row i's output column `classes[i]` (a class logit per sample).
    case classes([Int])
    /// The same output column for every row (a regression output, or one class for all).
    case output(Int)
    /// Any scalar function of a row's outputs: [M, K] ↦ [M], row by row.
    case function((Tensor<Scalar>) -> Tensor<Scalar>)
}

/// Feature attributions [N, D] for N samples, and for path methods the convergence delta of
/// each row: Σ attributions − (F(x) − F(x′)), the quadrature's error (completeness).
public struct Attributions<Scalar: TensorScalar> {
    public var values: Tensor<Scalar>
    public var convergenceDelta: [Double]?
}

/// Gradient-based attributions of any differentiable model, in the manner of Captum: one object
/// per call, the model a function from inputs [M, D] to outputs [M, K].
///
/// Every method evaluates all its points in one batch — all rows, and for integrated gradients
/// all rows at all integration points — with one forward and one backward pass.
///
/// ```swift
/// let explainer = Attribution<Float>(target: .classes(labels)) { x in model(x) }
/// let ig = explainer.integratedGradients(x, baseline: .zeros, steps: 50)
/// print(ig.values, ig.convergenceDelta!)
/// ```
public struct Attribution<Scalar: TensorScalar> {
    public var model: (Tensor<Scalar>) -> Tensor<Scalar>
    public var target: AttributionTarget<Scalar>

    public init(target: AttributionTarget<Scalar>, model: @escaping (Tensor<Scalar>) -> Tensor<Scalar>) {
        self.model = model
        self.target = target
    }

    /// Where integrated gradients start.
    public enum Baseline {
        case zeros
        /// One row [D] (or [1, D]) for every sample: the training mean, a blurred input, ...
        case tensor(Tensor<Scalar>)
    }

    /// The explained output of each of the M rows of `x`, where the rows are `copies` stacked
    /// copies of the N samples (row r is sample r mod N).
    func explained(_ x: Tensor<Scalar>, samples n: Int) -> Tensor<Scalar> {
        let out = model(x)
        let m = x.shape[0]
        switch target {
        case .classes(let classes):
            require(classes.count == n, "Attribution: \(classes.count) target classes for \(n) samples")
            require(out.rank == 2, "Attribution: the model's output of shape \(out.shape) is not [rows, outputs]")
            require(classes.allSatisfy { $0 >= 0 && $0 < out.shape[1] }, "Attribution: a target class is outside 0..<\(out.shape[1]) (outputs \(out.shape))")
            let index = IndexTensor(shape: [m, 1], values: (0..<m).map { classes[$0 % n] })
            return out.gather(axis: 1, index: index).reshaped(to: [m])
        case .output(let k):
            let columns = out.rank == 2 ? out.shape[1] : 1
            require(k >= 0 && k < columns, "Attribution: output \(k) is outside 0..<\(columns) (outputs \(out.shape))")
            return out.rank == 2 ? out.slice(axis: 1, start: k, end: k + 1).reshaped(to: [m]) : out.reshaped(to: [m])
        case .function(let f):
            let y = f(out)
            require(y.count == m, "Attribution: the target function gave \(y.shape) for \(m) rows; it must give one value per row")
            return y.reshaped(to: [m])
        }
    }

    /// ∇ of each row's explained output with respect to that row, for rows that are `copies`
    /// copies of n samples: one backward pass (the rows are independent, so the gradient of the
    /// sum is every row's gradient).
    func rowGradients(_ x: Tensor<Scalar>, samples n: Int) -> (gradients: Tensor<Scalar>, outputs: Tensor<Scalar>) {
        var outputs = Tensor<Scalar>(0)
        let g = gradient(at: x.detached()) { v in
            let y = explained(v, samples: n)
            outputs = y.detached()
            return y.sum()
        }
        return (g, outputs)
    }

    func checkInputs(_ x: Tensor<Scalar>, _ method: String) {
        require(x.rank == 2 && x.shape[0] > 0, "\(method): inputs of shape \(x.shape) are not [samples, features]")
    }

    /// |∂F/∂x| (with `absolute`), else ∂F/∂x.
    public func saliency(_ x: Tensor<Scalar>, absolute: Bool = true) -> Attributions<Scalar> {
        checkInputs(x, "saliency")
        let g = withoutGradients { rowGradients(x, samples: x.shape[0]).gradients }
        return Attributions(values: absolute ? g.abs() : g, convergenceDelta: nil)
    }

    /// x ⊙ ∂F/∂x.
    public func inputXGradient(_ x: Tensor<Scalar>) -> Attributions<Scalar> {
        checkInputs(x, "inputXGradient")
        return Attributions(values: x.detached() * rowGradients(x, samples: x.shape[0]).gradients, convergenceDelta: nil)
    }

    /// Integrated gradients: (x − x′) ⊙ Σₖ wₖ ∇F(x′ + αₖ (x − x′)), with the convergence delta of
    /// each row. All N·m points go through the model as one batch.
    ///
    /// - Parameter weightsInFloat32: round the quadrature weights to `Float`, as Captum does (it
    ///   keeps its step sizes in a float32 tensor): its numbers to the last bit, at a relative
    ///   cost of about 10⁻⁸ in exactness where 1/m is not a binary fraction.
    public func integratedGradients(_ x: Tensor<Scalar>, baseline: Baseline = .zeros, steps: Int = 50,
                                    quadrature: Quadrature = .gaussLegendre, weightsInFloat32: Bool = false) -> Attributions<Scalar> {
        checkInputs(x, "integratedGradients")
        require(steps >= 1, "integratedGradients: \(steps) steps; at least one is needed")
        let (n, d) = (x.shape[0], x.shape[1])
        let base: Tensor<Scalar>
        switch baseline {
        case .zeros: base = Tensor(repeating: 0, shape: [1, d])
        case .tensor(let b):
            require(b.count == d, "integratedGradients: a baseline of shape \(b.shape) for inputs of \(d) features")
            base = b.reshaped(to: [1, d]).detached()
        }
        var (alphas, weights) = quadrature.rule(steps: steps)
        if weightsInFloat32 { weights = weights.map { Double(Float($0)) } }
        let xs = x.detached(), delta = xs - base                                   // [N, D]
        // Point k of sample i is row k·N + i.
        let path = Tensor.concatenate(alphas.map { base + delta * Scalar($0) }, axis: 0)   // [m·N, D]
        let (g, _) = rowGradients(path, samples: n)
        let w = Tensor<Scalar>(shape: [steps, 1, 1], scalars: weights.map { Scalar($0) })
        let integral = (g.reshaped(to: [steps, n, d]) * w).sum(axes: [0])        // [N, D]
        let values = withoutGradients { delta * integral }
        // Completeness: Σ_d attribution − (F(x) − F(x′)).
        let ends = withoutGradients { explained(Tensor.concatenate([xs, base.broadcast(to: [n, d])], axis: 0), samples: n) }
        let sums = values.sum(axes: [1]).scalars
        let convergence = (0..<n).map { Double(sums[$0]) - (Double(ends.scalars[$0]) - Double(ends.scalars[n + $0])) }
        return Attributions(values: values, convergenceDelta: convergence)
    }

    /// SmoothGrad: the mean saliency (or gradient) over `samples` noisy copies of each input,
    /// noise N(0, σ²) with σ = `noiseLevel` × (max − min of the row), seeded; one batch.
    public func smoothGrad(_ x: Tensor<Scalar>, samples: Int = 25, noiseLevel: Double = 0.15, absolute: Bool = true,
                           seed: UInt64 = 0) -> Attributions<Scalar> {
        checkInputs(x, "smoothGrad")
        require(samples >= 1 && noiseLevel >= 0, "smoothGrad: \(samples) samples and noise level \(noiseLevel); need ≥ 1 and ≥ 0")
        let (n, d) = (x.shape[0], x.shape[1])
        var rng = RandomGenerator(seed: seed)
        let xs = x.detached()
        let spans = (0..<n).map { i -> Scalar in
            let row = Array(xs.scalars[(i * d)..<((i + 1) * d)])
            return (row.max()! - row.min()!) * Scalar(noiseLevel)
        }
        var noise = [Scalar](repeating: 0, count: samples * n * d)
        for s in 0..<samples { for i in 0..<n { for j in 0..<d { noise[(s * n + i) * d + j] = Scalar(rng.nextNormal()) * spans[i] } } }
        let noisy = Tensor.concatenate(Array(repeating: xs, count: samples), axis: 0) + Tensor(shape: [samples * n, d], scalars: noise)
        let g = rowGradients(noisy, samples: n).gradients
        let mean = withoutGradients { (absolute ? g.abs() : g).reshaped(to: [samples, n, d]).mean(axes: [0]) }
        return Attributions(values: mean, convergenceDelta: nil)
    }
}
