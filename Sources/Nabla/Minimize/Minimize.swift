import Foundation

/// Nonlinear conjugate-gradient update formulas.
public enum ConjugateGradientFormula: String, Sendable, CaseIterable {
    case fletcherReeves = "fr"
    case polakRibierePlus = "pr"
}

/// Step sizes for Frank–Wolfe.
public enum FrankWolfeStep: String, Sendable, CaseIterable {
    /// γ_k = 2 / (k + 2).
    case openLoop = "2/(k+2)"
    /// Backtracking on γ ∈ (0, 1] along s − x.
    case lineSearch = "line-search"
}

/// How ``minimize(_:from:method:options:)`` searches.
public enum MinimizationMethod: Sendable, Equatable, CustomStringConvertible {
    case gradientDescent, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, adamax, nadam, radam, rprop
    case newton, bfgs, lbfgs, conjugateGradient(ConjugateGradientFormula), newtonCG, trustRegion
    case projectedGradient(ConvexSet), frankWolfe(ConvexSet, FrankWolfeStep)

    /// Every unconstrained method, by name.
    public static let unconstrained: [MinimizationMethod] = [
        .gradientDescent, .momentum, .nesterov, .adagrad, .rmsprop, .adadelta, .adam, .adamw, .adamax, .nadam, .radam, .rprop,
        .newton, .bfgs, .lbfgs, .conjugateGradient(.fletcherReeves), .conjugateGradient(.polakRibierePlus), .newtonCG, .trustRegion,
    ]

    /// The method's short name (as `nabla minimize --method` takes it).
    public var description: String {
        switch self {
        case .gradientDescent: return "gd"
        case .momentum: return "momentum"
        case .nesterov: return "nesterov"
        case .adagrad: return "adagrad"
        case .rmsprop: return "rmsprop"
        case .adadelta: return "adadelta"
        case .adam: return "adam"
        case .adamw: return "adamw"
        case .adamax: return "adamax"
        case .nadam: return "nadam"
        case .radam: return "radam"
        case .rprop: return "rprop"
        case .newton: return "newton"
        case .bfgs: return "bfgs"
        case .lbfgs: return "lbfgs"
        case .conjugateGradient(let f): return "cg-\(f.rawValue)"
        case .newtonCG: return "newton-cg"
        case .trustRegion: return "trust-region"
        case .projectedGradient: return "projected-gradient"
        case .frankWolfe(_, .openLoop): return "frank-wolfe"
        case .frankWolfe(_, .lineSearch): return "frank-wolfe-ls"
        }
    }

    /// Whether the method works within a constraint set.
    public var isConstrained: Bool {
        switch self {
        case .projectedGradient, .frankWolfe: return true
        default: return false
        }
    }

    /// Whether the method forms an n×n matrix (the Hessian or its inverse) for n variables.
    public var keepsDenseMatrix: Bool { self == .bfgs || self == .newton }

    /// Parses a name (`gd`/`sgd`, `momentum`, `adam`, `lbfgs`, `cg`, `cg-fr`, `newton-cg`, ...);
    /// constrained methods take the set separately. Nil for an unknown name.
    public init?(name: String, constraint: ConvexSet? = nil) {
        let n = name.lowercased()
        if n == "pgd" || n == "projected-gradient" { guard let c = constraint else { return nil }; self = .projectedGradient(c); return }
        if n == "frank-wolfe" || n == "fw" { guard let c = constraint else { return nil }; self = .frankWolfe(c, .openLoop); return }
        if n == "frank-wolfe-ls" || n == "fw-ls" { guard let c = constraint else { return nil }; self = .frankWolfe(c, .lineSearch); return }
        let aliases: [String: MinimizationMethod] = ["sgd": .gradientDescent, "gradient-descent": .gradientDescent, "cg": .conjugateGradient(.polakRibierePlus),
                                                     "l-bfgs": .lbfgs, "newtoncg": .newtonCG, "trust": .trustRegion, "tr": .trustRegion]
        if let m = aliases[n] { self = m; return }
        guard let m = MinimizationMethod.unconstrained.first(where: { $0.description == n }) else { return nil }
        self = m
    }

    /// Whether this is one of the first-order update rules (which take a learning rate).
    public var isFirstOrderRule: Bool {
        switch self {
        case .gradientDescent, .momentum, .nesterov, .adagrad, .rmsprop, .adadelta, .adam, .adamw, .adamax, .nadam, .radam, .rprop: return true
        default: return false
        }
    }

    /// The default step size of the first-order rules and projected gradient.
    var defaultLearningRate: Double {
        switch self {
        // Tuned on the test functions of `TestFunction` (Rosenbrock's curvature reaches ~2600).
        case .gradientDescent, .momentum, .nesterov, .rmsprop, .adamw, .nadam, .radam: return 1e-3
        case .adam, .adamax, .rprop: return 1e-2
        case .adagrad: return 0.5
        case .adadelta: return 1e-2
        default: return 1
        }
    }
}

