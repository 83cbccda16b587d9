import Nabla
import Testing

struct MethodCase: CustomTestStringConvertible, Sendable {
    let method: MinimizationMethod
    var learningRate: Double? = nil
    var maxIterations = 20000
    /// Largest distance to the minimizer accepted on Rosenbrock.
    var rosenbrockTolerance = 2e-3
    var testDescription: String { method.description }
}

let methodCases: [MethodCase] = [
    .init(method: .gradientDescent), .init(method: .momentum), .init(method: .nesterov), .init(method: .adagrad),
    .init(method: .rmsprop, learningRate: 3e-4), .init(method: .adadelta, learningRate: 1e-2), .init(method: .adam),
    .init(method: .adamw), .init(method: .adamax), .init(method: .nadam), .init(method: .radam), .init(method: .rprop, learningRate: 0.1),
    .init(method: .newton, rosenbrockTolerance: 1e-6), .init(method: .bfgs, rosenbrockTolerance: 1e-6), .init(method: .lbfgs, rosenbrockTolerance: 1e-5),
    .init(method: .conjugateGradient(.fletcherReeves), rosenbrockTolerance: 1e-3), .init(method: .conjugateGradient(.polakRibierePlus), rosenbrockTolerance: 1e-5),
    .init(method: .newtonCG, rosenbrockTolerance: 1e-5), .init(method: .trustRegion, rosenbrockTolerance: 1e-5),
]

func distance(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }

@Suite struct OptimizationTests {
    @Test(arguments: methodCases)
    func convergesOnAConvexQuadratic(_ c: MethodCase) {
        let q = TestFunction.named("quadratic", dimension: 2)!
        var options = MinimizeOptions(maxIterations: c.maxIterations, gradientTolerance: 1e-8, learningRate: c.learningRate)
        options.valueTolerance = 0
        let r = minimize(q.function, from: Tensor(q.start), method: c.method, options: options)
        #expect(distance(r.x, q.minimizer) < 1e-3, "\(r)")
        #expect(r.value - q.minimum < 1e-6, "\(r)")
    }

    @Test(arguments: methodCases)
    func convergesOnRosenbrock(_ c: MethodCase) {
        let f = TestFunction.named("rosenbrock")!
        let r = minimize(f.function, from: Tensor(f.start), method: c.method,
                         options: MinimizeOptions(maxIterations: c.maxIterations, gradientTolerance: 1e-6, learningRate: c.learningRate))
        #expect(distance(r.x, [1, 1]) < c.rosenbrockTolerance, "\(r)")
        #expect(r.status != .diverged)
    }

    @Test func quasiNewtonNeedsFewEvaluationsOnRosenbrock() {
        for n in [2, 100] {  // (at n = 10 the standard start leads BFGS, like SciPy's, to the local minimum f ≈ 3.99)
            let f = TestFunction.named("rosenbrock", dimension: n)!
            for method in [MinimizationMethod.lbfgs, .bfgs] {
                let r = minimize(f.function, from: Tensor(f.start), method: method)
                // L-BFGS stops, as SciPy's L-BFGS-B, when f changes by less than 2.2e-9 relative.
                #expect(r.success && r.value < (method == .lbfgs ? 1e-8 : 1e-10), "\(method) n=\(n): \(r)")
                #expect(r.evaluations < 60 * n + 100, "\(method) n=\(n): \(r)")
            }
        }
    }

    @Test func divergenceIsReportedNotHidden() {
        let f = TestFunction.named("rosenbrock")!
        let r = minimize(f.function, from: Tensor(f.start), method: .gradientDescent, options: MinimizeOptions(learningRate: 0.1))
        #expect(r.status == .diverged)
        #expect(!r.success)
    }

    @Test func randomRestartsKeepTheBestRun() {
        // Rastrigin has many local minima; restarts from random points find a lower one.
        let f = TestFunction.named("rastrigin")!
        let single = minimize(f.function, from: Tensor(f.start), method: .lbfgs)
        var options = MinimizeOptions()
        options.restarts = 15
        options.restartScale = 2
        options.seed = 3
        let many = minimize(f.function, from: Tensor(f.start), method: .lbfgs, options: options)
        #expect(many.runs == 16)
        #expect(many.value <= single.value)
        #expect(many.value < 1)
    }

