import Foundation
import Nabla
import Testing

/// A corridor of five cells: action 1 moves right, 0 left; reaching cell 4 ends the episode with
/// reward 1. `broken` makes it report a NaN observation at its third step.
final class Corridor: Environment {
    let name = "corridor", observationSize = 1, actionSpace = ActionSpace.discrete(2)
    var position = 0, steps = 0
    let broken: Bool
    init(broken: Bool = false) { self.broken = broken }
    func reset(using generator: inout RandomGenerator) -> [Double] { (position, steps) = (0, 0); return [0] }
    func step(_ action: Action) throws -> Transition {
        guard case .discrete(let a) = action, a == 0 || a == 1 else { throw invalidAction(action) }
        position = Swift.max(0, position + (a == 1 ? 1 : -1))
        steps += 1
        let observation = broken && steps == 3 ? [Double.nan] : [Double(position)]
        return Transition(observation: observation, reward: position == 4 ? 1 : 0, terminated: position == 4, truncated: steps >= 50)
    }
}

@Suite struct ReinforcementTests {
    /// The batched replay of an episode sees the dropout masks its steps saw one by one.
    @Test func dropoutMasksReplayInOneBatch() {
        let actor = GlobalRandom.withSeed(3) { Sequential<Float>(Linear(inputSize: 4, outputSize: 16), Dropout(probability: 0.6), Activation(.relu), Linear(inputSize: 16, outputSize: 2)) }
        let dropout = actor.layers[1] as! Dropout<Float>
        let saved = dropout.generator
        var rng = RandomGenerator(seed: 1)
        let x = Tensor<Float>.normal(shape: [5, 4], using: &rng)
        let oneByOne = (0..<5).flatMap { actor(x[$0..<($0 + 1)]).scalars }
        dropout.generator = saved
        let batch = actor(x).scalars
        #expect(zip(oneByOne, batch).allSatisfy { Swift.abs($0 - $1) <= 1e-6 * Swift.max(1, Swift.abs($1)) })
    }

    /// Log-probabilities and entropies against their closed forms.
    @Test func distributionsMatchTheirFormulas() {
        let categorical = ActorCritic(observationSize: 2, actionSpace: .discrete(3), hidden: [4], critic: false)
        let logits = Tensor<Float>(shape: [1, 3], scalars: [0.5, -1, 2])
        let z = [0.5, -1.0, 2.0].map { Foundation.exp($0) }, total = z.reduce(0, +)
        let logP = categorical.logProbability(head: logits, actions: categorical.actionTensor([.discrete(2)])).scalars[0]
        #expect(Swift.abs(Double(logP) - Foundation.log(z[2] / total)) < 1e-6)
        let entropy = -z.map { $0 / total * Foundation.log($0 / total) }.reduce(0, +)
        #expect(Swift.abs(Double(categorical.entropy(head: logits).scalars[0]) - entropy) < 1e-6)

        let gaussian = ActorCritic(observationSize: 3, actionSpace: .box(low: [-2, -2], high: [2, 2]), hidden: [4], critic: true, initialLogStd: -0.5)
        let mean = Tensor<Float>(shape: [1, 2], scalars: [0.3, -1])
        let a: [Double] = [1, 0.5], sigma = Foundation.exp(-0.5)
        let expected = zip(a, [0.3, -1.0]).map { -0.5 * (($0 - $1) / sigma) * (($0 - $1) / sigma) - Foundation.log(sigma) - 0.5 * Foundation.log(2 * .pi) }.reduce(0, +)
        let got = gaussian.logProbability(head: mean, actions: gaussian.actionTensor([.continuous(a)])).scalars[0]
        #expect(Swift.abs(Double(got) - expected) < 1e-5)
        #expect(Swift.abs(Double(gaussian.entropy(head: mean).scalars[0]) - 2 * (-0.5 + 0.5 + 0.5 * Foundation.log(2 * .pi))) < 1e-5)
        #expect(gaussian.environmentAction(.continuous([3, -2.5])) == .continuous([2, -2]))
    }

    /// REINFORCE learns to walk the corridor: its last episodes take close to the 4 steps of the
    /// best policy (a random walk takes 16 on average).
    @Test func reinforceLearnsACorridor() throws {
        var c = Reinforce.Configuration()
        (c.hidden, c.dropout, c.gamma, c.seed) = (16, 0, 0.9, 2)
        let agent = Reinforce(environment: Corridor(), configuration: c)
        let lengths = try (0..<150).map { _ in try agent.runEpisode().steps }
        let last = Double(lengths.suffix(20).reduce(0, +)) / 20
        #expect(last <= 5, "the last 20 episodes took \(last) steps on average")
    }

