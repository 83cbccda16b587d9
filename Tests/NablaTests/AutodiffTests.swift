import Nabla
import Testing

@Suite struct AutodiffTests {
    let f = { (v: Tensor<Double>) -> Tensor<Double> in
        let x = v[0], y = v[1]
        return x * x + y * y + x * y
    }

    @Test func theClassicGradient() {
        let (value, g) = valueWithGradient(at: [1, 3], of: f)
        #expect(value.scalar == 13)
        #expect(g.scalars == [5, 7])
        #expect(g.norm().scalar == 74.0.squareRoot())
        #expect(isClose((g / g.norm()).scalars, [5 / 74.0.squareRoot(), 7 / 74.0.squareRoot()]))
    }

    @Test func hessianAndHessianVectorProduct() {
        let h = hessian(at: [1, 3], of: f)
        #expect(h.scalars == [2, 1, 1, 2])
        let hv = hessianVectorProduct(at: [1, 3], vector: [1, -2], of: f)
        #expect(hv.scalars == [0, -3])
    }

    @Test func higherOrderDerivativesOfOneVariable() {
        // f(x) = x³ sin(x): f' = 3x² sin x + x³ cos x; f'' = 6x sin x + 6x² cos x − x³ sin x.
        let g3 = { (x: Tensor<Double>) -> Tensor<Double> in (x * x * x * x.sin()).sum() }
        let x: Tensor<Double> = [0.7]
        let d1 = gradient(at: x, of: g3).scalar
        let d2 = gradient(at: x) { gradient(at: $0, of: g3).sum() }.scalar
        let d3 = gradient(at: x) { y in gradient(at: y) { gradient(at: $0, of: g3).sum() }.sum() }.scalar
        let v = 0.7, s = Foundation_sin(v), c = Foundation_cos(v)
        #expect(Swift.abs(d1 - (3 * v * v * s + v * v * v * c)) < 1e-14)
        #expect(Swift.abs(d2 - (6 * v * s + 6 * v * v * c - v * v * v * s)) < 1e-13)
        // f''' = 6 sin x + 18 x cos x − 9 x² sin x − x³ cos x
        #expect(Swift.abs(d3 - (6 * s + 18 * v * c - 9 * v * v * s - v * v * v * c)) < 1e-12)
    }

    @Test func jacobianByRowsAndByColumnsAgree() {
        let g = { (x: Tensor<Double>) -> Tensor<Double> in Tensor.stack([x[0] * x[1], x[1].exp() + x[2], (x * x).sum()]) }
        let x: Tensor<Double> = [1, 2, 3]
        let rows = jacobian(at: x, mode: .byRows, of: g)
        let columns = jacobian(at: x, mode: .byColumns, of: g)
        let e2 = Foundation_exp(2.0)
        #expect(rows.shape == [3, 3])
        #expect(isClose(rows.scalars, [2, 1, 0, 0, e2, 1, 2, 4, 6], tolerance: 1e-15))
        #expect(isClose(columns.scalars, rows.scalars, tolerance: 1e-15))
    }

    @Test func forwardModeGivesDirectionalDerivatives() {
        let (value, d) = valueWithDifferential(at: [1, 3], tangent: [0.6, 0.8], of: f)
        #expect(value.scalar == 13)
        #expect(Swift.abs(d.scalar - (5 * 0.6 + 7 * 0.8)) < 1e-14)
        // Forward over reverse: J of the gradient times t is H t.
        let ht = jvp(at: [1, 3], tangent: [1, -2], of: gradient(of: f))
        #expect(ht.scalars == [0, -3])
    }

    @Test func vjpWithAGeneralCotangent() {
        let x = randn([3, 4], seed: 1), c = randn([4], seed: 2)
        let got = vjp(at: x, cotangent: c) { $0.tanh().sum(axis: 0) }
        let expected = (1 - x.tanh() * x.tanh()) * c
        #expect(isClose(got, expected, tolerance: 1e-14))
    }