    @Test func trajectoryAndCallback() {
        let f = TestFunction.named("booth")!
        var options = MinimizeOptions(maxIterations: 100, recordsTrajectory: true)
        var seen = 0
        options.callback = { _ in seen += 1; return seen < 3 }
        let r = minimize(f.function, from: Tensor(f.start), method: .gradientDescent, options: options)
        #expect(r.status == .stopped && r.iterations == 3)
        #expect(r.trajectory.count == 4 && r.trajectory[0].x == f.start)
    }

    // MARK: Constrained

    /// ½‖x − c‖² over the simplex: the minimizer is the projection of c.
    func distanceSquared(to c: [Double]) -> (Tensor<Double>) -> Tensor<Double> {
        let ct = Tensor(c)
        return { x in 0.5 * ((x - ct) * (x - ct)).sum() }
    }

    @Test func projectedGradientReachesTheMinimizerOnAFace() {
        // c = (0.8, 0.6, −0.2) projects onto (0.6, 0.4, 0): on an edge of the simplex.
        var options = MinimizeOptions(maxIterations: 5000, gradientTolerance: 1e-10)
        options.valueTolerance = 0
        let r = minimize(distanceSquared(to: [0.8, 0.6, -0.2]), from: [1, 0, 0], method: .projectedGradient(.simplex(radius: 1)), options: options)
        #expect(distance(r.x, [0.6, 0.4, 0]) < 1e-6, "\(r)")
        #expect(Swift.abs(r.x.reduce(0, +) - 1) < 1e-12 && r.x.allSatisfy { $0 >= 0 })
    }

    @Test(arguments: [FrankWolfeStep.lineSearch, .openLoop])
    func frankWolfeReachesAnInteriorMinimizer(_ step: FrankWolfeStep) {
        // c = (0.6, 0.4, 0.3) projects onto (0.5, 0.3, 0.2), inside the simplex.
        var options = MinimizeOptions(maxIterations: step == .lineSearch ? 5000 : 200_000, gradientTolerance: 1e-12)
        options.valueTolerance = 0
        let r = minimize(distanceSquared(to: [0.6, 0.4, 0.3]), from: [1, 0, 0], method: .frankWolfe(.simplex(radius: 1), step), options: options)
        #expect(distance(r.x, [0.5, 0.3, 0.2]) < (step == .lineSearch ? 1e-6 : 1e-4), "\(r)")
        #expect(r.value - 0.5 * 3 * 0.01 < 1e-8, "\(r)")
    }

    @Test func projectionsOntoTheSets() {
        #expect(ConvexSet.box(lower: -1, upper: 1).project([2, -3, 0.5]) == [1, -1, 0.5])
        #expect(isClose(ConvexSet.l2Ball(radius: 1).project([3, 4]), [0.6, 0.8], tolerance: 1e-15))
        let p = ConvexSet.l1Ball(radius: 1).project([0.8, -0.6, 0.1])
        #expect(isClose(p.map { Swift.abs($0) }.reduce(0, +), 1) && p[1] < 0)
        #expect(ConvexSet.simplex(radius: 2).linearMinimizer([0.3, -1, 0.2]) == [0, 2, 0])
        #expect(ConvexSet.l1Ball(radius: 1).linearMinimizer([0.3, -1, 0.2]) == [0, 1, 0])
    }

    // MARK: Natural gradient

