import Nabla

/// Evaluators that run the reference cases through compiled programs (`nabla conformance
/// --compiled`): every op kind is traced into a program, natively where the compiler has the
/// primitive and as an eager operation inside the program otherwise; gradients and
/// Hessian-vector products come from the program transforms.
enum CompiledCases {
    /// A value of the program being traced, with its eager value at the case's inputs (which
    /// gives the shapes and checks the config as the eager evaluator does).
    struct Value {
        var traced: Traced<Double>
        var eager: Tensor<Double>
    }

    /// The op kind of `c` (config and constant inputs from `c`) on traced values.
    static func apply(_ c: ReferenceCase, _ floats: [String: Value], _ lists: [String: [Value]]) throws -> Value {
        let kind = c.kind
        guard let op = OpCases.ops[kind] else { throw c.fail("op kind '\(kind)' is not supported") }
        let eager = try withoutGradients { try op(c, floats.mapValues(\.eager), lists.mapValues { $0.map(\.eager) }) }
        if let t = try native(c, kind, floats.mapValues(\.traced)) {
            guard t.shape == eager.shape else { throw c.fail("compiled \(kind) has shape \(t.shape), the eager op \(eager.shape)") }
            return Value(traced: t, eager: eager)
        }
        // Run eagerly inside the program: the arguments in a fixed order.
        let names = floats.keys.sorted(), listNames = lists.keys.sorted()
        var args = names.map { floats[$0]!.traced }
        var counts: [Int] = []
        for l in listNames { args += lists[l]!.map(\.traced); counts.append(lists[l]!.count) }
        guard !args.isEmpty else { throw c.fail("op kind '\(kind)' has no float inputs to trace") }
        let traced = Traced.eager(kind, args, shape: eager.shape) { xs in
            var i = 0
            var inputs: OpCases.Inputs = [:], tensorLists: OpCases.Lists = [:]
            for n in names { inputs[n] = xs[i]; i += 1 }
            for (l, k) in zip(listNames, counts) { tensorLists[l] = Array(xs[i..<(i + k)]); i += k }
            // The config was checked when the program was traced.
            return try! op(c, inputs, tensorLists)
        }
        return Value(traced: traced, eager: eager)
    }

    /// The kinds the compiler has primitives for; nil for the others.
    static func native(_ c: ReferenceCase, _ kind: String, _ f: [String: Traced<Double>]) throws -> Traced<Double>? {
        func x() throws -> Traced<Double> {
            guard let v = f["x"] else { throw c.fail("missing input 'x'") }
            return v
        }
        func ab() throws -> (Traced<Double>, Traced<Double>) {
            guard let a = f["a"], let b = f["b"] else { throw c.fail("missing inputs 'a', 'b'") }
            return (a, b)
        }
        switch kind {
        case "add": let (a, b) = try ab(); return a + b
        case "sub": let (a, b) = try ab(); return a - b
        case "mul": let (a, b) = try ab(); return a * b
        case "div": let (a, b) = try ab(); return a / b
        case "pow_tensor": let (a, b) = try ab(); return Traced.pow(a, b)
        case "maximum": let (a, b) = try ab(); return Traced.maximum(a, b)
        case "minimum": let (a, b) = try ab(); return Traced.minimum(a, b)
        case "matmul":
            let (a, b) = try ab()
            guard a.rank == 2, b.rank == 2 else { return nil }
            return Traced.matmul(a, b)
        case "exp": return try x().exp()
        case "log": return try x().log()
        case "sqrt": return try x().squareRoot()
        case "abs": return try x().abs()
        case "neg": return try -x()
        case "tanh": return try x().tanh()
        case "sigmoid": return try x().sigmoid()
        case "relu": return try x().relu()
        case "pow_scalar": return try x().pow(try c.number("exponent"))
        case "sum": return try x().sum(axes: try c.axes(), keepingDimensions: c.config["keepdim"]?.bool ?? false)
        case "mean": return try x().mean(axes: try c.axes(), keepingDimensions: c.config["keepdim"]?.bool ?? false)
        case "transpose": return try x().transposed(try c.int("dim0"), try c.int("dim1"))
        case "permute": return try x().permuted(try c.ints("dims"))
        case "reshape": return try x().reshaped(to: try c.ints("shape"))
        case "slice":
            var v = try x()
            guard let s = c.config["slices"]?.array, s.count == v.rank else { return nil }
            for (d, r) in s.enumerated() {
                guard let a = r.array, a.count == 3, let start = a[0].number, let end = a[1].number, a[2].number == 1 else { return nil }
                v = v.slice(axis: d, start: Int(start), end: Int(end))
            }
            return v
        case "where":
            let (a, b) = try ab()
            return Traced.where(Traced(constant: try c.input("condition"), in: a.graph), a, b)
        default: return nil
        }
    }