/// Stopping rules and settings for ``minimize(_:from:method:options:)``.
public struct MinimizeOptions {
    /// Most iterations of one run.
    public var maxIterations = 1000
    /// Most objective evaluations of one run (nil: no limit beyond the iterations).
    public var maxEvaluations: Int?
    /// Stop when max |∂f/∂xᵢ| falls to this (for constrained methods: the gradient mapping, or
    /// the Frank–Wolfe duality gap).
    public var gradientTolerance = 1e-5
    /// Stop when (f_prev − f) ≤ valueTolerance · max(|f_prev|, |f|, 1). Nil: SciPy's defaults,
    /// 2.2e-9 for L-BFGS and off for the other methods (which stop on the gradient).
    public var valueTolerance: Double?
    /// Stop when the step ‖x_{k+1} − x_k‖ falls to this (0: off).
    public var stepTolerance = 0.0
    /// Step size of the first-order rules and projected gradient (nil: the method's default).
    public var learningRate: Double?
    /// Momentum of `momentum` and `nesterov`.
    public var momentum = 0.9
    /// Extra runs from random starting points around the first (x0 + N(0, restartScale²)); the
    /// best result is returned.
    public var restarts = 0
    public var restartScale = 1.0
    public var seed: UInt64 = 0
    /// Keep every iterate in the result.
    public var recordsTrajectory = false
    /// Called after every iteration; return false to stop.
    public var callback: ((MinimizeResult.Point) -> Bool)?
    /// After an unconstrained run converges, examine the curvature there (``CurvatureCheck``) and
    /// report a saddle point in ``MinimizeResult/curvature``.
    public var checksCurvature = true
    /// At a saddle point, step along the direction of descent and minimize again, at most this
    /// many times.
    public var saddleEscapes = 0

    public init(maxIterations: Int = 1000, gradientTolerance: Double = 1e-5, learningRate: Double? = nil,
                recordsTrajectory: Bool = false) {
        self.maxIterations = maxIterations
        self.gradientTolerance = gradientTolerance
        self.learningRate = learningRate
        self.recordsTrajectory = recordsTrajectory
    }
}

/// What ``minimize(_:from:method:options:)`` found, in the manner of SciPy's `OptimizeResult`.
public struct MinimizeResult: CustomStringConvertible {
    public enum Status: String, Sendable {
        case gradientTolerance = "gradient tolerance reached"
        case valueTolerance = "relative change of f below tolerance"
        case stepTolerance = "step below tolerance"
        case maxIterations = "maximum iterations reached"
        case maxEvaluations = "maximum evaluations reached"
        case diverged = "diverged: f or its gradient became infinite or NaN, or f grew without bound"
        case unbounded = "unbounded: f fell without bound (below -1e12 times its start)"
        case lineSearchFailed = "line search failed to decrease f"
        case stopped = "stopped by the callback"
    }
    /// One iterate.
    public struct Point: Sendable {
        public var iteration: Int
        public var x: [Double]
        public var value: Double
        public var gradientNorm: Double
    }

    public var method: MinimizationMethod
    public var x: [Double]
    public var value: Double
    public var gradient: [Double]
    /// Euclidean norm of the gradient at x.
    public var gradientNorm: Double
    public var iterations: Int
    /// Evaluations of f (each with its gradient).
    public var evaluations: Int
    /// Hessians and Hessian-vector products formed.
    public var hessianEvaluations: Int
    public var status: Status
    /// Runs made (1 + restarts).
    public var runs: Int
    /// Every iterate, when asked for.
    public var trajectory: [Point]
    /// What the curvature says about x, after a converged unconstrained run (see
    /// ``MinimizeOptions/checksCurvature``).
    public var curvature: CurvatureCheck?
    /// Saddle points left along their direction of descent (``MinimizeOptions/saddleEscapes``).
    public var saddleEscapes = 0

    /// Whether a convergence test was met (not a limit, divergence or failure).
    public var success: Bool { [.gradientTolerance, .valueTolerance, .stepTolerance].contains(status) }
    public var message: String { status.rawValue }

    public var description: String {
        "\(method): \(success ? "converged" : "stopped") (\(message)) after \(counted(iterations, "iteration")), \(counted(evaluations, "evaluation")); f = \(value), |∇f| = \(gradientNorm)"
            + (curvature.map { $0.isSaddle ? "; \($0.verdict.rawValue)" : "" } ?? "")
    }
}

/// The objective seen by the minimizers: f and its gradient (and curvature) from automatic
/// differentiation, with counters.
final class Objective {
    let function: (Tensor<Double>) -> Tensor<Double>
    /// The compiled form, when minimizing a compiled function: values, gradients, Hessians and
    /// Hessian-vector products come from its programs.
    let compiled: CompiledFunction<Double>?
    let shape: [Int]
    var evaluations = 0
    var hessianEvaluations = 0
    /// The compiled value-and-gradient program, looked up once rather than on every evaluation.
    lazy var valueAndGradientProgram = compiled?.executable(.valueAndGradient, shapes: [shape])

