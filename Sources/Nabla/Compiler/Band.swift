/// Structural sparsity of a program: which elements of an output can depend on which elements of
/// an input. A function built from element-wise operations, shifted slices and zero padding of
/// vectors (a chain, a stencil, a discretized differential equation) has a banded Hessian; its
/// Hessian-vector products then give the whole matrix from a few products along colored vectors
/// (Curtis–Powell–Reid) instead of one product per coordinate.
/// How a value depends on the argument: not at all, through a band of offsets, or otherwise.
private enum Dependence { case none, band(Set<Int>), unknown }

extension Graph {
    /// The offsets o such that element i of `output` may depend on element i + o of argument
    /// `input`, both vectors; nil when the dependence is not a band this analysis follows (through
    /// a sum, a matrix product, a broadcast, a reshape or transpose of a value that depends on the
    /// argument, an opaque operation, or a band wider than `widest` offsets). An output that does
    /// not depend on the argument has the empty band.
    public func band(of output: Int, onInput input: Int, widest: Int = 64) -> Set<Int>? {
        var dep = [Dependence](repeating: .none, count: output + 1)
        for i in 0...output {
            let node = nodes[i]
            let args = node.arguments.map { dep[$0] }
            guard args.contains(where: { if case .none = $0 { return false } else { return true } }) || node.primitive == .input(input) else { continue }
            if args.contains(where: { if case .unknown = $0 { return true } else { return false } }) { dep[i] = .unknown; continue }
            // Every dependent argument has a band here; the node keeps the index space only as a
            // vector whose dependent arguments have its own shape (no broadcast of them).
            var offsets = Set<Int>()
            var aligned = node.shape.count == 1
            for (a, d) in zip(node.arguments, args) {
                guard case .band(let b) = d else { continue }
                offsets.formUnion(b)
                aligned = aligned && nodes[a].shape.count == 1
            }
            switch node.primitive {
            case .input:
                // (only the argument itself gets here: other inputs depend on nothing)
                dep[i] = node.shape.count == 1 ? .band([0]) : .unknown
            case .unary, .powScalar:
                dep[i] = aligned ? .band(offsets) : .unknown
            case .binary, .select:
                let sameShape = zip(node.arguments, args).allSatisfy { a, d in
                    if case .band = d { return nodes[a].shape == node.shape } else { return true }
                }
                dep[i] = aligned && sameShape ? .band(offsets) : .unknown
            case .slice(let start):
                // Element i of the slice is element i + start of its argument.
                dep[i] = aligned ? .band(Set(offsets.map { $0 + start[0] })) : .unknown
            case .pad(let low):
                dep[i] = aligned ? .band(Set(offsets.map { $0 - low[0] })) : .unknown
            case .constant, .scalar, .sum, .broadcast, .reshape, .transpose, .matmul, .opaque:
                dep[i] = .unknown
            }
            if case .band(let b) = dep[i], b.count > widest { dep[i] = .unknown }
        }
        switch dep[output] {
        case .none: return []
        case .band(let b): return b
        case .unknown: return nil
        }
    }
}
