import Foundation

/// A policy (and optionally a value function) for an action space: the actor maps observations
/// to logits (discrete actions: a categorical distribution) or to means (box actions: a
/// Gaussian with a state-independent, learned log standard deviation); the critic, if any, maps
/// observations to one value.
public final class ActorCritic: Module<Float> {
    public let actor: Sequential<Float>
    public let critic: Sequential<Float>?
    /// The Gaussian's log standard deviation per action component (box actions only).
    public let logStd: Parameter<Float>?
    public let actionSpace: ActionSpace

    public init(actor: Sequential<Float>, critic: Sequential<Float>?, actionSpace: ActionSpace, initialLogStd: Float = 0) {
        (self.actor, self.critic, self.actionSpace) = (actor, critic, actionSpace)
        if case .box(let low, _) = actionSpace { logStd = Parameter(Tensor(repeating: initialLogStd, shape: [low.count])) } else { logStd = nil }
        super.init()
    }

    /// Multilayer perceptrons: the actor observation → hidden… → action size, the critic (if
    /// `critic`) observation → hidden… → 1, with `activation` between layers. `orthogonal`
    /// initializes as the common PPO implementations do: orthogonal weights with gain √2 in the
    /// hidden layers, 0.01 at the actor's output and 1 at the critic's, zero biases; otherwise
    /// ``Linear``'s default.
    public convenience init(observationSize: Int, actionSpace: ActionSpace, hidden: [Int], activation: Activation<Float>.Kind = .tanh,
                            critic: Bool, orthogonal: Bool = true, initialLogStd: Float = 0) {
        require(observationSize > 0 && hidden.allSatisfy { $0 > 0 } && actionSpace.size > 0,
                "ActorCritic: observation size \(observationSize), hidden \(hidden), action space \(actionSpace)")
        func linear(_ i: Int, _ o: Int, gain: Double) -> Linear<Float> {
            orthogonal ? Linear(inputSize: i, outputSize: o, weightInitializer: .orthogonal(gain: gain), biasInitializer: .zeros) : Linear(inputSize: i, outputSize: o)
        }
        func mlp(_ out: Int, outputGain: Double) -> Sequential<Float> {
            var layers: [any Layer<Float>] = []
            var width = observationSize
            for h in hidden { layers += [linear(width, h, gain: 2.0.squareRoot()), Activation<Float>(activation)]; width = h }
            layers.append(linear(width, out, gain: outputGain))
            return Sequential(layers)
        }
        self.init(actor: mlp(actionSpace.size, outputGain: 0.01), critic: critic ? mlp(1, outputGain: 1) : nil, actionSpace: actionSpace,
                  initialLogStd: initialLogStd)
    }

    /// The actor's outputs for observations [n, observationSize]: logits or means [n, actionSize].
    public func head(_ observations: Tensor<Float>) -> Tensor<Float> {
        let out = actor(observations)
        require(out.rank == 2 && out.shape[1] == actionSpace.size,
                "ActorCritic: the actor gives \(out.shape) for observations \(observations.shape); the action space \(actionSpace) needs [rows, \(actionSpace.size)]")
        return out
    }

    /// The critic's values [n].
    public func values(_ observations: Tensor<Float>) -> Tensor<Float> {
        guard let critic else { usageFailure("ActorCritic.values: this policy has no critic") }
        let v = critic(observations)
        require(v.rank == 2 && v.shape[1] == 1, "ActorCritic.values: the critic gives \(v.shape) for observations \(observations.shape); it must be [rows, 1]")
        return v.reshaped(to: [v.shape[0]])
    }

    /// log π(a | s) [n] of actions taken, from the actor's outputs (`head`): discrete actions
    /// as one-hot rows [n, k], box actions as [n, d].
    public func logProbability(head: Tensor<Float>, actions: Tensor<Float>) -> Tensor<Float> {
        switch actionSpace {
        case .discrete:
            return (head.logSoftmax(axis: 1) * actions).sum(axes: [1])
        case .box:
            let logStd = self.logStd!.value
            let z = (actions - head) * (-logStd).exp()
            let perComponent = z * z * -0.5 - logStd - Float(0.5 * Foundation.log(2 * Double.pi))
            return perComponent.sum(axes: [1])
        }
    }

