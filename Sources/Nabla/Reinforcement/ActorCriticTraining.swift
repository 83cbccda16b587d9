import Foundation

/// Advantage actor-critic (A2C) and proximal policy optimization (PPO, Schulman et al. 2017) over
/// `environments` copies of an environment stepped together (each reset as its episode ends).
///
/// Every rollout collects `rolloutSteps` steps from each copy, computes generalized advantage
/// estimates (GAE, λ) with the critic's values — bootstrapping a time-limit truncation from the
/// value of the last observation — and then:
/// - A2C: one gradient step on the whole rollout;
/// - PPO: `epochs` passes over it in shuffled minibatches, each a step on the clipped surrogate
///   −min(ρA, clip(ρ, 1 ± ε)A), ρ = π/π_old, with advantages standardized per minibatch.
/// Both add `valueCoefficient` × the critic's squared error and subtract `entropyCoefficient` ×
/// the entropy, clip the gradient's global norm, and use Adam. With `linearSchedules` the
/// learning rate and the clip range fall linearly to zero over `totalSteps`.
public final class ActorCriticTrainer {
    public enum Algorithm: String, Sendable, Codable, CaseIterable { case a2c, ppo }

    public struct Configuration: Sendable, Equatable, Codable {
        public var algorithm: Algorithm = .ppo
        public var environments = 8
        public var rolloutSteps = 32
        public var epochs = 20
        public var minibatchSize = 256
        public var gamma = 0.98
        public var lambda = 0.8
        public var learningRate = 1e-3
        public var clipRange = 0.2
        public var entropyCoefficient = 0.0
        public var valueCoefficient = 0.5
        public var maxGradientNorm = 0.5
        public var normalizeAdvantages = true
        public var linearSchedules = true
        public var adamEpsilon = 1e-5
        /// The planned length of training in environment steps (for the schedules).
        public var totalSteps = 100_000
        public var hidden = [64, 64]
        public var initialLogStd = 0.0
        public var seed: UInt64 = 0
        public init() {}

        /// Starting settings: PPO on CartPole as RL-Zoo tunes it (solves it in 1e5 steps), PPO on
        /// Pendulum (about −190 after 2e5 steps), A2C on CartPole (solves it in 5e5 steps). A2C on
        /// Pendulum is only a starting point: it does not learn the swing-up in 2e5 steps.
        public static func preset(_ algorithm: Algorithm, environment: String) -> Configuration {
            var c = Configuration()
            c.algorithm = algorithm
            switch (algorithm, environment.lowercased().hasPrefix("pendulum")) {
            case (.ppo, false): break
            case (.ppo, true):
                (c.environments, c.rolloutSteps, c.epochs, c.minibatchSize) = (4, 1024, 10, 64)
                (c.gamma, c.lambda, c.learningRate, c.linearSchedules, c.totalSteps) = (0.9, 0.95, 1e-3, false, 200_000)
                c.initialLogStd = 0
            case (.a2c, false):
                (c.environments, c.rolloutSteps, c.epochs, c.minibatchSize) = (8, 5, 1, 40)
                (c.gamma, c.lambda, c.learningRate, c.normalizeAdvantages, c.linearSchedules, c.totalSteps) = (0.99, 1.0, 7e-4, false, false, 500_000)
                c.entropyCoefficient = 0
            case (.a2c, true):
                (c.environments, c.rolloutSteps, c.epochs, c.minibatchSize) = (8, 8, 1, 64)
                (c.gamma, c.lambda, c.learningRate, c.normalizeAdvantages, c.linearSchedules, c.totalSteps) = (0.9, 0.9, 1e-3, false, false, 200_000)
            }
            return c
        }

        func check() {
            require(environments > 0 && rolloutSteps > 0 && epochs > 0 && minibatchSize > 0 && totalSteps > 0,
                    "ActorCriticTrainer: environments \(environments), rolloutSteps \(rolloutSteps), epochs \(epochs), minibatchSize \(minibatchSize) and totalSteps \(totalSteps) must be positive")
            require(gamma >= 0 && gamma <= 1 && lambda >= 0 && lambda <= 1 && learningRate > 0 && clipRange > 0 && maxGradientNorm > 0,
                    "ActorCriticTrainer: gamma \(gamma) and lambda \(lambda) must be in [0, 1], the learning rate \(learningRate), clip range \(clipRange) and gradient norm \(maxGradientNorm) positive")
        }
    }

