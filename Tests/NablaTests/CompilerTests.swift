import Nabla
import Testing

/// Compiled programs against the eager library: values, gradients, Hessian-vector products and
/// Hessians of the same functions, fused or not.
@Suite struct CompilerTests {
    static func rosenbrockEager(_ x: Tensor<Double>) -> Tensor<Double> {
        let n = x.count
        let head = x.slice(axis: 0, start: 0, end: n - 1), tail = x.slice(axis: 0, start: 1, end: n)
        let r = tail - head * head, s = 1 - head
        return (100 * r * r + s * s).sum()
    }

    static func rosenbrock<S>(_ x: Traced<S>) -> Traced<S> {
        let n = x.count
        let head = x.slice(axis: 0, start: 0, end: n - 1), tail = x.slice(axis: 0, start: 1, end: n)
        let r = tail - head.pow(2), s = 1 - head
        return (100 * r * r + s * s).sum()
    }

    static func maxRelative(_ a: Tensor<Double>, _ b: Tensor<Double>) -> Double {
        #expect(a.shape == b.shape)
        let scale = b.scalars.map { Swift.abs($0) }.max() ?? 1
        return zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max().map { $0 / Swift.max(scale, 1e-300) } ?? 0
    }

    @Test func rosenbrockValueGradientHVPAndHessianMatchEager() {
        let f = compiled(CompilerTests.rosenbrock as (Traced<Double>) -> Traced<Double>)
        for n in [2, 3, 10, 37, 1000] {
            let x = randn([n], seed: UInt64(n)), v = randn([n], seed: UInt64(n + 1))
            #expect(CompilerTests.maxRelative(f(x), CompilerTests.rosenbrockEager(x)) < 1e-13)
            let (value, g) = f.valueWithGradient(at: x)
            let (ev, eg) = valueWithGradient(at: x, of: CompilerTests.rosenbrockEager)
            #expect(CompilerTests.maxRelative(value, ev) < 1e-13)
            #expect(CompilerTests.maxRelative(g, eg) < 1e-13)
            let hv = f.hessianVectorProduct(at: x, vector: v)
            #expect(CompilerTests.maxRelative(hv, hessianVectorProduct(at: x, vector: v, of: CompilerTests.rosenbrockEager)) < 1e-13)
            if n <= 37 {
                #expect(CompilerTests.maxRelative(f.hessian(at: x), hessian(at: x, of: CompilerTests.rosenbrockEager)) < 1e-13)
            }
        }
        // One trace per variant and shape.
        let before = f.traceCount
        _ = f.valueWithGradient(at: randn([10], seed: 99))
        #expect(f.traceCount == before)
        _ = f.valueWithGradient(at: randn([11], seed: 99))
        #expect(f.traceCount == before + 1)
    }

    /// Short rows run several to a block: differences along both axes (masks on the outer and
    /// the inner dimension), row means broadcast back, row and total sums, for row counts on both
    /// sides of a block's worth of rows.
    @Test func shortRowsMatchEager() {
        func eager(_ x: Tensor<Double>) -> Tensor<Double> {
            let (n, m) = (x.shape[0], x.shape[1])
            let d0 = x.slice(axis: 0, start: 1, end: n) - x.slice(axis: 0, start: 0, end: n - 1)
            let d1 = x.slice(axis: 1, start: 1, end: m) - x.slice(axis: 1, start: 0, end: m - 1)
            let c = x - x.sum(axes: [1], keepingDimensions: true) / Double(m)
            return (d0 * d0).sum() + (d1 * d1).sum() * 0.5 + (c * c.tanh()).sum()
        }
        let f = compiled { (x: Traced<Double>) -> Traced<Double> in
            let (n, m) = (x.shape[0], x.shape[1])
            let d0 = x.slice(axis: 0, start: 1, end: n) - x.slice(axis: 0, start: 0, end: n - 1)
            let d1 = x.slice(axis: 1, start: 1, end: m) - x.slice(axis: 1, start: 0, end: m - 1)
            let c = x - x.sum(axes: [1], keepingDimensions: true) / Double(m)
            return (d0 * d0).sum() + (d1 * d1).sum() * 0.5 + (c * c.tanh()).sum()
        }
        // (30000 × 3: enough elements for the rows to be split across the worker threads)
        for (n, m) in [(2, 3), (5, 2), (63, 4), (70, 3), (129, 5), (300, 7), (30000, 3)] {
            let x = randn([n, m], seed: UInt64(n * m)), v = randn([n, m], seed: UInt64(n + m))
            let (value, g) = f.valueWithGradient(at: x)
            let (ev, eg) = valueWithGradient(at: x, of: eager)
            #expect(CompilerTests.maxRelative(value, ev) < 1e-13, "\(n)×\(m)")
            #expect(CompilerTests.maxRelative(g, eg) < 1e-13, "\(n)×\(m)")
            let hv = f.hessianVectorProduct(at: x, vector: v)
            #expect(CompilerTests.maxRelative(hv, hessianVectorProduct(at: x, vector: v, of: eager)) < 1e-13, "\(n)×\(m)")
        }
    }

