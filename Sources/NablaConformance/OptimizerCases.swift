import Nabla

/// Evaluators for `optimizers.json`, `schedules.json` and `clipping.json`.
enum OptimizerCases {
    /// The objective of a case with its analytic gradient.
    static func objective(_ c: ReferenceCase, dimension n: Int) throws -> ObjectiveWithGradient {
        guard let o = c.inputs["objective"]?.object, let name = o["name"]?.string else { throw c.fail("missing objective") }
        switch name {
        case "rosenbrock":
            guard let a = o["a"]?.number, let b = o["b"]?.number else { throw c.fail("rosenbrock objective needs a and b") }
            guard n >= 2 else { throw c.fail("rosenbrock needs at least 2 dimensions") }
            return { x in
                var f = 0.0
                var g = [Double](repeating: 0, count: n)
                for i in 0..<(n - 1) {
                    let r = x[i + 1] - x[i] * x[i], s = a - x[i]
                    f += b * r * r + s * s
                    g[i] += -4 * b * x[i] * r - 2 * s
                    g[i + 1] += 2 * b * r
                }
                return (f, g)
            }
        case "quadratic":
            guard let av = o["A"], let bv = o["b"] else { throw c.fail("quadratic objective needs A and b") }
            let a = try ReferenceCase.parseTensor(av, "objective A", c), b = try ReferenceCase.parseTensor(bv, "objective b", c)
            guard a.shape == [n, n], b.shape == [n] else { throw c.fail("quadratic A \(a.shape) and b \(b.shape) do not fit x of length \(n)") }
            return { x in
                var g = [Double](repeating: 0, count: n)
                var f = 0.0
                for i in 0..<n {
                    var ax = 0.0
                    for j in 0..<n { ax += a.data[i * n + j] * x[j] }
                    g[i] = ax - b.data[i]
                    f += 0.5 * x[i] * ax - b.data[i] * x[i]
                }
                return (f, g)
            }
        default: throw c.fail("unknown objective '\(name)'")
        }
    }

    static func pair(_ c: ReferenceCase, _ key: String) throws -> (Double, Double) {
        guard let a = c.config[key]?.array, a.count == 2, let x = a[0].number, let y = a[1].number else {
            throw c.fail("config '\(key)' must be a pair of numbers")
        }
        return (x, y)
    }

    static func rule(_ c: ReferenceCase) throws -> any UpdateRule {
        switch c.kind {
        case "sgd":
            let momentum = try c.number("momentum"), dampening = try c.number("dampening"), nesterov = try c.bool("nesterov")
            if nesterov && (momentum <= 0 || dampening != 0) { throw c.fail("nesterov needs momentum > 0 and dampening 0") }
            return SGD(momentum: momentum, dampening: dampening, nesterov: nesterov, weightDecay: try c.number("weight_decay"))
        case "adagrad":
            return Adagrad(learningRateDecay: try c.number("lr_decay"), weightDecay: try c.number("weight_decay"),
                           initialAccumulatorValue: try c.number("initial_accumulator_value"), epsilon: try c.number("eps"))
        case "rmsprop":
            return RMSprop(alpha: try c.number("alpha"), epsilon: try c.number("eps"), weightDecay: try c.number("weight_decay"),
                           momentum: try c.number("momentum"), centered: try c.bool("centered"))
        case "adadelta":
            return Adadelta(rho: try c.number("rho"), epsilon: try c.number("eps"), weightDecay: try c.number("weight_decay"))
        case "adam", "adamw":
            let (b1, b2) = try pair(c, "betas")
            return Adam(beta1: b1, beta2: b2, epsilon: try c.number("eps"), weightDecay: try c.number("weight_decay"),
                        amsgrad: try c.bool("amsgrad"), decoupledWeightDecay: c.kind == "adamw")
        case "adamax":
            let (b1, b2) = try pair(c, "betas")
            return Adamax(beta1: b1, beta2: b2, epsilon: try c.number("eps"), weightDecay: try c.number("weight_decay"))
        case "nadam":
            let (b1, b2) = try pair(c, "betas")
            return NAdam(beta1: b1, beta2: b2, epsilon: try c.number("eps"), weightDecay: try c.number("weight_decay"),
                         momentumDecay: try c.number("momentum_decay"), decoupledWeightDecay: try c.bool("decoupled_weight_decay"))
        case "radam":
            let (b1, b2) = try pair(c, "betas")
            return RAdam(beta1: b1, beta2: b2, epsilon: try c.number("eps"), weightDecay: try c.number("weight_decay"),
                         decoupledWeightDecay: try c.bool("decoupled_weight_decay"))
        case "rprop":
            let (em, ep) = try pair(c, "etas"), (smin, smax) = try pair(c, "step_sizes")
            return Rprop(etaMinus: em, etaPlus: ep, minimumStep: smin, maximumStep: smax)
        default: throw c.fail("unknown optimizer '\(c.kind)'")
        }
    }

