import Foundation

// The first-order rules. Each follows the formula of the established frameworks exactly (where
// epsilon goes, what the first step does), so trajectories match theirs to rounding.

/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2
/// weight decay. With momentum μ: `buf = g` on the first step, then `buf = μ buf + (1 − τ) g`;
/// the step uses `g + μ buf` (Nesterov) or `buf`.
public struct SGD: UpdateRule {
    public var momentum: Double
    public var dampening: Double
    public var nesterov: Bool
    public var weightDecay: Double

    public init(momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false, weightDecay: Double = 0) {
        require(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov momentum needs momentum > 0 and no dampening")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        var g = Self.decayed(gradient, x, weightDecay)
        if momentum != 0 {
            var buf: Tensor<Scalar>
            if let b = state.slots["momentum_buffer"] {
                buf = b * Scalar(momentum) + g * Scalar(1 - dampening)
            } else {
                buf = g
            }
            state.slots["momentum_buffer"] = buf
            g = nesterov ? g + buf * Scalar(momentum) : buf
        }
        x = x - g * Scalar(lr)
    }
}

/// Adagrad: `sum += g²`, `x -= lr_t g / (√sum + ε)` with `lr_t = lr / (1 + (t − 1) decay)`.
public struct Adagrad: UpdateRule {
    public var learningRateDecay: Double
    public var weightDecay: Double
    public var initialAccumulatorValue: Double
    public var epsilon: Double

    public init(learningRateDecay: Double = 0, weightDecay: Double = 0, initialAccumulatorValue: Double = 0, epsilon: Double = 1e-10) {
        self.learningRateDecay = learningRateDecay
        self.weightDecay = weightDecay
        self.initialAccumulatorValue = initialAccumulatorValue
        self.epsilon = epsilon
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        let g = Self.decayed(gradient, x, weightDecay)
        let clr = lr / (1 + Double(state.step - 1) * learningRateDecay)
        let sum = state.slot("sum") { Tensor(repeating: Scalar(initialAccumulatorValue), shape: x.shape) } + g * g
        state.slots["sum"] = sum
        x = x - g * Scalar(clr) / (sum.squareRoot() + Scalar(epsilon))
    }
}

/// RMSprop: `sq = α sq + (1 − α) g²`, denominator `√sq + ε` (centered: `√(sq − avg²) + ε`), with
/// optional momentum on `g / denominator`.
public struct RMSprop: UpdateRule {
    public var alpha: Double
    public var epsilon: Double
    public var weightDecay: Double
    public var momentum: Double
    public var centered: Bool

    public init(alpha: Double = 0.99, epsilon: Double = 1e-8, weightDecay: Double = 0, momentum: Double = 0, centered: Bool = false) {
        self.alpha = alpha
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.centered = centered
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        let g = Self.decayed(gradient, x, weightDecay)
        let a = Scalar(alpha)
        let sq = state.slot("square_avg") { Tensor.zeros(shape: x.shape) } * a + g * g * (1 - a)
        state.slots["square_avg"] = sq
        var avg: Tensor<Scalar>
        if centered {
            let ga = state.slot("grad_avg") { Tensor.zeros(shape: x.shape) } * a + g * (1 - a)
            state.slots["grad_avg"] = ga
            avg = (sq - ga * ga).squareRoot() + Scalar(epsilon)
        } else {
            avg = sq.squareRoot() + Scalar(epsilon)
        }
        if momentum > 0 {
            let buf = state.slot("momentum_buffer") { Tensor.zeros(shape: x.shape) } * Scalar(momentum) + g / avg
            state.slots["momentum_buffer"] = buf
            x = x - buf * Scalar(lr)
        } else {
            x = x - g * Scalar(lr) / avg
        }
    }
}

/// Adadelta: `δ = √(acc + ε) / √(sq + ε) g` (ε inside both roots), `x -= lr δ`.
public struct Adadelta: UpdateRule {
    public var rho: Double
    public var epsilon: Double
    public var weightDecay: Double