    /// One rollout and its update.
    public struct RolloutRecord: Sendable, Equatable {
        public var rollout: Int
        public var environmentSteps: Int
        /// Episodes that ended in this rollout, with their returns.
        public var finishedEpisodes: [EpisodeRecord]
        public var policyLoss: Double, valueLoss: Double, entropy: Double
        public var learningRate: Double
        public var seconds: Double
    }

    public let configuration: Configuration
    public let environments: [any Environment]
    public let policy: ActorCritic
    public var optimizer: Optimizer<Float>
    public private(set) var rollouts = 0
    public private(set) var episodes = 0
    public private(set) var environmentSteps = 0
    public private(set) var runningReturn = 10.0
    var observations: [[Double]]
    var episodeReturns: [Double]
    var episodeLengths: [Int]
    var environmentGenerator: RandomGenerator
    var actionGenerator: RandomGenerator
    var shuffleGenerator: RandomGenerator

    /// `make` builds each copy of the environment.
    public convenience init(environment make: () throws -> any Environment, configuration: Configuration) rethrows {
        configuration.check()
        let envs = try (0..<configuration.environments).map { _ in try make() }
        let policy = GlobalRandom.withSeed(configuration.seed) {
            ActorCritic(observationSize: envs[0].observationSize, actionSpace: envs[0].actionSpace, hidden: configuration.hidden,
                        critic: true, initialLogStd: Float(configuration.initialLogStd))
        }
        self.init(environments: envs, policy: policy, configuration: configuration)
    }

    public init(environments: [any Environment], policy: ActorCritic, configuration: Configuration) {
        configuration.check()
        require(environments.count == configuration.environments, "ActorCriticTrainer: \(environments.count) environments for a configuration of \(configuration.environments)")
        require(policy.critic != nil, "ActorCriticTrainer: the policy needs a critic")
        for e in environments {
            require(e.actionSpace == policy.actionSpace && e.observationSize == environments[0].observationSize,
                    "ActorCriticTrainer: \(e.name) acts in \(e.actionSpace) with \(e.observationSize) observations; the policy in \(policy.actionSpace)")
        }
        (self.environments, self.policy, self.configuration) = (environments, policy, configuration)
        optimizer = Optimizer(rule: Adam(epsilon: configuration.adamEpsilon), learningRate: configuration.learningRate,
                              transforms: [ClipByGlobalNorm(maxNorm: configuration.maxGradientNorm)])
        var generator = RandomGenerator(seed: configuration.seed)
        observations = environments.map { $0.reset(using: &generator) }
        environmentGenerator = generator
        actionGenerator = RandomGenerator(seed: configuration.seed ^ 0x5EED_AC71_0000_0001)
        shuffleGenerator = RandomGenerator(seed: configuration.seed ^ 0x5EED_AC71_0000_0002)
        episodeReturns = Array(repeating: 0, count: environments.count)
        episodeLengths = Array(repeating: 0, count: environments.count)
    }

    /// The fraction of the planned steps still to go (1 at the start), for the schedules.
    var progressRemaining: Double { Swift.max(0, 1 - Double(environmentSteps) / Double(configuration.totalSteps)) }

