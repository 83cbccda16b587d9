/// A group of parameters with its own settings inside one ``Optimizer``.
public struct ParameterGroup: Sendable {
    /// Indices into the optimizer's parameter list.
    public var indices: [Int]
    /// Multiplies the optimizer's (scheduled) learning rate for this group.
    public var learningRateScale: Double
    /// A rule for this group instead of the optimizer's.
    public var rule: (any UpdateRule)?

    public init(indices: [Int], learningRateScale: Double = 1, rule: (any UpdateRule)? = nil) {
        self.indices = indices
        self.learningRateScale = learningRateScale
        self.rule = rule
    }
}

/// Moves a list of parameters against their gradients: gradient transforms (clipping, weight
/// decay) in order, then the update rule with the scheduled learning rate.
///
/// ```swift
/// var optimizer = Optimizer<Float>(rule: Adam(), learningRate: 1e-3,
///                                  schedule: CosineAnnealing(maxSteps: 1000),
///                                  transforms: [ClipByGlobalNorm(maxNorm: 1)])
/// optimizer.step(&parameters, gradients: grads)
/// ```
public struct Optimizer<Scalar: TensorScalar> {
    public var rule: any UpdateRule
    /// The base learning rate; a schedule scales it per step.
    public var learningRate: Double
    public var schedule: (any LearningRateSchedule)?
    public var transforms: [any GradientTransform]
    public var groups: [ParameterGroup]
    /// Per-parameter state, in the order of the parameters.
    public var states: [ParameterState<Scalar>] = []
    /// Steps taken.
    public internal(set) var stepCount = 0

    public init(rule: any UpdateRule, learningRate: Double, schedule: (any LearningRateSchedule)? = nil,
                transforms: [any GradientTransform] = [], groups: [ParameterGroup] = []) {
        require(learningRate >= 0 && learningRate.isFinite, "Optimizer: learning rate \(learningRate) must be a finite non-negative number")
        self.rule = rule
        self.learningRate = learningRate
        self.schedule = schedule
        self.transforms = transforms
        self.groups = groups
    }

    /// The learning rate the next step will use.
    public var currentLearningRate: Double {
        schedule.map { $0.learningRate(at: stepCount, base: learningRate) } ?? learningRate
    }

    /// One update of every parameter given its gradient.
    public mutating func step(_ parameters: inout [Tensor<Scalar>], gradients: [Tensor<Scalar>]) {
        require(parameters.count == gradients.count, "Optimizer.step: \(parameters.count) parameters but \(gradients.count) gradients")
        step(&parameters, optionalGradients: gradients)
    }

    /// One update of the parameters that have a gradient; those with `nil` (frozen ones) are left
    /// untouched, state included. Clipping sees only the parameters being updated.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public mutating func step(_ parameters: inout [Tensor<Scalar>], optionalGradients gradients: [Tensor<Scalar>?]) {
        require(parameters.count == gradients.count, "Optimizer.step: \(parameters.count) parameters but \(gradients.count) gradients")
        for (p, g) in zip(parameters, gradients) {
            if let g { require(p.shape == g.shape, "Optimizer.step: gradient of shape \(g.shape) for a parameter of shape \(p.shape)") }
        }
        if states.count != parameters.count { states = parameters.map { _ in ParameterState() } }
        let lr = currentLearningRate
        stepCount += 1
        let active = gradients.indices.filter { gradients[$0] != nil }
        var grads = active.map { gradients[$0]!.detached() }
        withoutGradients {
            let activeParameters = active.map { parameters[$0] }
            for t in transforms { t.transform(&grads, parameters: activeParameters) }
            var groupOf = [Int?](repeating: nil, count: parameters.count)
            for (gi, group) in groups.enumerated() { for i in group.indices { groupOf[i] = gi } }
            for (k, i) in active.enumerated() {
                let group = groupOf[i].map { groups[$0] }
                states[i].step += 1
                // Take the tensor out of the array so that, when nothing else holds it, the rule
                // can update it in place.
                var p = parameters[i].detached()
                parameters[i] = Optimizer.placeholder
                (group?.rule ?? rule).update(&p, gradient: grads[k], state: &states[i], learningRate: lr * (group?.learningRateScale ?? 1))
                parameters[i] = p
            }
        }
    }

    /// One update of a model's trainable parameters from the gradients stored by
    /// ``Module/valueWithGradient(_:)``. State is kept per parameter in the model's order, so
    /// freezing a parameter does not disturb the others' state.
    @_specialize(where Scalar == Float) @_specialize(where Scalar == Double)
    public mutating func step(_ model: Module<Scalar>) {
        let params = model.trainingParameters
        let gradients = params.map { $0.isFrozen ? nil : $0.gradient }
        var values = params.map(\.value)
        for p in params where !p.isFrozen && p.gradient != nil { p.value = Optimizer.placeholder }   // (updated in place)
        step(&values, optionalGradients: gradients)
        for (p, v) in zip(params, values) { p.value = v }
    }

    static var placeholder: Tensor<Scalar> { Tensor(0) }

    /// One update of a single parameter tensor.
    public mutating func step(_ parameter: inout Tensor<Scalar>, gradient: Tensor<Scalar>) {
        var ps = [parameter]
        step(&ps, gradients: [gradient])
        parameter = ps[0]
    }
}
