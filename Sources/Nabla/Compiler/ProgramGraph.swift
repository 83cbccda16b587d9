import CNablaKernels
import Foundation

/// The primitives of a compiled program. Element-wise kinds broadcast their operands (NumPy
/// rules); every other kind states its result's shape in the node.
public enum Primitive: Hashable, Sendable, CustomStringConvertible {
    /// Argument `i` of the program.
    case input(Int)
    /// A tensor constant (``Graph/constants``), captured while tracing.
    case constant(Int)
    /// A 0-d constant.
    case scalar(Double)
    case unary(UnaryKind)
    case binary(BinaryKind)
    /// `condition ≠ 0 ? a : b`, element-wise.
    case select
    /// xᵖ for a constant p.
    case powScalar(Double)
    /// The sum over `axes` (which disappear).
    case sum(axes: [Int])
    /// NumPy broadcasting to the node's shape.
    case broadcast
    /// The same elements in the node's shape.
    case reshape
    /// Dimension i of the result is dimension `permutation[i]` of the argument.
    case transpose([Int])
    /// The elements from `start` on, unit steps, in the node's shape.
    case slice(start: [Int])
    /// Zeros of the node's shape with the argument written at `low`.
    case pad(low: [Int])
    /// A 2-D matrix product of op(A) and op(B), op being the transpose where the flag says so.
    case matmul(transposeA: Bool, transposeB: Bool)
    /// An operation the compiler runs as the eager library does (``Graph/opaques``).
    case opaque(Int)

    public var description: String {
        switch self {
        case .input(let i): return "input \(i)"
        case .constant(let i): return "constant \(i)"
        case .scalar(let v): return "scalar \(v)"
        case .unary(let k): return k.rawValue
        case .binary(let k): return k.rawValue
        case .select: return "select"
        case .powScalar(let p): return "pow \(p)"
        case .sum(let axes): return "sum axes \(axes)"
        case .broadcast: return "broadcast"
        case .reshape: return "reshape"
        case .transpose(let p): return "transpose \(p)"
        case .slice(let s): return "slice start \(s)"
        case .pad(let l): return "pad low \(l)"
        case .matmul(let ta, let tb): return "matmul" + (ta ? " Aᵀ" : "") + (tb ? " Bᵀ" : "")
        case .opaque(let i): return "opaque \(i)"
        }
    }

    /// Whether the primitive is applied point by point (it fuses into element-wise kernels).
    var isElementwise: Bool {
        switch self {
        case .unary, .binary, .select, .powScalar, .scalar, .broadcast, .slice, .pad: return true
        default: return false
        }
    }
}

public enum UnaryKind: String, Sendable {
    case neg, exp, log, sin, cos, tanh, sqrt, abs, sigmoid, relu
    /// 1 where x > 0, else 0 (a constant: no derivative).
    case step
    /// −1, 0 or 1 (a constant).
    case sign
}

public enum BinaryKind: String, Sendable {
    case add, sub, mul, div, maximum, minimum, pow
    /// 1 where a > b, else 0 (a constant).
    case greater
    /// 1 where a > b, ½ where a = b, 0 below: the share of the derivative of max(a, b) that goes to a.
    case maxWeight
}

/// One value of a program: a primitive applied to earlier values.
public struct GraphNode: Hashable, Sendable {
    public var primitive: Primitive
    public var arguments: [Int]
    public var shape: [Int]
}

/// An operation the compiler does not lower itself: it is run by the eager library, and
/// differentiated by it (its derivatives become opaque operations too).
public struct OpaqueOperation<Scalar: TensorScalar> {
    public var name: String
    /// The operation on tensors; it must be differentiable by the eager library to any order
    /// that the program's transforms ask for.
    public var apply: ([Tensor<Scalar>]) -> Tensor<Scalar>
    /// false for a value the transforms treat as a constant (a stop-gradient: a shift such as a
    /// row maximum whose derivative cancels); its derivatives are zero and never run.
    public var differentiable: Bool
    public init(name: String, differentiable: Bool = true, apply: @escaping ([Tensor<Scalar>]) -> Tensor<Scalar>) {
        self.name = name
        self.differentiable = differentiable
        self.apply = apply
    }
}