    @Test func naturalGradientBeatsGradientDescentOnIllConditionedLogisticRegression() {
        // Two classes, features on scales 1 and 0.05: plain gradient descent crawls along the small one.
        var rng = RandomGenerator(seed: 5)
        let n = 200
        var xs: [Double] = [], labels: [Int] = []
        for _ in 0..<n {
            let a = rng.nextNormal(), b = 0.05 * rng.nextNormal()
            xs += [a, b]
            labels.append(0.8 * a + 20 * b + 0.3 * rng.nextNormal() > 0 ? 1 : 0)
        }
        let x = Tensor(shape: [n, 2], scalars: xs)
        // Logits of the two classes: [0, wᵀx + b]; θ = (w₁, w₂, b).
        let logits = { (theta: Tensor<Double>) -> Tensor<Double> in
            let z = Tensor.matmul(x, theta.slice(axis: 0, start: 0, end: 2).reshaped(to: [2, 1])) + theta[2]
            return Tensor.concatenate([z * 0, z], axis: 1)
        }
        let loss = { (theta: Tensor<Double>) -> Tensor<Double> in NaturalGradientDescent.loss(logits(theta), labels: labels) }
        let optimum = minimize(loss, from: [0, 0, 0], method: .newton, options: MinimizeOptions(gradientTolerance: 1e-12)).value

        func iterationsToReach(_ step: (inout Tensor<Double>) -> Void) -> Int {
            var theta: Tensor<Double> = [0, 0, 0]
            for k in 1...5000 {
                step(&theta)
                if withoutGradients({ loss(theta) }).scalar - optimum < 1e-4 { return k }
            }
            return 5001
        }
        // Gradient descent at the largest stable step (1/L with L the largest curvature, ≈ 0.25 · 1 for this data).
        let gd = iterationsToReach { theta in
            let g = gradient(at: theta, of: loss)
            theta = withoutGradients { theta - 3.5 * g }
        }
        let ngd = NaturalGradientDescent(learningRate: 1, damping: 1e-6)
        let natural = iterationsToReach { theta in ngd.step(&theta, labels: labels, logits: logits) }
        let empirical = NaturalGradientDescent(learningRate: 1, damping: 1e-6, fisher: .empirical)
        let naturalEmpirical = iterationsToReach { theta in empirical.step(&theta, labels: labels, logits: logits) }
        print("logistic regression to within 1e-4 of the optimum: gradient descent \(gd), natural gradient \(natural) (exact Fisher), \(naturalEmpirical) (empirical Fisher) iterations")
        #expect(natural < 30, "natural gradient: \(natural) iterations")
        #expect(natural * 10 < gd, "natural gradient \(natural) vs gradient descent \(gd) iterations")
        #expect(naturalEmpirical < gd, "empirical Fisher \(naturalEmpirical) vs gradient descent \(gd)")
    }

    // MARK: Schedules and clipping beyond the reference files

    @Test func warmupAndSequentialSchedules() {
        let w = Warmup(steps: 4, startFactor: 0, then: CosineAnnealing(maxSteps: 10))
        #expect(isClose((0..<4).map { w.learningRate(at: $0, base: 1) }, [0, 0.25, 0.5, 0.75]))
        #expect(w.learningRate(at: 4, base: 1) == 1)
        #expect(isClose(w.learningRate(at: 14, base: 1), 0))
        let s = SequentialSchedule([(LinearSchedule(startFactor: 0.5, endFactor: 1, totalSteps: 2), 2), (ExponentialDecay(gamma: 0.5), 10)])
        #expect(isClose((0..<5).map { s.learningRate(at: $0, base: 2) }, [1, 1.5, 2, 1, 0.5]))
    }

    @Test func optimizerChainsClippingWithAnyRuleAndStateRestores() {
        var p: [Tensor<Double>] = [[3, 4], [12]]
        let g: [Tensor<Double>] = [[3, 4], [12]]  // global norm 13
        var opt = Optimizer<Double>(rule: SGD(), learningRate: 1, transforms: [ClipByGlobalNorm(maxNorm: 1.3)])
        opt.step(&p, gradients: g)
        #expect(isClose(p[0].scalars, [3 - 0.3, 4 - 0.4], tolerance: 1e-6) && isClose(p[1].scalars, [12 - 1.2], tolerance: 1e-6))
        // Copying the optimizer (value type) keeps its state: both continue identically.
        var a = Optimizer<Double>(rule: Adam(), learningRate: 0.1)
        var pa: [Tensor<Double>] = [[1, 2]]
        a.step(&pa, gradients: [[0.5, -1]])
        var b = a
        var pb = pa
        a.step(&pa, gradients: [[0.1, 0.2]])
        b.step(&pb, gradients: [[0.1, 0.2]])
        #expect(pa[0].scalars == pb[0].scalars)
        #expect(a.states[0].slots["exp_avg"]!.scalars == b.states[0].slots["exp_avg"]!.scalars)
    }
}