    @Test func gradientsWithRespectToASubsetAndToIntermediates() {
        let a = Tensor<Double>([1, 2]).requiringGradient(), b = Tensor<Double>([3, 4]).requiringGradient()
        let h = a * b
        let out = (h * h).sum()
        let grads = gradients(of: out, wrt: [b, h])
        #expect(grads[0].scalars == [6.0, 32.0])  // d/db (ab)² = 2 a² b
        #expect(grads[1].scalars == [6, 16])
        let unrelated = Tensor<Double>([5]).requiringGradient()
        #expect(gradients(of: out, wrt: [unrelated])[0].scalars == [0])
    }

    @Test func stopGradientAndNoGradientRegions() {
        let g = gradient(at: Tensor<Double>([2])) { x in (x * x.detached()).sum() }
        #expect(g.scalars == [2])  // only the first factor is differentiated
        let x = Tensor<Double>([2]).requiringGradient()
        let y = withoutGradients { x * x }
        #expect(!y.isDifferentiable)
        #expect((x * x).isDifferentiable)
    }

    @Test func userRegisteredDerivativeRules() {
        // A straight-through rounding: forward rounds, backward passes the gradient unchanged.
        func roundStraightThrough(_ x: Tensor<Double>) -> Tensor<Double> {
            let rounded = Tensor(shape: x.shape, scalars: x.scalars.map { $0.rounded() })
            return Tensor.recording("round_ste", inputs: [x], output: rounded) { g in [g] }
        }
        let (v, g) = valueWithGradient(at: [0.4, 1.6]) { x in (roundStraightThrough(x) * x).sum() }
        #expect(v.scalar == 0 * 0.4 + 2 * 1.6)
        #expect(g.scalars == [0 + 0.4, 2 + 1.6])
        // A rule written with tensor ops is differentiable again: softsign with its own derivative.
        func softsign(_ x: Tensor<Double>) -> Tensor<Double> {
            let out = withoutGradients { x / (1 + x.abs()) }
            return Tensor.recording("softsign", inputs: [x], output: out) { g in
                let d = 1 + x.abs()
                return [g / (d * d)]
            }
        }
        let report = GradientCheck.dotProductTest(at: [randn([5], seed: 4)]) { gradient(at: $0[0]) { softsign($0).sum() } }
        #expect(report.passed, "\(report)")
    }

    @Test func numericalGradientCheckerCatchesAWrongRule() {
        func wrongSquare(_ x: Tensor<Double>) -> Tensor<Double> {
            Tensor.recording("wrong_square", inputs: [x], output: withoutGradients { x * x }) { g in [g * x] }  // should be 2x
        }
        let report = GradientCheck.dotProductTest(at: [randn([4], seed: 9)]) { wrongSquare($0[0]) }
        #expect(!report.passed)
        let numeric = GradientCheck.numericalGradient(at: [1.5, -2]) { ($0 * $0 * $0).sum() }
        #expect(isClose(numeric.scalars, [6.75, 12], tolerance: 1e-8))
    }

    @Test func floatGradientsAgreeWithDouble() {
        let x = randn([6], seed: 5)
        let gd = gradient(at: x) { ($0.sigmoid() * $0.sin()).sum() }
        let gf = gradient(at: Tensor<Float>(converting: x)) { ($0.sigmoid() * $0.sin()).sum() }
        #expect(isClose(Tensor<Double>(converting: gf), gd, tolerance: 1e-6))
    }
}

@Suite struct IndexingGradientTests {
    @Test func embeddingPaddingRowGetsNoGradient() {
        let w = randn([4, 2], seed: 8)
        let idx = IndexTensor(shape: [3], values: [1, 2, 1])
        let (out, grad) = valueWithGradient(at: w) { w in (w.embeddingLookup(idx, paddingIndex: 1) * Tensor<Double>([1, 2])).sum() }
        #expect(isClose(out.scalar, (w[1].scalars[0] + 2 * w[1].scalars[1]) * 2 + w[2].scalars[0] + 2 * w[2].scalars[1]))
        #expect(grad.scalars == [0, 0, 0, 0, 1, 2, 0, 0])
    }
}