/// A static program over tensors of fixed shapes: nodes in topological order (each refers to
/// earlier ones), its inputs and outputs. Nodes are hash-consed (an identical node is made
/// once: common-subexpression elimination as the program is built) and simplified as they are
/// added (x·1, x + 0, −(−x), a transpose feeding a matrix product, ...).
public final class Graph<Scalar: TensorScalar>: CustomStringConvertible {
    public private(set) var nodes: [GraphNode] = []
    public internal(set) var outputs: [Int] = []
    public private(set) var inputShapes: [[Int]] = []
    public private(set) var constants: [Tensor<Scalar>] = []
    public private(set) var opaques: [OpaqueOperation<Scalar>] = []
    private var table: [GraphNode: Int] = [:]

    public init() {}

    /// Adds input `inputShapes.count` of `shape`.
    public func addInput(shape: [Int]) -> Int {
        let i = inputShapes.count
        inputShapes.append(shape)
        return add(.input(i), [], shape)
    }

    public func addConstant(_ t: Tensor<Scalar>) -> Int {
        if t.count == 1 && t.rank == 0 { return scalar(Double(t.scalar)) }
        constants.append(t.detached())
        return add(.constant(constants.count - 1), [], t.shape)
    }

    public func scalar(_ v: Double) -> Int { add(.scalar(v), [], []) }

    func addOpaque(_ op: OpaqueOperation<Scalar>, _ args: [Int], shape: [Int]) -> Int {
        opaques.append(op)
        return add(.opaque(opaques.count - 1), args, shape)
    }

    /// The node for `primitive` on `args`, made once.
    @discardableResult func add(_ primitive: Primitive, _ args: [Int], _ shape: [Int]) -> Int {
        let node = GraphNode(primitive: primitive, arguments: args, shape: shape)
        if let i = table[node] { return i }
        nodes.append(node)
        table[node] = nodes.count - 1
        return nodes.count - 1
    }

    public func shape(_ v: Int) -> [Int] { nodes[v].shape }

    /// The value of a 0-d constant, or of one broadcast to a shape.
    func scalarValue(_ v: Int) -> Double? {
        switch nodes[v].primitive {
        case .scalar(let c): return c
        case .broadcast: return scalarValue(nodes[v].arguments[0])
        default: return nil
        }
    }

    // MARK: Building, with simplification

    public func unary(_ kind: UnaryKind, _ x: Int) -> Int {
        if let c = scalarValue(x) { return broadcast(scalar(Graph.apply(kind, c)), to: shape(x)) }
        if kind == .neg {
            switch nodes[x].primitive {
            case .unary(.neg): return nodes[x].arguments[0]
            // −(a − b) = b − a; −(a·c) = a·(−c): exact, one pass fewer.
            case .binary(.sub) where nodes[x].shape == shape(nodes[x].arguments[1]) && nodes[x].shape == shape(nodes[x].arguments[0]):
                return binary(.sub, nodes[x].arguments[1], nodes[x].arguments[0])
            case .binary(.mul):
                let (a, b) = (nodes[x].arguments[0], nodes[x].arguments[1])
                if let c = scalarValue(b), nodes[x].shape == shape(a) { return binary(.mul, a, scalar(-c)) }
                if let c = scalarValue(a), nodes[x].shape == shape(b) { return binary(.mul, b, scalar(-c)) }
            default: break
            }
        }
        return add(.unary(kind), [x], shape(x))
    }

