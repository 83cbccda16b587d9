import Foundation

/// A value of a program being traced by ``compiled(_:)-swift.func``: it records what is done to
/// it instead of computing. It offers the tensor operations with the same names as ``Tensor``,
/// so a function written for one reads the same for the other.
public struct Traced<Scalar: TensorScalar> {
    /// The program being built.
    public let graph: Graph<Scalar>
    /// This value's node in it.
    public let id: Int

    public init(_ graph: Graph<Scalar>, _ id: Int) {
        self.graph = graph
        self.id = id
    }

    /// A tensor captured as a constant of the program.
    public init(constant: Tensor<Scalar>, in graph: Graph<Scalar>) {
        self.init(graph, graph.addConstant(constant))
    }

    public var shape: [Int] { graph.shape(id) }
    public var rank: Int { shape.count }
    public var count: Int { shape.reduce(1, *) }

    func same(_ other: Traced) -> Traced {
        require(other.graph === graph, "compiled: values from two different programs were combined")
        return other
    }
    func wrap(_ v: Int) -> Traced { Traced(graph, v) }
    func constant(_ v: Scalar) -> Traced { wrap(graph.scalar(Double(v))) }

    public static func + (a: Traced, b: Traced) -> Traced { a.wrap(a.graph.binary(.add, a.id, a.same(b).id)) }
    public static func - (a: Traced, b: Traced) -> Traced { a.wrap(a.graph.binary(.sub, a.id, a.same(b).id)) }
    public static func * (a: Traced, b: Traced) -> Traced { a.wrap(a.graph.binary(.mul, a.id, a.same(b).id)) }
    public static func / (a: Traced, b: Traced) -> Traced { a.wrap(a.graph.binary(.div, a.id, a.same(b).id)) }
    public static prefix func - (x: Traced) -> Traced { x.wrap(x.graph.unary(.neg, x.id)) }
    public static func + (a: Traced, b: Scalar) -> Traced { a + a.constant(b) }
    public static func + (a: Scalar, b: Traced) -> Traced { b.constant(a) + b }
    public static func - (a: Traced, b: Scalar) -> Traced { a - a.constant(b) }
    public static func - (a: Scalar, b: Traced) -> Traced { b.constant(a) - b }
    public static func * (a: Traced, b: Scalar) -> Traced { a * a.constant(b) }
    public static func * (a: Scalar, b: Traced) -> Traced { b.constant(a) * b }
    public static func / (a: Traced, b: Scalar) -> Traced { a / a.constant(b) }
    public static func / (a: Scalar, b: Traced) -> Traced { b.constant(a) / b }
    public static func += (a: inout Traced, b: Traced) { a = a + b }
    public static func -= (a: inout Traced, b: Traced) { a = a - b }
    public static func *= (a: inout Traced, b: Traced) { a = a * b }

    public func exp() -> Traced { wrap(graph.unary(.exp, id)) }
    public func log() -> Traced { wrap(graph.unary(.log, id)) }
    public func sin() -> Traced { wrap(graph.unary(.sin, id)) }
    public func cos() -> Traced { wrap(graph.unary(.cos, id)) }
    public func tanh() -> Traced { wrap(graph.unary(.tanh, id)) }
    public func squareRoot() -> Traced { wrap(graph.unary(.sqrt, id)) }
    public func abs() -> Traced { wrap(graph.unary(.abs, id)) }
    public func sigmoid() -> Traced { wrap(graph.unary(.sigmoid, id)) }
    public func relu() -> Traced { wrap(graph.unary(.relu, id)) }
    /// −1, 0 or 1 (a constant: its derivative is zero).
    public func sign() -> Traced { wrap(graph.unary(.sign, id)) }
    public func pow(_ p: Scalar) -> Traced { wrap(graph.powScalar(id, Double(p))) }
    public func squared() -> Traced { self * self }

    public static func pow(_ a: Traced, _ b: Traced) -> Traced { a.wrap(a.graph.binary(.pow, a.id, a.same(b).id)) }
    public static func maximum(_ a: Traced, _ b: Traced) -> Traced { a.wrap(a.graph.binary(.maximum, a.id, a.same(b).id)) }
    public static func minimum(_ a: Traced, _ b: Traced) -> Traced { a.wrap(a.graph.binary(.minimum, a.id, a.same(b).id)) }
    /// `condition ≠ 0 ? a : b`, element-wise with broadcasting.
    public static func `where`(_ condition: Traced, _ a: Traced, _ b: Traced) -> Traced {
        a.wrap(a.graph.select(a.same(condition).id, a.id, a.same(b).id))
    }
    /// 1 where a > b, else 0 (a constant).
    public static func .> (a: Traced, b: Traced) -> Traced { a.wrap(a.graph.binary(.greater, a.id, a.same(b).id)) }