    init(_ function: @escaping (Tensor<Double>) -> Tensor<Double>, shape: [Int], compiled: CompiledFunction<Double>? = nil) {
        self.function = function
        self.shape = shape
        self.compiled = compiled
    }

    func valueAndGradient(_ x: [Double]) -> (value: Double, gradient: [Double]) {
        evaluations += 1
        if let compiled, !x.isEmpty {
            // One run of the program straight from x into the gradient's array.
            let program = valueAndGradientProgram!
            var value = 0.0
            let g = [Double](unsafeUninitializedCapacity: x.count) { g, count in
                x.withUnsafeBufferPointer { xp in
                    withUnsafeMutablePointer(to: &value) { program.run(inputs: [xp.baseAddress!], outputs: [$0, g.baseAddress!]) }
                }
                count = x.count
            }
            return (value, g)
        }
        let (v, g) = Nabla.valueWithGradient(at: Tensor(shape: shape, scalars: x), of: function)
        return (v.scalar, g.scalars)
    }

    func hessian(_ x: [Double]) -> [[Double]] {
        hessianEvaluations += 1
        let n = x.count
        let h = compiled != nil && shape.count == 1
            ? compiled!.hessian(at: Tensor(shape: shape, scalars: x))
            : HessianOperator(at: Tensor(shape: shape, scalars: x), of: function).matrix()
        return (0..<n).map { Array(h.scalars[($0 * n)..<(($0 + 1) * n)]) }
    }

    func hessianOperator(_ x: [Double]) -> ([Double]) -> [Double] {
        if let compiled {
            let at = Tensor(shape: shape, scalars: x)
            return { [self] v in
                self.hessianEvaluations += 1
                return compiled.hessianVectorProduct(at: at, vector: Tensor(shape: self.shape, scalars: v)).scalars
            }
        }
        let op = HessianOperator(at: Tensor(shape: shape, scalars: x), of: function)
        return { [self] v in
            self.hessianEvaluations += 1
            return op(Tensor(shape: self.shape, scalars: v)).scalars
        }
    }
}

/// Minimizes a scalar function of a tensor from `x0` with the chosen method.
///
/// ```swift
/// let rosenbrock = { (x: Tensor<Double>) -> Tensor<Double> in
///     let a = x[0], b = x[1]
///     return (1 - a) * (1 - a) + 100 * (b - a * a) * (b - a * a)
/// }
/// let result = minimize(rosenbrock, from: [-1.2, 1], method: .lbfgs)
/// print(result.x, result.value, result.iterations)
/// ```
public func minimize(_ f: @escaping (Tensor<Double>) -> Tensor<Double>, from x0: Tensor<Double>,
                     method: MinimizationMethod = .lbfgs, options: MinimizeOptions = MinimizeOptions()) -> MinimizeResult {
    minimize(f, compiled: nil, from: x0, method: method, options: options)
}

/// Minimizes a compiled function: every value and gradient is one run of its fused program, and
/// Newton's methods use its compiled Hessian or Hessian-vector products. Same iterates as
/// minimizing the eager function, up to rounding.
///
/// ```swift
/// let f = compiled { (x: Traced<Double>) in ((x - 1) * (x - 1)).sum() + (x.sin() * x).sum() }
/// let result = minimize(f, from: Tensor(repeating: 0, shape: [1000]))
/// ```
public func minimize(_ f: CompiledFunction<Double>, from x0: Tensor<Double>,
                     method: MinimizationMethod = .lbfgs, options: MinimizeOptions = MinimizeOptions()) -> MinimizeResult {
    // The eager form (for the curvature check and saddle escapes): the traced program run op
    // by op, differentiable like any eager code.
    let eager = { (x: Tensor<Double>) in f.executable(.value, shapes: [x.shape]).graph.evaluate([x])[0] }
    return minimize(eager, compiled: f, from: x0, method: method, options: options)
}

