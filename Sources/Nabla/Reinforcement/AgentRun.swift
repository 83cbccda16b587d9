import Foundation

/// The algorithms `nabla rl` trains.
public enum PolicyGradientAlgorithm: String, Sendable, Codable, CaseIterable {
    case reinforce, a2c, ppo
}

/// The settings of a reinforcement-learning run (agent.json in its folder): enough to rebuild
/// the policy and the trainer.
public struct AgentSettings: RunSettingsFile, Sendable, Equatable {
    public static let fileName = "agent.json"
    public var environment: String
    public var algorithm: PolicyGradientAlgorithm
    public var reinforce: Reinforce.Configuration?
    public var actorCritic: ActorCriticTrainer.Configuration?
    /// The return that counts as solved: a running return above it ends REINFORCE, and an
    /// evaluation mean at or above it is reported as solved.
    public var solvedThreshold: Double

    public init(environment: String, algorithm: PolicyGradientAlgorithm, reinforce: Reinforce.Configuration? = nil,
                actorCritic: ActorCriticTrainer.Configuration? = nil, solvedThreshold: Double) {
        (self.environment, self.algorithm, self.reinforce, self.actorCritic, self.solvedThreshold) = (environment, algorithm, reinforce, actorCritic, solvedThreshold)
    }

    /// The customary threshold of a shipped environment: 475 for CartPole-v1 (its registered
    /// reward threshold), −250 for Pendulum-v1 (a swing-up held most of the episode).
    public static func defaultThreshold(_ environment: String) -> Double { environment.lowercased().hasPrefix("pendulum") ? -250 : 475 }

    public func check() throws {
        guard Environments.names.contains(environment.lowercased()) else {
            throw RunSettingsError("'environment' '\(environment)' is unknown (\(Environments.names.joined(separator: ", ")))")
        }
        switch algorithm {
        case .reinforce:
            guard let r = reinforce, r.hidden > 0, r.hidden <= 100_000, r.dropout >= 0, r.dropout < 1, r.learningRate > 0, r.gamma >= 0, r.gamma <= 1 else {
                throw RunSettingsError("'reinforce' is missing or holds a value out of range")
            }
        case .a2c, .ppo:
            guard let c = actorCritic, c.algorithm.rawValue == algorithm.rawValue, (1...4096).contains(c.environments), c.rolloutSteps > 0, c.epochs > 0,
                  c.minibatchSize > 0, c.totalSteps > 0, !c.hidden.isEmpty, c.hidden.allSatisfy({ (1...100_000).contains($0) }),
                  c.gamma >= 0, c.gamma <= 1, c.lambda >= 0, c.lambda <= 1, c.learningRate > 0, c.clipRange > 0, c.maxGradientNorm > 0 else {
                throw RunSettingsError("'actorCritic' is missing or holds a value out of range")
            }
        }
        guard solvedThreshold.isFinite else { throw RunSettingsError("'solvedThreshold' must be finite") }
    }
}

/// A training run of any of the algorithms, one step (an episode or a rollout) at a time, with
/// checkpoints that resume it exactly.
public final class AgentRun {
    public let settings: AgentSettings
    public let reinforce: Reinforce?
    public let actorCritic: ActorCriticTrainer?

    public init(settings: AgentSettings) throws {
        try settings.check()
        self.settings = settings
        switch settings.algorithm {
        case .reinforce:
            (reinforce, actorCritic) = (Reinforce(environment: try Environments.make(settings.environment), configuration: settings.reinforce!), nil)
        case .a2c, .ppo:
            (reinforce, actorCritic) = (nil, try ActorCriticTrainer(environment: { try Environments.make(settings.environment) }, configuration: settings.actorCritic!))
        }
    }

    public var policy: ActorCritic { reinforce?.policy ?? actorCritic!.policy }
    public var episodes: Int { reinforce?.episodes ?? actorCritic!.episodes }
    public var environmentSteps: Int { reinforce?.environmentSteps ?? actorCritic!.environmentSteps }
    public var runningReturn: Double { reinforce?.runningReturn ?? actorCritic!.runningReturn }
    /// Episodes (REINFORCE) or rollouts (A2C, PPO) done.
    public var updates: Int { reinforce?.episodes ?? actorCritic!.rollouts }

