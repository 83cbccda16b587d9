import CNablaKernels

extension Tensor {
    /// Layer normalization over the last axis, (x − mean) / √(var + ε) · weight + bias (biased
    /// variance; weight and bias optional, of the last axis's size): one primitive, its forward
    /// and backward passes one sweep over the rows each.
    ///
    /// The backward pass keeps the normalized rows and the reciprocal deviations; when it is
    /// itself recorded (higher-order derivatives) it is written with differentiable operations.
    @inlinable public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Double = 1e-5) -> Tensor {
        require(x.rank >= 1 && x.shape.last! > 0, "layerNorm: input of shape \(x.shape) has no last axis to normalize")
        let n = x.shape.last!, rows = x.count / n
        require((weight?.shape ?? [n]) == [n] && (bias?.shape ?? [n]) == [n],
                "layerNorm: weight \(weight?.shape.description ?? "none") and bias \(bias?.shape.description ?? "none") must be [\(n)] for input \(x.shape)")
        let y = TensorStorage<Scalar>.make(count: x.count), xhat = TensorStorage<Scalar>.make(count: x.count)
        let rstd = TensorStorage<Scalar>.make(count: rows)
        Scalar._layerNormForward(rows, n, x.storage.base, weight?.storage.base, bias?.storage.base, epsilon, y.base, xhat.base, rstd.base)
        let output = withExtendedLifetime((x, weight, bias)) { Tensor(storage: y, shape: x.shape) }
        guard nb_grad_enabled() != 0, x.node != nil || weight?.node != nil || bias?.node != nil else { return output }
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        let shape = x.shape
        return record("layer_norm", inputs: inputs, output: output, savingOutput: false) { g, _ in
            var grads: [Tensor?]
            if nb_grad_enabled() != 0 {
                // Recorded: the same formulas with differentiable operations of x.
                let mean = x.mean(axes: [-1], keepingDimensions: true)
                let centered = x - mean
                let r = 1 / ((centered * centered).mean(axes: [-1], keepingDimensions: true) + Scalar(epsilon)).squareRoot()
                let h = centered * r
                let gw = weight.map { g * $0 } ?? g
                let dx = r * (gw - gw.mean(axes: [-1], keepingDimensions: true) - h * (gw * h).mean(axes: [-1], keepingDimensions: true))
                let rowsFirst = { (t: Tensor) in t.reshaped(to: [rows, n]).sum(axes: [0]) }
                grads = [dx]
                if weight != nil { grads.append(rowsFirst(g * h)) }
                if bias != nil { grads.append(rowsFirst(g)) }
            } else {
                let dx = x.node == nil ? nil : TensorStorage<Scalar>.make(count: rows * n)
                let dw = weight?.node == nil ? nil : TensorStorage<Scalar>.make(repeating: 0, count: n)
                let db = bias?.node == nil ? nil : TensorStorage<Scalar>.make(repeating: 0, count: n)
                withExtendedLifetime((g, weight)) {
                    Scalar._layerNormBackward(rows, n, g.storage.base, xhat.base, rstd.base, weight?.storage.base, dx?.base, dw?.base, db?.base)
                }
                grads = [dx.map { Tensor(storage: $0, shape: shape) }]
                if weight != nil { grads.append(dw.map { Tensor(storage: $0, shape: [n]) }) }
                if bias != nil { grads.append(db.map { Tensor(storage: $0, shape: [n]) }) }
            }
            return grads
        }
    }

    /// Batch normalization with the batch's statistics over every axis but 1 of x [N, C, ...]:
    /// (x − mean_c) / √(var_c + ε) · weight_c + bias_c (biased variance; weight and bias optional,
    /// [C]). One primitive; returns the output and each channel's mean and biased variance
    /// (constants, for running statistics). The backward pass keeps x̂ and 1/√(var + ε); when it
    /// is itself recorded (higher-order derivatives) it is written with differentiable operations.
    @inlinable public static func batchNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Double = 1e-5)
        -> (output: Tensor, mean: Tensor, variance: Tensor) {
        require(x.rank >= 2, "batchNorm: input of shape \(x.shape) has no channel axis 1")
        let (n, c) = (x.shape[0], x.shape[1]), hw = x.shape.dropFirst(2).reduce(1, *)
        require(n * hw > 1, "batchNorm: input of shape \(x.shape) needs more than one value per channel on axis 1")
        require((weight?.shape ?? [c]) == [c] && (bias?.shape ?? [c]) == [c],
                "batchNorm: weight \(weight?.shape.description ?? "none") and bias \(bias?.shape.description ?? "none") must be [\(c)] for input \(x.shape)")
        let y = TensorStorage<Scalar>.make(count: x.count), xhat = TensorStorage<Scalar>.make(count: x.count)
        let mean = TensorStorage<Scalar>.make(count: c), variance = TensorStorage<Scalar>.make(count: c), rstd = TensorStorage<Scalar>.make(count: c)
        withExtendedLifetime((x, weight, bias)) {
            Scalar._batchNormForward(n, c, hw, x.storage.base, weight?.storage.base, bias?.storage.base, epsilon, y.base, xhat.base, mean.base, variance.base, rstd.base)
        }
        let stats = (mean: Tensor(storage: mean, shape: [c]), variance: Tensor(storage: variance, shape: [c]))
        let output = Tensor(storage: y, shape: x.shape)
        guard nb_grad_enabled() != 0, x.node != nil || weight?.node != nil || bias?.node != nil else { return (output, stats.mean, stats.variance) }
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        let shape = x.shape
        var channelShape = [Int](repeating: 1, count: x.rank)
        channelShape[1] = c
        let axes = [0] + Array(2..<x.rank)
        let recorded = record("batch_norm", inputs: inputs, output: output, savingOutput: false) { g, _ in
            var grads: [Tensor?]
            if nb_grad_enabled() != 0 {
                // Recorded: the same formulas with differentiable operations of x.
                let centered = x - x.mean(axes: axes, keepingDimensions: true)
                let r = 1 / ((centered * centered).mean(axes: axes, keepingDimensions: true) + Scalar(epsilon)).squareRoot()
                let h = centered * r
                let k = weight.map { r * $0.reshaped(to: channelShape) } ?? r
                let dx = k * (g - g.mean(axes: axes, keepingDimensions: true) - h * (g * h).mean(axes: axes, keepingDimensions: true))
                grads = [dx]
                if weight != nil { grads.append((g * h).sum(axes: axes)) }
                if bias != nil { grads.append(g.sum(axes: axes)) }
            } else {
                let dx = x.node == nil ? nil : TensorStorage<Scalar>.make(count: x.count)
                let dw = weight?.node == nil ? nil : TensorStorage<Scalar>.make(count: c)
                let db = bias?.node == nil ? nil : TensorStorage<Scalar>.make(count: c)
                withExtendedLifetime((g, weight)) {
                    Scalar._batchNormBackward(n, c, hw, g.storage.base, xhat.base, rstd.base, weight?.storage.base, dx?.base, dw?.base, db?.base)
                }
                grads = [dx.map { Tensor(storage: $0, shape: shape) }]
                if weight != nil { grads.append(dw.map { Tensor(storage: $0, shape: [c]) }) }
                if bias != nil { grads.append(db.map { Tensor(storage: $0, shape: [c]) }) }
            }
            return grads
        }
        return (recorded, stats.mean, stats.variance)
    }

    /// softmax(scale · x) over the last axis of each [T, S] matrix of x [..., T, S], with key j
    /// hidden from query i when j > i (causal attention): one primitive, forward and backward
    /// one pass each (the scaling, the mask and the softmax of attention scores together).
    @inlinable public func causalSoftmax(scale: Double = 1) -> Tensor {
        require(rank >= 2, "causalSoftmax: scores of shape \(shape) are not [..., T, S]")
        let (t, s) = (shape[rank - 2], shape[rank - 1])
        let mats = t * s == 0 ? 0 : count / (t * s)
        let y = TensorStorage<Scalar>.make(count: count)
        if count > 0 { Scalar._causalSoftmax(mats, t, s, Scalar(scale), storage.base, y.base) }
        let output = withExtendedLifetime(self) { Tensor(storage: y, shape: shape) }
        return Tensor.record1("causal_softmax", self, output: output, savingOutput: true) { g, y in
            if nb_grad_enabled() != 0 {
                return (g - (g * y).sum(axes: [-1], keepingDimensions: true)) * y * Scalar(scale)
            }
            let dx = TensorStorage<Scalar>.make(count: y.count)
            if y.count > 0 { withExtendedLifetime((g, y)) { Scalar._softmaxBackward(y.count / s, s, Scalar(scale), y.storage.base, g.storage.base, dx.base) } }
            return Tensor(storage: dx, shape: y.shape)
        }
    }
}