    public func sum(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Traced {
        wrap(graph.sum(id, axes: axes, keepingDimensions: keepingDimensions))
    }
    public func sum(axis: Int, keepingDimensions: Bool = false) -> Traced { sum(axes: [axis], keepingDimensions: keepingDimensions) }
    public func mean(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Traced {
        let s = shape
        let list = axes ?? Array(0..<s.count)
        let n = list.map { s[$0 < 0 ? $0 + s.count : $0] }.reduce(1, *)
        return sum(axes: axes, keepingDimensions: keepingDimensions) / Scalar(Swift.max(n, 1))
    }
    public func reshaped(to target: [Int]) -> Traced {
        var t = target
        if let k = t.firstIndex(of: -1) {
            let known = t.filter { $0 != -1 }.reduce(1, *)
            t[k] = known > 0 ? count / known : 0
        }
        return wrap(graph.reshape(id, t))
    }
    public func flattened() -> Traced { reshaped(to: [count]) }
    public func broadcast(to target: [Int]) -> Traced { wrap(graph.broadcast(id, to: target)) }
    public func permuted(_ dims: [Int]) -> Traced { wrap(graph.transpose(id, dims.map { $0 < 0 ? $0 + rank : $0 })) }
    public func transposed(_ a0: Int = -2, _ a1: Int = -1) -> Traced {
        var p = Array(0..<rank)
        let i = normalizeAxis(a0, rank: rank, op: "compiled transposed"), j = normalizeAxis(a1, rank: rank, op: "compiled transposed")
        p.swapAt(i, j)
        return permuted(p)
    }
    /// Elements `start ..< end` along `axis` (negative bounds count from the end; unit steps).
    public func slice(axis: Int, start: Int, end: Int) -> Traced {
        let a = normalizeAxis(axis, rank: rank, op: "compiled slice")
        let n = shape[a]
        let s = Swift.min(Swift.max(start < 0 ? start + n : start, 0), n)
        let e = Swift.min(Swift.max(end < 0 ? end + n : end, 0), n)
        var starts = [Int](repeating: 0, count: rank), extent = shape
        starts[a] = s
        extent[a] = Swift.max(e - s, 0)
        return wrap(graph.slice(id, start: starts, shape: extent))
    }
    /// Element `i` along the first axis (the axis is removed).
    public subscript(_ i: Int) -> Traced {
        require(rank >= 1, "compiled subscript: a 0-d value cannot be indexed")
        let j = i < 0 ? i + shape[0] : i
        require(j >= 0 && j < shape[0], "compiled subscript: index \(i) out of range for shape \(shape)")
        return slice(axis: 0, start: j, end: j + 1).reshaped(to: Array(shape.dropFirst()))
    }

    /// The values joined along `axis` (each padded with zeros to the whole, then added: exact).
    public static func concatenate(_ values: [Traced], axis: Int = 0) -> Traced {
        require(!values.isEmpty, "compiled concatenate: no values")
        let first = values[0]
        let a = normalizeAxis(axis, rank: first.rank, op: "compiled concatenate")
        var total = first.shape
        total[a] = values.map { $0.shape[a] }.reduce(0, +)
        var offset = 0
        var sum: Traced?
        for v in values {
            var rest = v.shape, others = total
            rest[a] = 0; others[a] = 0
            require(rest == others, "compiled concatenate: shapes \(values.map(\.shape)) differ outside axis \(axis)")
            var low = [Int](repeating: 0, count: total.count)
            low[a] = offset
            offset += v.shape[a]
            let piece = first.same(v).padded(low: low, shape: total)
            sum = sum.map { $0 + piece } ?? piece
        }
        return sum!
    }

    /// The values stacked along a new axis.
    public static func stack(_ values: [Traced], axis: Int = 0) -> Traced {
        require(!values.isEmpty, "compiled stack: no values")
        let s = values[0].shape
        let a = axis < 0 ? axis + s.count + 1 : axis
        require(a >= 0 && a <= s.count, "compiled stack: axis \(axis) out of range for shape \(s)")
        var expanded = s
        expanded.insert(1, at: a)
        return concatenate(values.map { $0.reshaped(to: expanded) }, axis: a)
    }

    /// Zeros of `shape` with this value written at `low`.
    public func padded(low: [Int], shape total: [Int]) -> Traced { wrap(graph.pad(id, low: low, shape: total)) }

    public static func matmul(_ a: Traced, _ b: Traced, transposeA: Bool = false, transposeB: Bool = false) -> Traced {
        a.wrap(a.graph.matmul(a.id, a.same(b).id, transposeA: transposeA, transposeB: transposeB))
    }

    /// Any tensor operation the compiler does not know, run by the eager library (and
    /// differentiated by it) inside the compiled program. `shape` is the result's shape;
    /// `differentiable: false` makes the result a constant to the transforms (a stop-gradient).
    public static func eager(_ name: String, _ args: [Traced], shape: [Int], differentiable: Bool = true,
                             _ body: @escaping ([Tensor<Scalar>]) -> Tensor<Scalar>) -> Traced {
        require(!args.isEmpty, "compiled eager(\(name)): needs at least one argument")
        let g = args[0].graph
        return Traced(g, g.addOpaque(OpaqueOperation(name: name, differentiable: differentiable, apply: body), args.map { args[0].same($0).id }, shape: shape))
    }
}

/// A function of tensors compiled on first use: traced into a program for the shapes of its
/// arguments, transformed (gradient, Hessian-vector product, Hessian), optimized, fused and kept,
/// one program per variant and shape signature. Calls with new shapes trace again.
///
/// ```swift
/// let f = compiled { (x: Traced<Double>) in (x.sin() * x).sum() }
/// let y = f(x)                               // value
/// let (v, g) = f.valueWithGradient(at: x)    // one fused pass
/// let hv = f.hessianVectorProduct(at: x, vector: v)
/// print(f.graph(.gradient, shapes: [x.shape]))   // the program as text (`.dot` for Graphviz)
/// ```
public final class CompiledFunction<Scalar: TensorScalar>: @unchecked Sendable {
    public enum Variant: String, Hashable, Sendable, CaseIterable {
        /// The outputs.
        case value
        /// The gradient of the first output (a scalar) with respect to every argument.
        case gradient
        /// The first output, then the gradients.
        case valueAndGradient
        /// For arguments x and tangents v (as many again): the derivative of the gradients along v.
        case hessianVectorProduct
        /// The Hessian of a function of one vector: every Hessian-vector product in one batched program.
        case hessian
    }

    struct Key: Hashable { var variant: Variant; var shapes: [[Int]] }

    let body: ([Traced<Scalar>]) -> [Traced<Scalar>]
    private var cache: [Key: Executable<Scalar>] = [:]
    private var identities: [Int: Tensor<Scalar>] = [:]
    private var bandPlans: [Int: BandedHessian<Scalar>?] = [:]
    private let lock = NSLock()
    /// How many programs have been traced (one per variant and shape signature).
    public private(set) var traceCount = 0

    /// The arguments the gradients are taken with respect to (nil: all).
    public let differentiating: [Int]?

    /// `differentiating`: the arguments whose gradients the gradient variants return (nil:
    /// every argument); the others (data, targets) cost nothing in the backward pass.
    public init(differentiating: [Int]? = nil, _ body: @escaping ([Traced<Scalar>]) -> [Traced<Scalar>]) {
        self.body = body
        self.differentiating = differentiating
    }

    /// The function applied to traced values (to build it into a larger program).
    public func trace(_ arguments: [Traced<Scalar>]) -> [Traced<Scalar>] { body(arguments) }

    /// The program of `variant` for arguments of `shapes`, as built by the transforms, before optimization.
    public func tracedGraph(_ variant: Variant, shapes: [[Int]]) -> Graph<Scalar> {
        let g = Graph<Scalar>()
        let inputs = shapes.map { Traced(g, g.addInput(shape: $0)) }
        let outs = body(inputs)
        require(!outs.isEmpty, "compiled: the function returned no values")
        let ids = outs.map { inputs[0].same($0).id }
        switch variant {
        case .value:
            g.outputs = ids
        case .gradient, .valueAndGradient:
            let wrt = differentiating.map { $0.map { inputs[$0].id } } ?? inputs.map(\.id)
            let grads = gradientNodes(g, output: ids[0], inputs: wrt)
            g.outputs = variant == .gradient ? grads : [ids[0]] + grads
        case .hessianVectorProduct:
            let grads = gradientNodes(g, output: ids[0], inputs: inputs.map(\.id))
            let tangents = shapes.map { g.addInput(shape: $0) }
            var seeds: [Int: Int] = [:]
            for (x, v) in zip(inputs, tangents) { seeds[x.id] = v }
            let hv = g.jvp(seeds: seeds, of: grads)
            g.outputs = zip(hv, shapes).map { $0 ?? g.broadcast(g.scalar(0), to: $1) }
        case .hessian:
            require(shapes.count == 1 && shapes[0].count == 1, "compiled hessian: needs a function of one vector, got arguments of shapes \(shapes)")
            let hvp = tracedGraph(.hessianVectorProduct, shapes: shapes).optimized()
            return hvp.batched(size: shapes[0][0], inputs: [1])
        }
        return g
    }

    private func gradientNodes(_ g: Graph<Scalar>, output: Int, inputs: [Int]) -> [Int] {
        let s = g.shape(output)
        require(s.reduce(1, *) == 1, "compiled gradient: the function's value has shape \(s); a gradient needs a single number")
        let grads = g.vjp(output: output, seed: g.broadcast(g.scalar(1), to: s), wrt: inputs)
        return zip(grads, inputs).map { $0 ?? g.broadcast(g.scalar(0), to: g.shape($1)) }
    }

    /// The optimized program of `variant` for arguments of `shapes` (print it, or its `dot`).
    public func graph(_ variant: Variant, shapes: [[Int]]) -> Graph<Scalar> { executable(variant, shapes: shapes).graph }

    /// The lowered program (its `summary` lists the fused kernels).
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func executable(_ variant: Variant, shapes: [[Int]]) -> Executable<Scalar> {
        let key = Key(variant: variant, shapes: shapes)
        lock.lock()
        if let e = cache[key] { lock.unlock(); return e }
        lock.unlock()
        let e = Executable(tracedGraph(variant, shapes: shapes).optimized())
        lock.lock()
        defer { lock.unlock() }
        if let existing = cache[key] { return existing }
        cache[key] = e
        traceCount += 1
        return e
    }

    /// Runs `variant` for arguments `inputs`; `extra` are the program's further arguments
    /// (tangents, the identity of a Hessian).
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    func run(_ variant: Variant, _ inputs: [Tensor<Scalar>], extra: [Tensor<Scalar>] = []) -> [Tensor<Scalar>] {
        executable(variant, shapes: inputs.map(\.shape)).run(inputs + extra)
    }

    /// The function's outputs.
    public func callAsFunction(_ inputs: [Tensor<Scalar>]) -> [Tensor<Scalar>] { run(.value, inputs) }
    /// The first output.
    public func callAsFunction(_ inputs: Tensor<Scalar>...) -> Tensor<Scalar> { run(.value, inputs)[0] }

    /// Gradients of the first output with respect to each argument (each of `differentiating`).
    public func gradients(at inputs: [Tensor<Scalar>]) -> [Tensor<Scalar>] { run(.gradient, inputs) }
    public func gradient(at x: Tensor<Scalar>) -> Tensor<Scalar> { run(.gradient, [x])[0] }

    public func valueWithGradients(at inputs: [Tensor<Scalar>]) -> (value: Tensor<Scalar>, gradients: [Tensor<Scalar>]) {
        let r = run(.valueAndGradient, inputs)
        return (r[0], Array(r.dropFirst()))
    }
    public func valueWithGradient(at x: Tensor<Scalar>) -> (value: Tensor<Scalar>, gradient: Tensor<Scalar>) {
        let r = run(.valueAndGradient, [x])
        return (r[0], r[1])
    }

    /// The Hessian-vector products H v (one per argument) where the arguments move along `vectors`.
    public func hessianVectorProducts(at inputs: [Tensor<Scalar>], vectors: [Tensor<Scalar>]) -> [Tensor<Scalar>] {
        require(vectors.count == inputs.count && zip(inputs, vectors).allSatisfy { $0.shape == $1.shape },
                "compiled hessianVectorProduct: vectors of shapes \(vectors.map(\.shape)) for arguments of shapes \(inputs.map(\.shape))")
        return run(.hessianVectorProduct, inputs, extra: vectors)
    }
    public func hessianVectorProduct(at x: Tensor<Scalar>, vector v: Tensor<Scalar>) -> Tensor<Scalar> {
        hessianVectorProducts(at: [x], vectors: [v])[0]
    }

    /// The Hessian of a function of one vector, as an n × n matrix. When the Hessian is banded
    /// (the program's Hessian-vector product reads the vector only through element-wise
    /// operations, shifted slices and padding: ``Graph/band(of:onInput:widest:)``), it is
    /// assembled from one product per color, w colors for a band of width w (j ↦ j mod w), so a
    /// tridiagonal Hessian costs three products; otherwise one batched product over the identity.
    /// Both give the same numbers (a non-finite product falls back to the identity, so NaN and ∞
    /// spread as they do there).
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func hessian(at x: Tensor<Scalar>) -> Tensor<Scalar> {
        require(x.rank == 1, "compiled hessian: needs a vector argument, got shape \(x.shape)")
        let n = x.count
        if let plan = bandPlan(n), let h = plan.hessian(at: x) { return h }
        lock.lock()
        let eye = identities[n] ?? {
            var e = Tensor<Scalar>(repeating: 0, shape: [n, n])
            e.withUnsafeMutableBufferPointer { p in for i in 0..<n { p[i * n + i] = 1 } }
            identities[n] = e
            return e
        }()
        lock.unlock()
        return run(.hessian, [x], extra: [eye])[0]
    }

    /// The band of the Hessian for vectors of n elements and its colored product program; nil
    /// when the Hessian is not banded narrower than n.
    func bandPlan(_ n: Int) -> BandedHessian<Scalar>? {
        lock.lock()
        if let known = bandPlans[n] { lock.unlock(); return known }
        lock.unlock()
        let hvp = tracedGraph(.hessianVectorProduct, shapes: [[n]]).optimized()
        var plan: BandedHessian<Scalar>?
        if let offsets = hvp.band(of: hvp.outputs[0], onInput: 1), let lo = offsets.min(), let hi = offsets.max(), hi - lo + 1 < n {
            let width = hi - lo + 1
            var colors = Tensor<Scalar>(repeating: 0, shape: [width, n])
            colors.withUnsafeMutableBufferPointer { p in for j in 0..<n { p[(j % width) * n + j] = 1 } }
            plan = BandedHessian(offsets: offsets.sorted(), width: width, colors: colors,
                                 program: Executable(hvp.batched(size: width, inputs: [1]).optimized()))
        }
        lock.lock()
        defer { lock.unlock() }
        if let known = bandPlans[n] { return known }
        bandPlans[n] = .some(plan)
        return plan
    }
}

/// A banded Hessian's products along colored vectors and how they fill the matrix.
struct BandedHessian<Scalar: TensorScalar> {
    /// j − i for every entry (i, j) that can be nonzero.
    let offsets: [Int]
    /// Colors: coordinate j has color j mod width; the vectors of `colors` are their indicators.
    let width: Int
    let colors: Tensor<Scalar>
    /// The Hessian-vector product batched over the colors: [width, n].
    let program: Executable<Scalar>

    /// Entry (i, j) is row j mod width of the products at element i: within a row's band no two
    /// columns share a color. nil when x or a product is not finite.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    func hessian(at x: Tensor<Scalar>) -> Tensor<Scalar>? {
        let n = x.count
        func finite(_ t: Tensor<Scalar>) -> Bool { t.withUnsafeBufferPointer { p in !p.contains { !$0.isFinite } } }
        guard finite(x) else { return nil }
        let products = program.run([x, colors])[0]
        guard finite(products) else { return nil }
        var h = Tensor<Scalar>(repeating: 0, shape: [n, n])
        products.withUnsafeBufferPointer { r in
            h.withUnsafeMutableBufferPointer { out in
                for o in offsets {
                    // The diagonal at offset o: entries (i, i + o).
                    for i in Swift.max(0, -o)..<Swift.min(n, n - o) {
                        let j = i + o
                        out[i * n + j] = r[(j % width) * n + i]
                    }
                }
            }
        }
        return h
    }
}

/// Compiles a function of one tensor (see ``CompiledFunction``).
public func compiled<Scalar>(_ f: @escaping (Traced<Scalar>) -> Traced<Scalar>) -> CompiledFunction<Scalar> {
    CompiledFunction { xs in
        require(xs.count == 1, "compiled: the function takes one tensor, \(xs.count) were given")
        return [f(xs[0])]
    }
}

/// Compiles a function of several tensors with several results (the gradients and Hessian-vector
/// products are those of the first result).
public func compiled<Scalar>(_ f: @escaping ([Traced<Scalar>]) -> [Traced<Scalar>]) -> CompiledFunction<Scalar> {
    CompiledFunction(f)
}
