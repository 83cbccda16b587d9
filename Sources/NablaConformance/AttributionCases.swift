import Nabla

/// Evaluators for `attributions.json`: saliency, input × gradient and integrated gradients of a
/// one-hidden-layer network's target logits, through ``Attribution``.
enum AttributionCases {
    static func explainer(_ c: ReferenceCase) throws -> (Attribution<Double>, Tensor<Double>) {
        let w1 = try c.input("W1"), b1 = try c.input("b1"), w2 = try c.input("W2"), b2 = try c.input("b2"), x = try c.input("X")
        let target = try c.index("target").values
        guard w1.rank == 2, w2.rank == 2, x.rank == 2, w1.shape[1] == x.shape[1], w2.shape[1] == w1.shape[0],
              b1.shape == [w1.shape[0]], b2.shape == [w2.shape[0]], target.count == x.shape[0] else {
            throw c.fail("W1 \(w1.shape), b1 \(b1.shape), W2 \(w2.shape), b2 \(b2.shape), X \(x.shape) and \(target.count) targets do not agree")
        }
        guard target.allSatisfy({ $0 >= 0 && $0 < w2.shape[0] }) else { throw c.fail("a target is outside 0..<\(w2.shape[0])") }
        let activation = try c.string("activation")
        let act: (Tensor<Double>) -> Tensor<Double>
        switch activation {
        case "tanh": act = { $0.tanh() }
        case "relu": act = { $0.relu() }
        case "sigmoid": act = { $0.sigmoid() }
        default: throw c.fail("unknown activation '\(activation)'")
        }
        let model = { (v: Tensor<Double>) in Tensor.matmul(act(Tensor.matmul(v, w1, transposeB: true) + b1), w2, transposeB: true) + b2 }
        return (Attribution(target: .classes(target), model: model), x)
    }

    static let evaluators: [String: ConformanceRunner.Evaluator] = [
        "saliency": { c in
            let (e, x) = try explainer(c)
            return ["attributions": e.saliency(x, absolute: c.config["abs"]?.bool ?? true).values]
        },
        "input_x_gradient": { c in
            let (e, x) = try explainer(c)
            return ["attributions": e.inputXGradient(x).values]
        },
        "integrated_gradients": { c in
            let (e, x) = try explainer(c)
            let steps = try c.int("n_steps")
            guard steps >= 1 else { throw c.fail("n_steps \(steps) must be at least 1") }
            let name = try c.string("method")
            guard let quadrature = Quadrature(rawValue: name) else { throw c.fail("unknown quadrature '\(name)'") }
            let baseline = try c.input("baseline")
            guard baseline.count == x.shape[1] else { throw c.fail("baseline \(baseline.shape) for \(x.shape[1]) features") }
            // The reference values come from Captum, whose step sizes are float32.
            let r = e.integratedGradients(x, baseline: .tensor(baseline), steps: steps, quadrature: quadrature, weightsInFloat32: true)
            return ["attributions": r.values, "convergence_delta": Tensor(r.convergenceDelta!)]
        },
    ]
}