    /// One episode (REINFORCE) or one rollout (A2C, PPO); the episodes that ended in it.
    public func advance() throws -> [EpisodeRecord] {
        if let reinforce { return [try reinforce.runEpisode()] }
        return try actorCritic!.step().finishedEpisodes
    }

    /// Whether training is over: REINFORCE once the running return passes the threshold or
    /// after `maxEpisodes`; A2C and PPO when another rollout would pass their planned steps (or
    /// after `maxSteps`).
    public func isFinished(maxEpisodes: Int?, maxSteps: Int?) -> Bool {
        if let maxEpisodes, episodes >= maxEpisodes { return true }
        if let maxSteps, environmentSteps >= maxSteps { return true }
        if reinforce != nil { return runningReturn > settings.solvedThreshold }
        // The planned steps are a ceiling: no rollout goes past them.
        let c = actorCritic!.configuration
        return environmentSteps >= c.totalSteps || (environmentSteps > 0 && environmentSteps + c.environments * c.rolloutSteps > c.totalSteps)
    }

    var optimizerArchive: SafeTensors.Archive {
        reinforce.map { $0.optimizer.archive(for: $0.policy) } ?? actorCritic!.optimizer.archive(for: actorCritic!.policy)
    }

    /// Writes checkpoint.safetensors (the policy, `optimizer.`-prefixed optimizer state) and
    /// checkpoint.json (the agent's state), each atomically, the weights first.
    public func saveCheckpoint(folder: String) throws {
        let state = try reinforce?.state ?? actorCritic!.state
        var archive = policy.archive()
        for (name, t) in optimizerArchive.tensors { archive.tensors["optimizer." + name] = t }
        for (key, value) in optimizerArchive.metadata { archive.metadata[key] = value }
        try SafeTensors.write(archive, to: (folder as NSString).appendingPathComponent("checkpoint.safetensors"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try writeAtomically(encoder.encode(state), to: (folder as NSString).appendingPathComponent("checkpoint.json"))
    }

    /// Puts back the state of ``saveCheckpoint(folder:)``.
    public func restoreCheckpoint(folder: String) throws {
        let path = (folder as NSString).appendingPathComponent("checkpoint.safetensors")
        let archive = try SafeTensors.read(path)
        var weights = SafeTensors.Archive(metadata: [:]), optimizerState = SafeTensors.Archive(metadata: archive.metadata)
        for (name, t) in archive.tensors {
            if name.hasPrefix("optimizer.") { optimizerState.tensors[String(name.dropFirst("optimizer.".count))] = t } else { weights.tensors[name] = t }
        }
        guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("checkpoint.json")) else {
            throw RunSettingsError("\(folder): no checkpoint.json beside checkpoint.safetensors")
        }
        let state: AgentState
        do { state = try JSONDecoder().decode(AgentState.self, from: data) } catch {
            throw RunSettingsError("checkpoint.json cannot be read: \(describeDecodingError(error))")
        }
        try policy.load(weights, path: path)
        if let reinforce {
            try reinforce.optimizer.restore(optimizerState, for: reinforce.policy, path: path)
            try reinforce.restore(state)
        } else {
            try actorCritic!.optimizer.restore(optimizerState, for: actorCritic!.policy, path: path)
            try actorCritic!.restore(state)
        }
    }

    /// The policy of a finished run folder (agent.json and policy.safetensors).
    public static func loadPolicy(folder: String) throws -> (ActorCritic, AgentSettings) {
        guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent(AgentSettings.fileName)) else {
            throw RunSettingsError("\(folder): no \(AgentSettings.fileName); is it the folder of `nabla rl`?")
        }
        let settings = try AgentSettings.decode(data)
        let run = try AgentRun(settings: settings)
        let path = (folder as NSString).appendingPathComponent("policy.safetensors")
        guard FileManager.default.fileExists(atPath: path) else { throw RunSettingsError("\(folder): no policy.safetensors (the run has not finished)") }
        try run.policy.load(from: path)
        run.policy.eval()
        return (run.policy, settings)
    }
}