    /// ops.json: output and vector-Jacobian products from one compiled program of all the
    /// case's float inputs, returning [Σ y·G, y].
    static func opCase(_ c: ReferenceCase) throws -> [String: Tensor<Double>] {
        let differentiated = Set(c.expected["grads"]?.object?.keys.map { $0 } ?? [])
        var singles: [(String, Tensor<Double>)] = [], lists: [(String, [Tensor<Double>])] = []
        for name in c.inputs.keys.sorted() where !name.hasPrefix("cotangent") {
            if c.inputs[name]?.array != nil {
                lists.append((name, try c.tensorList(name)))
            } else {
                let t = try c.tensor(name)
                if differentiated.contains(name) && t.dtype != "float64" { throw c.fail("input '\(name)' is differentiated but not float64") }
                guard t.dtype == "float64" else { continue }
                singles.append((name, t.doubleTensor))
            }
        }
        let arguments = singles.map(\.1) + lists.flatMap(\.1)
        guard !arguments.isEmpty else { return try OpCases.evaluators[c.kind]!(c) }
        let cotangent = differentiated.isEmpty ? nil : try c.input("cotangent")
        var failure: Error?
        let f = compiled { (xs: [Traced<Double>]) -> [Traced<Double>] in
            var i = 0
            var floats: [String: Value] = [:], tensorLists: [String: [Value]] = [:]
            for (name, t) in singles { floats[name] = Value(traced: xs[i], eager: t); i += 1 }
            for (name, ts) in lists {
                tensorLists[name] = ts.map { t in defer { i += 1 }; return Value(traced: xs[i], eager: t) }
            }
            do {
                let y = try apply(c, floats, tensorLists)
                guard let cotangent else { return [y.traced] }
                guard cotangent.shape == y.eager.shape else { throw c.fail("output has shape \(y.eager.shape) but the cotangent has shape \(cotangent.shape)") }
                return [(y.traced * Traced(constant: cotangent, in: xs[0].graph)).sum(), y.traced]
            } catch {
                failure = error
                return [xs[0].sum()]
            }
        }
        let outputs = f(arguments)
        if let failure { throw failure }
        guard cotangent != nil else { return ["output": outputs[0]] }
        var result: [String: Tensor<Double>] = ["output": outputs[1]]
        let grads = f.gradients(at: arguments)
        var k = 0
        for (name, _) in singles { if differentiated.contains(name) { result["grads.\(name)"] = grads[k] }; k += 1 }
        for (name, ts) in lists {
            for j in ts.indices { if differentiated.contains(name) { result["grads.\(name).\(j)"] = grads[k] }; k += 1 }
        }
        return result
    }

    /// programs.json: the steps traced into one program; gradients by reverse mode on the
    /// program, Hessian-vector products by forward mode over it.
    static func programCase(_ c: ReferenceCase) throws -> [String: Tensor<Double>] {
        let steps = try ProgramCases.steps(c)
        let names = c.inputs.keys.filter { $0 != "cotangent" && !$0.hasPrefix("tangent_") }.sorted()
        var variables: [(String, Tensor<Double>)] = []
        for name in names {
            let t = try c.tensor(name)
            guard t.dtype == "float64" else { continue }
            variables.append((name, t.doubleTensor))
        }
        guard !variables.isEmpty else { throw c.fail("the program has no float inputs") }
        let cotangent = try c.input("cotangent")
        var failure: Error?
        let f = compiled { (xs: [Traced<Double>]) -> [Traced<Double>] in
            var values: [String: Value] = [:]
            for ((name, t), x) in zip(variables, xs) { values[name] = Value(traced: x, eager: t) }
            do {
                let y = try ProgramCases.run(c, steps, values, apply: apply)
                guard y.eager.shape == cotangent.shape else {
                    throw c.fail("output has shape \(y.eager.shape) but the cotangent has \(cotangent.shape)")
                }
                return [(y.traced * Traced(constant: cotangent, in: xs[0].graph)).sum(), y.traced]
            } catch {
                failure = error
                return [xs[0].sum()]
            }
        }
        let xs = variables.map(\.1)
        let outputs = f(xs)
        if let failure { throw failure }
        let grads = f.gradients(at: xs)
        let tangents = try variables.map { name, x -> Tensor<Double> in
            let t = try c.input("tangent_\(name)")
            guard t.shape == x.shape else { throw c.fail("tangent_\(name) has shape \(t.shape), the input \(x.shape)") }
            return t
        }
        let hvps = f.hessianVectorProducts(at: xs, vectors: tangents)
        var result: [String: Tensor<Double>] = ["output": outputs[1]]
        for (k, (name, _)) in variables.enumerated() {
            result["grads.\(name)"] = grads[k]
            result["hvp.\(name)"] = hvps[k]
        }
        return result
    }