@Suite struct MisuseTests {
    @Test func incompatibleShapesStopWithAMessageNamingTheOpAndShapes() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let a = Tensor<Double>.zeros(shape: [2, 3]), b = Tensor<Double>.zeros(shape: [4])
            _ = a + b
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("add: shapes [2, 3] and [4] cannot be broadcast together"))
        }
    }

    @Test func matmulInnerDimensionMismatchNamesTheShapes() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.matmul(Tensor<Float>.zeros(shape: [2, 3]), Tensor<Float>.zeros(shape: [4, 5]))
        }.map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("matmul: inner dimensions differ: [2, 3] × [4, 5]"))
        }
    }
}

@Suite struct HessianOperatorTests {
    @Test func manyProductsAtOnePointAgreeWithTheMatrix() {
        // Chained Rosenbrock, n = 6, at a random point.
        let f = { (x: Tensor<Double>) -> Tensor<Double> in
            let head = x.slice(axis: 0, start: 0, end: 5), tail = x.slice(axis: 0, start: 1, end: 6)
            let r = tail - head * head, s = 1 - head
            return (100 * r * r + s * s).sum()
        }
        let x = randn([6], seed: 21)
        let op = HessianOperator(at: x, of: f)
        let h = op.matrix()
        #expect(isClose(h, hessian(at: x, of: f), tolerance: 1e-14))
        #expect(isClose(op.gradient, gradient(at: x, of: f), tolerance: 1e-14))
        for seed in 0..<3 as Range<UInt64> {
            let v = randn([6], seed: 100 + seed)
            #expect(isClose(op(v), Tensor.matmul(h, v), tolerance: 1e-12))
        }
        // Symmetric, with the analytic diagonal entry H[0][0] = 1200 x0² − 400 x1 + 2.
        let x0 = x.scalars[0], x1 = x.scalars[1]
        #expect(isClose(h.scalars[0], 1200 * x0 * x0 - 400 * x1 + 2))
        #expect(isClose(h, h.T, tolerance: 1e-14))
    }
}

@Suite struct ScalarTapeTests {
    @Test func classicGradientAndMagnitude() {
        let (value, g) = ScalarTape.valueWithGradient(at: [1, 3]) { v in v[0] * v[0] + v[1] * v[1] + v[0] * v[1] }
        #expect(value == 13 && g == [5, 7])
        #expect(isClose((g[0] * g[0] + g[1] * g[1]).squareRoot(), 74.0.squareRoot()))
    }

    @Test func everyOperationMatchesTensorAutodiff() {
        let point = [0.7, -1.3, 2.1]
        let tape = ScalarTape()
        let (value, g) = tape.valueWithGradient(at: point) { v in
            let (x, y, z) = (v[0], v[1], v[2])
            let a = (x * y - z / (1 + x * x)).tanh() + (2 - y).exp() / z
            let b = (z.log() + (x * x + 1).squareRoot()).sin() * y.cos() - 3 * x.sigmoid() + (y / 2).abs()
            return a * b + ScalarTape.Variable.pow(z, x) + z.pow(1.5) - y.tan() * 0.25 + (-x) / 4
        }
        let f = { (t: Tensor<Double>) -> Tensor<Double> in
            let (x, y, z) = (t[0], t[1], t[2])
            let a = (x * y - z / (1 + x * x)).tanh() + (2 - y).exp() / z
            let b = (z.log() + (x * x + 1).squareRoot()).sin() * y.cos() - 3 * x.sigmoid() + (y / 2).abs()
            return a * b + Tensor.pow(z, x) + z.pow(1.5) - y.tan() * 0.25 + (-x) / 4
        }
        let (tv, tg) = valueWithGradient(at: Tensor(point), of: f)
        #expect(isClose(value, tv.scalar, tolerance: 1e-14))
        #expect(isClose(g, tg.scalars, tolerance: 1e-13))
        #expect(isClose(g, GradientCheck.numericalGradient(at: Tensor(point), of: f).scalars, tolerance: 1e-7))
    }
}
