/// Transformations of programs: reverse mode (vector-Jacobian products), forward mode
/// (Jacobian-vector products, so forward over reverse gives Hessian-vector products) and
/// batching along a new leading axis. Each primitive's rules are written next to each other
/// and with the graph's own builders, so the derivatives are programs like any other:
/// simplified, shared, fused and differentiated again.
extension Graph {
    /// Reverse mode: the cotangents of `wrt` when `output` has cotangent `seed` (nil where the
    /// output does not depend on that value).
    public func vjp(output: Int, seed: Int, wrt: [Int]) -> [Int?] {
        let count = output + 1
        var depends = [Bool](repeating: false, count: count)
        for w in wrt where w < count { depends[w] = true }
        for i in 0..<count where !depends[i] {
            depends[i] = nodes[i].arguments.contains { depends[$0] }
        }
        var cotangent = [Int?](repeating: nil, count: count)
        cotangent[output] = seed
        for i in stride(from: output, through: 0, by: -1) where depends[i] {
            guard let g = cotangent[i] else { continue }
            let node = nodes[i]
            for (k, gk) in pullback(of: i, node, g).enumerated() {
                guard let gk else { continue }
                let a = node.arguments[k]
                guard depends[a] else { continue }
                cotangent[a] = cotangent[a].map { binary(.add, $0, gk) } ?? gk
            }
        }
        return wrt.map { $0 < count ? cotangent[$0] : nil }
    }

    /// The cotangent of each argument of node `i` (value `y`) given its cotangent `g`.
    private func pullback(of y: Int, _ node: GraphNode, _ g: Int) -> [Int?] {
        let args = node.arguments
        func x(_ k: Int) -> Int { args[k] }
        func s(_ k: Int) -> [Int] { shape(args[k]) }
        func mul(_ a: Int, _ b: Int) -> Int { binary(.mul, a, b) }
        switch node.primitive {
        case .input, .constant, .scalar: return []
        case .unary(let kind):
            switch kind {
            case .neg: return [unary(.neg, g)]
            case .exp: return [mul(g, y)]
            case .log: return [binary(.div, g, x(0))]
            case .sin: return [mul(g, unary(.cos, x(0)))]
            case .cos: return [mul(unary(.neg, g), unary(.sin, x(0)))]
            case .tanh: return [mul(g, binary(.sub, scalar(1), mul(y, y)))]
            case .sqrt: return [binary(.div, mul(g, scalar(0.5)), y)]
            case .abs: return [mul(g, unary(.sign, x(0)))]
            case .sigmoid: return [mul(mul(g, y), binary(.sub, scalar(1), y))]
            // Through the output (y > 0 exactly where x > 0), so x need not be kept.
            case .relu: return [select(unary(.step, y), g, scalar(0))]
            case .step, .sign: return [nil]
            }
        case .binary(let kind):
            let a = x(0), b = x(1), sa = s(0), sb = s(1)
            switch kind {
            case .add: return [sum(g, toShape: sa), sum(g, toShape: sb)]
            case .sub: return [sum(g, toShape: sa), sum(unary(.neg, g), toShape: sb)]
            case .mul: return [sum(mul(g, b), toShape: sa), sum(mul(g, a), toShape: sb)]
            case .div:
                return [sum(binary(.div, g, b), toShape: sa),
                        sum(binary(.div, mul(unary(.neg, g), a), mul(b, b)), toShape: sb)]
            case .maximum, .minimum:
                let w = kind == .maximum ? binary(.maxWeight, a, b) : binary(.maxWeight, b, a)
                return [sum(mul(g, w), toShape: sa), sum(mul(g, binary(.sub, scalar(1), w)), toShape: sb)]
            case .pow:
                return [sum(mul(mul(g, b), binary(.pow, a, binary(.sub, b, scalar(1)))), toShape: sa),
                        sum(mul(mul(g, y), unary(.log, a)), toShape: sb)]
            case .greater, .maxWeight: return [nil, nil]
            }
        case .select:
            let zero = scalar(0)
            return [nil, sum(select(x(0), g, zero), toShape: s(1)), sum(select(x(0), zero, g), toShape: s(2))]
        case .powScalar(let p):
            if p == 0 { return [nil] }
            return [mul(mul(g, scalar(p)), powScalar(x(0), p - 1))]
        case .sum(let axes):
            let xs = s(0)
            let kept = xs.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
            return [broadcast(reshape(g, kept), to: xs)]
        case .broadcast: return [sum(g, toShape: s(0))]
        case .reshape: return [reshape(g, s(0))]
        case .transpose(let p):
            var inverse = [Int](repeating: 0, count: p.count)
            for (i, d) in p.enumerated() { inverse[d] = i }
            return [transpose(g, inverse)]
        case .slice(let start): return [pad(g, low: start, shape: s(0))]
        case .pad(let low): return [slice(g, start: low, shape: s(0))]
        case .matmul(let ta, let tb):
            let a = x(0), b = x(1)
            let ga = ta ? matmul(b, g, transposeA: tb, transposeB: true) : matmul(g, b, transposeA: false, transposeB: !tb)
            let gb = tb ? matmul(g, a, transposeA: true, transposeB: ta) : matmul(a, g, transposeA: !ta, transposeB: false)
            return [ga, gb]
        case .opaque(let k):
            let op = opaques[k]
            let n = args.count
            guard op.differentiable else { return [] }
            return (0..<n).map { j in
                addOpaque(OpaqueOperation(name: "\(op.name).vjp\(n > 1 ? "\(j)" : "")") { xs in withGradientRecording(true) {
                    let inputs = Array(xs.prefix(n))
                    let vars = inputs.map { $0.isDifferentiable ? $0 : $0.requiringGradient() }
                    let out = op.apply(vars)
                    guard out.isDifferentiable else { return Tensor(repeating: 0, shape: inputs[j].shape) }
                    return gradients(of: out, with: xs[n], wrt: [vars[j]], keepingGraph: true)[0]
                } }, args + [g], shape: s(j))
            }
        }
    }