    public init(rho: Double = 0.9, epsilon: Double = 1e-6, weightDecay: Double = 0) {
        self.rho = rho
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        let g = Self.decayed(gradient, x, weightDecay)
        let r = Scalar(rho), eps = Scalar(epsilon)
        let sq = state.slot("square_avg") { Tensor.zeros(shape: x.shape) } * r + g * g * (1 - r)
        let acc = state.slot("acc_delta") { Tensor.zeros(shape: x.shape) }
        let delta = (acc + eps).squareRoot() / (sq + eps).squareRoot() * g
        state.slots["square_avg"] = sq
        state.slots["acc_delta"] = acc * r + delta * delta * (1 - r)
        x = x - delta * Scalar(lr)
    }
}

/// Adam (and AdamW with `decoupledWeightDecay`): bias-corrected moments, ε added after the
/// correction: `x -= (lr / (1 − β₁ᵗ)) m / (√v / √(1 − β₂ᵗ) + ε)`, computed in the equivalent
/// form of Kingma and Ba's section 2, `x -= (lr √(1 − β₂ᵗ) / (1 − β₁ᵗ)) m / (√v + ε √(1 − β₂ᵗ))`
/// (one division per element instead of two). AMSGrad keeps the running
/// maximum of v. Coupled weight decay adds `wd x` to the gradient; decoupled multiplies x by
/// `1 − lr wd` first.
public struct Adam: UpdateRule {
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var weightDecay: Double
    public var amsgrad: Bool
    public var decoupledWeightDecay: Bool

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0,
                amsgrad: Bool = false, decoupledWeightDecay: Bool = false) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.amsgrad = amsgrad
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// AdamW: Adam with decoupled weight decay (default 0.01).
    public static func decoupled(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                                 weightDecay: Double = 0.01, amsgrad: Bool = false) -> Adam {
        Adam(beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, amsgrad: amsgrad, decoupledWeightDecay: true)
    }

    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        if !amsgrad && !isRecordingGradients {
            fusedUpdate(&x, gradient: gradient, state: &state, learningRate: lr)
            return
        }
        var g = gradient
        Self.applyWeightDecay(&x, &g, learningRate: lr, weightDecay: weightDecay, decoupled: decoupledWeightDecay)
        let t = Double(state.step)
        var (m, v) = Self.updateMoments(&state, g, beta1: beta1, beta2: beta2)
        if amsgrad {
            v = Tensor.maximum(state.slot("max_exp_avg_sq") { Tensor.zeros(shape: x.shape) }, v)
            state.slots["max_exp_avg_sq"] = v
        }
        let bc1 = 1 - Foundation.pow(beta1, t), bc2 = 1 - Foundation.pow(beta2, t)
        let denom = v.squareRoot() + Scalar(epsilon * bc2.squareRoot())
        x = x - m * Scalar(lr * bc2.squareRoot() / bc1) / denom
    }
}

extension Adam {
    /// The same update in one pass over the parameter (moments updated in place): each term
    /// rounded as in the op-by-op formula above.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    func fusedUpdate<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        let t = Double(state.step)
        let b1 = Scalar(beta1), b2 = Scalar(beta2)
        let bc1 = 1 - Foundation.pow(beta1, t), bc2 = 1 - Foundation.pow(beta2, t)
        let decoupled = decoupledWeightDecay && weightDecay != 0
        let constants: [Scalar] = [b1, 1 - b1, b2, 1 - b2, decoupledWeightDecay ? 0 : Scalar(weightDecay),
                                   decoupled ? Scalar(1 - lr * weightDecay) : 1, Scalar(lr * bc2.squareRoot() / bc1),
                                   Scalar(epsilon * bc2.squareRoot())]
        var m = state.slots.removeValue(forKey: "exp_avg") ?? Tensor.zeros(shape: x.shape)
        var v = state.slots.removeValue(forKey: "exp_avg_sq") ?? Tensor.zeros(shape: x.shape)
        let n = x.count
        x.withUnsafeMutableBufferPointer { xp in
            m.withUnsafeMutableBufferPointer { mp in
                v.withUnsafeMutableBufferPointer { vp in
                    gradient.withUnsafeBufferPointer { gp in
                        let (x0, g0, m0, v0) = (xp.baseAddress!, gp.baseAddress!, mp.baseAddress!, vp.baseAddress!)
                        ComputeBackend.parallelize(count: n, cost: 4) { lo, hi in
                            Scalar._adam(hi - lo, x0 + lo, g0 + lo, m0 + lo, v0 + lo, constants)
                        }
                    }
                }
            }
        }
        state.slots["exp_avg"] = m
        state.slots["exp_avg_sq"] = v
    }
}

/// Adamax: infinity-norm Adam, `u = max(β₂ u, |g| + ε)`, `x -= (lr / (1 − β₁ᵗ)) m / u`.
public struct Adamax: UpdateRule {
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var weightDecay: Double

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        let g = Self.decayed(gradient, x, weightDecay)
        let b1 = Scalar(beta1)
        let m = state.slot("exp_avg") { Tensor.zeros(shape: x.shape) } * b1 + g * (1 - b1)
        let u = Tensor.maximum(state.slot("exp_inf") { Tensor.zeros(shape: x.shape) } * Scalar(beta2), g.abs() + Scalar(epsilon))
        state.slots["exp_avg"] = m
        state.slots["exp_inf"] = u
        x = x - m * Scalar(lr / (1 - Foundation.pow(beta1, Double(state.step)))) / u
    }
}

