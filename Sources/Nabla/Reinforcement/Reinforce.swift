import Foundation

/// One finished episode of training.
public struct EpisodeRecord: Sendable, Equatable, Codable {
    public var episode: Int
    public var steps: Int
    /// The sum of the episode's rewards.
    public var episodeReturn: Double
    /// 0.05 · return + 0.95 · previous (from 10), as the classic REINFORCE example reports.
    public var runningReturn: Double
    /// Environment steps so far, this episode's included.
    public var environmentSteps: Int
    public var seconds: Double

    public init(episode: Int, steps: Int, episodeReturn: Double, runningReturn: Double, environmentSteps: Int, seconds: Double) {
        (self.episode, self.steps, self.episodeReturn, self.runningReturn, self.environmentSteps, self.seconds) = (episode, steps, episodeReturn, runningReturn, environmentSteps, seconds)
    }
}

/// REINFORCE (Williams, 1992): after every episode, one gradient step on
/// Σₜ −log π(aₜ | sₜ) Ĝₜ with the discounted returns Gₜ = rₜ + γ Gₜ₊₁ standardized over the
/// episode ((G − mean) / (std + ε), ε the float32 epsilon), or, with a critic, on the advantages
/// Ĝₜ − V(sₜ) while V is fitted to Ĝ by squared error.
///
/// Each step samples from the policy without recording gradients; at the end of the episode its
/// steps go through the policy again as one batch, with the dropout masks of the steps replayed,
/// so the gradient is the per-step one at a fraction of the cost.
public final class Reinforce {
    public struct Configuration: Sendable, Equatable, Codable {
        public var gamma = 0.99
        public var learningRate = 1e-2
        /// Hidden units and dropout of the default policy, Linear → Dropout → ReLU → Linear.
        public var hidden = 128
        public var dropout = 0.6
        /// A learned baseline (a critic of the same width).
        public var baseline = false
        /// Stop an episode that runs this long (an environment without a time limit).
        public var maxEpisodeSteps = 100_000
        public var seed: UInt64 = 0
        public init() {}
    }

    public let configuration: Configuration
    public let environment: any Environment
    public let policy: ActorCritic
    public var optimizer: Optimizer<Float>
    public private(set) var episodes = 0
    public private(set) var environmentSteps = 0
    public private(set) var runningReturn = 10.0
    var environmentGenerator: RandomGenerator
    var actionGenerator: RandomGenerator
    /// The policy's dropout layers, whose masks each episode's replay repeats.
    let dropouts: [Dropout<Float>]

    /// The policy of the classic example: observation → hidden → Dropout → ReLU → actions
    /// (and, with a baseline, a critic observation → hidden → ReLU → 1), drawn from `seed`.
    public convenience init(environment: any Environment, configuration: Configuration = Configuration()) {
        require(configuration.gamma >= 0 && configuration.gamma <= 1 && configuration.learningRate > 0 && configuration.hidden > 0
                && configuration.dropout >= 0 && configuration.dropout < 1 && configuration.maxEpisodeSteps > 0,
                "Reinforce: gamma \(configuration.gamma) must be in [0, 1], the learning rate and hidden size positive, dropout in [0, 1)")
        let (d, h) = (environment.observationSize, configuration.hidden)
        let policy = GlobalRandom.withSeed(configuration.seed) { () -> ActorCritic in
            let actor = configuration.dropout > 0
                ? Sequential<Float>(Linear(inputSize: d, outputSize: h), Dropout(probability: configuration.dropout), Activation(.relu), Linear(inputSize: h, outputSize: environment.actionSpace.size))
                : Sequential<Float>(Linear(inputSize: d, outputSize: h), Activation(.relu), Linear(inputSize: h, outputSize: environment.actionSpace.size))
            let critic = configuration.baseline ? Sequential<Float>(Linear(inputSize: d, outputSize: h), Activation(.relu), Linear(inputSize: h, outputSize: 1)) : nil
            return ActorCritic(actor: actor, critic: critic, actionSpace: environment.actionSpace)
        }
        self.init(environment: environment, policy: policy, configuration: configuration)
    }

    /// REINFORCE with a policy of your own (its critic, if any, is the baseline).
    public init(environment: any Environment, policy: ActorCritic, configuration: Configuration = Configuration()) {
        require(policy.actionSpace == environment.actionSpace,
                "Reinforce: the policy acts in \(policy.actionSpace), the environment \(environment.name) in \(environment.actionSpace)")
        (self.environment, self.policy, self.configuration) = (environment, policy, configuration)
        optimizer = Optimizer(rule: Adam(), learningRate: configuration.learningRate)
        dropouts = policy.dropoutLayers
        environmentGenerator = RandomGenerator(seed: configuration.seed)
        actionGenerator = RandomGenerator(seed: configuration.seed ^ 0x5EED_AC71_0000_0001)
    }