    /// Running into caller buffers gives the same numbers as the tensor form, outputs that are
    /// an argument or repeated included.
    @Test func runningIntoBuffersMatchesTensorRun() {
        let f = CompiledFunction<Double> { xs in [CompilerTests.rosenbrock(xs[0]), xs[1], (xs[0] * xs[1]).sum(), xs[1]] }
        let x = randn([50], seed: 3), y = randn([50], seed: 4)
        for variant in [CompiledFunction<Double>.Variant.value, .valueAndGradient] {
        let program = f.executable(variant, shapes: [[50], [50]])
        let expected = program.run([x, y])
        var outs = expected.map { [Double](repeating: .nan, count: $0.count) }
        #expect(outs.count == (variant == .value ? 4 : 3))
        for _ in 0..<2 {   // (the second call reuses everything the first set up)
            x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in
                let pointers = outs.indices.map { k in UnsafeMutablePointer<Double>.allocate(capacity: outs[k].count) }
                program.run(inputs: [xp.baseAddress!, yp.baseAddress!], outputs: pointers)
                for k in outs.indices { outs[k] = Array(UnsafeBufferPointer(start: pointers[k], count: outs[k].count)); pointers[k].deallocate() }
            } }
            #expect(zip(outs, expected).allSatisfy { $0 == $1.scalars })
        }
        }
    }

    /// Banded Hessians come from a product per color: the band is found on the program, the
    /// matrix equals the eager one (a pentadiagonal one too), a dense Hessian takes the identity
    /// route, and a non-finite point gives the identity route's NaN and ∞.
    @Test func bandedHessiansFromColoredProducts() {
        let rosen = compiled(CompilerTests.rosenbrock as (Traced<Double>) -> Traced<Double>)
        let hvp = rosen.graph(.hessianVectorProduct, shapes: [[50]])
        #expect(hvp.band(of: hvp.outputs[0], onInput: 1) == [-1, 0, 1])
        func secondDifferences(_ x: Tensor<Double>) -> Tensor<Double> {
            let n = x.count
            let d = x.slice(axis: 0, start: 2, end: n) - x.slice(axis: 0, start: 1, end: n - 1) * 2 + x.slice(axis: 0, start: 0, end: n - 2)
            return (d * d * d.sin()).sum() + (x * x * x * x).sum()
        }
        let penta = compiled { (x: Traced<Double>) -> Traced<Double> in
            let n = x.count
            let d = x.slice(axis: 0, start: 2, end: n) - x.slice(axis: 0, start: 1, end: n - 1) * 2 + x.slice(axis: 0, start: 0, end: n - 2)
            return (d * d * d.sin()).sum() + (x * x * x * x).sum()
        }
        let g = penta.graph(.hessianVectorProduct, shapes: [[9]])
        #expect(g.band(of: g.outputs[0], onInput: 1) == [-2, -1, 0, 1, 2])
        for n in [3, 5, 6, 40] {
            let x = randn([n], seed: UInt64(n))
            #expect(CompilerTests.maxRelative(penta.hessian(at: x), hessian(at: x, of: secondDifferences)) < 1e-13, "n = \(n)")
        }
        // A sum squared couples every pair: no band, the identity route.
        let dense = compiled { (x: Traced<Double>) in x.sum() * x.sum() + (x * x.sin()).sum() }
        let d = dense.graph(.hessianVectorProduct, shapes: [[8]])
        #expect(d.band(of: d.outputs[0], onInput: 1) == nil)
        let x8 = randn([8], seed: 2)
        #expect(CompilerTests.maxRelative(dense.hessian(at: x8), hessian(at: x8) { (x: Tensor<Double>) in x.sum() * x.sum() + (x * x.sin()).sum() }) < 1e-13)
        // ∞ in x: the same non-finite entries as the eager Hessian.
        var bad = randn([6], seed: 5).scalars
        bad[2] = .infinity
        let h = rosen.hessian(at: Tensor(bad)), e = hessian(at: Tensor(bad), of: CompilerTests.rosenbrockEager)
        #expect(zip(h.scalars, e.scalars).allSatisfy { $0.isNaN == $1.isNaN && ($0.isNaN || $0 == $1) })
        #expect(h.scalars.contains { !$0.isFinite })
    }

    @Test func hvpFusesIntoOneKernel() {
        let f = compiled(CompilerTests.rosenbrock as (Traced<Double>) -> Traced<Double>)
        let e = f.executable(.hessianVectorProduct, shapes: [[1000]])
        #expect(e.summary.components(separatedBy: "fused kernel").count - 1 == 1, "\(e.summary)")
        let text = e.graph.description
        #expect(text.contains("pad") && text.contains("return"))
        #expect(e.graph.dot.hasPrefix("digraph program {"))
        // Value and gradient of an element-wise function: one kernel, two outputs.
        let g = compiled { (x: Traced<Float>) in (x * x.sin() + (-(x * x)).exp() * x.tanh()).sum() }
        let s = g.executable(.valueAndGradient, shapes: [[4096]]).summary
        #expect(s.components(separatedBy: "fused kernel").count - 1 == 1, "\(s)")
        #expect(s.contains("2 outputs"), "\(s)")
    }

    @Test func elementwiseFunctionInBothPrecisions() {
        let fd = compiled { (x: Traced<Double>) in (x * x.sin() + (-(x * x)).exp() * x.tanh()).sum() }
        let eager = { (x: Tensor<Double>) in (x * x.sin() + (-(x * x)).exp() * x.tanh()).sum() }
        for n in [1, 7, 255, 256, 257, 5000, 100_000] {
            let x = randn([n], seed: UInt64(3 * n)) * 3
            let (v, g) = fd.valueWithGradient(at: x)
            let (ev, eg) = valueWithGradient(at: x, of: eager)
            #expect(Swift.abs(v.scalar - ev.scalar) <= 1e-12 * Swift.max(1, Swift.abs(ev.scalar)))
            #expect(CompilerTests.maxRelative(g, eg) < 1e-13)
            let xf = Tensor<Float>(converting: x)
            let ff = compiled { (x: Traced<Float>) in (x * x.sin() + (-(x * x)).exp() * x.tanh()).sum() }
            let (vf, gf) = ff.valueWithGradient(at: xf)
            #expect(Swift.abs(Double(vf.scalar) - ev.scalar) <= 1e-4 * Swift.max(1, Double(n).squareRoot()))
            #expect(CompilerTests.maxRelative(Tensor<Double>(converting: gf), eg) < 1e-5)
        }
        // Large arguments of sin and cos leave the fast reduction for libm.
        let big = Tensor<Float>([1e5, -3e4, 8191, 8193, 1e9, 0])
        let s = compiled { (x: Traced<Float>) in x.sin() + x.cos() }(big)
        let expected = big.sin() + big.cos()
        for (a, b) in zip(s.scalars, expected.scalars) { #expect(Swift.abs(a - b) < 1e-5) }
    }

    @Test func broadcastsReductionsProductsAndTransposes() {
        let f = compiled { (xs: [Traced<Double>]) -> [Traced<Double>] in
            let (a, b, c) = (xs[0], xs[1], xs[2])
            let m = Traced.matmul(a, b.transposed())                     // [4, 5]
            let centered = m - m.mean(axes: [1], keepingDimensions: true)
            let z = Traced.maximum(centered * c, centered.tanh()) + c.exp().sum(axis: 0, keepingDimensions: true)
            return [(z.relu() + z.sigmoid() * z).sum() + (a.permuted([1, 0]) * 2).squared().sum(), m]
        }
        let eager = { (a: Tensor<Double>, b: Tensor<Double>, c: Tensor<Double>) -> Tensor<Double> in
            let m = Tensor.matmul(a, b.transposed(0, 1))
            let centered = m - m.mean(axes: [1], keepingDimensions: true)
            let z = Tensor.maximum(centered * c, centered.tanh()) + c.exp().sum(axis: 0, keepingDimensions: true)
            return (z.relu() + z.sigmoid() * z).sum() + ((a.permuted([1, 0]) * 2) * (a.permuted([1, 0]) * 2)).sum()
        }
        let a = randn([4, 3], seed: 1), b = randn([5, 3], seed: 2), c = randn([1, 5], seed: 3)
        let outs = f([a, b, c])
        #expect(Swift.abs(outs[0].scalar - eager(a, b, c).scalar) < 1e-12 * Swift.max(1, Swift.abs(outs[0].scalar)))
        #expect(CompilerTests.maxRelative(outs[1], Tensor.matmul(a, b.transposed(0, 1))) < 1e-14)
        let grads = f.gradients(at: [a, b, c])
        let (va, vb, vc) = (a.requiringGradient(), b.requiringGradient(), c.requiringGradient())
        let eg = Nabla.gradients(of: eager(va, vb, vc), wrt: [va, vb, vc])
        for (g, e) in zip(grads, eg) { #expect(CompilerTests.maxRelative(g, e) < 1e-12) }
        // Hessian-vector products against reverse over reverse.
        let ts = [randn([4, 3], seed: 4), randn([5, 3], seed: 5), randn([1, 5], seed: 6)]
        let hv = f.hessianVectorProducts(at: [a, b, c], vectors: ts)
        let g2 = Nabla.gradients(of: eager(va, vb, vc), wrt: [va, vb, vc], keepingGraph: true)
        let s = zip(g2, ts).map { ($0 * $1).sum() }.reduce(Tensor<Double>(0), +)
        let eh = Nabla.gradients(of: s, wrt: [va, vb, vc])
        for (h, e) in zip(hv, eh) { #expect(CompilerTests.maxRelative(h, e) < 1e-11) }
    }

    @Test func eagerOperationsInsideCompiledPrograms() {
        // log-softmax is not a primitive of the compiler: it runs eagerly, and is differentiated
        // (to second order) by the eager library.
        let f = compiled { (x: Traced<Double>) in
            (Traced.eager("log_softmax", [x], shape: x.shape) { $0[0].logSoftmax(axis: 1) } * x.sin()).sum()
        }
        let eager = { (x: Tensor<Double>) in (x.logSoftmax(axis: 1) * x.sin()).sum() }
        let x = randn([3, 4], seed: 8), v = randn([3, 4], seed: 9)
        #expect(Swift.abs(f(x).scalar - eager(x).scalar) < 1e-12)
        #expect(CompilerTests.maxRelative(f.gradient(at: x), gradient(at: x, of: eager)) < 1e-12)
        #expect(CompilerTests.maxRelative(f.hessianVectorProduct(at: x, vector: v), hessianVectorProduct(at: x, vector: v, of: eager)) < 1e-11)
        let y = randn([6], seed: 10)
        let h = compiled { (x: Traced<Double>) in
            (Traced.eager("softplus", [x], shape: x.shape) { $0[0].softplus() } * x).sum()
        }.hessian(at: y)
        #expect(CompilerTests.maxRelative(h, hessian(at: y) { ($0.softplus() * $0).sum() }) < 1e-12)
    }

    @Test func nanAndInfinityPropagateAsInEagerMode() {
        let x = Tensor<Double>([Double.nan, 1, -Double.infinity, 0, 2])
        let f = compiled { (x: Traced<Double>) in x.relu() * 2 + x.exp() - Traced.maximum(x, x * 0.5) }
        let eager = x.relu() * 2 + x.exp() - Tensor.maximum(x, x * 0.5)
        for (a, b) in zip(f(x).scalars, eager.scalars) { #expect(a == b || (a.isNaN && b.isNaN)) }
    }

    @Test func foldingAndSimplificationLeaveLessWork() {
        let f = compiled { (x: Traced<Double>) -> Traced<Double> in
            let c = Traced(constant: Tensor<Double>([1, 2, 3]), in: x.graph)
            let k = (c * 2).exp().sum()           // folded to one number
            return -(-(x * 1 + 0)) * k + (x * k)    // x·k twice: shared
        }
        let g = f.graph(.value, shapes: [[3]])
        let text = g.description
        #expect(!text.contains("exp"), "\(text)")
        #expect(!text.contains("neg"), "\(text)")
        #expect(text.components(separatedBy: " mul(").count - 1 == 1, "\(text)")
        let x = Tensor<Double>([1, -2, 0.5])
        let k = (Tensor<Double>([1, 2, 3]) * 2).exp().sum()
        #expect(CompilerTests.maxRelative(f(x), x * k + x * k) < 1e-15)
    }
}


@Suite struct CompiledScalarAndMinimizeTests {
    @Test func scalarProgramGivesValueAndGradient() throws {
        let f = compiled { (v: [Traced<Double>]) in [v[0] * v[0] + v[1] * v[1] + v[0] * v[1]] }
        let program = try #require(f.scalarProgram(.valueAndGradient, arity: 2))
        var out: [Double] = []
        program.run([1, 3], into: &out)
        #expect(out == [13, 5, 7])
        program.run([-2, 0.5], into: &out)
        let expected: [Double] = [3.25, -3.5, -1]   // f = x² + y² + xy, ∂f/∂x = 2x + y, ∂f/∂y = 2y + x at (−2, ½)
        #expect(out == expected)
        // A program whose values are vectors has no scalar form.
        #expect(compiled { (x: Traced<Double>) in x.broadcast(to: [3]).exp() }.scalarProgram(.value, arity: 1) == nil)
    }

    @Test func compiledMinimizationFollowsTheEagerOne() {
        let f = TestFunction.named("rosenbrock", dimension: 50)!
        let x0 = Tensor<Double>(f.start)
        var options = MinimizeOptions()
        options.checksCurvature = false
        for method in [MinimizationMethod.lbfgs, .newtonCG, .trustRegion] {
            let eager = minimize(f.function, from: x0, method: method, options: options)
            let fast = minimize(f.compiled, from: x0, method: method, options: options)
            #expect(fast.success && eager.success, "\(method)")
            #expect(Swift.abs(fast.value - eager.value) < 1e-8, "\(method)")
            #expect(Swift.abs(fast.evaluations - eager.evaluations) <= eager.evaluations / 20, "\(method): \(fast.evaluations) vs \(eager.evaluations)")
        }
        // An expression compiles too.
        let e = try! Nabla.Expression("(x - 1)^2 + 10*(y + 2)^2 + x*y")
        let r = minimize(e.compiledFunction(), from: Tensor([0, 0]), method: .newton)
        #expect(r.success)
        let (v, g) = e.compiledFunction().valueWithGradient(at: Tensor(r.x))
        #expect(g.scalars.allSatisfy { Swift.abs($0) < 1e-6 } && v.scalar.isFinite)
    }

    @Test func hessianOperatorOfACompiledFunction() {
        let f = TestFunction.named("rosenbrock", dimension: 12)!
        let x = randn([12], seed: 21), v = randn([12], seed: 22)
        let op = HessianOperator(at: x, of: f.compiled), eager = HessianOperator(at: x, of: f.function)
        #expect(Swift.abs(op.value.scalar - eager.value.scalar) < 1e-12 * Swift.abs(eager.value.scalar))
        #expect(CompilerTests.maxRelative(op.gradient, eager.gradient) < 1e-13)
        #expect(CompilerTests.maxRelative(op(v), eager(v)) < 1e-13)
        #expect(CompilerTests.maxRelative(op.matrix(), eager.matrix()) < 1e-13)
    }

    @Test func valueSumAndGradientShareOneKernel() {
        let f = TestFunction.named("rosenbrock", dimension: 100)!.compiled
        let s = f.executable(.valueAndGradient, shapes: [[100]]).summary
        #expect(s.components(separatedBy: "fused kernel").count - 1 == 1, "\(s)")
    }
}

@Suite struct CompiledTrainingTests {
    @Test func compiledClassifierLossMatchesEagerGradients() throws {
        GlobalRandom.seed(3)
        let model = Sequential<Double>(Linear(inputSize: 5, outputSize: 8), Activation(.relu), Linear(inputSize: 8, outputSize: 4),
                                       Activation(.tanh), Linear(inputSize: 4, outputSize: 3))
        let x = randn([6, 5], seed: 4)
        let targets = [0, 2, 1, 1, 0, 2]
        let loss = try #require(CompiledClassifierLoss(model))
        let value = loss.backward(x, targets: targets)
        let compiledGradients = model.parameters.map { $0.gradient! }
        let eager = model.valueWithGradient { $0(x).softmaxCrossEntropy(targets: targets) }
        #expect(Swift.abs(value.scalar - eager.scalar) < 1e-12)
        for (p, g) in zip(model.parameters, compiledGradients) {
            #expect(CompilerTests.maxRelative(g, p.gradient!) < 1e-11)
        }
        // Layers without a compiled form are refused.
        #expect(CompiledClassifierLoss(Sequential<Double>(Linear(inputSize: 2, outputSize: 2), Dropout(probability: 0.5))) == nil)
    }

    /// A Trainer whose steps come from the compiled program follows the eager Trainer: same
    /// losses epoch by epoch and the same weights at the end (penalties and a frozen layer included).
    @Test func trainerWithCompiledStepFollowsEagerTrainer() throws {
        let x = randn([40, 5], seed: 8)
        let v = x.scalars
        let labels: [Int] = (0..<40).map { i in (v[5 * i] > 0 ? 1 : 0) + (v[5 * i + 1] > 0.5 ? 1 : 0) }
        func run(compiled: Bool) throws -> (TrainingHistory, [Tensor<Double>]) {
            let first = Linear<Double>(inputSize: 5, outputSize: 6)
            first.freeze()
            let model = Sequential<Double>(first, Activation(.sigmoid), Linear(inputSize: 6, outputSize: 3))
            // (weights of their own: the global generator is shared with tests running beside this one)
            for (k, p) in model.parameters.enumerated() { p.value = randn(p.shape, seed: UInt64(20 + k)) * 0.5 }
            let weights = model.namedParameters.filter { $0.name.hasSuffix("weight") }.map(\.parameter)
            let trainer = Trainer(model: model, optimizer: Optimizer(rule: Adam(), learningRate: 0.05), trainingCount: 40,
                                  options: TrainingOptions(epochs: 3, batchSize: 16, seed: 2)) { m, rows in
                let out = (m as! Sequential<Double>)(x.indexSelect(axis: 0, indices: rows))
                return out.softmaxCrossEntropy(targets: rows.map { labels[$0] }) + l2Penalty(weights, strength: 0.1) + l1Penalty(weights, strength: 0.01)
            }
            if compiled {
                let loss = try #require(CompiledClassifierLoss(model, l1: 0.01, l2: 0.1))
                loss.attach(to: trainer) { rows in (x.indexSelect(axis: 0, indices: rows), rows.map { labels[$0] }) }
            }
            let history = try trainer.fit()
            #expect(model.parameters[0].gradient == nil, "a frozen layer gets no gradient")
            return (history, model.parameters.map(\.value))
        }
        let (eager, eagerWeights) = try run(compiled: false)
        let (compiled, compiledWeights) = try run(compiled: true)
        #expect(compiled.records.count == 3)
        for (a, b) in zip(compiled.records, eager.records) { #expect(Swift.abs(a.trainLoss - b.trainLoss) < 1e-10 * Swift.max(1, Swift.abs(b.trainLoss))) }
        for (a, b) in zip(compiledWeights, eagerWeights) { #expect(CompilerTests.maxRelative(a, b) < 1e-9) }
        #expect(compiledWeights[0].scalars == eagerWeights[0].scalars)   // frozen: untouched by both
    }
}
