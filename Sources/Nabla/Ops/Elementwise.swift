import CNablaKernels

// Element-wise primitives. Each one: its forward kernel and, right beside it, its pullback,
// written with differentiable operations so that derivatives of any order are exact.

extension Tensor {
    /// Applies a binary kernel with NumPy broadcasting. Not recorded.
    @inline(__always)
    @inlinable static func binaryKernel(_ op: Int32, _ a: Tensor, _ b: Tensor, _ name: String) -> Tensor {
        if a.shape == b.shape {
            let out = TensorStorage<Scalar>.make(count: a.count)
            let (pa, pb, po) = (a.storage.base, b.storage.base, out.base)
            ComputeBackend.parallelize(count: a.count, cost: 1) { lo, hi in
                var n = hi - lo, one = 1
                Scalar._binary(op, 1, &n, po + lo, pa + lo, &one, pb + lo, &one)
            }
            return withExtendedLifetime((a, b)) { Tensor(storage: out, shape: a.shape) }
        }
        // A one-element operand against a contiguous one (x * 2, 1 - x): one 1-D pass, stride 0.
        if b.count == 1 && b.rank <= a.rank || a.count == 1 && a.rank <= b.rank {
            let big = b.count == 1 && b.rank <= a.rank ? a : b
            let out = TensorStorage<Scalar>.make(count: big.count)
            var n = big.count, one = 1, zero = 0
            if big.count > 0 {
                if b.count == 1 && b.rank <= a.rank {
                    Scalar._binary(op, 1, &n, out.base, a.storage.base, &one, b.storage.base, &zero)
                } else {
                    Scalar._binary(op, 1, &n, out.base, a.storage.base, &zero, b.storage.base, &one)
                }
            }
            return withExtendedLifetime((a, b)) { Tensor(storage: out, shape: big.shape) }
        }
        guard let shape = broadcastShapes(a.shape, b.shape) else {
            usageFailure("\(name): shapes \(a.shape) and \(b.shape) cannot be broadcast together")
        }
        let out = TensorStorage<Scalar>.make(count: shapeCount(shape))
        if out.count > 0 {
            let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
            Scalar._binary(op, Int32(shape.count), shape, out.base, a.storage.base, sa, b.storage.base, sb)
        }
        return Tensor(storage: out, shape: shape)
    }

    @inline(__always)
    @inlinable func unaryKernel(_ op: Int32, _ p0: Double = 0, _ p1: Double = 0) -> Tensor {
        let out = TensorStorage<Scalar>.make(count: count)
        let (px, po) = (storage.base, out.base)
        ComputeBackend.parallelize(count: count, cost: ComputeBackend.unaryCost(op)) { lo, hi in
            Scalar._unary(op, hi - lo, px + lo, po + lo, p0, p1)
        }
        return withExtendedLifetime(self) { Tensor(storage: out, shape: shape) }
    }

    // MARK: Arithmetic

    @inlinable public static func + (a: Tensor, b: Tensor) -> Tensor {
        let y = binaryKernel(Int32(NB_ADD), a, b, "add")
        guard isRecorded(a, b) else { return y }
        let (sa, sb, da, db) = (a.shape, b.shape, a.node != nil, b.node != nil)
        return record2("add", a, b, output: y) { g, _ in
            (da ? g.summed(toShape: sa) : nil, db ? g.summed(toShape: sb) : nil)
        }
    }

    @inlinable public static func - (a: Tensor, b: Tensor) -> Tensor {
        let y = binaryKernel(Int32(NB_SUB), a, b, "sub")
        guard isRecorded(a, b) else { return y }
        let (sa, sb, da, db) = (a.shape, b.shape, a.node != nil, b.node != nil)
        return record2("sub", a, b, output: y) { g, _ in
            (da ? g.summed(toShape: sa) : nil, db ? (-g).summed(toShape: sb) : nil)
        }
    }

    @inlinable public static func * (a: Tensor, b: Tensor) -> Tensor {
        let y = binaryKernel(Int32(NB_MUL), a, b, "mul")
        guard isRecorded(a, b) else { return y }
        return record2("mul", a, b, output: y) { g, _ in
            (a.node == nil ? nil : (g * b).summed(toShape: a.shape),
             b.node == nil ? nil : (g * a).summed(toShape: b.shape))
        }
    }

    @inlinable public static func / (a: Tensor, b: Tensor) -> Tensor {
        record2("div", a, b, output: binaryKernel(Int32(NB_DIV), a, b, "div"), savingOutput: false) { g, _ in
            (a.node == nil ? nil : (g / b).summed(toShape: a.shape),
             b.node == nil ? nil : (-g * a / (b * b)).summed(toShape: b.shape))
        }
    }

