import Nabla

/// Evaluators for `programs.json`: random compositions of the op kinds, with their output,
/// gradients (L = Σ y·G) and Hessian-vector products, the last by reverse over reverse: the
/// gradients are computed with their graph kept, then s = Σᵢ Σ gradᵢ·tangentᵢ is differentiated.
enum ProgramCases {
    struct Step {
        var op: String
        /// The names given for each of the kind's inputs (a list for `concatenate` and `stack`).
        var arguments: [(name: String, value: Argument)]
        var config: [String: JSONValue]
        var out: String
    }

    enum Argument {
        case one(String)
        case list([String])
    }

    static func steps(_ c: ReferenceCase) throws -> [Step] {
        guard let list = c.config["steps"]?.array, !list.isEmpty else { throw c.fail("config 'steps' is missing or empty") }
        var defined = Set(c.inputs.keys)
        return try list.enumerated().map { index, entry in
            guard let o = entry.object, let op = o["op"]?.string, let args = o["args"]?.array, let out = o["out"]?.string else {
                throw c.fail("step \(index) needs 'op', 'args' and 'out'")
            }
            guard OpCases.ops[op] != nil else { throw c.fail("step \(index): op kind '\(op)' is not supported") }
            let names = OpCases.argumentNames(of: op)
            guard args.count <= names.count, args.count >= (op == "conv1d" || op == "conv2d" ? 2 : names.count) else {
                throw c.fail("step \(index) (\(op)) has \(args.count) arguments; the kind takes \(names.joined(separator: ", "))")
            }
            let arguments = try zip(names, args).map { name, value -> (name: String, value: Argument) in
                if let s = value.string {
                    guard defined.contains(s) else { throw c.fail("step \(index) uses '\(s)' before it is defined") }
                    return (name, .one(s))
                }
                guard let items = value.array?.compactMap(\.string), items.count == value.array?.count, !items.isEmpty,
                      items.allSatisfy(defined.contains) else {
                    throw c.fail("step \(index) (\(op)): argument '\(name)' is not a name or a list of defined names")
                }
                return (name, .list(items))
            }
            guard !defined.contains(out) else { throw c.fail("step \(index) assigns '\(out)' a second time") }
            defined.insert(out)
            return Step(op: op, arguments: arguments, config: o["config"]?.object ?? [:], out: out)
        }
    }

    /// Runs the program on the float inputs `values` (the constants come from the case).
    static func run(_ c: ReferenceCase, _ steps: [Step], _ inputs: [String: Tensor<Double>]) throws -> Tensor<Double> {
        try run(c, steps, inputs) { stepCase, floats, lists in try OpCases.ops[stepCase.kind]!(stepCase, floats, lists) }
    }

    /// Runs the program on values of any kind (tensors, traced values): `apply` computes one
    /// step, given as a one-op case (its config, its constant inputs under the kind's names)
    /// with its float and list arguments.
    static func run<V>(_ c: ReferenceCase, _ steps: [Step], _ inputs: [String: V],
                       apply: (ReferenceCase, [String: V], [String: [V]]) throws -> V) throws -> V {
        var values = inputs
        var last: V?
        for (index, step) in steps.enumerated() {
            var floats: [String: V] = [:], lists: [String: [V]] = [:], constants: [String: JSONValue] = [:]
            for (name, argument) in step.arguments {
                switch argument {
                case .one(let v):
                    if let t = values[v] { floats[name] = t } else { constants[name] = c.inputs[v] }
                case .list(let vs):
                    lists[name] = try vs.map { v in
                        guard let t = values[v] else { throw c.fail("step \(index): '\(v)' in a list is not a float tensor") }
                        return t
                    }
                }
            }
            let stepCase = ReferenceCase(file: c.file, id: "\(c.id) step \(index) (\(step.op))", kind: step.op, rtol: c.rtol, atol: c.atol,
                                         config: step.config, inputs: constants, expected: [:])
            let y = try apply(stepCase, floats, lists)
            values[step.out] = y
            last = y
        }
        return last!
    }

    static func evaluate(_ c: ReferenceCase) throws -> [String: Tensor<Double>] {
        let steps = try steps(c)
        // The float inputs x0, x1, ... (all differentiated); constants c0, ... stay in the case.
        let names = c.inputs.keys.filter { $0 != "cotangent" && !$0.hasPrefix("tangent_") }.sorted()
        var variables: [(String, Tensor<Double>)] = []
        for name in names {
            let t = try c.tensor(name)
            guard t.dtype == "float64" else { continue }
            variables.append((name, t.doubleTensor.requiringGradient()))
        }
        let output = try run(c, steps, Dictionary(uniqueKeysWithValues: variables))
        let cotangent = try c.input("cotangent")
        guard cotangent.shape == output.shape else { throw c.fail("output has shape \(output.shape) but the cotangent has \(cotangent.shape)") }
        let loss = (output * cotangent).sum()
        let grads = gradients(of: loss, wrt: variables.map(\.1), keepingGraph: true)
        var s = Tensor<Double>(0)
        for ((name, x), g) in zip(variables, grads) {
            let tangent = try c.input("tangent_\(name)")
            guard tangent.shape == x.shape else { throw c.fail("tangent_\(name) has shape \(tangent.shape), the input \(x.shape)") }
            s = s + (g * tangent).sum()
        }
        let hvps = s.isDifferentiable ? gradients(of: s, wrt: variables.map(\.1)) : variables.map { Tensor(repeating: 0, shape: $0.1.shape) }
        var result: [String: Tensor<Double>] = ["output": output.detached()]
        for ((name, _), (g, h)) in zip(variables, zip(grads, hvps)) {
            result["grads.\(name)"] = g.detached()
            result["hvp.\(name)"] = h.detached()
        }
        return result
    }

    static let evaluators: [String: ConformanceRunner.Evaluator] = ["program": evaluate]
}
