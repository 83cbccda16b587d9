import Nabla

/// Evaluators for `layers.json`, `losses.json` and `training.json`, run through Nabla's layer
/// classes, loss functions and optimizers (not re-derived formulas).
enum LayerCases {
    /// Sets up a layer case: every tensor listed under `expected.grads` becomes a variable, either
    /// a parameter of the layer (`parameters[name]`) or an input. `forward` returns the outputs by
    /// name; L = Σ output · cotangent over the outputs that have a cotangent
    /// (`cotangent` for a single output, `cotangent_<name>` otherwise).
    static func layerCase(_ c: ReferenceCase, parameters: [String: Parameter<Double>] = [:],
                          _ forward: ([String: Tensor<Double>]) throws -> [String: Tensor<Double>]) throws -> [String: Tensor<Double>] {
        let differentiated = Set(c.expected["grads"]?.object?.keys.map { $0 } ?? [])
        var inputs: [String: Tensor<Double>] = [:]
        var variables: [(String, Tensor<Double>)] = []
        for name in c.inputs.keys.sorted() where !name.hasPrefix("cotangent") {
            let t = try c.tensor(name)
            guard t.dtype == "float64" else { continue }
            var x = t.doubleTensor
            if let p = parameters[name] {
                guard p.shape == x.shape else { throw c.fail("parameter '\(name)' has shape \(x.shape), the layer expects \(p.shape)") }
                if differentiated.contains(name) { x = x.requiringGradient(); variables.append((name, x)) }
                p.value = x
            } else {
                if differentiated.contains(name) { x = x.requiringGradient(); variables.append((name, x)) }
                inputs[name] = x
            }
        }
        let outputs = try forward(inputs)
        var result = outputs.mapValues { $0.detached() }
        for (_, p) in parameters { p.value = p.value.detached() }
        guard !variables.isEmpty else { return result }
        var loss: Tensor<Double>? = nil
        for (name, out) in outputs.sorted(by: { $0.key < $1.key }) {
            if name == "loss", out.count == 1, !c.inputs.keys.contains(where: { $0.hasPrefix("cotangent") }) {
                loss = out.reshaped(to: [])   // a loss: its own gradient
                continue
            }
            let key = c.inputs["cotangent_\(name)"] != nil ? "cotangent_\(name)" : (outputs.count == 1 || name == "output" ? "cotangent" : nil)
            guard let key, c.inputs[key] != nil else { continue }
            let cot = try c.input(key)
            guard cot.shape == out.shape else { throw c.fail("output '\(name)' has shape \(out.shape) but '\(key)' has shape \(cot.shape)") }
            let term = (out * cot).sum()
            loss = loss.map { $0 + term } ?? term
        }
        guard let loss else { throw c.fail("no cotangent for any output") }
        let grads = gradients(of: loss, with: Tensor(1), wrt: variables.map(\.1))
        for ((name, _), g) in zip(variables, grads) { result["grads.\(name)"] = g }
        return result
    }

    static func need(_ i: [String: Tensor<Double>], _ name: String, _ c: ReferenceCase) throws -> Tensor<Double> {
        guard let t = i[name] else { throw c.fail("missing input '\(name)'") }
        return t
    }

    static func reduction(_ c: ReferenceCase) throws -> Reduction {
        let r = try c.string("reduction")
        switch r {
        case "mean": return .mean
        case "sum": return .sum
        case "none": return .none
        case "batchmean": return .batchMean
        default: throw c.fail("unknown reduction '\(r)'")
        }
    }

    static func classTargets(_ c: ReferenceCase, _ input: Tensor<Double>, weight: Tensor<Double>?) throws -> IndexTensor {
        let y = try c.index("target")
        guard input.rank == 2, y.shape == [input.shape[0]], y.values.allSatisfy({ $0 >= 0 && $0 < input.shape[1] }) else {
            throw c.fail("target \(y.shape) does not index the classes of input \(input.shape)")
        }
        if let weight, weight.shape != [input.shape[1]] { throw c.fail("weight \(weight.shape) is not one per class") }
        return y
    }

    static func lossCase(_ f: @escaping (ReferenceCase, [String: Tensor<Double>]) throws -> Tensor<Double>) -> ConformanceRunner.Evaluator {
        { c in try layerCase(c) { i in ["loss": try f(c, i)] } }
    }