    public func binary(_ kind: BinaryKind, _ a: Int, _ b: Int) -> Int {
        guard let out = broadcastShapes(shape(a), shape(b)) else {
            usageFailure("compiled \(kind.rawValue): shapes \(shape(a)) and \(shape(b)) do not broadcast")
        }
        if let x = scalarValue(a), let y = scalarValue(b) { return broadcast(scalar(Graph.apply(kind, x, y)), to: out) }
        let ca = scalarValue(a), cb = scalarValue(b)
        func negated(_ v: Int) -> Int? {
            if case .unary(.neg) = nodes[v].primitive { return nodes[v].arguments[0] }
            return nil
        }
        // a·c₁·c₂ with c₂ a power of two (exact): a·(c₁c₂).
        func scaled(_ v: Int, _ c: Double) -> Int? {
            guard case .binary(.mul) = nodes[v].primitive, c.significandBitPattern == 0, c.isNormal else { return nil }
            let (x, y) = (nodes[v].arguments[0], nodes[v].arguments[1])
            if let k = scalarValue(y), shape(x) == nodes[v].shape { return binary(.mul, x, scalar(k * c)) }
            if let k = scalarValue(x), shape(y) == nodes[v].shape { return binary(.mul, y, scalar(k * c)) }
            return nil
        }
        switch kind {
        case .add:
            if cb == 0 && shape(a) == out { return a }
            if ca == 0 && shape(b) == out { return b }
            if let nb = negated(b) { return binary(.sub, a, nb) }
            if let na = negated(a) { return binary(.sub, b, na) }
            if a == b, let r = scaled(a, 2) { return r }
            // x + x = 2x exactly; as a product it can join the operation that reads it.
            if a == b { return binary(.mul, a, scalar(2)) }
        case .sub:
            if cb == 0 && shape(a) == out { return a }
            if ca == 0 && shape(b) == out { return unary(.neg, b) }
            if case .unary(.neg) = nodes[b].primitive { return binary(.add, a, nodes[b].arguments[0]) }
        case .mul:
            if cb == 1 && shape(a) == out { return a }
            if ca == 1 && shape(b) == out { return b }
            if cb == -1 && shape(a) == out { return unary(.neg, a) }
            if ca == -1 && shape(b) == out { return unary(.neg, b) }
            if let na = negated(a), let nb = negated(b) { return binary(.mul, na, nb) }
            if let c = cb, shape(a) == out, let r = scaled(a, c) { return r }
            if let c = ca, shape(b) == out, let r = scaled(b, c) { return r }
            if let c = cb, shape(a) == out, let na = negated(a) { return binary(.mul, na, scalar(-c)) }
            if let c = ca, shape(b) == out, let nb = negated(b) { return binary(.mul, nb, scalar(-c)) }
        case .div:
            if cb == 1 && shape(a) == out { return a }
        default: break
        }
        // Commutative kinds list their operands in one order, so CSE sees a·b and b·a as one.
        if kind == .add || kind == .mul, a > b { return add(.binary(kind), [b, a], out) }
        return add(.binary(kind), [a, b], out)
    }

    public func select(_ c: Int, _ a: Int, _ b: Int) -> Int {
        guard let s1 = broadcastShapes(shape(c), shape(a)), let out = broadcastShapes(s1, shape(b)) else {
            usageFailure("compiled select: shapes \(shape(c)), \(shape(a)) and \(shape(b)) do not broadcast")
        }
        return add(.select, [c, a, b], out)
    }

    public func powScalar(_ x: Int, _ p: Double) -> Int {
        if p == 1 { return x }
        if p == 2 { return binary(.mul, x, x) }
        if let c = scalarValue(x) { return broadcast(scalar(Foundation.pow(c, p)), to: shape(x)) }
        return add(.powScalar(p), [x], shape(x))
    }

    /// The sum over `axes` (nil: all), keeping them as size 1 when asked.
    public func sum(_ x: Int, axes: [Int]? = nil, keepingDimensions: Bool = false) -> Int {
        let s = shape(x)
        let list = Array(Set((axes ?? Array(0..<s.count)).map { normalizeAxis($0, rank: s.count, op: "compiled sum") })).sorted()
        if list.isEmpty { return x }
        var out: [Int] = []
        for (d, n) in s.enumerated() where !list.contains(d) { out.append(n) }
        let r = add(.sum(axes: list), [x], out)
        guard keepingDimensions else { return r }
        return reshape(r, s.enumerated().map { list.contains($0.offset) ? 1 : $0.element })
    }

    public func broadcast(_ x: Int, to target: [Int]) -> Int {
        let s = shape(x)
        if s == target { return x }
        guard broadcastShapes(s, target) == target else { usageFailure("compiled broadcast: shape \(s) does not broadcast to \(target)") }
        if case .broadcast = nodes[x].primitive { return broadcast(nodes[x].arguments[0], to: target) }
        return add(.broadcast, [x], target)
    }

    public func reshape(_ x: Int, _ target: [Int]) -> Int {
        guard shapeCount(target) == shapeCount(shape(x)), target.allSatisfy({ $0 >= 0 }) else {
            usageFailure("compiled reshape: cannot reshape \(shape(x)) to \(target)")
        }
        if shape(x) == target { return x }
        if case .reshape = nodes[x].primitive { return reshape(nodes[x].arguments[0], target) }
        if let c = scalarValue(x) { return broadcast(scalar(c), to: target) }
        return add(.reshape, [x], target)
    }

    public func transpose(_ x: Int, _ permutation: [Int]) -> Int {
        let s = shape(x)
        guard permutation.count == s.count, Set(permutation) == Set(0..<s.count) else {
            usageFailure("compiled transpose: \(permutation) is not a permutation of the axes of \(s)")
        }
        if permutation == Array(0..<s.count) { return x }
        if case .transpose(let inner) = nodes[x].primitive { return transpose(nodes[x].arguments[0], permutation.map { inner[$0] }) }
        return add(.transpose(permutation), [x], permutation.map { s[$0] })
    }