    /// The entropy of each row's distribution [n].
    public func entropy(head: Tensor<Float>) -> Tensor<Float> {
        switch actionSpace {
        case .discrete:
            let logP = head.logSoftmax(axis: 1)
            return -(logP.exp() * logP).sum(axes: [1])
        case .box:
            let perRow = (logStd!.value + Float(0.5 + 0.5 * Foundation.log(2 * Double.pi))).sum()
            return perRow * Tensor<Float>(repeating: 1, shape: [head.shape[0]])
        }
    }

    /// Draws one action per row of the actor's outputs (or takes the most likely one, if
    /// `deterministic`): discrete actions as indices, box actions as vectors (not clipped).
    public func sample(head: Tensor<Float>, deterministic: Bool = false, using generator: inout RandomGenerator) -> [Action] {
        let (n, k) = (head.shape[0], head.shape[1])
        let h = head.scalars
        switch actionSpace {
        case .discrete:
            return (0..<n).map { i in
                let row = h[(i * k)..<((i + 1) * k)]
                let top = row.max()!
                if deterministic { return .discrete(row.firstIndex(of: top)! - i * k) }
                let weights = row.map { Foundation.exp(Double($0 - top)) }
                var u = generator.nextUniform() * weights.reduce(0, +)
                for (a, w) in weights.enumerated() {
                    u -= w
                    if u < 0 { return .discrete(a) }
                }
                return .discrete(k - 1)
            }
        case .box:
            let std = logStd!.value.scalars.map { Foundation.exp(Double($0)) }
            return (0..<n).map { i in
                .continuous((0..<k).map { j in Double(h[i * k + j]) + (deterministic ? 0 : std[j] * generator.nextNormal()) })
            }
        }
    }

    /// Actions as the tensor ``logProbability(head:actions:)`` takes.
    public func actionTensor(_ actions: [Action]) -> Tensor<Float> {
        let k = actionSpace.size
        var out = [Float](repeating: 0, count: actions.count * k)
        for (i, a) in actions.enumerated() {
            switch a {
            case .discrete(let index): out[i * k + index] = 1
            case .continuous(let v): for j in 0..<k { out[i * k + j] = Float(v[j]) }
            }
        }
        return Tensor(shape: [actions.count, k], scalars: out)
    }

    /// The action the environment receives: box actions clipped into their bounds.
    public func environmentAction(_ action: Action) -> Action {
        guard case .box(let low, let high) = actionSpace, case .continuous(let v) = action else { return action }
        return .continuous(v.indices.map { Swift.min(high[$0], Swift.max(low[$0], v[$0])) })
    }

    /// The random-number generators of the actor's dropout layers (their masks are replayed when
    /// an episode's steps are evaluated again as one batch).
    var dropoutLayers: [Dropout<Float>] { namedModules.compactMap { $0.module as? Dropout<Float> } }
}

/// Observations as a [n, d] Float tensor.
func observationTensor(_ rows: [[Double]]) -> Tensor<Float> {
    let d = rows.first?.count ?? 0
    var out = [Float]()
    out.reserveCapacity(rows.count * d)
    for r in rows { for v in r { out.append(Float(v)) } }
    return Tensor(shape: [rows.count, d], scalars: out)
}

/// Throws unless the observation and reward are finite, naming the environment, episode and step.
func checkFinite(_ t: Transition, environment: any Environment, episode: Int, step: Int) throws {
    guard t.reward.isFinite, t.observation.allSatisfy(\.isFinite) else {
        throw EnvironmentError("\(environment.name): episode \(episode), step \(step) gave \(t.reward.isFinite ? "the observation \(t.observation)" : "the reward \(t.reward)"): not finite")
    }
    guard t.observation.count == environment.observationSize else {
        throw EnvironmentError("\(environment.name): episode \(episode), step \(step) gave \(t.observation.count) observation values, not \(environment.observationSize)")
    }
}