    static func x0(_ c: ReferenceCase) throws -> Tensor<Double> {
        let x = try c.input("x0")
        guard x.rank == 1 else { throw c.fail("x0 must be a vector, got shape \(x.shape)") }
        return x
    }

    @Sendable static func firstOrder(_ c: ReferenceCase) throws -> [String: Tensor<Double>] {
        var x = try x0(c)
        let f = try objective(c, dimension: x.count)
        let steps = try c.int("steps")
        let lr = try c.number("lr")
        guard steps >= 0, lr >= 0 else { throw c.fail("steps and lr must not be negative") }
        var optimizer = Optimizer<Double>(rule: try rule(c), learningRate: lr)
        var rows: [Double] = []
        for _ in 0..<steps {
            let g = f(x.scalars).gradient
            optimizer.step(&x, gradient: Tensor(g))
            rows += x.scalars
        }
        return ["params": Tensor(shape: [steps, x.count], scalars: rows)]
    }

    @Sendable static func lbfgs(_ c: ReferenceCase) throws -> [String: Tensor<Double>] {
        var x = try x0(c).scalars
        let f = try objective(c, dimension: x.count)
        let fn = try c.string("line_search_fn")
        guard fn == "strong_wolfe" else { throw c.fail("line_search_fn '\(fn)' is not supported (only strong_wolfe)") }
        let opt = LBFGS(learningRate: try c.number("lr"), maxIterations: try c.int("max_iter"), maxEvaluations: try c.optionalInt("max_eval"),
                        toleranceGradient: try c.number("tolerance_grad"), toleranceChange: try c.number("tolerance_change"),
                        historySize: try c.int("history_size"))
        let calls = try c.int("step_calls")
        var params: [Double] = [], loss: [Double] = [], returns: [Double] = [], evals: [Double] = [], iters: [Double] = []
        for _ in 0..<calls {
            let r = opt.step(&x, objective: f)
            params += x
            loss.append(f(x).value)
            returns.append(r.initialValue)
            evals.append(Double(opt.evaluations))
            iters.append(Double(opt.iterations))
        }
        return ["params": Tensor(shape: [calls, x.count], scalars: params), "loss": Tensor(loss), "step_return": Tensor(returns),
                "func_evals": Tensor(evals), "n_iter": Tensor(iters)]
    }

