import Nabla

/// Evaluators for `hessians.json`: values, gradients, Hessians, Hessian-vector products and
/// Jacobians, all from automatic differentiation.
enum HessianCases {
    /// Chained Rosenbrock: Σ b (x_{i+1} − x_i²)² + (a − x_i)².
    static func rosenbrock(a: Double, b: Double) -> (Tensor<Double>) -> Tensor<Double> {
        { x in
            let n = x.count
            let head = x.slice(axis: 0, start: 0, end: n - 1), tail = x.slice(axis: 0, start: 1, end: n)
            let r = tail - head * head
            let s = a - head
            return (b * r * r + s * s).sum()
        }
    }

    /// The rows X, labels y, weights W, bias b and class count of a logistic-regression case, checked.
    static func logisticInputs(_ c: ReferenceCase) throws -> (x: Tensor<Double>, y: IndexTensor, w: Tensor<Double>, b: Tensor<Double>, k: Int) {
        let x = try c.input("X"), y = try c.index("y"), w = try c.input("W"), b = try c.input("b")
        let k = try c.int("num_classes")
        guard x.rank == 2, w.shape == [k, x.shape[1]], b.shape == [k], y.shape == [x.shape[0]], y.values.allSatisfy({ $0 >= 0 && $0 < k }) else {
            throw c.fail("X \(x.shape), W \(w.shape), b \(b.shape), y \(y.shape) do not agree with num_classes \(k)")
        }
        return (x, y, w, b, k)
    }

    /// Mean softmax cross-entropy of a linear classifier, as a function of θ = (W row-major, b).
    static func logisticLoss(_ c: ReferenceCase) throws -> (theta: Tensor<Double>, loss: (Tensor<Double>) -> Tensor<Double>) {
        let (x, y, w, b, k) = try logisticInputs(c)
        let d = x.shape[1], n = x.shape[0]
        let theta = Tensor.concatenate([w.flattened(), b])
        let targets = IndexTensor(shape: [n, 1], values: y.values)
        return (theta, { t in
            let wt = t.slice(axis: 0, start: 0, end: k * d).reshaped(to: [k, d])
            let bt = t.slice(axis: 0, start: k * d, end: k * d + k)
            let z = Tensor.matmul(x, wt, transposeB: true) + bt
            return -z.logSoftmax(axis: 1).gather(axis: 1, index: targets).mean()
        })
    }

    static func jacobianFunction(_ name: String, _ c: ReferenceCase) throws -> (Tensor<Double>) -> Tensor<Double> {
        switch name {
        case "f_a":
            return { x in
                let (x0, x1, x2) = (x[0], x[1], x[2])
                return Tensor.stack([x0 * x1 * x1 + x2.sin() * x0, (x1 * x2).exp() - x0 * x0 * x0 + (1 + x2 * x2).log()])
            }
        case "f_b":
            return { x in
                let (x0, x1, x2) = (x[0], x[1], x[2])
                let c1 = x1.cos()
                return Tensor.stack([(x0 - 2 * x1).tanh() * x2, x0 * x1 * x2 / (1 + x0 * x0) + c1 * c1])
            }
        default: throw c.fail("unknown function '\(name)'")
        }
    }

    static func vector(_ c: ReferenceCase, _ name: String, length: Int) throws -> Tensor<Double> {
        let v = try c.input(name)
        guard v.shape == [length] else { throw c.fail("input '\(name)' has shape \(v.shape), expected [\(length)]") }
        return v
    }

    static func rosenbrockInput(_ c: ReferenceCase) throws -> Tensor<Double> {
        let x = try c.input("x")
        guard x.rank == 1, x.count >= 2 else { throw c.fail("x must be a vector of length at least 2, got \(x.shape)") }
        return x
    }

    static let evaluators: [String: ConformanceRunner.Evaluator] = [
        "rosenbrock_hessian": { c in
            let x = try rosenbrockInput(c)
            let f = rosenbrock(a: try c.number("a"), b: try c.number("b"))
            let (value, g) = valueWithGradient(at: x, of: f)
            return ["value": value, "gradient": g, "hessian": hessian(at: x, of: f)]
        },
        "rosenbrock_hvp": { c in
            let x = try rosenbrockInput(c)
            let f = rosenbrock(a: try c.number("a"), b: try c.number("b"))
            return ["hvp": hessianVectorProduct(at: x, vector: try vector(c, "v", length: x.count), of: f)]
        },
        "logreg_hessian": { c in
            let (theta, f) = try logisticLoss(c)
            let (value, g) = valueWithGradient(at: theta, of: f)
            return ["loss": value, "gradient": g, "hessian": hessian(at: theta, of: f)]
        },
        "logreg_hvp": { c in
            let (theta, f) = try logisticLoss(c)
            return ["hvp": hessianVectorProduct(at: theta, vector: try vector(c, "v", length: theta.count), of: f)]
        },
        "jacobian": { c in
            let x = try c.input("x")
            guard x.shape == [3] else { throw c.fail("x must have shape [3], got \(x.shape)") }
            let f = try jacobianFunction(try c.string("function"), c)
            let byRows = jacobian(at: x, mode: .byRows, of: f)
            let byColumns = jacobian(at: x, mode: .byColumns, of: f)
            // Reverse and forward mode must both match: the rows are compared with the reference,
            // the columns with the rows at the case's tolerance.
            for (r, col) in zip(byRows.scalars, byColumns.scalars) where Swift.abs(r - col) > c.atol + c.rtol * Swift.abs(r) {
                throw c.fail("the Jacobian by columns (forward mode) differs from the one by rows: \(col) vs \(r)")
            }
            return ["value": withoutGradients { f(x) }, "jacobian": byRows]
        },
    ]
}