    /// A run resumed from a checkpoint ends with the same weights as one that was not stopped.
    @Test(arguments: [PolicyGradientAlgorithm.reinforce, .ppo])
    func checkpointsResumeExactly(_ algorithm: PolicyGradientAlgorithm) throws {
        func settings() -> AgentSettings {
            if algorithm == .reinforce {
                var r = Reinforce.Configuration()
                (r.hidden, r.seed) = (16, 4)
                return AgentSettings(environment: "cartpole", algorithm: .reinforce, reinforce: r, solvedThreshold: 475)
            }
            var c = ActorCriticTrainer.Configuration.preset(.ppo, environment: "cartpole")
            (c.hidden, c.epochs, c.environments, c.rolloutSteps, c.minibatchSize, c.seed) = ([8], 2, 3, 16, 16, 5)
            return AgentSettings(environment: "cartpole", algorithm: .ppo, actorCritic: c, solvedThreshold: 475)
        }
        let straight = try AgentRun(settings: settings())
        for _ in 0..<6 { _ = try straight.advance() }
        let folder = NSTemporaryDirectory() + "nabla-rl-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let first = try AgentRun(settings: settings())
        for _ in 0..<3 { _ = try first.advance() }
        try first.saveCheckpoint(folder: folder)
        let second = try AgentRun(settings: settings())
        try second.restoreCheckpoint(folder: folder)
        for _ in 0..<3 { _ = try second.advance() }
        #expect(second.environmentSteps == straight.environmentSteps && second.episodes == straight.episodes)
        let (a, b) = (second.policy.stateDictionary(), straight.policy.stateDictionary())
        #expect(a.count == b.count && a.allSatisfy { name, t in b[name]?.scalars == t.scalars })
    }

    /// PPO's Gaussian policy on Pendulum: a few rollouts run, the log standard deviation learns.
    @Test func ppoRunsAGaussianPolicy() throws {
        var c = ActorCriticTrainer.Configuration.preset(.ppo, environment: "pendulum")
        (c.environments, c.rolloutSteps, c.epochs, c.hidden) = (2, 64, 2, [16])
        let trainer = try ActorCriticTrainer(environment: { Pendulum() }, configuration: c)
        let before = trainer.policy.logStd!.value.scalars
        for _ in 0..<3 { try trainer.step() }
        #expect(trainer.environmentSteps == 3 * 2 * 64)
        #expect(trainer.policy.logStd!.value.scalars != before)
        let returns = try evaluatePolicy(trainer.policy, environment: Pendulum(), episodes: 2)
        #expect(returns.count == 2 && returns.allSatisfy { $0 < 0 && $0 > -2000 })
    }

    @Test func misbehavingEnvironmentsAreNamed() throws {
        let agent = Reinforce(environment: Corridor(broken: true), configuration: Reinforce.Configuration())
        #expect { try agent.runEpisode() } throws: { "\($0)".contains("corridor: episode 1, step 3") && "\($0)".contains("not finite") }
        #expect { try Corridor().checkAction(.discrete(2)) } throws: { "\($0)" == "corridor: the action 2 is outside the action space discrete(2)" }
        #expect { try Pendulum().checkAction(.continuous([2.5])) } throws: { "\($0)".contains("Pendulum-v1: the action [2.5] is outside") }
        #expect { try Environments.make("mountaincar") } throws: { "\($0)".contains("known: cartpole, pendulum") }
    }
}

@Suite struct VectorEnvironmentTests {
    /// Copies step together; a finished episode is reset at once, its transition keeping the end.
    @Test func copiesResetWhenTheirEpisodesEnd() throws {
        let vector = VectorEnvironment(count: 3, seed: 7) { Corridor() }
        #expect(vector.observations == [[0], [0], [0]])
        for _ in 0..<3 { _ = try vector.step([.discrete(1), .discrete(0), .discrete(1)]) }
        #expect(vector.observations == [[3], [0], [3]])
        let last = try vector.step([.discrete(1), .discrete(1), .discrete(0)])
        #expect(last[0].terminated && last[0].observation == [4] && last[0].reward == 1 && !last[1].terminated)
        #expect(vector.observations == [[0], [1], [2]])
        #expect { try vector.step([.discrete(1), .discrete(5), .discrete(0)]) } throws: { "\($0)".contains("the action 5 is outside") }
    }
}
