/// What an optimizer remembers about one parameter: named tensors (moments, accumulators, step
/// sizes) and how many steps it has taken. Saving these and the step count restores an
/// optimizer exactly.
public struct ParameterState<Scalar: TensorScalar> {
    /// Steps taken so far (the `t` of the update formulas is `step` during an update, from 1).
    public var step: Int = 0
    /// Named tensors of the rule's state, e.g. `"exp_avg"`, `"exp_avg_sq"`.
    public var slots: [String: Tensor<Scalar>] = [:]

    public init(step: Int = 0, slots: [String: Tensor<Scalar>] = [:]) {
        self.step = step
        self.slots = slots
    }

    /// The slot named `name`, created by `initial` the first time.
    @inlinable public mutating func slot(_ name: String, _ initial: () -> Tensor<Scalar>) -> Tensor<Scalar> {
        if let s = slots[name] { return s }
        let s = initial()
        slots[name] = s
        return s
    }
}

/// One first-order update rule: how a parameter moves given its gradient and its state.
///
/// A rule sees one parameter at a time; ``Optimizer`` walks the parameters, applies the learning
/// rate schedule and the gradient transforms (clipping, weight decay) that chain with any rule.
/// The formulas are those of the established frameworks, with every constant where they put it
/// (see each rule's documentation).
public protocol UpdateRule: Sendable {
    /// Updates `parameter` in place. `state.step` has already been advanced to this step's
    /// number (1 for the first step).
    func update<Scalar: TensorScalar>(_ parameter: inout Tensor<Scalar>, gradient: Tensor<Scalar>,
                                      state: inout ParameterState<Scalar>, learningRate: Double)
}

extension UpdateRule {
    @inlinable static func decayed<Scalar>(_ g: Tensor<Scalar>, _ x: Tensor<Scalar>, _ weightDecay: Double) -> Tensor<Scalar> {
        weightDecay == 0 ? g : g + x * Scalar(weightDecay)
    }

    /// Weight decay the Adam family's way: decoupled (x ← x (1 − lr wd), gradient untouched) or
    /// coupled (wd x added to the gradient).
    @inlinable static func applyWeightDecay<Scalar>(_ x: inout Tensor<Scalar>, _ g: inout Tensor<Scalar>, learningRate lr: Double,
                                                     weightDecay: Double, decoupled: Bool) {
        guard weightDecay != 0 else { return }
        if decoupled { x = x * Scalar(1 - lr * weightDecay) } else { g = g + x * Scalar(weightDecay) }
    }

    /// The first and second moment estimates m = β₁ m + (1 − β₁) g and v = β₂ v + (1 − β₂) g²,
    /// updated in `state`.
    @inlinable static func updateMoments<Scalar>(_ state: inout ParameterState<Scalar>, _ g: Tensor<Scalar>,
                                                  beta1: Double, beta2: Double) -> (m: Tensor<Scalar>, v: Tensor<Scalar>) {
        let b1 = Scalar(beta1), b2 = Scalar(beta2)
        let m = state.slot("exp_avg") { Tensor.zeros(shape: g.shape) } * b1 + g * (1 - b1)
        let v = state.slot("exp_avg_sq") { Tensor.zeros(shape: g.shape) } * b2 + g * g * (1 - b2)
        state.slots["exp_avg"] = m
        state.slots["exp_avg_sq"] = v
        return (m, v)
    }
}