    /// Collects one rollout and updates the policy.
    @discardableResult
    public func step() throws -> RolloutRecord {
        let start = Date()
        let (n, steps) = (environments.count, configuration.rolloutSteps)
        let d = environments[0].observationSize
        var obsBuffer = [Float](), actionBuffer = [Action](), rewards = [Double](), dones = [Bool](), values = [Double](), logPs = [Double]()
        obsBuffer.reserveCapacity(n * steps * d)
        var finished: [EpisodeRecord] = []
        policy.train()
        for _ in 0..<steps {
            let x = observationTensor(observations)
            let (head, value) = withoutGradients { (policy.head(x), policy.values(x)) }
            let actions = policy.sample(head: head, using: &actionGenerator)
            let logP = withoutGradients { policy.logProbability(head: head, actions: policy.actionTensor(actions)) }.scalars
            let v = value.scalars
            obsBuffer += x.scalars
            for i in 0..<n {
                let env = environments[i]
                let applied = policy.environmentAction(actions[i])
                try env.checkAction(applied)
                let t = try env.step(applied)
                try checkFinite(t, environment: env, episode: episodes + 1, step: episodeLengths[i] + 1)
                var reward = t.reward
                episodeReturns[i] += t.reward
                episodeLengths[i] += 1
                environmentSteps += 1
                if t.truncated && !t.terminated {
                    // A time limit is not a terminal state: bootstrap from the value of where it stopped.
                    let last = withoutGradients { policy.values(observationTensor([t.observation])) }.scalars[0]
                    reward += configuration.gamma * Double(last)
                }
                actionBuffer.append(actions[i])
                rewards.append(reward)
                dones.append(t.terminated || t.truncated)
                values.append(Double(v[i]))
                logPs.append(Double(logP[i]))
                if t.terminated || t.truncated {
                    episodes += 1
                    runningReturn = 0.05 * episodeReturns[i] + 0.95 * runningReturn
                    finished.append(EpisodeRecord(episode: episodes, steps: episodeLengths[i], episodeReturn: episodeReturns[i], runningReturn: runningReturn,
                                                  environmentSteps: environmentSteps, seconds: 0))
                    (episodeReturns[i], episodeLengths[i]) = (0, 0)
                    observations[i] = env.reset(using: &environmentGenerator)
                } else {
                    observations[i] = t.observation
                }
            }
        }
        // Generalized advantage estimates, row t·n + i = step t of environment i.
        let lastValues = withoutGradients { policy.values(observationTensor(observations)) }.scalars.map { Double($0) }
        var advantages = [Double](repeating: 0, count: n * steps)
        for i in 0..<n {
            var gae = 0.0
            for t in (0..<steps).reversed() {
                let r = t * n + i
                let nextValue = dones[r] ? 0 : (t == steps - 1 ? lastValues[i] : values[r + n])
                let delta = rewards[r] + configuration.gamma * nextValue - values[r]
                gae = delta + configuration.gamma * configuration.lambda * (dones[r] ? 0 : gae)
                advantages[r] = gae
            }
        }
        let returns = zip(advantages, values).map { $0 + $1 }
        // The update.
        let rate = configuration.learningRate * (configuration.linearSchedules ? progressRemaining : 1)
        let clip = configuration.clipRange * (configuration.linearSchedules ? progressRemaining : 1)
        optimizer.learningRate = rate
        let total = n * steps
        let allObservations = Tensor<Float>(shape: [total, d], scalars: obsBuffer)
        var lossSums = (0.0, 0.0, 0.0), updates = 0
        let batch = configuration.algorithm == .a2c ? total : Swift.min(configuration.minibatchSize, total)
        for _ in 0..<(configuration.algorithm == .a2c ? 1 : configuration.epochs) {
            let order = configuration.algorithm == .a2c ? Array(0..<total) : shuffleGenerator.permutation(total)
            var startIndex = 0
            while startIndex < total {
                let rows = Array(order[startIndex..<Swift.min(total, startIndex + batch)])
                startIndex += batch
                var adv = rows.map { advantages[$0] }
                if configuration.normalizeAdvantages && adv.count > 1 {
                    let m = adv.reduce(0, +) / Double(adv.count)
                    let s = (adv.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(adv.count - 1)).squareRoot()
                    adv = adv.map { ($0 - m) / (s + 1e-8) }
                }
                let x = allObservations.indexSelect(axis: 0, indices: rows)
                let a = policy.actionTensor(rows.map { actionBuffer[$0] })
                let advantage = Tensor<Float>(adv.map { Float($0) })
                let target = Tensor<Float>(rows.map { Float(returns[$0]) })
                let oldLogP = Tensor<Float>(rows.map { Float(logPs[$0]) })
                var parts = (0.0, 0.0, 0.0)
                let algorithm = configuration.algorithm
                let (vc, ec) = (Float(configuration.valueCoefficient), Float(configuration.entropyCoefficient))
                policy.valueWithGradient { p in
                    let head = p.head(x)
                    let logP = p.logProbability(head: head, actions: a)
                    let policyLoss: Tensor<Float>
                    if algorithm == .ppo {
                        let ratio = (logP - oldLogP).exp()
                        policyLoss = -Tensor.minimum(ratio * advantage, ratio.clamped(min: Float(1 - clip), max: Float(1 + clip)) * advantage).mean()
                    } else {
                        policyLoss = -(logP * advantage).mean()
                    }
                    let e = p.values(x) - target
                    let valueLoss = (e * e).mean()
                    let entropy = p.entropy(head: head).mean()
                    parts = (Double(policyLoss.scalar), Double(valueLoss.scalar), Double(entropy.scalar))
                    return policyLoss + valueLoss * vc - entropy * ec
                }
                optimizer.step(policy)
                lossSums = (lossSums.0 + parts.0, lossSums.1 + parts.1, lossSums.2 + parts.2)
                updates += 1
            }
        }
        rollouts += 1
        let seconds = Date().timeIntervalSince(start)
        let u = Double(Swift.max(1, updates))
        return RolloutRecord(rollout: rollouts, environmentSteps: environmentSteps, finishedEpisodes: finished.map { var e = $0; e.seconds = seconds; return e },
                             policyLoss: lossSums.0 / u, valueLoss: lossSums.1 / u, entropy: lossSums.2 / u, learningRate: rate, seconds: seconds)
    }