    /// The elements `start ..< start + extent` of each dimension.
    public func slice(_ x: Int, start: [Int], shape extent: [Int]) -> Int {
        let s = shape(x)
        guard start.count == s.count, extent.count == s.count,
              zip(zip(start, extent), s).allSatisfy({ $0.0 >= 0 && $0.1 >= 0 && $0.0 + $0.1 <= $1 }) else {
            usageFailure("compiled slice: start \(start), shape \(extent) do not fit in \(s)")
        }
        if extent == s { return x }
        return add(.slice(start: start), [x], extent)
    }

    /// Zeros of `shape` with x written at `low`.
    public func pad(_ x: Int, low: [Int], shape total: [Int]) -> Int {
        let s = shape(x)
        guard low.count == s.count, total.count == s.count, zip(zip(low, s), total).allSatisfy({ $0.0 >= 0 && $0.0 + $0.1 <= $1 }) else {
            usageFailure("compiled pad: \(s) at \(low) does not fit in \(total)")
        }
        if total == s { return x }
        return add(.pad(low: low), [x], total)
    }

    /// op(A) · op(B) for matrices.
    public func matmul(_ a: Int, _ b: Int, transposeA: Bool = false, transposeB: Bool = false) -> Int {
        var a = a, b = b, ta = transposeA, tb = transposeB
        let sa = shape(a), sb = shape(b)
        guard sa.count == 2, sb.count == 2 else { usageFailure("compiled matmul: needs matrices, got \(sa) and \(sb)") }
        let (m, k1) = ta ? (sa[1], sa[0]) : (sa[0], sa[1])
        let (k2, n) = tb ? (sb[1], sb[0]) : (sb[0], sb[1])
        guard k1 == k2 else { usageFailure("compiled matmul: inner dimensions of \(sa)\(ta ? "ᵀ" : "") and \(sb)\(tb ? "ᵀ" : "") differ") }
        // A transpose feeding the product becomes the GEMM's flag.
        if case .transpose([1, 0]) = nodes[a].primitive { a = nodes[a].arguments[0]; ta.toggle() }
        if case .transpose([1, 0]) = nodes[b].primitive { b = nodes[b].arguments[0]; tb.toggle() }
        return add(.matmul(transposeA: ta, transposeB: tb), [a, b], [m, n])
    }

    /// The sum of `g` down to `target` (the adjoint of broadcasting).
    public func sum(_ g: Int, toShape target: [Int]) -> Int {
        let s = shape(g)
        if s == target { return g }
        let lead = s.count - target.count
        var axes = Array(0..<lead)
        for (k, n) in target.enumerated() where n == 1 && s[lead + k] != 1 { axes.append(lead + k) }
        return reshape(sum(g, axes: axes), target)
    }

    static func apply(_ kind: UnaryKind, _ x: Double) -> Double {
        switch kind {
        case .neg: return -x
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .sin: return Foundation.sin(x)
        case .cos: return Foundation.cos(x)
        case .tanh: return Foundation.tanh(x)
        case .sqrt: return x.squareRoot()
        case .abs: return Swift.abs(x)
        case .sigmoid: return x >= 0 ? 1 / (1 + Foundation.exp(-x)) : Foundation.exp(x) / (1 + Foundation.exp(x))
        case .relu: return !(x <= 0) ? x : 0
        case .step: return x > 0 ? 1 : 0
        case .sign: return x > 0 ? 1 : (x < 0 ? -1 : x)
        }
    }

    static func apply(_ kind: BinaryKind, _ a: Double, _ b: Double) -> Double {
        switch kind {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        case .maximum: return a.isNaN || b.isNaN ? a + b : Swift.max(a, b)
        case .minimum: return a.isNaN || b.isNaN ? a + b : Swift.min(a, b)
        case .pow: return Foundation.pow(a, b)
        case .greater: return a > b ? 1 : 0
        case .maxWeight: return a > b ? 1 : (a == b ? 0.5 : 0)
        }
    }

    // MARK: Printing

