import Nabla

/// Evaluators for `ops.json`: the op's output and its vector-Jacobian products.
enum OpCases {
    typealias Inputs = [String: Tensor<Double>]
    typealias Lists = [String: [Tensor<Double>]]
    /// An op kind of the reference format applied to named inputs: the case supplies the config
    /// (and constant inputs such as indices), `Inputs` the float tensors, `Lists` the tensor lists.
    typealias Op = (ReferenceCase, Inputs, Lists) throws -> Tensor<Double>

    /// Loads the inputs, marks the ones listed under `expected.grads` as variables, applies `op`,
    /// and pulls the case's cotangent back to them.
    static func vjpCase(_ c: ReferenceCase, _ op: @escaping (ReferenceCase, Inputs, Lists) throws -> Tensor<Double>) throws -> [String: Tensor<Double>] {
        let differentiated = Set(c.expected["grads"]?.object?.keys.map { $0 } ?? [])
        var inputs: Inputs = [:], lists: Lists = [:]
        var variables: [(String, Tensor<Double>)] = []
        for name in c.inputs.keys.sorted() where !name.hasPrefix("cotangent") {
            if c.inputs[name]?.array != nil {
                var list = try c.tensorList(name)
                if differentiated.contains(name) {
                    list = list.map { $0.requiringGradient() }
                    for (i, t) in list.enumerated() { variables.append(("\(name).\(i)", t)) }
                }
                lists[name] = list
            } else {
                let t = try c.tensor(name)
                guard t.dtype != "int64" else { continue }
                var x = t.doubleTensor
                if differentiated.contains(name) {
                    guard t.dtype == "float64" else { throw c.fail("input '\(name)' is differentiated but not float64") }
                    x = x.requiringGradient()
                    variables.append((name, x))
                }
                inputs[name] = x
            }
        }
        let output = try op(c, inputs, lists)
        var result: [String: Tensor<Double>] = ["output": output.detached()]
        if !variables.isEmpty {
            let cot = try c.input("cotangent")
            guard cot.shape == output.shape else {
                throw c.fail("output has shape \(output.shape) but the cotangent has shape \(cot.shape)")
            }
            let grads = gradients(of: output, with: cot, wrt: variables.map(\.1))
            for ((name, _), g) in zip(variables, grads) { result["grads.\(name)"] = g }
        }
        return result
    }

    static func need(_ inputs: Inputs, _ name: String, _ c: ReferenceCase) throws -> Tensor<Double> {
        guard let t = inputs[name] else { throw c.fail("missing input '\(name)'") }
        return t
    }

    static func unary(_ f: @escaping (ReferenceCase, Tensor<Double>) throws -> Tensor<Double>) -> Op {
        { c, i, _ in try f(c, try need(i, "x", c)) }
    }

    static func binary(_ f: @escaping (Tensor<Double>, Tensor<Double>) -> Tensor<Double>) -> Op {
        { c, i, _ in
            let a = try need(i, "a", c), b = try need(i, "b", c)
            if c.kind != "matmul" {
                guard broadcastShapes(a.shape, b.shape) != nil else { throw c.fail("inputs of shapes \(a.shape) and \(b.shape) do not broadcast") }
            } else {
                guard a.rank >= 2, b.rank >= 2, a.shape[a.rank - 1] == b.shape[b.rank - 2] else {
                    throw c.fail("matmul inputs of shapes \(a.shape) and \(b.shape) do not agree")
                }
            }
            return f(a, b)
        }
    }

    static func reduction(_ f: @escaping (Tensor<Double>, [Int]?, Bool, ReferenceCase) throws -> Tensor<Double>) -> Op {
        unary { c, x in try f(x, try c.axes(), c.config["keepdim"]?.bool ?? false, c) }
    }

    static func checkAxes(_ c: ReferenceCase, _ axes: [Int]?, rank: Int) throws {
        for a in axes ?? [] where a < -Swift.max(rank, 1) || a >= Swift.max(rank, 1) {
            throw c.fail("axis \(a) is out of range for rank \(rank)")
        }
    }

    /// Every op kind as an evaluator of `ops.json` cases: the op, then its vector-Jacobian products.
    static let evaluators: [String: ConformanceRunner.Evaluator] = ops.mapValues { op in { c in try vjpCase(c, op) } }