    /// The progress counters, random-number states and environments, for a checkpoint.
    public var state: AgentState {
        get throws {
            let snapshots = try environments.map { e -> [Double] in
                guard let s = e.snapshot else { throw EnvironmentError("\(e.name) cannot be saved in a checkpoint (no snapshot)") }
                return s
            }
            return AgentState(episodes: episodes, environmentSteps: environmentSteps, runningReturn: runningReturn, updates: rollouts,
                              generators: [environmentGenerator.snapshot, actionGenerator.snapshot, shuffleGenerator.snapshot],
                              environments: snapshots, observations: observations, episodeReturns: episodeReturns, episodeLengths: episodeLengths)
        }
    }

    public func restore(_ s: AgentState) throws {
        let g = s.generators.compactMap { RandomGenerator(snapshot: $0) }
        guard g.count == 3, s.generators.count == 3, s.environments.count == environments.count, s.observations.count == environments.count,
              s.episodeReturns.count == environments.count, s.episodeLengths.count == environments.count,
              s.observations.allSatisfy({ $0.count == environments[0].observationSize }) else {
            throw EnvironmentError("the checkpoint's state does not fit \(environments.count) environments of \(environments[0].name)")
        }
        for (e, snapshot) in zip(environments, s.environments) { try e.restore(snapshot) }
        (environmentGenerator, actionGenerator, shuffleGenerator) = (g[0], g[1], g[2])
        (episodes, environmentSteps, runningReturn, rollouts) = (s.episodes, s.environmentSteps, s.runningReturn, s.updates)
        (observations, episodeReturns, episodeLengths) = (s.observations, s.episodeReturns, s.episodeLengths)
    }
}

/// Plays `episodes` episodes with a policy and returns their returns.
public func evaluatePolicy(_ policy: ActorCritic, environment: any Environment, episodes: Int, deterministic: Bool = true, seed: UInt64 = 1000,
                           maxEpisodeSteps: Int = 100_000) throws -> [Double] {
    require(episodes > 0, "evaluatePolicy: \(episodes) episodes; need at least 1")
    var envGenerator = RandomGenerator(seed: seed), actionGenerator = RandomGenerator(seed: seed ^ 0x5EED_AC71_0000_0001)
    let wasTraining = policy.isTraining
    policy.eval()
    defer { policy.setTraining(wasTraining) }
    return try (0..<episodes).map { episode in
        var observation = environment.reset(using: &envGenerator), total = 0.0, steps = 0
        while true {
            let head = withoutGradients { policy.head(observationTensor([observation])) }
            let applied = policy.environmentAction(policy.sample(head: head, deterministic: deterministic, using: &actionGenerator)[0])
            try environment.checkAction(applied)
            let t = try environment.step(applied)
            steps += 1
            try checkFinite(t, environment: environment, episode: episode + 1, step: steps)
            total += t.reward
            observation = t.observation
            if t.terminated || t.truncated { return total }
            guard steps < maxEpisodeSteps else { throw EnvironmentError("\(environment.name): an evaluation episode ran \(steps) steps without ending") }
        }
    }
}