    /// Forward mode: the tangents of `of` when the values in `seeds` move along their tangents
    /// (nil where none of them moves it).
    public func jvp(seeds: [Int: Int], of targets: [Int]) -> [Int?] {
        let count = (targets.max() ?? -1) + 1
        var tangent = [Int?](repeating: nil, count: count)
        for (v, t) in seeds where v < count { tangent[v] = t }
        for i in 0..<count where tangent[i] == nil {
            let node = nodes[i]
            let ts = node.arguments.map { tangent[$0] }
            guard ts.contains(where: { $0 != nil }) else { continue }
            tangent[i] = pushforward(of: i, node, ts)
        }
        return targets.map { tangent[$0] }
    }

    private func pushforward(of y: Int, _ node: GraphNode, _ ts: [Int?]) -> Int? {
        let args = node.arguments
        let out = node.shape
        func x(_ k: Int) -> Int { args[k] }
        func mul(_ a: Int, _ b: Int) -> Int { binary(.mul, a, b) }
        func full(_ t: Int) -> Int { broadcast(t, to: out) }
        func plus(_ a: Int?, _ b: Int?) -> Int? {
            switch (a, b) {
            case let (a?, b?): return binary(.add, a, b)
            case let (a?, nil): return full(a)
            case let (nil, b?): return full(b)
            default: return nil
            }
        }
        switch node.primitive {
        case .input, .constant, .scalar: return nil
        case .unary(let kind):
            guard let t = ts[0] else { return nil }
            switch kind {
            case .neg: return unary(.neg, t)
            case .exp: return mul(t, y)
            case .log: return binary(.div, t, x(0))
            case .sin: return mul(t, unary(.cos, x(0)))
            case .cos: return mul(unary(.neg, t), unary(.sin, x(0)))
            case .tanh: return mul(t, binary(.sub, scalar(1), mul(y, y)))
            case .sqrt: return binary(.div, mul(t, scalar(0.5)), y)
            case .abs: return mul(t, unary(.sign, x(0)))
            case .sigmoid: return mul(mul(t, y), binary(.sub, scalar(1), y))
            case .relu: return select(unary(.step, y), t, scalar(0))
            case .step, .sign: return nil
            }
        case .binary(let kind):
            let a = x(0), b = x(1), ta = ts[0], tb = ts[1]
            switch kind {
            case .add: return plus(ta, tb)
            case .sub: return plus(ta, tb.map { unary(.neg, $0) })
            case .mul: return plus(ta.map { mul($0, b) }, tb.map { mul(a, $0) })
            case .div:
                return plus(ta.map { binary(.div, $0, b) }, tb.map { binary(.div, mul(unary(.neg, $0), a), mul(b, b)) })
            case .maximum, .minimum:
                let w = kind == .maximum ? binary(.maxWeight, a, b) : binary(.maxWeight, b, a)
                return plus(ta.map { mul($0, w) }, tb.map { mul($0, binary(.sub, scalar(1), w)) })
            case .pow:
                return plus(ta.map { mul(mul($0, b), binary(.pow, a, binary(.sub, b, scalar(1)))) },
                            tb.map { mul(mul($0, y), unary(.log, a)) })
            case .greater, .maxWeight: return nil
            }
        case .select:
            let zero = scalar(0)
            return full(select(x(0), ts[1] ?? zero, ts[2] ?? zero))
        case .powScalar(let p):
            guard let t = ts[0], p != 0 else { return nil }
            return mul(mul(t, scalar(p)), powScalar(x(0), p - 1))
        case .sum(let axes): return ts[0].map { sum($0, axes: axes) }
        case .broadcast: return ts[0].map { broadcast($0, to: out) }
        case .reshape: return ts[0].map { reshape($0, out) }
        case .transpose(let p): return ts[0].map { transpose($0, p) }
        case .slice(let start): return ts[0].map { slice($0, start: start, shape: out) }
        case .pad(let low): return ts[0].map { pad($0, low: low, shape: out) }
        case .matmul(let fa, let fb):
            return plus(ts[0].map { matmul($0, x(1), transposeA: fa, transposeB: fb) },
                        ts[1].map { matmul(x(0), $0, transposeA: fa, transposeB: fb) })
        case .opaque(let k):
            let op = opaques[k]
            let n = args.count
            guard op.differentiable else { return nil }
            let tangents = (0..<n).map { ts[$0] ?? broadcast(scalar(0), to: shape(args[$0])) }
            return addOpaque(OpaqueOperation(name: "\(op.name).jvp") { xs in withGradientRecording(true) {
                // J·t by the transpose trick: the pullback is linear in its cotangent u, so the
                // gradient of Σ pullback(u)·t with respect to u is J t.
                let vars = xs.prefix(n).map { $0.isDifferentiable ? $0 : $0.requiringGradient() }
                let out = op.apply(Array(vars))
                guard out.isDifferentiable else { return Tensor(repeating: 0, shape: out.shape) }
                let u = Tensor<Scalar>(repeating: 0, shape: out.shape).requiringGradient()
                let gs = gradients(of: out, with: u, wrt: Array(vars), keepingGraph: true)
                var s = Tensor<Scalar>(0)
                for j in 0..<n { s = s + (gs[j] * xs[n + j]).sum() }
                guard s.isDifferentiable else { return Tensor(repeating: 0, shape: out.shape) }
                return gradients(of: s, wrt: [u])[0]
            } }, args + tangents, shape: out)
        }
    }