    /// The names of each kind's inputs, in the order of the reference format (section 7).
    static func argumentNames(of kind: String) -> [String] {
        switch kind {
        case "add", "sub", "mul", "div", "matmul", "pow_tensor", "maximum", "minimum": return ["a", "b"]
        case "where": return ["condition", "a", "b"]
        case "conv1d", "conv2d": return ["x", "weight", "bias"]
        case "gather", "index_select": return ["x", "index"]
        case "embedding": return ["weight", "indices"]
        case "concatenate", "stack": return ["xs"]
        default: return ["x"]
        }
    }

    static let ops: [String: Op] = [
        "add": binary(+), "sub": binary(-), "mul": binary(*), "div": binary(/),
        "matmul": binary { Tensor.matmul($0, $1) },
        "pow_tensor": binary { Tensor.pow($0, $1) },
        "maximum": binary { Tensor.maximum($0, $1) },
        "minimum": binary { Tensor.minimum($0, $1) },
        "exp": unary { $1.exp() }, "log": unary { $1.log() }, "sqrt": unary { $1.squareRoot() },
        "abs": unary { $1.abs() }, "neg": unary { -$1 }, "tanh": unary { $1.tanh() },
        "sigmoid": unary { $1.sigmoid() }, "relu": unary { $1.relu() }, "silu": unary { $1.silu() },
        "pow_scalar": unary { c, x in x.pow(try c.number("exponent")) },
        "leaky_relu": unary { c, x in x.leakyRelu(negativeSlope: try c.number("negative_slope")) },
        "elu": unary { c, x in x.elu(alpha: try c.number("alpha")) },
        "gelu": unary { c, x in
            let mode = try c.string("approximate")
            guard mode == "none" || mode == "tanh" else { throw c.fail("unknown gelu approximation '\(mode)'") }
            return x.gelu(approximate: mode == "tanh")
        },
        "softplus": unary { c, x in x.softplus(beta: try c.number("beta"), threshold: try c.number("threshold")) },
        "softmax": unary { c, x in try checkAxes(c, [try c.int("axis")], rank: x.rank); return x.softmax(axis: try c.int("axis")) },
        "log_softmax": unary { c, x in try checkAxes(c, [try c.int("axis")], rank: x.rank); return x.logSoftmax(axis: try c.int("axis")) },
        "sum": reduction { x, a, k, c in try checkAxes(c, a, rank: x.rank); return x.sum(axes: a, keepingDimensions: k) },
        "mean": reduction { x, a, k, c in try checkAxes(c, a, rank: x.rank); return x.mean(axes: a, keepingDimensions: k) },
        "max": reduction { x, a, k, c in try checkAxes(c, a, rank: x.rank); return x.max(axes: a, keepingDimensions: k) },
        "min": reduction { x, a, k, c in try checkAxes(c, a, rank: x.rank); return x.min(axes: a, keepingDimensions: k) },
        "logsumexp": reduction { x, a, k, c in try checkAxes(c, a, rank: x.rank); return x.logSumExp(axes: a, keepingDimensions: k) },
        "var": reduction { x, a, k, c in
            try checkAxes(c, a, rank: x.rank)
            return x.variance(axes: a, correction: try c.int("correction"), keepingDimensions: k)
        },
        "transpose": unary { c, x in
            try checkAxes(c, [try c.int("dim0"), try c.int("dim1")], rank: x.rank)
            return x.transposed(try c.int("dim0"), try c.int("dim1"))
        },
        "permute": unary { c, x in
            let d = try c.ints("dims")
            guard Set(d.map { $0 < 0 ? $0 + x.rank : $0 }) == Set(0..<x.rank), d.count == x.rank else { throw c.fail("dims \(d) is not a permutation for rank \(x.rank)") }
            return x.permuted(d)
        },
        "reshape": unary { c, x in
            let s = try c.ints("shape")
            let known = s.filter { $0 != -1 }.reduce(1, *)
            guard s.filter({ $0 == -1 }).count <= 1, known > 0, (s.contains(-1) ? x.count % known == 0 : known == x.count) else {
                throw c.fail("cannot reshape \(x.shape) to \(s)")
            }
            return x.reshaped(to: s)
        },
        "concatenate": { c, _, l in
            guard let xs = l["xs"], !xs.isEmpty else { throw c.fail("missing list input 'xs'") }
            return Tensor.concatenate(xs, axis: try c.int("axis"))
        },
        "stack": { c, _, l in
            guard let xs = l["xs"], !xs.isEmpty else { throw c.fail("missing list input 'xs'") }
            return Tensor.stack(xs, axis: try c.int("axis"))
        },
        "slice": unary { c, x in
            guard let s = c.config["slices"]?.array, s.count == x.rank else { throw c.fail("'slices' must have one [start, stop, step] per dimension") }
            let ranges = try s.map { r -> (start: Int, end: Int, step: Int) in
                guard let a = r.array, a.count == 3, let x0 = a[0].number, let x1 = a[1].number, let x2 = a[2].number, x2 >= 1 else {
                    throw c.fail("bad slice entry \(r.jsonText)")
                }
                return (Int(x0), Int(x1), Int(x2))
            }
            return x.slice(ranges)
        },
        "gather": unary { c, x in
            let idx = try c.index("index")
            let axis = try c.int("axis")
            try checkAxes(c, [axis], rank: x.rank)
            let a = axis < 0 ? axis + x.rank : axis
            guard idx.shape.count == x.rank, idx.values.allSatisfy({ $0 >= -x.shape[a] && $0 < x.shape[a] }) else {
                throw c.fail("index of shape \(idx.shape) does not fit input \(x.shape) along axis \(axis)")
            }
            return x.gather(axis: axis, index: idx)
        },
        "index_select": unary { c, x in
            let idx = try c.index("index")
            let axis = try c.int("axis")
            try checkAxes(c, [axis], rank: x.rank)
            let a = axis < 0 ? axis + x.rank : axis
            guard idx.values.allSatisfy({ $0 >= -x.shape[a] && $0 < x.shape[a] }) else { throw c.fail("index out of range for axis \(axis)") }
            return x.indexSelect(axis: axis, indices: idx.values)
        },
        "where": { c, i, _ in
            let cond = try c.input("condition")
            let a = try need(i, "a", c), b = try need(i, "b", c)
            guard let s = broadcastShapes(cond.shape, a.shape), broadcastShapes(s, b.shape) != nil else { throw c.fail("shapes do not broadcast") }
            return Tensor.where(cond, a, b)
        },
        "clamp": unary { c, x in x.clamped(min: try c.optionalNumber("min"), max: try c.optionalNumber("max")) },
        "embedding": { c, i, _ in
            let w = try need(i, "weight", c)
            let idx = try c.index("indices")
            guard w.rank == 2, idx.values.allSatisfy({ $0 >= 0 && $0 < w.shape[0] }) else { throw c.fail("indices out of range for weight \(w.shape)") }
            let pad = try c.optionalInt("padding_idx")
            if let pad { guard pad >= -w.shape[0] && pad < w.shape[0] else { throw c.fail("padding_idx \(pad) out of range") } }
            return w.embeddingLookup(idx, paddingIndex: pad)
        },
        "conv1d": { c, i, _ in
            let x = try need(i, "x", c), w = try need(i, "weight", c)
            let groups = try c.int("groups")
            guard x.rank == 3, w.rank == 3, groups >= 1, x.shape[1] == w.shape[1] * groups, w.shape[0] % groups == 0 else {
                throw c.fail("input \(x.shape), weight \(w.shape) and groups \(groups) do not agree")
            }
            return x.conv1d(weight: w, bias: i["bias"], stride: try c.int("stride"), padding: try c.int("padding"),
                            dilation: try c.int("dilation"), groups: groups)
        },
        "conv2d": { c, i, _ in
            let x = try need(i, "x", c), w = try need(i, "weight", c)
            let groups = try c.int("groups")
            guard x.rank == 4, w.rank == 4, groups >= 1, x.shape[1] == w.shape[1] * groups, w.shape[0] % groups == 0 else {
                throw c.fail("input \(x.shape), weight \(w.shape) and groups \(groups) do not agree")
            }
            return x.conv2d(weight: w, bias: i["bias"], stride: try c.ints("stride", count: 2), padding: try c.ints("padding", count: 2),
                            dilation: try c.ints("dilation", count: 2), groups: groups)
        },
        "max_pool2d": unary { c, x in
            let k = try c.ints("kernel_size", count: 2)
            let s = c.config["stride"]?.isNull == false ? try c.ints("stride", count: 2) : k
            return x.maxPool2d(kernelSize: k, stride: s, padding: try c.ints("padding", count: 2))
        },
        "avg_pool2d": unary { c, x in
            let k = try c.ints("kernel_size", count: 2)
            let s = c.config["stride"]?.isNull == false ? try c.ints("stride", count: 2) : k
            return x.avgPool2d(kernelSize: k, stride: s, padding: try c.ints("padding", count: 2),
                               countIncludingPadding: try c.bool("count_include_pad"))
        },
    ]
}