func minimize(_ f: @escaping (Tensor<Double>) -> Tensor<Double>, compiled: CompiledFunction<Double>?, from x0: Tensor<Double>,
              method: MinimizationMethod, options: MinimizeOptions) -> MinimizeResult {
    let n = x0.count
    require(!method.keepsDenseMatrix || n <= 46_340,
            "minimize: \(method) forms an n×n matrix, \(Double(n) * Double(n) * 8 / 1e9) GB for \(n) variables; use .lbfgs or .newtonCG")
    var best: MinimizeResult?
    var rng = RandomGenerator(seed: options.seed)
    var totalEvaluations = 0, totalHessians = 0
    for run in 0...Swift.max(0, options.restarts) {
        var start = x0.scalars
        if run > 0 { start = start.map { $0 + options.restartScale * rng.nextNormal() } }
        let objective = Objective(f, shape: x0.shape, compiled: compiled)
        var r = Minimizer(objective: objective, method: method, options: options).run(from: start)
        var escapes = 0
        while options.checksCurvature && r.success && !method.isConstrained {
            let check = CurvatureCheck.examine(f, at: Tensor(shape: x0.shape, scalars: r.x), seed: options.seed)
            r.curvature = check
            guard check.isSaddle, escapes < options.saddleEscapes, let away = escapeSaddle(f, from: r.x, along: check.descentDirection!, shape: x0.shape) else { break }
            // Leave the saddle along its direction of descent and minimize again.
            escapes += 1
            let previous = r
            r = Minimizer(objective: objective, method: method, options: options).run(from: away)
            r.iterations += previous.iterations
            r.trajectory = previous.trajectory + r.trajectory
        }
        r.saddleEscapes = escapes
        r.evaluations = objective.evaluations
        r.hessianEvaluations = objective.hessianEvaluations
        totalEvaluations += r.evaluations
        totalHessians += r.hessianEvaluations
        if best == nil || (r.value.isFinite && !(best!.value <= r.value)) {
            r.runs = run + 1
            best = r
        }
    }
    best!.runs = options.restarts + 1
    best!.evaluations = totalEvaluations
    best!.hessianEvaluations = totalHessians
    return best!
}

/// A point below the saddle `x` along `direction` (steps doubling from ε^{1/3}·scale until f
/// falls clearly), or nil if none within 2⁴⁰ of the first step.
func escapeSaddle(_ f: (Tensor<Double>) -> Tensor<Double>, from x: [Double], along direction: [Double], shape: [Int]) -> [Double]? {
    let f0 = f(Tensor(shape: shape, scalars: x)).scalar
    var step = Foundation.cbrt(Double.ulpOfOne) * Swift.max(1, x.map(Swift.abs).max() ?? 0) * 10
    for _ in 0..<40 {
        let moved = zip(x, direction).map { $0 + step * $1 }
        let f1 = f(Tensor(shape: shape, scalars: moved)).scalar
        if f1.isFinite && f1 < f0 - 1e-8 * Swift.max(1, Swift.abs(f0)) { return moved }
        step *= 2
    }
    return nil
}

/// Runs one method from one starting point.
struct Minimizer {
    let objective: Objective
    let method: MinimizationMethod
    let options: MinimizeOptions

    /// SciPy's defaults: L-BFGS stops on a small relative change of f (ftol = 2.2e-9), the other
    /// methods only on the gradient (or their own tests).
    var valueTolerance: Double {
        options.valueTolerance ?? (method == .lbfgs ? 2.2e-9 : 0)
    }

    /// Shared bookkeeping: trajectory, callback, and the convergence tests.
    final class Progress {
        var trajectory: [MinimizeResult.Point] = []
        var iterations = 0
        var trajectoryStart: Double?
        let options: MinimizeOptions
        init(options: MinimizeOptions) { self.options = options }

        /// Records iterate `x`; returns a status when a test says stop.
        func record(_ x: [Double], _ f: Double, _ g: [Double], previous: (x: [Double], f: Double)?, objective: Objective,
                    valueTolerance: Double, gradientMeasure: Double? = nil) -> MinimizeResult.Status? {
            if options.recordsTrajectory || options.callback != nil {
                let point = MinimizeResult.Point(iteration: iterations, x: x, value: f, gradientNorm: norm2(g))
                if options.recordsTrajectory { trajectory.append(point) }
                if let cb = options.callback, previous != nil, !cb(point) { return .stopped }
            }
            let largest = maxAbs(g)  // NaN when g holds one
            if !f.isFinite || !largest.isFinite { return .diverged }
            if let start = trajectoryStart, f > 1e12 * Swift.max(1, Swift.abs(start)) { return .diverged }
            if let start = trajectoryStart, f < -1e12 * Swift.max(1, Swift.abs(start)) { return .unbounded }
            if !maxAbs(x).isFinite { return .diverged }
            if previous == nil { trajectoryStart = f }
            if (gradientMeasure ?? largest) <= options.gradientTolerance { return .gradientTolerance }
            guard let previous else { return nil }
            if valueTolerance > 0 && (previous.f - f) <= valueTolerance * Swift.max(Swift.abs(previous.f), Swift.abs(f), 1) && f <= previous.f {
                return .valueTolerance
            }
            if options.stepTolerance > 0 && norm2(subtract(x, previous.x)) <= options.stepTolerance { return .stepTolerance }
            if iterations >= options.maxIterations { return .maxIterations }
            if let m = options.maxEvaluations, objective.evaluations >= m { return .maxEvaluations }
            return nil
        }
    }