    /// The program with the inputs in `batched` given a new leading axis of `size`: every
    /// value that depends on them gains that axis (vmap). Outputs that do not depend on them
    /// are broadcast along it.
    public func batched(size: Int, inputs batchedInputs: Set<Int>) -> Graph {
        let g = Graph()
        var map = [Int](repeating: -1, count: nodes.count)
        var isBatched = [Bool](repeating: false, count: nodes.count)
        var newInputs: [Int] = []
        for (i, s) in inputShapes.enumerated() {
            newInputs.append(g.addInput(shape: batchedInputs.contains(i) ? [size] + s : s))
        }
        for (i, node) in nodes.enumerated() {
            let args = node.arguments.map { map[$0] }
            let flags = node.arguments.map { isBatched[$0] }
            if case .input(let k) = node.primitive {
                map[i] = newInputs[k]
                isBatched[i] = batchedInputs.contains(k)
                continue
            }
            guard flags.contains(true) else {
                map[i] = g.rebuild(node, from: self, args: args, inputs: newInputs)
                continue
            }
            isBatched[i] = true
            // A batched operand of lower rank than the result: ones after the batch axis, so
            // that broadcasting lines its dimensions up from the right as before.
            func lifted(_ k: Int) -> Int {
                guard flags[k] else { return args[k] }
                let s = g.shape(args[k])
                let missing = node.shape.count - (s.count - 1)
                return missing > 0 ? g.reshape(args[k], [size] + [Int](repeating: 1, count: missing) + s.dropFirst()) : args[k]
            }
            switch node.primitive {
            case .unary(let k): map[i] = g.unary(k, args[0])
            case .powScalar(let p): map[i] = g.powScalar(args[0], p)
            case .binary(let k): map[i] = g.binary(k, lifted(0), lifted(1))
            case .select: map[i] = g.select(lifted(0), lifted(1), lifted(2))
            case .sum(let axes): map[i] = g.sum(args[0], axes: axes.map { $0 + 1 })
            case .broadcast: map[i] = g.broadcast(lifted(0), to: [size] + node.shape)
            case .reshape: map[i] = g.reshape(args[0], [size] + node.shape)
            case .transpose(let p): map[i] = g.transpose(args[0], [0] + p.map { $0 + 1 })
            case .slice(let start): map[i] = g.slice(args[0], start: [0] + start, shape: [size] + node.shape)
            case .pad(let low): map[i] = g.pad(args[0], low: [0] + low, shape: [size] + node.shape)
            case .matmul(let ta, let tb) where flags[0] && !flags[1]:
                // Rows of every batch element stacked: one product.
                var a = args[0]
                if ta { a = g.transpose(a, [0, 2, 1]) }
                let sa = g.shape(a)
                let c = g.matmul(g.reshape(a, [size * sa[1], sa[2]]), args[1], transposeA: false, transposeB: tb)
                map[i] = g.reshape(c, [size] + node.shape)
            case .matmul(let ta, let tb) where !flags[0] && flags[1]:
                // (op(A) op(Bᵦ))ᵀ = op(Bᵦ)ᵀ op(A)ᵀ, one product over the stacked op(Bᵦ)ᵀ.
                var b = args[1]
                if !tb { b = g.transpose(b, [0, 2, 1]) }
                let sb = g.shape(b)
                let ct = g.matmul(g.reshape(b, [size * sb[1], sb[2]]), args[0], transposeA: false, transposeB: !ta)
                map[i] = g.transpose(g.reshape(ct, [size, node.shape[1], node.shape[0]]), [0, 2, 1])
            default:
                // Anything else (opaque operations, products of two batched matrices) runs once
                // per batch element.
                let source = node
                var what = node.primitive.description, differentiable = true
                if case .opaque(let k) = node.primitive { (what, differentiable) = (opaques[k].name, opaques[k].differentiable) }
                let single = Graph()
                let singleInputs = node.arguments.map { single.addInput(shape: shape($0)) }
                let body = single.rebuild(source, from: self, args: singleInputs, inputs: singleInputs)
                single.outputs = [body]
                let program = single.pruned()
                map[i] = g.addOpaque(OpaqueOperation(name: "\(what).batched", differentiable: differentiable) { xs in
                    Tensor.stack((0..<size).map { b in
                        program.evaluate(zip(xs, flags).map { $1 ? $0[b] : $0 })[0]
                    })
                }, args, shape: [size] + node.shape)
            }
        }
        g.outputs = outputs.map { isBatched[$0] ? map[$0] : g.broadcast(map[$0], to: [size] + shape($0)) }
        return g
    }
}