    static func rosenbrock(a: Double, b: Double) -> CompiledFunction<Double> {
        compiled { (x: Traced<Double>) in
            let n = x.count
            let head = x.slice(axis: 0, start: 0, end: n - 1), tail = x.slice(axis: 0, start: 1, end: n)
            let r = tail - head * head, s = a - head
            return (b * r * r + s * s).sum()
        }
    }

    /// Mean softmax cross-entropy of a linear classifier in θ = (W row-major, b), in compiler
    /// primitives: log-softmax as z − max − log Σ exp(z − max) with the row maxima as constants
    /// (their derivative cancels), the targets as a one-hot mask.
    static func logisticLoss(_ c: ReferenceCase) throws -> (theta: Tensor<Double>, loss: CompiledFunction<Double>) {
        let (x, y, w, b, k) = try HessianCases.logisticInputs(c)
        let d = x.shape[1], n = x.shape[0]
        let theta = Tensor.concatenate([w.flattened(), b])
        var oneHot = [Double](repeating: 0, count: n * k)
        for (i, t) in y.values.enumerated() { oneHot[i * k + t] = 1 }
        let mask = Tensor(shape: [n, k], scalars: oneHot)
        let rowMax = withoutGradients { Tensor.matmul(x, w, transposeB: true) + b }.max(axes: [1], keepingDimensions: true)
        return (theta, compiled { (t: Traced<Double>) in
            let g = t.graph
            let wt = t.slice(axis: 0, start: 0, end: k * d).reshaped(to: [k, d])
            let bt = t.slice(axis: 0, start: k * d, end: k * d + k)
            let z = Traced.matmul(Traced(constant: x, in: g), wt, transposeB: true) + bt
            let shifted = z - Traced(constant: rowMax, in: g)
            let logp = shifted - shifted.exp().sum(axes: [1], keepingDimensions: true).log()
            return -(logp * Traced(constant: mask, in: g)).sum() / Double(n)
        })
    }

    static let hessianEvaluators: [String: ConformanceRunner.Evaluator] = [
        "rosenbrock_hessian": { c in
            let x = try HessianCases.rosenbrockInput(c)
            let f = rosenbrock(a: try c.number("a"), b: try c.number("b"))
            let (value, g) = f.valueWithGradient(at: x)
            return ["value": value, "gradient": g, "hessian": f.hessian(at: x)]
        },
        "rosenbrock_hvp": { c in
            let x = try HessianCases.rosenbrockInput(c)
            let f = rosenbrock(a: try c.number("a"), b: try c.number("b"))
            return ["hvp": f.hessianVectorProduct(at: x, vector: try HessianCases.vector(c, "v", length: x.count))]
        },
        "logreg_hessian": { c in
            let (theta, f) = try logisticLoss(c)
            let (value, g) = f.valueWithGradient(at: theta)
            return ["loss": value, "gradient": g, "hessian": f.hessian(at: theta)]
        },
        "logreg_hvp": { c in
            let (theta, f) = try logisticLoss(c)
            return ["hvp": f.hessianVectorProduct(at: theta, vector: try HessianCases.vector(c, "v", length: theta.count))]
        },
        "jacobian": { c in
            let x = try c.input("x")
            guard x.shape == [3] else { throw c.fail("x must have shape [3], got \(x.shape)") }
            let name = try c.string("function")
            guard name == "f_a" || name == "f_b" else { throw c.fail("unknown function '\(name)'") }
            let f = compiled { (x: Traced<Double>) -> Traced<Double> in
                let (x0, x1, x2) = (x[0], x[1], x[2])
                let parts: [Traced<Double>]
                if name == "f_a" {
                    parts = [x0 * x1 * x1 + x2.sin() * x0, (x1 * x2).exp() - x0 * x0 * x0 + (1 + x2 * x2).log()]
                } else {
                    let c1 = x1.cos()
                    parts = [(x0 - 2 * x1).tanh() * x2, x0 * x1 * x2 / (1 + x0 * x0) + c1 * c1]
                }
                return Traced.stack(parts)
            }
            // Row i: the gradient of y·eᵢ, one compiled program per row.
            let value = f(x)
            var rows: [Double] = []
            for i in 0..<value.count {
                var e = [Double](repeating: 0, count: value.count)
                e[i] = 1
                let ei = Tensor(e)
                let row = compiled { (x: Traced<Double>) -> Traced<Double> in
                    (f.trace([x])[0] * Traced(constant: ei, in: x.graph)).sum()
                }
                rows += row.gradient(at: x).scalars
            }
            return ["value": value, "jacobian": Tensor(shape: [value.count, 3], scalars: rows)]
        },
    ]

    static var evaluators: [String: ConformanceRunner.Evaluator] {
        var e: [String: ConformanceRunner.Evaluator] = [:]
        for kind in OpCases.ops.keys { e[kind] = { c in try opCase(c) } }
        e["program"] = { c in try programCase(c) }
        return e.merging(hessianEvaluators) { a, _ in a }
    }
}