/// NAdam: Adam with Nesterov momentum and the momentum schedule
/// `μ_t = β₁ (1 − ½ 0.96^(t ψ))`.
public struct NAdam: UpdateRule {
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var weightDecay: Double
    public var momentumDecay: Double
    public var decoupledWeightDecay: Bool

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0,
                momentumDecay: Double = 0.004, decoupledWeightDecay: Bool = false) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.momentumDecay = momentumDecay
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        var g = gradient
        Self.applyWeightDecay(&x, &g, learningRate: lr, weightDecay: weightDecay, decoupled: decoupledWeightDecay)
        let t = Double(state.step)
        let muT = beta1 * (1 - 0.5 * Foundation.pow(0.96, t * momentumDecay))
        let muNext = beta1 * (1 - 0.5 * Foundation.pow(0.96, (t + 1) * momentumDecay))
        // The running product of μ is kept in Double whatever the parameter's precision.
        let product = Double(state.slot("mu_product") { Tensor<Scalar>(1) }.scalar) * muT
        state.slots["mu_product"] = Tensor(Scalar(product))
        let (m, v) = Self.updateMoments(&state, g, beta1: beta1, beta2: beta2)
        let denom = (v / Scalar(1 - Foundation.pow(beta2, t))).squareRoot() + Scalar(epsilon)
        x = x - g * Scalar(lr * (1 - muT) / (1 - product)) / denom
        x = x - m * Scalar(lr * muNext / (1 - product * muNext)) / denom
    }
}

/// RAdam: Adam with the variance rectification of Liu et al.; an un-adapted momentum step while
/// the rectification term ρ_t ≤ 5.
public struct RAdam: UpdateRule {
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var weightDecay: Double
    public var decoupledWeightDecay: Bool

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0, decoupledWeightDecay: Bool = false) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        var g = gradient
        Self.applyWeightDecay(&x, &g, learningRate: lr, weightDecay: weightDecay, decoupled: decoupledWeightDecay)
        let t = Double(state.step)
        let (m, v) = Self.updateMoments(&state, g, beta1: beta1, beta2: beta2)
        let bc1 = 1 - Foundation.pow(beta1, t), bc2 = 1 - Foundation.pow(beta2, t)
        let mHat = m / Scalar(bc1)
        let rhoInf = 2 / (1 - beta2) - 1
        let rhoT = rhoInf - 2 * t * Foundation.pow(beta2, t) / bc2
        if rhoT > 5 {
            let r = ((rhoT - 4) * (rhoT - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rhoT)).squareRoot()
            x = x - mHat * Scalar(lr * r * bc2.squareRoot()) / (v.squareRoot() + Scalar(epsilon))
        } else {
            x = x - mHat * Scalar(lr)
        }
    }
}

/// Rprop: per-element step sizes that grow by η₊ while the gradient keeps its sign and shrink by
/// η₋ when it flips (no move on a flip), clamped to [minimumStep, maximumStep]. The first step
/// size is the learning rate.
public struct Rprop: UpdateRule {
    public var etaMinus: Double
    public var etaPlus: Double
    public var minimumStep: Double
    public var maximumStep: Double

    public init(etaMinus: Double = 0.5, etaPlus: Double = 1.2, minimumStep: Double = 1e-6, maximumStep: Double = 50) {
        self.etaMinus = etaMinus
        self.etaPlus = etaPlus
        self.minimumStep = minimumStep
        self.maximumStep = maximumStep
    }

    public func update<Scalar: TensorScalar>(_ x: inout Tensor<Scalar>, gradient g: Tensor<Scalar>, state: inout ParameterState<Scalar>, learningRate lr: Double) {
        let prev = state.slot("prev") { Tensor.zeros(shape: x.shape) }
        var step = state.slot("step_size") { Tensor(repeating: Scalar(lr), shape: x.shape) }
        let s = (g * prev).sign()
        let factor = Tensor.where(s .> 0, Tensor(Scalar(etaPlus)), Tensor.where(s .< 0, Tensor(Scalar(etaMinus)), Tensor(1)))
        step = (step * factor).clamped(min: Scalar(minimumStep), max: Scalar(maximumStep))
        let gNew = Tensor.where(s .< 0, Tensor(0), g)
        x = x - gNew.sign() * step
        state.slots["prev"] = gNew
        state.slots["step_size"] = step
    }
}