    /// Records the starting point; the result when a stopping test already holds there.
    func begin(_ progress: Progress, _ x: [Double], _ f: Double, _ g: [Double], gradientMeasure: Double? = nil) -> MinimizeResult? {
        progress.record(x, f, g, previous: nil, objective: objective, valueTolerance: valueTolerance, gradientMeasure: gradientMeasure)
            .map { result(x, f, g, progress, $0) }
    }

    /// Counts and records an accepted iterate; the result when a stopping test fires.
    func accept(_ progress: Progress, _ x: [Double], _ f: Double, _ g: [Double], previous: ([Double], Double),
                gradientMeasure: Double? = nil) -> MinimizeResult? {
        progress.iterations += 1
        return progress.record(x, f, g, previous: previous, objective: objective, valueTolerance: valueTolerance, gradientMeasure: gradientMeasure)
            .map { result(x, f, g, progress, $0) }
    }

    func result(_ x: [Double], _ f: Double, _ g: [Double], _ progress: Progress, _ status: MinimizeResult.Status) -> MinimizeResult {
        MinimizeResult(method: method, x: x, value: f, gradient: g, gradientNorm: norm2(g), iterations: progress.iterations,
                       evaluations: objective.evaluations, hessianEvaluations: objective.hessianEvaluations, status: status,
                       runs: 1, trajectory: progress.trajectory)
    }

    func run(from x0: [Double]) -> MinimizeResult {
        switch method {
        case .lbfgs: return runLBFGS(x0)
        case .bfgs: return runBFGS(x0)
        case .newton: return runNewton(x0)
        case .conjugateGradient(let formula): return runConjugateGradient(x0, formula)
        case .newtonCG: return runNewtonCG(x0)
        case .trustRegion: return runTrustRegion(x0)
        case .projectedGradient(let set): return runProjectedGradient(x0, set)
        case .frankWolfe(let set, let step): return runFrankWolfe(x0, set, step)
        default: return runFirstOrder(x0)
        }
    }

    // MARK: First-order rules

    func runFirstOrder(_ x0: [Double]) -> MinimizeResult {
        let rule: any UpdateRule
        switch method {
        case .momentum: rule = SGD(momentum: options.momentum)
        case .nesterov: rule = SGD(momentum: options.momentum, nesterov: true)
        case .adagrad: rule = Adagrad()
        case .rmsprop: rule = RMSprop()
        case .adadelta: rule = Adadelta()
        case .adam: rule = Adam()
        case .adamw: rule = Adam.decoupled()
        case .adamax: rule = Adamax()
        case .nadam: rule = NAdam()
        case .radam: rule = RAdam()
        case .rprop: rule = Rprop()
        default: rule = SGD()
        }
        var optimizer = Optimizer<Double>(rule: rule, learningRate: options.learningRate ?? method.defaultLearningRate)
        let progress = Progress(options: options)
        var x = Tensor(x0)
        var (f, g) = objective.valueAndGradient(x0)
        if let done = begin(progress, x0, f, g) { return done }
        while true {
            let previous = (x.scalars, f)
            optimizer.step(&x, gradient: Tensor(g))
            (f, g) = objective.valueAndGradient(x.scalars)
            if let done = accept(progress, x.scalars, f, g, previous: previous) { return done }
        }
    }

    // MARK: Quasi-Newton

    func runLBFGS(_ x0: [Double]) -> MinimizeResult {
        let progress = Progress(options: options)
        var x = x0
        let (f0, g0) = objective.valueAndGradient(x0)
        if let done = begin(progress, x0, f0, g0) { return done }
        let lbfgs = LBFGS(learningRate: 1, maxIterations: options.maxIterations, maxEvaluations: options.maxEvaluations ?? Int.max / 2,
                          toleranceGradient: 0, toleranceChange: 0, historySize: 10)
        var status = MinimizeResult.Status.maxIterations
        var previous = (x: x0, f: f0)
        var last = (f: f0, g: g0)
        // The start was evaluated above; L-BFGS's own first evaluation reuses it.
        var cached: (x: [Double], value: Double, gradient: [Double])? = (x0, f0, g0)
        let evaluate: ObjectiveWithGradient = { p in
            if let c = cached, c.x == p { cached = nil; return (c.value, c.gradient) }
            return objective.valueAndGradient(p)
        }
        let r = lbfgs.step(&x, objective: evaluate) { xi, fi, gi in
            progress.iterations += 1
            last = (fi, gi)
            if let s = progress.record(xi, fi, gi, previous: previous, objective: objective, valueTolerance: valueTolerance) {
                status = s
                return false
            }
            // The previous point is only needed by the step-size test (keeping it would copy x).
            previous = (options.stepTolerance > 0 ? xi : [], fi)
            return true
        }
        if r.stop == .notDescent { status = .lineSearchFailed }
        return result(x, last.f, last.g, progress, status)
    }