    static func schedule(_ c: ReferenceCase) throws -> any LearningRateSchedule {
        switch c.kind {
        case "step_lr": return StepDecay(stepSize: try c.int("step_size"), gamma: try c.number("gamma"))
        case "multi_step_lr": return MultiStepDecay(milestones: try c.ints("milestones"), gamma: try c.number("gamma"))
        case "exponential_lr": return ExponentialDecay(gamma: try c.number("gamma"))
        case "cosine_annealing_lr": return CosineAnnealing(maxSteps: try c.int("T_max"), minimum: try c.number("eta_min"))
        case "cosine_annealing_warm_restarts":
            return CosineAnnealingWarmRestarts(period: try c.int("T_0"), periodMultiplier: try c.int("T_mult"), minimum: try c.number("eta_min"))
        case "linear_lr":
            return LinearSchedule(startFactor: try c.number("start_factor"), endFactor: try c.number("end_factor"), totalSteps: try c.int("total_iters"))
        case "polynomial_lr": return PolynomialDecay(totalSteps: try c.int("total_iters"), power: try c.number("power"))
        case "one_cycle_lr":
            guard let annealing = OneCycle.Annealing(rawValue: try c.string("anneal_strategy")) else { throw c.fail("unknown anneal_strategy") }
            return OneCycle(maxLearningRate: try c.number("max_lr"), totalSteps: try c.int("total_steps"), pctStart: try c.number("pct_start"),
                            annealing: annealing, divFactor: try c.number("div_factor"), finalDivFactor: try c.number("final_div_factor"),
                            threePhase: try c.bool("three_phase"))
        case "cyclic_lr":
            guard let mode = CyclicSchedule.Mode(rawValue: try c.string("mode")) else { throw c.fail("unknown cyclic mode") }
            return CyclicSchedule(baseLearningRate: try c.number("base_lr"), maxLearningRate: try c.number("max_lr"),
                                  stepsUp: try c.int("step_size_up"), stepsDown: try c.optionalInt("step_size_down"),
                                  mode: mode, gamma: try c.number("gamma"))
        default: throw c.fail("unknown schedule '\(c.kind)'")
        }
    }

    @Sendable static func schedules(_ c: ReferenceCase) throws -> [String: Tensor<Double>] {
        let steps = try c.int("steps")
        if c.kind == "reduce_lr_on_plateau" {
            let metrics = try c.input("metrics").scalars
            guard let mode = ReduceLearningRateOnPlateau.Mode(rawValue: try c.string("mode")),
                  let tm = ReduceLearningRateOnPlateau.ThresholdMode(rawValue: try c.string("threshold_mode")) else {
                throw c.fail("unknown mode or threshold_mode")
            }
            var plateau = ReduceLearningRateOnPlateau(learningRate: try c.number("lr"), mode: mode, factor: try c.number("factor"),
                                                      patience: try c.int("patience"), threshold: try c.number("threshold"), thresholdMode: tm,
                                                      cooldown: try c.int("cooldown"), minimum: try c.number("min_lr"), epsilon: try c.number("eps"))
            return ["lrs": Tensor(metrics.prefix(steps).map { plateau.record($0) })]
        }
        let s = try schedule(c)
        let base = try c.optionalNumber("lr") ?? 0
        return ["lrs": Tensor((0..<steps).map { s.learningRate(at: $0, base: base) })]
    }

    @Sendable static func clipping(_ c: ReferenceCase) throws -> [String: Tensor<Double>] {
        var grads = try c.tensorList("grads")
        var out: [String: Tensor<Double>] = [:]
        if c.kind == "clip_grad_norm" {
            let normType: ClipByGlobalNorm.NormType
            if c.config["norm_type"]?.string == "inf" { normType = .infinity } else { normType = .p(try c.number("norm_type")) }
            out["total_norm"] = Tensor(ClipByGlobalNorm(maxNorm: try c.number("max_norm"), normType: normType).clip(&grads))
        } else {
            ClipByValue(try c.number("clip_value")).transform(&grads, parameters: grads)
        }
        for (i, g) in grads.enumerated() { out["grads.\(i)"] = g }
        return out
    }

    static var evaluators: [String: ConformanceRunner.Evaluator] {
        var e: [String: ConformanceRunner.Evaluator] = [:]
        for k in ["sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "adamax", "nadam", "radam", "rprop"] { e[k] = firstOrder }
        e["lbfgs"] = lbfgs
        for k in ["step_lr", "multi_step_lr", "exponential_lr", "cosine_annealing_lr", "cosine_annealing_warm_restarts", "linear_lr",
                  "polynomial_lr", "one_cycle_lr", "cyclic_lr", "reduce_lr_on_plateau"] { e[k] = schedules }
        e["clip_grad_norm"] = clipping
        e["clip_grad_value"] = clipping
        return e
    }
}