    static func sameShape(_ c: ReferenceCase, _ a: Tensor<Double>, _ b: Tensor<Double>) throws {
        guard a.shape == b.shape else { throw c.fail("input \(a.shape) and target \(b.shape) differ in shape") }
    }

    static func cell(_ c: ReferenceCase, _ make: (Int, Int) -> RecurrentCell<Double>) throws -> RecurrentCell<Double> {
        let i = try c.int("input_size"), h = try c.int("hidden_size")
        return make(i, h)
    }

    static func cellParameters(_ cell: RecurrentCell<Double>) -> [String: Parameter<Double>] {
        var p = ["weight_ih": cell.weightIH, "weight_hh": cell.weightHH]
        p["bias_ih"] = cell.biasIH
        p["bias_hh"] = cell.biasHH
        return p
    }

    static let layerEvaluators: [String: ConformanceRunner.Evaluator] = [
        "linear": { c in
            let layer = Linear<Double>(inputSize: try c.int("in_features"), outputSize: try c.int("out_features"), bias: try c.bool("bias"))
            var params = ["weight": layer.weight]
            params["bias"] = layer.bias
            return try layerCase(c, parameters: params) { i in
                let x = try need(i, "x", c)
                guard x.shape.last == layer.weight.shape[1] else { throw c.fail("x \(x.shape) does not end in in_features") }
                return ["output": layer(x)]
            }
        },
        "batch_norm1d": batchNorm, "batch_norm2d": batchNorm,
        "layer_norm": { c in
            let layer = LayerNorm<Double>(shape: try c.ints("normalized_shape"), epsilon: try c.number("eps"),
                                          elementwiseAffine: try c.bool("elementwise_affine"))
            var params: [String: Parameter<Double>] = [:]
            params["weight"] = layer.weight
            params["bias"] = layer.bias
            return try layerCase(c, parameters: params) { i in
                let x = try need(i, "x", c)
                guard Array(x.shape.suffix(layer.normalizedShape.count)) == layer.normalizedShape else { throw c.fail("x \(x.shape) does not end in normalized_shape") }
                return ["output": layer(x)]
            }
        },
        "dropout": { c in
            let layer = Dropout<Double>(probability: try c.number("p"))
            layer.isTraining = try c.bool("training")
            guard !layer.isTraining else { throw c.fail("training-mode dropout is random; only evaluation mode has reference values") }
            return try layerCase(c) { i in ["output": layer(try need(i, "x", c))] }
        },
        "rnn_cell": { c in
            guard try c.string("nonlinearity") == "tanh" || c.string("nonlinearity") == "relu" else { throw c.fail("unknown nonlinearity") }
            let cell = RNNCell<Double>(inputSize: try c.int("input_size"), hiddenSize: try c.int("hidden_size"), relu: try c.string("nonlinearity") == "relu")
            return try layerCase(c, parameters: cellParameters(cell)) { i in
                ["h": cell(try need(i, "x", c), state: try need(i, "h", c))]
            }
        },
        "lstm_cell": { c in
            let cell = LSTMCell<Double>(inputSize: try c.int("input_size"), hiddenSize: try c.int("hidden_size"))
            return try layerCase(c, parameters: cellParameters(cell)) { i in
                let (h, cc) = cell(try need(i, "x", c), state: (try need(i, "h", c), try need(i, "c", c)))
                return ["h": h, "c": cc]
            }
        },
        "gru_cell": { c in
            let cell = GRUCell<Double>(inputSize: try c.int("input_size"), hiddenSize: try c.int("hidden_size"))
            return try layerCase(c, parameters: cellParameters(cell)) { i in
                ["h": cell(try need(i, "x", c), state: try need(i, "h", c))]
            }
        },
        "sdpa": { c in
            try layerCase(c) { i in
                let q = try need(i, "q", c), k = try need(i, "k", c), v = try need(i, "v", c)
                guard q.rank >= 2, k.rank == q.rank, v.rank == q.rank, q.shape.last == k.shape.last, k.shape[k.rank - 2] == v.shape[v.rank - 2] else {
                    throw c.fail("q \(q.shape), k \(k.shape), v \(v.shape) do not agree")
                }
                let mask = c.has("mask") ? try c.input("mask") : nil
                return ["output": scaledDotProductAttention(query: q, key: k, value: v, mask: mask, causal: try c.bool("is_causal"),
                                                            scale: try c.optionalNumber("scale")).output]
            }
        },
        "multihead_attention": { c in
            let e = try c.int("embed_dim"), h = try c.int("num_heads")
            guard h > 0, e % h == 0 else { throw c.fail("embed_dim \(e) is not divisible by num_heads \(h)") }
            let mha = MultiheadAttention<Double>(embedDimension: e, heads: h)
            let params = ["in_proj_weight": mha.inProjWeight, "in_proj_bias": mha.inProjBias,
                          "out_proj_weight": mha.outProj.weight, "out_proj_bias": mha.outProj.bias!]
            var weights: Tensor<Double>?
            var result = try layerCase(c, parameters: params) { i in
                let (o, a) = mha(query: try need(i, "query", c), key: try need(i, "key", c), value: try need(i, "value", c), causal: try c.bool("causal"))
                weights = a.detached()
                return ["output": o]
            }
            result["attn_weights"] = weights
            return result
        },
    ]