    /// The program as text: one line per value, `%i = primitive(arguments) : shape`.
    public var description: String {
        var lines = ["graph(" + inputShapes.enumerated().map { "%in\($0.offset): \($0.element)" }.joined(separator: ", ") + ")"]
        for (i, n) in nodes.enumerated() {
            let args = n.arguments.map { "%\($0)" }.joined(separator: ", ")
            var what = n.primitive.description
            if case .opaque(let k) = n.primitive { what = "opaque \(opaques[k].name)" }
            lines.append("  %\(i) = \(what)(\(args)) : \(n.shape)")
        }
        lines.append("  return " + outputs.map { "%\($0)" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// The program as a Graphviz digraph (`dot -Tsvg`): inputs and constants as boxes, outputs
    /// double-circled.
    public var dot: String {
        var lines = ["digraph program {", "  rankdir=TB;", "  node [fontname=\"Helvetica\", fontsize=10];"]
        let live = liveNodes()
        for (i, n) in nodes.enumerated() where live[i] {
            var label = n.primitive.description
            if case .opaque(let k) = n.primitive { label = opaques[k].name }
            let shapeText = n.shape.isEmpty ? "[]" : "\(n.shape)"
            let style: String
            switch n.primitive {
            case .input, .constant, .scalar: style = "shape=box, style=filled, fillcolor=\"#dbe9f6\""
            default: style = outputs.contains(i) ? "shape=doublecircle" : (n.primitive.isElementwise ? "shape=ellipse" : "shape=ellipse, style=filled, fillcolor=\"#fde8c8\"")
            }
            lines.append("  n\(i) [label=\"\(label)\\n\(shapeText)\", \(style)];")
            for a in n.arguments { lines.append("  n\(a) -> n\(i);") }
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    /// Which nodes the outputs depend on.
    func liveNodes() -> [Bool] {
        var live = [Bool](repeating: false, count: nodes.count)
        for o in outputs { live[o] = true }
        for i in stride(from: nodes.count - 1, through: 0, by: -1) where live[i] {
            for a in nodes[i].arguments { live[a] = true }
        }
        return live
    }

    /// A copy holding only what the outputs depend on, renumbered (dead-code elimination).
    /// Inputs are always kept, in their order.
    func pruned() -> Graph {
        let g = Graph()
        g.inputShapes = inputShapes
        g.opaques = opaques
        var map = [Int](repeating: -1, count: nodes.count)
        let live = liveNodes()
        for (i, n) in nodes.enumerated() {
            var keep = live[i]
            if case .input = n.primitive { keep = true }
            guard keep else { continue }
            var node = n
            node.arguments = n.arguments.map { map[$0] }
            if case .constant(let c) = n.primitive {
                g.constants.append(constants[c])
                node.primitive = .constant(g.constants.count - 1)
            }
            map[i] = g.add(node.primitive, node.arguments, node.shape)
        }
        g.outputs = outputs.map { map[$0] }
        return g
    }

    /// Copies `other`'s nodes into this graph with its inputs bound to `arguments`; returns the
    /// values of `other`'s outputs here. (Nodes go through the builders again, so they are
    /// simplified and shared with what is here already.)
    func inline(_ other: Graph, arguments: [Int]) -> [Int] {
        var map = [Int](repeating: -1, count: other.nodes.count)
        for (i, n) in other.nodes.enumerated() {
            map[i] = rebuild(n, from: other, args: n.arguments.map { map[$0] }, inputs: arguments)
        }
        return other.outputs.map { map[$0] }
    }

    /// `node` of `source` rebuilt here on `args`.
    func rebuild(_ node: GraphNode, from source: Graph, args: [Int], inputs: [Int]) -> Int {
        switch node.primitive {
        case .input(let i): return inputs[i]
        case .constant(let c): return addConstant(source.constants[c])
        case .scalar(let v): return scalar(v)
        case .unary(let k): return unary(k, args[0])
        case .binary(let k): return binary(k, args[0], args[1])
        case .select: return select(args[0], args[1], args[2])
        case .powScalar(let p): return powScalar(args[0], p)
        case .sum(let axes): return sum(args[0], axes: axes)
        case .broadcast: return broadcast(args[0], to: node.shape)
        case .reshape: return reshape(args[0], node.shape)
        case .transpose(let p): return transpose(args[0], p)
        case .slice(let s): return slice(args[0], start: s, shape: node.shape)
        case .pad(let l): return pad(args[0], low: l, shape: node.shape)
        case .matmul(let ta, let tb): return matmul(args[0], args[1], transposeA: ta, transposeB: tb)
        case .opaque(let k): return addOpaque(source.opaques[k], args, shape: node.shape)
        }
    }
}