    /// BFGS on the inverse Hessian, started from the identity, with the Moré–Thuente line search
    /// and the first trial step of each iteration taken from the last decrease of f
    /// (min(1, 2.02 (f − f_prev) / g·d)), as in SciPy's implementation.
    func runBFGS(_ x0: [Double]) -> MinimizeResult {
        let n = x0.count
        let progress = Progress(options: options)
        var x = x0
        var (f, g) = objective.valueAndGradient(x0)
        if let done = begin(progress, x, f, g) { return done }
        var h = [Double](repeating: 0, count: n * n)
        for i in 0..<n { h[i * n + i] = 1 }
        var previousValue = f + norm2(g) / 2
        while true {
            var d = [Double](repeating: 0, count: n)
            h.withUnsafeBufferPointer { hp in
                for i in 0..<n {
                    var s = 0.0
                    for j in 0..<n { s -= hp[i * n + j] * g[j] }
                    d[i] = s
                }
            }
            var gtd = dot(g, d)
            if !(gtd < 0) {  // lost positive definiteness: restart from steepest descent
                for i in 0..<(n * n) { h[i] = 0 }
                for i in 0..<n { h[i * n + i] = 1 }
                d = g.map { -$0 }
                gtd = dot(g, d)
            }
            var t0 = Swift.min(1, 1.01 * 2 * (f - previousValue) / gtd)
            if !(t0 > 0) { t0 = 1 }
            guard let ls = LineSearch.moreThuente(objective.valueAndGradient, x: x, step: t0, direction: d, value: f, slope: gtd)
                    ?? { let r = LineSearch.strongWolfe(objective.valueAndGradient, x: x, step: t0, direction: d, value: f, gradient: g, slope: gtd)
                         return r.value < f ? r : nil }() else {
                return result(x, f, g, progress, .lineSearchFailed)
            }
            let previous = (x, f)
            previousValue = f
            let s = scaled(ls.step, d)
            let y = subtract(ls.gradient, g)
            x = axpy(1, s, x); f = ls.value; g = ls.gradient
            if let done = accept(progress, x, f, g, previous: previous) { return done }
            var ys = dot(y, s)
            if ys == 0 { ys = 1e-3 }  // as SciPy: ρ = 1000 when yᵀs vanishes
            guard ys > 0 else { continue }
            // H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ
            let rho = 1 / ys
            var hy = [Double](repeating: 0, count: n)
            h.withUnsafeBufferPointer { hp in
                for i in 0..<n { var acc = 0.0; for j in 0..<n { acc += hp[i * n + j] * y[j] }; hy[i] = acc }
            }
            let yhy = dot(y, hy)
            let coefficient = (1 + rho * yhy) * rho
            h.withUnsafeMutableBufferPointer { hp in
                for i in 0..<n {
                    for j in 0..<n {
                        hp[i * n + j] += coefficient * s[i] * s[j] - rho * (hy[i] * s[j] + s[i] * hy[j])
                    }
                }
            }
        }
    }

    // MARK: Newton-type

    /// Solves (H + λI) p = −g by Cholesky, raising λ until the factorization succeeds.
    static func dampedNewtonStep(_ h: [[Double]], _ g: [Double]) -> [Double] {
        let n = g.count
        var lambda = 0.0
        let scale = Swift.max(1e-8, h.indices.map { Swift.abs(h[$0][$0]) }.max() ?? 1)
        // λ grows tenfold per try; after 400 tries it has passed any finite scale, and a Hessian
        // that still fails (NaN entries) gives way to steepest descent.
        for _ in 0..<400 {
            var l = [Double](repeating: 0, count: n * n)
            var ok = true
            outer: for i in 0..<n {
                for j in 0...i {
                    var s = h[i][j] + (i == j ? lambda : 0)
                    for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                    if i == j {
                        if s <= 1e-12 * scale { ok = false; break outer }
                        l[i * n + i] = s.squareRoot()
                    } else {
                        l[i * n + j] = s / l[j * n + j]
                    }
                }
            }
            if ok {
                var z = [Double](repeating: 0, count: n)
                for i in 0..<n { var s = -g[i]; for k in 0..<i { s -= l[i * n + k] * z[k] }; z[i] = s / l[i * n + i] }
                var p = [Double](repeating: 0, count: n)
                for i in stride(from: n - 1, through: 0, by: -1) { var s = z[i]; for k in (i + 1)..<Swift.max(n, i + 1) { s -= l[k * n + i] * p[k] }; p[i] = s / l[i * n + i] }
                return p
            }
            lambda = lambda == 0 ? 1e-3 * scale : lambda * 10
        }
        return g.map { -$0 }
    }

