// Functional transforms over the recorded graph: gradient, VJP, JVP, Jacobian, Hessian, HVP.
//
// Each transform makes its own variable for the point it differentiates at. If that point is
// itself being differentiated by an enclosing transform, the variable is linked to it and the
// inner backward pass is recorded, so transforms nest: the gradient of a gradient is exact.

/// A fresh variable for `x`: linked to `x`'s graph when an enclosing differentiation is
/// recording, otherwise a new leaf.
@inlinable func differentiationVariable<Scalar>(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
    if x.node != nil && isRecordingGradients {
        return Tensor.record1("variable", x, output: Tensor(storage: x.storage, shape: x.shape)) { g, _ in g }
    }
    return x.requiringGradient()
}

@inlinable func isNested<Scalar>(_ xs: [Tensor<Scalar>]) -> Bool { isRecordingGradients && xs.contains { $0.node != nil } }

@inlinable func evaluate<Scalar>(_ f: ([Tensor<Scalar>]) -> Tensor<Scalar>, at variables: [Tensor<Scalar>]) -> Tensor<Scalar> {
    withGradientRecording(true) { f(variables) }
}

/// Value of `f` at `x` and its gradient. `f` must return a tensor with one element.
/// (The one-input case of the function below, written out so that it builds no arrays: it is the
/// inner loop of `minimize`.)
@inlinable public func valueWithGradient<Scalar>(at x: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> (value: Tensor<Scalar>, gradient: Tensor<Scalar>) {
    let nested = isRecordingGradients && x.node != nil
    let v = differentiationVariable(x)
    let y = withGradientRecording(true) { f(v) }
    require(y.count == 1, "gradient: the function must return one element, got shape \(y.shape); use vjp or jacobian")
    let g = Backpropagation.run(output: y, seed: Tensor(repeating: 1, shape: y.shape), targets: [v.node!], keepingGraph: nested)[0]
    return (nested ? y : y.detached(), g ?? Tensor.zeros(shape: x.shape))
}

/// Value of `f` at the points `xs` and its gradient with respect to each.
@inlinable public func valueWithGradient<Scalar>(at xs: [Tensor<Scalar>], of f: ([Tensor<Scalar>]) -> Tensor<Scalar>) -> (value: Tensor<Scalar>, gradient: [Tensor<Scalar>]) {
    let nested = isNested(xs)
    let vars = xs.map(differentiationVariable)
    let y = evaluate(f, at: vars)
    require(y.count == 1, "gradient: the function must return one element, got shape \(y.shape); use vjp or jacobian")
    let grads = Backpropagation.run(output: y, seed: Tensor(repeating: 1, shape: y.shape), targets: vars.compactMap(\.node), keepingGraph: nested)
    return (nested ? y : y.detached(), zip(grads, xs).map { $0 ?? Tensor.zeros(shape: $1.shape) })
}

/// ∇f(x).
@inlinable public func gradient<Scalar>(at x: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> Tensor<Scalar> {
    valueWithGradient(at: x, of: f).gradient
}

/// Gradients of `f` with respect to each of `xs`.
@inlinable public func gradient<Scalar>(at xs: [Tensor<Scalar>], of f: ([Tensor<Scalar>]) -> Tensor<Scalar>) -> [Tensor<Scalar>] {
    valueWithGradient(at: xs, of: f).gradient
}

/// Returns f(x) as a function of x: `gradient(of: f)(x)`.
@inlinable public func gradient<Scalar>(of f: @escaping (Tensor<Scalar>) -> Tensor<Scalar>) -> (Tensor<Scalar>) -> Tensor<Scalar> {
    { x in gradient(at: x, of: f) }
}

/// Value of `f` at `x` and its pullback: the vector-Jacobian product `c ↦ Jᵀc` for a cotangent
/// `c` of the output's shape. The pullback can be called any number of times.
@inlinable public func valueWithPullback<Scalar>(at x: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> (value: Tensor<Scalar>, pullback: (Tensor<Scalar>) -> Tensor<Scalar>) {
    let nested = isNested([x])
    let v = differentiationVariable(x)
    let y = evaluate({ f($0[0]) }, at: [v])
    let pullback = { (c: Tensor<Scalar>) -> Tensor<Scalar> in
        require(c.shape == y.shape, "pullback: cotangent shape \(c.shape) does not match output shape \(y.shape)")
        let keep = nested || (c.node != nil && isRecordingGradients)
        return Backpropagation.run(output: y, seed: c, targets: [v.node!], keepingGraph: keep)[0] ?? Tensor.zeros(shape: x.shape)
    }
    return (nested ? y : y.detached(), pullback)
}

/// The vector-Jacobian product Jᵀc of `f` at `x`.
@inlinable public func vjp<Scalar>(at x: Tensor<Scalar>, cotangent: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> Tensor<Scalar> {
    valueWithPullback(at: x, of: f).pullback(cotangent)
}

/// Forward mode: the value of `f` at `x` and the Jacobian-vector product J t (the directional
/// derivative along `tangent`).
///
/// It is computed by transposing the pullback (the VJP is linear in its cotangent, and
/// differentiating it with respect to that cotangent gives J t), which reuses every derivative
/// rule and works at any order.
@inlinable public func valueWithDifferential<Scalar>(at x: Tensor<Scalar>, tangent: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> (value: Tensor<Scalar>, differential: Tensor<Scalar>) {
    require(tangent.shape == x.shape, "jvp: tangent shape \(tangent.shape) does not match input shape \(x.shape)")
    let lin = Linearization(at: x, of: f)
    return (lin.value, lin.differential(tangent))
}

/// The Jacobian-vector product J t of `f` at `x` (forward mode).
@inlinable public func jvp<Scalar>(at x: Tensor<Scalar>, tangent: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> Tensor<Scalar> {
    valueWithDifferential(at: x, tangent: tangent, of: f).differential
}

/// `f` linearized at a point: evaluates f once, then gives J t for any number of tangents.
@usableFromInline struct Linearization<Scalar: TensorScalar> {
    @usableFromInline let value: Tensor<Scalar>
    @usableFromInline let nested: Bool
    @usableFromInline let cotangentVariable: Tensor<Scalar>
    @usableFromInline let transposed: Tensor<Scalar>?  // Jᵀu as a function of the variable u

    @inlinable init(at x: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) {
        nested = isNested([x])
        let v = differentiationVariable(x)
        let y = evaluate({ f($0[0]) }, at: [v])
        value = nested ? y : y.detached()
        let u = Tensor<Scalar>.zeros(shape: y.shape).requiringGradient()
        cotangentVariable = u
        transposed = withGradientRecording(true) {
            Backpropagation.run(output: y, seed: u, targets: [v.node!], keepingGraph: true)[0]
        }
    }

    @inlinable func differential(_ t: Tensor<Scalar>) -> Tensor<Scalar> {
        guard let transposed else { return Tensor.zeros(shape: value.shape) }
        let s = withGradientRecording(true) { (transposed * t).sum() }
        return Backpropagation.run(output: s, seed: Tensor(1), targets: [cotangentVariable.node!], keepingGraph: nested)[0]
            ?? Tensor.zeros(shape: value.shape)
    }
}

/// How a Jacobian is assembled.
public enum JacobianMode: Sendable {
    /// One vector-Jacobian product per output element (reverse mode): best for few outputs.
    case byRows
    /// One Jacobian-vector product per input element (forward mode): best for few inputs.
    case byColumns
}

/// The Jacobian of `f` at `x`, of shape `f(x).shape + x.shape`.
@inlinable public func jacobian<Scalar>(at x: Tensor<Scalar>, mode: JacobianMode = .byRows, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> Tensor<Scalar> {
    switch mode {
    case .byRows:
        let (y, pullback) = valueWithPullback(at: x, of: f)
        let rows = (0..<y.count).map { i -> Tensor<Scalar> in
            var e = [Scalar](repeating: 0, count: y.count)
            e[i] = 1
            return pullback(Tensor(shape: y.shape, scalars: e)).reshaped(to: [x.count])
        }
        if rows.isEmpty { return Tensor.zeros(shape: y.shape + x.shape) }
        return Tensor.stack(rows).reshaped(to: y.shape + x.shape)
    case .byColumns:
        let lin = Linearization(at: x, of: f)
        let y = lin.value
        let columns = (0..<x.count).map { j -> Tensor<Scalar> in
            var e = [Scalar](repeating: 0, count: x.count)
            e[j] = 1
            return lin.differential(Tensor(shape: x.shape, scalars: e)).reshaped(to: [y.count])
        }
        if columns.isEmpty { return Tensor.zeros(shape: y.shape + x.shape) }
        return Tensor.stack(columns, axis: 1).reshaped(to: y.shape + x.shape)
    }
}

/// The Hessian of a scalar function at a point, as a linear operator: f and its gradient are
/// evaluated once, with the gradient's graph kept; each product H v is then one backward pass
/// over that graph (reverse over reverse). Use it for many products at one point, as Newton-CG
/// and trust-region methods do.
public struct HessianOperator<Scalar: TensorScalar> {
    /// f at the point.
    public let value: Tensor<Scalar>
    /// ∇f at the point.
    public let gradient: Tensor<Scalar>
    @usableFromInline let variable: Tensor<Scalar>
    @usableFromInline let gradientWithGraph: Tensor<Scalar>?
    @usableFromInline let nested: Bool
    /// The compiled function, for an operator made from one: products and the whole Hessian run
    /// as its compiled programs.
    @usableFromInline let compiled: CompiledFunction<Scalar>?

    /// The operator of a compiled function: value and gradient from one compiled pass, each
    /// product from its Hessian-vector-product program, `matrix()` from its batched Hessian
    /// program (for a vector argument).
    public init(at x: Tensor<Scalar>, of f: CompiledFunction<Scalar>) {
        nested = false
        variable = x.detached()
        gradientWithGraph = nil
        compiled = f
        (value, gradient) = f.valueWithGradient(at: x)
    }

    @inlinable public init(at x: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) {
        let nested = isNested([x])
        self.nested = nested
        compiled = nil
        let v = differentiationVariable(x)
        variable = v
        let (y, g) = withGradientRecording(true) { () -> (Tensor<Scalar>, Tensor<Scalar>?) in
            let y = f(v)
            require(y.count == 1, "hessian: the function must return one element, got shape \(y.shape)")
            return (y, Backpropagation.run(output: y, seed: Tensor(repeating: 1, shape: y.shape), targets: [v.node!], keepingGraph: true)[0])
        }
        gradientWithGraph = g
        value = nested ? y : y.detached()
        if let g { gradient = nested ? g : g.detached() } else { gradient = Tensor.zeros(shape: x.shape) }
    }

    /// H v.
    @inlinable public func callAsFunction(_ vector: Tensor<Scalar>) -> Tensor<Scalar> {
        require(vector.shape == variable.shape, "hessianVectorProduct: vector shape \(vector.shape) does not match \(variable.shape)")
        if let compiled { return compiled.hessianVectorProduct(at: variable, vector: vector) }
        guard let g = gradientWithGraph else { return Tensor.zeros(shape: variable.shape) }
        return Backpropagation.run(output: g, seed: vector, targets: [variable.node!], keepingGraph: nested)[0]
            ?? Tensor.zeros(shape: variable.shape)
    }

    /// The whole Hessian, of shape `x.shape + x.shape`, one product per row.
    @inlinable public func matrix() -> Tensor<Scalar> {
        let n = variable.count
        if n == 0 { return Tensor.zeros(shape: variable.shape + variable.shape) }
        if let compiled, variable.rank == 1 { return compiled.hessian(at: variable) }
        let rows = (0..<n).map { i -> Tensor<Scalar> in
            var e = [Scalar](repeating: 0, count: n)
            e[i] = 1
            return self(Tensor(shape: variable.shape, scalars: e)).reshaped(to: [n])
        }
        return Tensor.stack(rows).reshaped(to: variable.shape + variable.shape)
    }
}

/// The Hessian of the scalar function `f` at `x`, of shape `x.shape + x.shape`: the Jacobian of
/// the gradient, one Hessian-vector product per row.
@inlinable public func hessian<Scalar>(at x: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> Tensor<Scalar> {
    HessianOperator(at: x, of: f).matrix()
}

/// The Hessian-vector product H v of the scalar function `f` at `x`, without forming H
/// (reverse-over-reverse: the gradient of ⟨∇f(x), v⟩).
@inlinable public func hessianVectorProduct<Scalar>(at x: Tensor<Scalar>, vector: Tensor<Scalar>, of f: (Tensor<Scalar>) -> Tensor<Scalar>) -> Tensor<Scalar> {
    HessianOperator(at: x, of: f)(vector)
}