    /// `a` raised to the power `b`, element-wise with broadcasting (a > 0 where b is not an integer).
    @inlinable public static func pow(_ a: Tensor, _ b: Tensor) -> Tensor {
        record2("pow", a, b, output: binaryKernel(Int32(NB_POW), a, b, "pow"), savingOutput: true) { g, y in
            (a.node == nil ? nil : (g * b * Tensor.pow(a, b - 1)).summed(toShape: a.shape),
             b.node == nil ? nil : (g * y * a.log()).summed(toShape: b.shape))
        }
    }

    /// Element-wise maximum with broadcasting; at ties each input receives half the gradient.
    @inlinable public static func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
        record2("maximum", a, b, output: binaryKernel(Int32(NB_MAXIMUM), a, b, "maximum"), savingOutput: false) { g, _ in
            let w = binaryKernel(Int32(NB_MAX_WEIGHT), a, b, "maximum")
            return ((g * w).summed(toShape: a.shape), (g * (1 - w)).summed(toShape: b.shape))
        }
    }

    /// Element-wise minimum with broadcasting; at ties each input receives half the gradient.
    @inlinable public static func minimum(_ a: Tensor, _ b: Tensor) -> Tensor {
        record2("minimum", a, b, output: binaryKernel(Int32(NB_MINIMUM), a, b, "minimum"), savingOutput: false) { g, _ in
            let w = binaryKernel(Int32(NB_MAX_WEIGHT), b, a, "minimum")
            return ((g * w).summed(toShape: a.shape), (g * (1 - w)).summed(toShape: b.shape))
        }
    }

    @inlinable public static prefix func - (x: Tensor) -> Tensor {
        record1("neg", x, output: x.unaryKernel(Int32(NB_NEG))) { g, _ in -g }
    }

    @inlinable @_disfavoredOverload public static func + (a: Tensor, b: Scalar) -> Tensor { a + Tensor(b) }
    @inlinable @_disfavoredOverload public static func + (a: Scalar, b: Tensor) -> Tensor { Tensor(a) + b }
    @inlinable @_disfavoredOverload public static func - (a: Tensor, b: Scalar) -> Tensor { a - Tensor(b) }
    @inlinable @_disfavoredOverload public static func - (a: Scalar, b: Tensor) -> Tensor { Tensor(a) - b }
    @inlinable @_disfavoredOverload public static func * (a: Tensor, b: Scalar) -> Tensor { a * Tensor(b) }
    @inlinable @_disfavoredOverload public static func * (a: Scalar, b: Tensor) -> Tensor { Tensor(a) * b }
    @inlinable @_disfavoredOverload public static func / (a: Tensor, b: Scalar) -> Tensor { a / Tensor(b) }
    @inlinable @_disfavoredOverload public static func / (a: Scalar, b: Tensor) -> Tensor { Tensor(a) / b }
    @inlinable public static func += (a: inout Tensor, b: Tensor) { a = a + b }
    @inlinable public static func -= (a: inout Tensor, b: Tensor) { a = a - b }
    @inlinable public static func *= (a: inout Tensor, b: Tensor) { a = a * b }
    @inlinable public static func /= (a: inout Tensor, b: Tensor) { a = a / b }

    // MARK: Comparisons (constants: 1 where true, 0 where false)

    @inlinable public static func .== (a: Tensor, b: Tensor) -> Tensor { binaryKernel(Int32(NB_EQ), a, b, "==") }
    @inlinable public static func .!= (a: Tensor, b: Tensor) -> Tensor { binaryKernel(Int32(NB_NE), a, b, "!=") }
    @inlinable public static func .< (a: Tensor, b: Tensor) -> Tensor { binaryKernel(Int32(NB_LT), a, b, "<") }
    @inlinable public static func .<= (a: Tensor, b: Tensor) -> Tensor { binaryKernel(Int32(NB_LE), a, b, "<=") }
    @inlinable public static func .> (a: Tensor, b: Tensor) -> Tensor { binaryKernel(Int32(NB_GT), a, b, ">") }
    @inlinable public static func .>= (a: Tensor, b: Tensor) -> Tensor { binaryKernel(Int32(NB_GE), a, b, ">=") }
    @inlinable @_disfavoredOverload public static func .== (a: Tensor, b: Scalar) -> Tensor { a .== Tensor(b) }
    @inlinable @_disfavoredOverload public static func .< (a: Tensor, b: Scalar) -> Tensor { a .< Tensor(b) }
    @inlinable @_disfavoredOverload public static func .<= (a: Tensor, b: Scalar) -> Tensor { a .<= Tensor(b) }
    @inlinable @_disfavoredOverload public static func .> (a: Tensor, b: Scalar) -> Tensor { a .> Tensor(b) }
    @inlinable @_disfavoredOverload public static func .>= (a: Tensor, b: Scalar) -> Tensor { a .>= Tensor(b) }

    // MARK: Unary functions

    @inlinable public func exp() -> Tensor {
        Tensor.record1("exp", self, output: unaryKernel(Int32(NB_EXP)), savingOutput: true) { g, y in g * y }
    }

    /// Natural logarithm.
    @inlinable public func log() -> Tensor {
        Tensor.record1("log", self, output: unaryKernel(Int32(NB_LOG))) { g, _ in g / self }
    }

    @inlinable public func squareRoot() -> Tensor {
        Tensor.record1("sqrt", self, output: unaryKernel(Int32(NB_SQRT)), savingOutput: true) { g, y in g * 0.5 / y }
    }

    /// Absolute value; its derivative is sign(x), 0 at x = 0.
    @inlinable public func abs() -> Tensor {
        Tensor.record1("abs", self, output: unaryKernel(Int32(NB_ABS))) { g, _ in g * self.sign() }
    }

    /// -1, 0 or 1 (a constant: its derivative is zero).
    @inlinable public func sign() -> Tensor { unaryKernel(Int32(NB_SIGN)) }

    @inlinable public func tanh() -> Tensor {
        Tensor.record1("tanh", self, output: unaryKernel(Int32(NB_TANH)), savingOutput: true) { g, y in g * (1 - y * y) }
    }

    /// The logistic function 1 / (1 + exp(-x)), computed without overflow.
    @inlinable public func sigmoid() -> Tensor {
        Tensor.record1("sigmoid", self, output: unaryKernel(Int32(NB_SIGMOID)), savingOutput: true) { g, y in g * y * (1 - y) }
    }

    @inlinable public func sin() -> Tensor {
        Tensor.record1("sin", self, output: unaryKernel(Int32(NB_SIN))) { g, _ in g * self.cos() }
    }

    @inlinable public func cos() -> Tensor {
        Tensor.record1("cos", self, output: unaryKernel(Int32(NB_COS))) { g, _ in -g * self.sin() }
    }

    @inlinable public func tan() -> Tensor {
        Tensor.record1("tan", self, output: unaryKernel(Int32(NB_TAN)), savingOutput: true) { g, y in g * (1 + y * y) }
    }

    /// The error function.
    @inlinable public func erf() -> Tensor {
        Tensor.record1("erf", self, output: unaryKernel(Int32(NB_ERF))) { g, _ in
            g * (-(self * self)).exp() * Scalar(1.1283791670955125739)  // 2/sqrt(pi)
        }
    }

    /// x^p for a constant exponent p (x > 0 when p is not an integer).
    @inlinable public func pow(_ p: Scalar) -> Tensor {
        Tensor.record1("pow_scalar", self, output: unaryKernel(Int32(NB_POW_SCALAR), Double(p))) { g, _ in
            p == 0 ? g * 0 : (p == 1 ? g : g * p * self.pow(p - 1))
        }
    }

    /// x².
    @inlinable public func squared() -> Tensor { self * self }

    /// max(x, 0); derivative 1 where x > 0 and 0 at x = 0.
    @inlinable public func relu() -> Tensor {
        Tensor.record1("relu", self, output: unaryKernel(Int32(NB_RELU))) { g, _ in Tensor.passingPositive(g, where: self) }
    }

    /// `g` where `x > 0`, else 0, in one pass: ReLU's pullback (as PyTorch's threshold_backward,
    /// a zero where x ≤ 0 even when g is NaN or infinite). Linear in g, so its own pullback is
    /// itself; constant in x almost everywhere.
    @inlinable static func passingPositive(_ g: Tensor, where x: Tensor) -> Tensor {
        let y = binaryKernel(Int32(NB_PASS_POSITIVE), g, x, "relu_backward")
        guard isRecorded(g, x) else { return y }
        return record2("relu_backward", g, x, output: y) { gg, _ in (passingPositive(gg, where: x), nil) }
    }

    /// x where x > 0, else slope x; derivative `slope` at x = 0.
    @inlinable public func leakyRelu(negativeSlope slope: Double = 0.01) -> Tensor {
        Tensor.record1("leaky_relu", self, output: unaryKernel(Int32(NB_LEAKY_RELU), slope)) { g, _ in
            g * self.unaryKernel(Int32(NB_LEAKY_MASK), slope)
        }
    }

    /// x where x > 0, else alpha (exp(x) - 1).
    @inlinable public func elu(alpha: Double = 1) -> Tensor {
        Tensor.record1("elu", self, output: unaryKernel(Int32(NB_ELU), alpha)) { g, _ in
            g * Tensor.where(self .> 0, Tensor(1), self.exp() * Scalar(alpha))
        }
    }

    /// Gaussian error linear unit: x Φ(x), or its tanh approximation.
    @inlinable public func gelu(approximate: Bool = false) -> Tensor {
        if approximate {
            return Tensor.record1("gelu_tanh", self, output: unaryKernel(Int32(NB_GELU_TANH))) { g, _ in
                let c = Scalar(0.79788456080286535588), k = Scalar(0.044715)
                let t = ((self + self * self * self * k) * c).tanh()
                let dt = (1 - t * t) * c * (1 + self * self * (3 * k))
                return g * ((1 + t) * 0.5 + self * dt * 0.5)
            }
        }
        return Tensor.record1("gelu", self, output: unaryKernel(Int32(NB_GELU))) { g, _ in g * self.geluDerivative() }
    }

    /// Φ(x) + x φ(x), the derivative of x Φ(x), in one pass; its own derivative is φ(x)(2 − x²).
    @inlinable func geluDerivative() -> Tensor {
        Tensor.record1("gelu_derivative", self, output: unaryKernel(Int32(NB_GELU_GRAD))) { g, _ in
            g * (self * self * -0.5).exp() * Scalar(0.39894228040143267794) * (2 - self * self)
        }
    }

    /// (1/beta) log(1 + exp(beta x)), and x itself where beta x > threshold.
    @inlinable public func softplus(beta: Double = 1, threshold: Double = 20) -> Tensor {
        Tensor.record1("softplus", self, output: unaryKernel(Int32(NB_SOFTPLUS), beta, threshold)) { g, _ in
            g * Tensor.where(self.unaryKernel(Int32(NB_SOFTPLUS_MASK), beta, threshold), (self * Scalar(beta)).sigmoid(), Tensor(1))
        }
    }

    /// x σ(x).
    @inlinable public func silu() -> Tensor { self * sigmoid() }

    /// Limits every element to [min, max] (either bound may be nil). The derivative is 1 strictly
    /// inside and 0 at the bounds and outside.
    @inlinable public func clamped(min low: Scalar? = nil, max high: Scalar? = nil) -> Tensor {
        let lo = low.map(Double.init) ?? -.infinity, hi = high.map(Double.init) ?? .infinity
        return Tensor.record1("clamp", self, output: unaryKernel(Int32(NB_CLAMP), lo, hi)) { g, _ in
            g * self.unaryKernel(Int32(NB_INSIDE_MASK), lo, hi)
        }
    }

    /// `a` where `condition` is non-zero, else `b`; all three broadcast together. `condition` is a
    /// constant (for example the result of a comparison such as `x .> 0`).
    @inlinable public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard let s1 = broadcastShapes(condition.shape, a.shape), let shape = broadcastShapes(s1, b.shape) else {
            usageFailure("where: shapes \(condition.shape), \(a.shape) and \(b.shape) cannot be broadcast together")
        }
        let c = condition.broadcastKernel(to: shape), x = a.broadcastKernel(to: shape), y = b.broadcastKernel(to: shape)
        let out = TensorStorage<Scalar>.make(count: shapeCount(shape))
        Scalar._select(out.count, c.storage.base, x.storage.base, y.storage.base, out.base)
        return record2("where", a, b, output: Tensor(storage: out, shape: shape), savingOutput: false) { g, _ in
            let zero = Tensor(0)
            return (a.node == nil ? nil : Tensor.where(condition, g, zero).summed(toShape: a.shape),
                    b.node == nil ? nil : Tensor.where(condition, zero, g).summed(toShape: b.shape))
        }
    }
}

extension Tensor: ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral {
    @inlinable public init(floatLiteral value: Double) { self.init(Scalar(value)) }
    @inlinable public init(integerLiteral value: Int) { self.init(Scalar(value)) }
    /// Nested literals: `[[1, 2], [3, 4]]` is a 2×2 tensor.
    @inlinable public init(arrayLiteral elements: Tensor...) {
        if elements.isEmpty { self.init(shape: [0], scalars: []); return }
        self = Tensor.stack(elements, axis: 0)
    }
}