    func runNewton(_ x0: [Double]) -> MinimizeResult {
        let progress = Progress(options: options)
        var x = x0
        var (f, g) = objective.valueAndGradient(x0)
        if let done = begin(progress, x, f, g) { return done }
        while true {
            let p = Minimizer.dampedNewtonStep(objective.hessian(x), g)
            let gtd = dot(g, p)
            let d = gtd < 0 ? p : g.map { -$0 }
            let ls = LineSearch.backtracking(objective.valueAndGradient, x: x, step: 1, direction: d, value: f, slope: dot(g, d))
            if !(ls.value <= f) { return result(x, f, g, progress, .lineSearchFailed) }
            let previous = (x, f)
            x = axpy(ls.step, d, x); f = ls.value; g = ls.gradient
            if let done = accept(progress, x, f, g, previous: previous) { return done }
        }
    }

    func runConjugateGradient(_ x0: [Double], _ formula: ConjugateGradientFormula) -> MinimizeResult {
        let progress = Progress(options: options)
        var x = x0
        var (f, g) = objective.valueAndGradient(x0)
        if let done = begin(progress, x, f, g) { return done }
        var d = g.map { -$0 }
        var t = Swift.min(1, 1 / Swift.max(maxAbs(g), 1e-300))
        while true {
            var gtd = dot(g, d)
            if gtd >= 0 { d = g.map { -$0 }; gtd = dot(g, d) }
            let ls = LineSearch.strongWolfe(objective.valueAndGradient, x: x, step: t, direction: d, value: f, gradient: g, slope: gtd, c2: 0.1)
            if !(ls.value < f) && ls.step == 0 { return result(x, f, g, progress, .lineSearchFailed) }
            let previous = (x, f)
            x = axpy(ls.step, d, x)
            let gNew = ls.gradient
            let beta: Double
            switch formula {
            case .fletcherReeves: beta = dot(gNew, gNew) / dot(g, g)
            case .polakRibierePlus: beta = Swift.max(0, dot(gNew, subtract(gNew, g)) / dot(g, g))
            }
            // The next trial step keeps the last step's length along the new direction.
            let newD = axpy(beta, d, gNew.map { -$0 })
            t = Swift.min(1, Swift.max(1e-10, ls.step * Swift.max(norm2(d), 1e-300) / Swift.max(norm2(newD), 1e-300)))
            d = newD
            f = ls.value; g = gNew
            if let done = accept(progress, x, f, g, previous: previous) { return done }
        }
    }

    /// Truncated Newton: CG on H p = −g with Hessian-vector products, stopped at a relative
    /// residual of min(0.5, √‖g‖) or at negative curvature; then a backtracking line search.
    func runNewtonCG(_ x0: [Double]) -> MinimizeResult {
        let progress = Progress(options: options)
        var x = x0
        var (f, g) = objective.valueAndGradient(x0)
        if let done = begin(progress, x, f, g) { return done }
        while true {
            let hv = objective.hessianOperator(x)
            let gNorm = norm2(g)
            let tolerance = Swift.min(0.5, gNorm.squareRoot()) * gNorm
            var p = [Double](repeating: 0, count: x.count)
            var r = g.map { -$0 }
            var dir = r
            var rr = dot(r, r)
            for i in 0..<(10 * x.count + 10) {
                let hd = hv(dir)
                let curvature = dot(dir, hd)
                if curvature <= 1e-12 * dot(dir, dir) {
                    if i == 0 { p = g.map { -$0 } }
                    break
                }
                let alpha = rr / curvature
                p = axpy(alpha, dir, p)
                r = axpy(-alpha, hd, r)
                let rrNew = dot(r, r)
                if rrNew.squareRoot() <= tolerance { break }
                dir = axpy(rrNew / rr, dir, r)
                rr = rrNew
            }
            let ls = LineSearch.backtracking(objective.valueAndGradient, x: x, step: 1, direction: p, value: f, slope: dot(g, p))
            if !(ls.value <= f) { return result(x, f, g, progress, .lineSearchFailed) }
            let previous = (x, f)
            x = axpy(ls.step, p, x); f = ls.value; g = ls.gradient
            if let done = accept(progress, x, f, g, previous: previous) { return done }
        }
    }

