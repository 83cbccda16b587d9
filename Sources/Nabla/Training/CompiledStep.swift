/// A classifier's training loss compiled: a `Sequential` of dense layers and element-wise
/// activations, then the mean softmax cross-entropy, traced into one program whose gradient with
/// respect to the parameters is taken on the program (GEMMs for the products, the bias, the
/// activation and its derivative and the loss fused into element-wise kernels). One program per
/// batch size.
///
/// ```swift
/// let loss = CompiledClassifierLoss(model)!       // nil if a layer has no compiled form
/// let value = loss.backward(x, targets: labels)   // sets every parameter's gradient
/// optimizer.step(model)
/// ```
///
/// A ``Trainer`` takes its steps through the compiled program after
/// `loss.attach(to: trainer) { rows in (x.indexSelect(axis: 0, indices: rows), rows.map { labels[$0] }) }`
/// (its own loss closure stays for anything that evaluates the loss eagerly).
public final class CompiledClassifierLoss<Scalar: TensorScalar> {
    public let model: Sequential<Scalar>
    let parameters: [Parameter<Scalar>]
    let function: CompiledFunction<Scalar>
    let classes: Int
    /// The penalties on the dense layers' weights added to the loss: `l1` Σ|w| and (`l2`/2) Σ w²
    /// (as ``l1Penalty`` and ``l2Penalty``).
    public let l1: Double, l2: Double

    /// nil when a layer is neither `Linear` nor a ReLU, tanh or sigmoid `Activation`.
    public init?(_ model: Sequential<Scalar>, l1: Double = 0, l2: Double = 0) {
        var steps: [CompiledLayerStep] = []
        var parameters: [Parameter<Scalar>] = []
        var classes = 0
        var weights: [Int] = []
        for layer in model.layers {
            if let l = layer as? Linear<Scalar> {
                // Program arguments: 0 the rows, 1 the one-hot targets, 2 + i parameter i.
                parameters.append(l.weight)
                let weight = 2 + parameters.count - 1
                weights.append(weight)
                var bias: Int?
                if let b = l.bias { parameters.append(b); bias = 2 + parameters.count - 1 }
                steps.append(.dense(weight: weight, bias: bias))
                classes = l.weight.shape[0]
            } else if let a = layer as? Activation<Scalar> {
                switch a.kind {
                case .relu: steps.append(.relu)
                case .tanh: steps.append(.tanh)
                case .sigmoid: steps.append(.sigmoid)
                default: return nil
                }
            } else {
                return nil
            }
        }
        guard classes > 0 else { return nil }
        self.model = model
        self.parameters = parameters
        self.classes = classes
        self.l1 = l1
        self.l2 = l2
        let count = parameters.count
        // Arguments: the rows, the one-hot targets, then the parameters in order.
        function = CompiledFunction(differentiating: Array(2..<(2 + count))) { xs in
            var h = xs[0]
            for step in steps {
                switch step {
                case .dense(let w, let b):
                    h = Traced.matmul(h, xs[w], transposeB: true)
                    if let b { h = h + xs[b] }
                case .relu: h = h.relu()
                case .tanh: h = h.tanh()
                case .sigmoid: h = h.sigmoid()
                }
            }
            // log-softmax with the row maxima as constants (their derivative cancels).
            let rows = h.shape[0]
            let m = Traced.eager("row maximum", [h], shape: [rows, 1], differentiable: false) { $0[0].detached().max(axes: [1], keepingDimensions: true) }
            let z = h - m
            let logp = z - z.exp().sum(axes: [1], keepingDimensions: true).log()
            var loss = -(logp * xs[1]).sum() / Scalar(Swift.max(rows, 1))
            if l1 > 0 { loss = loss + weights.map { xs[$0].abs().sum() }.reduce(loss.constant(0), +) * Scalar(l1) }
            if l2 > 0 { loss = loss + weights.map { (xs[$0] * xs[$0]).sum() }.reduce(loss.constant(0), +) * Scalar(l2 / 2) }
            return [loss]
        }
    }

    /// The mean softmax cross-entropy of `x`'s rows against `targets`; every parameter's
    /// gradient is set.
    @discardableResult
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func backward(_ x: Tensor<Scalar>, targets: [Int]) -> Tensor<Scalar> {
        require(x.rank == 2 && targets.count == x.shape[0],
                "CompiledClassifierLoss: rows of shape \(x.shape) and \(targets.count) targets do not agree")
        var hot = [Scalar](repeating: 0, count: targets.count * classes)
        for (i, t) in targets.enumerated() {
            require(t >= 0 && t < classes, "CompiledClassifierLoss: target \(t) out of range for \(classes) classes")
            hot[i * classes + t] = 1
        }
        let args = [x.detached(), Tensor(shape: [targets.count, classes], scalars: hot)] + parameters.map { $0.value.detached() }
        let (value, gradients) = function.valueWithGradients(at: args)
        for (p, g) in zip(parameters, gradients) { p.gradient = p.isFrozen ? nil : g }
        return value
    }

    /// The program a batch of `rows` rows runs (its `summary` lists the kernels, the products
    /// and the buffers).
    public func executable(rows: Int) -> Executable<Scalar> {
        let inputs = parameters[0].value.shape[1]
        return function.executable(.valueAndGradient, shapes: [[rows, inputs], [rows, classes]] + parameters.map { $0.value.shape })
    }

    /// Makes every step of `trainer` (which must train this loss's model) take its loss and
    /// gradients from the compiled program; `batch` gives the rows and the class indices of a
    /// batch's row indices.
    public func attach(to trainer: Trainer<Scalar>, batch: @escaping ([Int]) -> (Tensor<Scalar>, [Int])) {
        require(trainer.model === model, "CompiledClassifierLoss.attach(to:): the trainer trains another model")
        trainer.stepGradient = { _, rows in
            let (x, targets) = batch(rows)
            return Double(self.backward(x, targets: targets).scalar)
        }
    }
}

/// One layer of a ``CompiledClassifierLoss``: a dense layer (its weight's and bias's argument
/// positions) or an activation.
enum CompiledLayerStep { case dense(weight: Int, bias: Int?), relu, tanh, sigmoid }