    static let batchNorm: ConformanceRunner.Evaluator = { c in
        let n = try c.int("num_features")
        let layer = BatchNorm<Double>(featureCount: n, epsilon: try c.number("eps"), momentum: try c.optionalNumber("momentum"), affine: try c.bool("affine"))
        layer.isTraining = try c.bool("training")
        layer.runningMean.value = try c.input("running_mean")
        layer.runningVariance.value = try c.input("running_var")
        var params: [String: Parameter<Double>] = [:]
        params["weight"] = layer.weight
        params["bias"] = layer.bias
        var result = try layerCase(c, parameters: params) { i in
            let x = try need(i, "x", c)
            guard x.rank >= 2, x.shape[1] == n else { throw c.fail("x \(x.shape) does not have num_features on axis 1") }
            guard c.kind != "batch_norm2d" || x.rank == 4 else { throw c.fail("batch_norm2d needs [N, C, H, W], got \(x.shape)") }
            return ["output": layer(x)]
        }
        result["running_mean"] = layer.runningMean.value
        result["running_var"] = layer.runningVariance.value
        result["num_batches_tracked"] = layer.batchesTracked.value
        return result
    }

    static let lossEvaluators: [String: ConformanceRunner.Evaluator] = [
        "mse": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return meanSquaredError(x, t, reduction: try reduction(c))
        },
        "l1": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return l1Loss(x, t, reduction: try reduction(c))
        },
        "smooth_l1": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return smoothL1Loss(x, t, beta: try c.number("beta"), reduction: try reduction(c))
        },
        "huber": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return huberLoss(x, t, delta: try c.number("delta"), reduction: try reduction(c))
        },
        "cross_entropy": lossCase { c, i in
            let x = try need(i, "input", c), w = i["weight"]
            return crossEntropy(logits: x, targets: try classTargets(c, x, weight: w), weight: w,
                                labelSmoothing: try c.optionalNumber("label_smoothing") ?? 0, reduction: try reduction(c))
        },
        "nll": lossCase { c, i in
            let x = try need(i, "input", c), w = i["weight"]
            return negativeLogLikelihood(logProbabilities: x, targets: try classTargets(c, x, weight: w), weight: w, reduction: try reduction(c))
        },
        "binary_cross_entropy": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return binaryCrossEntropy(probabilities: x, targets: t, weight: i["weight"], reduction: try reduction(c))
        },
        "binary_cross_entropy_with_logits": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return binaryCrossEntropy(logits: x, targets: t, weight: i["weight"], positiveWeight: i["pos_weight"], reduction: try reduction(c))
        },
        "hinge": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return hingeLoss(scores: x, labels: t, reduction: try reduction(c))
        },
        "multi_margin": lossCase { c, i in
            let x = try need(i, "input", c), w = i["weight"]
            return multiMarginLoss(x, targets: try classTargets(c, x, weight: w), p: try c.int("p"), margin: try c.number("margin"),
                                   weight: w, reduction: try reduction(c))
        },
        "kl_div": lossCase { c, i in
            let (x, t) = (try need(i, "input", c), try c.input("target")); try sameShape(c, x, t)
            return klDivergence(logInput: x, target: t, logTarget: try c.bool("log_target"), reduction: try reduction(c))
        },
        "cosine_embedding": lossCase { c, i in
            let a = try need(i, "input1", c), b = try need(i, "input2", c), y = try c.input("target")
            guard a.rank == 2, a.shape == b.shape, y.shape == [a.shape[0]] else { throw c.fail("input1 \(a.shape), input2 \(b.shape), target \(y.shape) do not agree") }
            return cosineEmbeddingLoss(a, b, labels: y, margin: try c.number("margin"), reduction: try reduction(c))
        },
    ]

    // MARK: training.json

    static func irisData(_ c: ReferenceCase) throws -> (x: Tensor<Double>, y: IndexTensor, classes: Int) {
        let x = try c.input("X"), y = try c.index("y")
        let k = try c.optionalInt("num_classes") ?? ((y.values.max() ?? 0) + 1)
        guard x.rank == 2, y.shape == [x.shape[0]], y.values.allSatisfy({ $0 >= 0 && $0 < k }) else {
            throw c.fail("X \(x.shape) and y \(y.shape) do not agree with \(k) classes")
        }
        return (x, y, k)
    }

    static func trainingLoop(_ c: ReferenceCase, model: Module<Double>, optimizer: inout Optimizer<Double>, steps: Int,
                             batch: (Int) -> (Tensor<Double>, IndexTensor), logits: @escaping (Tensor<Double>) -> Tensor<Double>) -> Tensor<Double> {
        var losses: [Double] = []
        for k in 0..<steps {
            let (x, y) = batch(k)
            let loss = model.valueWithGradient { _ in crossEntropy(logits: logits(x), targets: y) }
            losses.append(loss.scalar)
            optimizer.step(model)
        }
        return Tensor(losses)
    }

    static let trainingEvaluators: [String: ConformanceRunner.Evaluator] = [
        "logistic_regression_gd": { c in
            let (x, y, k) = try irisData(c)
            let w0 = try c.input("W0"), b0 = try c.input("b0")
            guard w0.shape == [k, x.shape[1]], b0.shape == [k] else { throw c.fail("W0 \(w0.shape) or b0 \(b0.shape) do not fit") }
            let model = Linear<Double>(weight: w0, bias: b0)
            var optimizer = Optimizer<Double>(rule: SGD(), learningRate: try c.number("lr"))
            let losses = trainingLoop(c, model: model, optimizer: &optimizer, steps: try c.int("steps"), batch: { _ in (x, y) }, logits: { model($0) })
            let final = withoutGradients { crossEntropy(logits: model(x), targets: y) }
            return ["losses": losses, "final_loss": final, "W": model.weight.value, "b": model.bias!.value]
        },
        "mlp_train": { c in
            let (x, y, _) = try irisData(c)
            guard try c.string("activation") == "tanh" else { throw c.fail("unsupported activation") }
            let l1 = Linear<Double>(weight: try c.input("W1"), bias: try c.input("b1"))
            let l2 = Linear<Double>(weight: try c.input("W2"), bias: try c.input("b2"))
            guard l1.weight.shape[1] == x.shape[1], l2.weight.shape[1] == l1.weight.shape[0] else { throw c.fail("W1 and W2 do not chain") }
            let model = Sequential<Double>(l1, Activation(.tanh), l2)
            guard let o = c.config["optimizer"]?.object, let name = o["name"]?.string, let lr = o["lr"]?.number else {
                throw c.fail("config 'optimizer' needs a name and lr")
            }
            let sub = ReferenceCase(file: c.file, id: c.id, kind: name, rtol: c.rtol, atol: c.atol, config: o, inputs: [:], expected: [:])
            var optimizer = Optimizer<Double>(rule: try OptimizerCases.rule(sub), learningRate: lr)
            let batches = try c.index("batches")
            let steps = try c.int("steps")
            guard batches.shape.count == 2, batches.shape[0] == steps, batches.values.allSatisfy({ $0 >= 0 && $0 < x.shape[0] }) else {
                throw c.fail("batches \(batches.shape) do not give one row of sample indices per step")
            }
            let b = batches.shape[1]
            let losses = trainingLoop(c, model: model, optimizer: &optimizer, steps: steps, batch: { k in
                let idx = Array(batches.values[k * b..<(k + 1) * b])
                return (x.indexSelect(axis: 0, indices: idx), IndexTensor(idx.map { y.values[$0] }))
            }, logits: { model($0) })
            let final = withoutGradients { crossEntropy(logits: model(x), targets: y) }
            return ["losses": losses, "final_full_loss": final, "W1": l1.weight.value, "b1": l1.bias!.value,
                    "W2": l2.weight.value, "b2": l2.bias!.value]
        },
    ]

    static var evaluators: [String: ConformanceRunner.Evaluator] {
        layerEvaluators.merging(lossEvaluators) { a, _ in a }.merging(trainingEvaluators) { a, _ in a }
    }
}
