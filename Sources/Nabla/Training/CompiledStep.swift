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
public final class CompiledClassifierLoss<Scalar: TensorScalar> {
    public let model: Sequential<Scalar>
    let parameters: [Parameter<Scalar>]
    let function: CompiledFunction<Scalar>
    let classes: Int

    /// nil when a layer is neither `Linear` nor a ReLU, tanh or sigmoid `Activation`.
    public init?(_ model: Sequential<Scalar>) {
        var steps: [CompiledLayerStep] = []
        var parameters: [Parameter<Scalar>] = []
        var classes = 0
        for layer in model.layers {
            if let l = layer as? Linear<Scalar> {
                // Program arguments: 0 the rows, 1 the one-hot targets, 2 + i parameter i.
                parameters.append(l.weight)
                let weight = 2 + parameters.count - 1
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
            let m = Traced.eager("row maximum", [h], shape: [rows, 1]) { $0[0].detached().max(axes: [1], keepingDimensions: true) }
            let z = h - m
            let logp = z - z.exp().sum(axes: [1], keepingDimensions: true).log()
            return [-(logp * xs[1]).sum() / Scalar(Swift.max(rows, 1))]
        }
    }

    /// The mean softmax cross-entropy of `x`'s rows against `targets`; every parameter's
    /// gradient is set.
    @discardableResult
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
        for (p, g) in zip(parameters, gradients) { p.gradient = g }
        return value
    }
}

/// One layer of a ``CompiledClassifierLoss``: a dense layer (its weight's and bias's argument
/// positions) or an activation.
enum CompiledLayerStep { case dense(weight: Int, bias: Int?), relu, tanh, sigmoid }