    /// Trust region with the Steihaug–Toint truncated CG subproblem solver (Hessian-vector
    /// products only). The radius grows after good steps and shrinks after poor ones.
    func runTrustRegion(_ x0: [Double]) -> MinimizeResult {
        let progress = Progress(options: options)
        var x = x0
        var (f, g) = objective.valueAndGradient(x0)
        if let done = begin(progress, x, f, g) { return done }
        var radius = 1.0
        let maxRadius = 1e3
        var rejected = 0
        while true {
            let hv = objective.hessianOperator(x)
            // Steihaug CG for min gᵀp + ½ pᵀHp, ‖p‖ ≤ radius.
            var p = [Double](repeating: 0, count: x.count)
            var r = g
            var d = g.map { -$0 }
            let tolerance = Swift.min(0.5, norm2(g).squareRoot()) * norm2(g)
            var hitBoundary = false
            func toBoundary(_ p: [Double], _ d: [Double]) -> [Double] {
                let a = dot(d, d), b = 2 * dot(p, d), c = dot(p, p) - radius * radius
                let tau = (-b + (b * b - 4 * a * c).squareRoot()) / (2 * a)
                return axpy(tau, d, p)
            }
            for _ in 0..<(10 * x.count + 10) {
                let hd = hv(d)
                let curvature = dot(d, hd)
                if curvature <= 0 { p = toBoundary(p, d); hitBoundary = true; break }
                let alpha = dot(r, r) / curvature
                let pNext = axpy(alpha, d, p)
                if norm2(pNext) >= radius { p = toBoundary(p, d); hitBoundary = true; break }
                let rNext = axpy(alpha, hd, r)
                p = pNext
                if norm2(rNext) <= tolerance { r = rNext; break }
                d = axpy(dot(rNext, rNext) / dot(r, r), d, rNext.map { -$0 })
                r = rNext
            }
            let predicted = -(dot(g, p) + 0.5 * dot(p, hv(p)))
            let xNew = axpy(1, p, x)
            let (fNew, gNew) = objective.valueAndGradient(xNew)
            let ratio = predicted > 0 ? (f - fNew) / predicted : -1
            if ratio < 0.25 { radius *= 0.25 } else if ratio > 0.75 && hitBoundary { radius = Swift.min(2 * radius, maxRadius) }
            if ratio > 0.1 && fNew.isFinite {
                let previous = (x, f)
                x = xNew; f = fNew; g = gNew
                rejected = 0
                if let done = accept(progress, x, f, g, previous: previous) { return done }
            } else {
                rejected += 1
                if radius < 1e-14 || rejected > 60 { return result(x, f, g, progress, .lineSearchFailed) }
            }
        }
    }

    // MARK: Constrained

    /// Projected gradient descent with a backtracking step: x⁺ = P(x − t g), t halved until
    /// f(x⁺) ≤ f(x) + gᵀ(x⁺ − x) + ‖x⁺ − x‖² / 2t. Converged when the gradient mapping
    /// ‖x⁺ − x‖ / t falls to the gradient tolerance.
    func runProjectedGradient(_ x0: [Double], _ set: ConvexSet) -> MinimizeResult {
        let progress = Progress(options: options)
        var x = set.project(x0)
        var (f, g) = objective.valueAndGradient(x)
        if let done = begin(progress, x, f, g, gradientMeasure: .infinity) { return done }
        var t = options.learningRate ?? 1
        while true {
            var xNew: [Double], fNew: Double, gNew: [Double]
            var tries = 0
            repeat {
                xNew = set.project(axpy(-t, g, x))
                (fNew, gNew) = objective.valueAndGradient(xNew)
                let dx = subtract(xNew, x)
                if fNew.isFinite && fNew <= f + dot(g, dx) + dot(dx, dx) / (2 * t) + 1e-15 * Swift.abs(f) { break }
                t *= 0.5
                tries += 1
            } while tries < 60
            let mapping = norm2(subtract(xNew, x)) / t
            let previous = (x, f)
            x = xNew; f = fNew; g = gNew
            if let done = accept(progress, x, f, g, previous: previous, gradientMeasure: mapping) { return done }
            t *= 2  // let the step grow back
        }
    }

    /// Frank–Wolfe (conditional gradient): s = argmin over the set of ⟨g, s⟩, x ← x + γ(s − x).
    /// Converged when the duality gap ⟨g, x − s⟩ (an upper bound on f(x) − f*) falls to the
    /// gradient tolerance.
    func runFrankWolfe(_ x0: [Double], _ set: ConvexSet, _ rule: FrankWolfeStep) -> MinimizeResult {
        let progress = Progress(options: options)
        var x = set.project(x0)
        var (f, g) = objective.valueAndGradient(x)
        var s = set.linearMinimizer(g)
        var gap = dot(g, subtract(x, s))
        if let done = begin(progress, x, f, g, gradientMeasure: gap) { return done }
        while true {
            let d = subtract(s, x)
            let k = Double(progress.iterations)
            var gamma: Double
            var fNew: Double, gNew: [Double]
            switch rule {
            case .openLoop:
                gamma = 2 / (k + 2)
                (fNew, gNew) = objective.valueAndGradient(axpy(gamma, d, x))
            case .lineSearch:
                let ls = LineSearch.backtracking(objective.valueAndGradient, x: x, step: 1, direction: d, value: f, slope: -gap, c1: 0.5)
                gamma = ls.step; fNew = ls.value; gNew = ls.gradient
            }
            let previous = (x, f)
            x = axpy(gamma, d, x); f = fNew; g = gNew
            s = set.linearMinimizer(g)
            gap = dot(g, subtract(x, s))
            if let done = accept(progress, x, f, g, previous: previous, gradientMeasure: gap) { return done }
        }
    }
}