    /// Plays one episode and takes one gradient step.
    @discardableResult
    public func runEpisode() throws -> EpisodeRecord {
        let start = Date()
        let masks = dropouts.map(\.generator)
        policy.train()
        var observation = environment.reset(using: &environmentGenerator)
        var observations: [[Double]] = [], actions: [Action] = [], rewards: [Double] = []
        while true {
            let head = withoutGradients { policy.head(observationTensor([observation])) }
            let action = policy.sample(head: head, using: &actionGenerator)[0]
            let applied = policy.environmentAction(action)
            try environment.checkAction(applied)
            let t = try environment.step(applied)
            try checkFinite(t, environment: environment, episode: episodes + 1, step: rewards.count + 1)
            observations.append(observation)
            actions.append(action)
            rewards.append(t.reward)
            observation = t.observation
            if t.terminated || t.truncated { break }
            guard rewards.count < configuration.maxEpisodeSteps else {
                throw EnvironmentError("\(environment.name): episode \(episodes + 1) ran \(rewards.count) steps without ending (maxEpisodeSteps)")
            }
        }
        // The returns, standardized over the episode.
        var returns = [Double](repeating: 0, count: rewards.count), g = 0.0
        for t in rewards.indices.reversed() { g = rewards[t] + configuration.gamma * g; returns[t] = g }
        let n = Double(returns.count), mean = returns.reduce(0, +) / n
        let std = returns.count > 1 ? (returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)).squareRoot() : 0
        let scaled = Tensor<Float>(returns.map { Float(($0 - mean) / (std + Double(Float.ulpOfOne))) })
        // The episode again as one batch, with the same dropout masks.
        for (layer, generator) in zip(dropouts, masks) { layer.generator = generator }
        let x = observationTensor(observations), a = policy.actionTensor(actions)
        let hasCritic = policy.critic != nil
        policy.valueWithGradient { p in
            let logP = p.logProbability(head: p.head(x), actions: a)
            guard hasCritic else { return -(logP * scaled).sum() }
            let v = p.values(x)
            let advantage = scaled - v.detached()
            let d = v - scaled
            return -(logP * advantage).sum() + (d * d).mean()
        }
        optimizer.step(policy)
        let total = rewards.reduce(0, +)
        episodes += 1
        environmentSteps += rewards.count
        runningReturn = 0.05 * total + 0.95 * runningReturn
        return EpisodeRecord(episode: episodes, steps: rewards.count, episodeReturn: total, runningReturn: runningReturn,
                             environmentSteps: environmentSteps, seconds: Date().timeIntervalSince(start))
    }

    /// The progress counters and random-number states, for a checkpoint (see ``restore(_:)``).
    public var state: AgentState {
        AgentState(episodes: episodes, environmentSteps: environmentSteps, runningReturn: runningReturn, updates: optimizer.stepCount,
                   generators: [environmentGenerator.snapshot, actionGenerator.snapshot] + dropouts.map(\.generator.snapshot),
                   environments: [], observations: [], episodeReturns: [], episodeLengths: [])
    }

    public func restore(_ s: AgentState) throws {
        guard s.generators.count == 2 + dropouts.count, let e = RandomGenerator(snapshot: s.generators[0]), let a = RandomGenerator(snapshot: s.generators[1]) else {
            throw EnvironmentError("the checkpoint's generator states do not fit this REINFORCE agent")
        }
        for (layer, text) in zip(dropouts, s.generators.dropFirst(2)) {
            guard let g = RandomGenerator(snapshot: text) else { throw EnvironmentError("a dropout generator state of the checkpoint is unreadable") }
            layer.generator = g
        }
        (environmentGenerator, actionGenerator) = (e, a)
        (episodes, environmentSteps, runningReturn) = (s.episodes, s.environmentSteps, s.runningReturn)
    }
}

/// What an agent needs besides its weights and optimizer state to go on exactly where it was.
public struct AgentState: Sendable, Equatable, Codable {
    public var episodes: Int
    public var environmentSteps: Int
    public var runningReturn: Double
    public var updates: Int
    public var generators: [String]
    /// Vectorized agents: each environment's snapshot and current observation, and the return
    /// and length of its unfinished episode.
    public var environments: [[Double]]
    public var observations: [[Double]]
    public var episodeReturns: [Double]
    public var episodeLengths: [Int]
}
