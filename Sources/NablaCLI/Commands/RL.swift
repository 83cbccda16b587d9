import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla rl ENV --algo …`, `nabla rl evaluate RUN`, `nabla rl watch RUN`: policy gradients.
struct RL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rl",
        abstract: "Reinforcement learning with policy gradients: REINFORCE, A2C and PPO on CartPole and Pendulum.",
        discussion: """
        nabla rl cartpole --algo reinforce --seed 0   # stops when solved
        nabla rl cartpole --algo ppo --out runs/ppo    # RL-Zoo's settings, 1e5 steps
        nabla rl pendulum --algo ppo                   # a Gaussian policy, 2e5 steps
        nabla rl evaluate runs/ppo --episodes 100
        nabla rl watch runs/ppo
        nabla rl --resume runs/ppo                     # from the last checkpoint
        """,
        subcommands: [TrainAgent.self, Evaluate.self, Watch.self],
        defaultSubcommand: TrainAgent.self)

    struct TrainAgent: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Train a policy (the default subcommand: `nabla rl cartpole …`).",
            discussion: """
            The run folder gets agent.json (the settings), metrics.jsonl (one line per episode), TensorBoard events, \
            returns.svg, summary.json, policy.safetensors, and checkpoint.safetensors/.json every --checkpoint-every \
            seconds and on Ctrl-C. REINFORCE stops when the running return (0.05·return + 0.95·previous, from 10) \
            passes the threshold; A2C and PPO run their planned steps and are then evaluated.
            """)
        @Argument(help: "cartpole or pendulum.") var environment: String?
        @Option(help: "reinforce, a2c or ppo.") var algo: String = "ppo"
        @Option(help: "Seed of the weights, the environments and the actions.") var seed: UInt64 = 0
        @Option(help: "REINFORCE: most episodes (default 3000).") var episodes: Int?
        @Option(help: "Environment steps (A2C and PPO: the planned length, default 1e5 for CartPole, 2e5 for Pendulum).") var steps: Int?
        @Option(name: .customLong("lr"), help: "Learning rate (REINFORCE 1e-2, PPO 1e-3, A2C 7e-4 or the preset's).") var learningRate: Double?
        @Option(help: "Discount factor (default: the preset's).") var gamma: Double?
        @Option(help: "Hidden units, comma-separated (REINFORCE: one layer, default 128; A2C/PPO default 64,64).") var hidden: String?
        @Flag(help: "REINFORCE: a learned baseline (critic).") var baseline = false
        @Option(help: "A2C/PPO: environments stepped together.") var envs: Int?
        @Option(help: "A2C/PPO: steps per environment per rollout.") var rolloutSteps: Int?
        @Option(help: "PPO: passes over each rollout.") var epochs: Int?
        @Option(help: "PPO: minibatch size.") var minibatch: Int?
        @Option(help: "A2C/PPO: GAE λ.") var lambda: Double?
        @Option(help: "PPO: clip range ε.") var clip: Double?
        @Option(help: "A2C/PPO: entropy bonus coefficient.") var entropy: Double?
        @Option(help: "Return that counts as solved (default: 475 CartPole, -250 Pendulum).") var threshold: Double?
        @Option(help: "Evaluation episodes at the end (deterministic policy; 0: none).") var evalEpisodes: Int = 100
        @Option(help: "Run folder (default: runs/rl-ENV-ALGO-TIME).") var out: String?
        @Option(help: "Continue the run in this folder from its last checkpoint.") var resume: String?
        @Option(help: "Least seconds between checkpoints (0: after every episode or rollout).") var checkpointEvery: Double = 10
        @Flag(help: "No progress output.") var quiet = false
        @Flag(help: "Print the summary as JSON.") var json = false

        func validate() throws {
            if resume == nil {
                guard let environment else { throw ValidationError("name an environment (\(Environments.names.joined(separator: ", "))) or --resume a run") }
                guard Environments.names.contains(environment.lowercased()) else {
                    throw ValidationError("unknown environment '\(environment)' (known: \(Environments.names.joined(separator: ", ")))")
                }
            }
            guard PolicyGradientAlgorithm(rawValue: algo) != nil else {
                throw ValidationError("unknown algorithm '\(algo)' (known: \(PolicyGradientAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if let episodes { guard episodes >= 1 else { throw ValidationError("--episodes must be at least 1, got \(episodes)") } }
            if let steps { guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") } }
            if let learningRate { guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--lr must be a positive number") } }
            if let gamma { guard gamma >= 0, gamma <= 1 else { throw ValidationError("--gamma must be in [0, 1]") } }
            if let lambda { guard lambda >= 0, lambda <= 1 else { throw ValidationError("--lambda must be in [0, 1]") } }
            if let clip { guard clip > 0 else { throw ValidationError("--clip must be positive") } }
            for (name, v) in [("--envs", envs), ("--rollout-steps", rolloutSteps), ("--epochs", epochs), ("--minibatch", minibatch)] {
                if let v { guard (1...100_000).contains(v) else { throw ValidationError("\(name) must be between 1 and 100000, got \(v)") } }
            }
            guard evalEpisodes >= 0 else { throw ValidationError("--eval-episodes must not be negative") }
            guard hiddenSizes != nil else { throw ValidationError("--hidden must be comma-separated positive sizes, got '\(hidden ?? "")'") }
        }

        var hiddenSizes: [Int]? {
            guard let hidden else { return [] }
            let sizes = hidden.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            return !sizes.isEmpty && sizes.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 100_000 }) ? sizes.map { $0! } : nil
        }

        func settings(environment: String) throws -> AgentSettings {
            let algorithm = PolicyGradientAlgorithm(rawValue: algo)!
            let sizes = hiddenSizes!
            switch algorithm {
            case .reinforce:
                var c = Reinforce.Configuration()
                c.seed = seed
                c.baseline = baseline
                if let learningRate { c.learningRate = learningRate }
                if let gamma { c.gamma = gamma }
                if !sizes.isEmpty {
                    guard sizes.count == 1 else { throw RunSettingsError("--hidden: REINFORCE's policy has one hidden layer; give one size") }
                    c.hidden = sizes[0]
                }
                return AgentSettings(environment: environment.lowercased(), algorithm: algorithm, reinforce: c,
                                     solvedThreshold: threshold ?? AgentSettings.defaultThreshold(environment))
            case .a2c, .ppo:
                var c = ActorCriticTrainer.Configuration.preset(algorithm == .ppo ? .ppo : .a2c, environment: environment)
                c.seed = seed
                if let steps { c.totalSteps = steps }
                if let learningRate { c.learningRate = learningRate }
                if let gamma { c.gamma = gamma }
                if !sizes.isEmpty { c.hidden = sizes }
                if let envs { c.environments = envs }
                if let rolloutSteps { c.rolloutSteps = rolloutSteps }
                if let epochs { c.epochs = epochs }
                if let minibatch { c.minibatchSize = minibatch }
                if let lambda { c.lambda = lambda }
                if let clip { c.clipRange = clip }
                if let entropy { c.entropyCoefficient = entropy }
                return AgentSettings(environment: environment.lowercased(), algorithm: algorithm, actorCritic: c,
                                     solvedThreshold: threshold ?? AgentSettings.defaultThreshold(environment))
            }
        }

        func run() throws {
            do { try train() } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch {
                printError("error: \(error)")
                throw ExitCode.failure
            }
        }

        func train() throws {
            let folder: String, settings: AgentSettings
            if let resume {
                guard let data = FileManager.default.contents(atPath: file(resume, AgentSettings.fileName)) else {
                    throw RunSettingsError("--resume \(resume): no \(AgentSettings.fileName); is it the folder of `nabla rl`?")
                }
                guard FileManager.default.fileExists(atPath: file(resume, "checkpoint.safetensors")) else {
                    throw RunSettingsError("--resume \(resume): no checkpoint yet (it is written every --checkpoint-every seconds); start the run again")
                }
                (folder, settings) = (resume, try AgentSettings.decode(data))
            } else {
                settings = try self.settings(environment: environment!)
                let stamp = DateFormatter()
                stamp.dateFormat = "yyyyMMdd-HHmmss"
                folder = out ?? "runs/rl-\(settings.environment)-\(settings.algorithm.rawValue)-\(stamp.string(from: Date()))"
                guard !FileManager.default.fileExists(atPath: file(folder, AgentSettings.fileName)) else {
                    throw RunSettingsError("--out \(folder) already holds a run; choose another folder or --resume it")
                }
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                removeAbandonedTemporaryFiles(in: folder)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeAtomically(encoder.encode(settings), to: file(folder, AgentSettings.fileName))
            }
            let run = try AgentRun(settings: settings)
            var records: [EpisodeRecord] = []
            if resume != nil {
                try run.restoreCheckpoint(folder: folder)
                records = try readEpisodes(file(folder, "metrics.jsonl")).filter { $0.episode <= run.episodes }
            }
            let board = try TensorBoardWriter(folder: folder)
            let maxEpisodes = settings.algorithm == .reinforce ? (episodes ?? 3000) : episodes
            let maxSteps = settings.algorithm == .reinforce ? steps : nil
            let terminal = isatty(STDOUT_FILENO) != 0 && !quiet && !json
            signal(SIGINT) { _ in interruptRequested = 1 }
            let start = Date()
            var lastCheckpoint = Date(), lastDraw = Date.distantPast, interrupted = false
            if !quiet && !json {
                print("\(settings.algorithm.rawValue) on \(settings.environment), seed \(settings.reinforce?.seed ?? settings.actorCritic!.seed); run folder \(folder)")
            }
            while !run.isFinished(maxEpisodes: maxEpisodes, maxSteps: maxSteps) {
                let finished = try run.advance()
                records += finished
                for r in finished {
                    try board.add(scalars: ["return": r.episodeReturn, "running_return": r.runningReturn, "episode_steps": Double(r.steps)], step: r.environmentSteps)
                }
                if terminal, let last = records.last, Date().timeIntervalSince(lastDraw) > 0.1 {
                    lastDraw = Date()
                    let rate = Double(run.environmentSteps) / Swift.max(1e-9, Date().timeIntervalSince(start))
                    var line = "episode \(last.episode)  return \(fmt(last.episodeReturn, digits: 4))  running \(fmt(last.runningReturn, digits: 4))  steps \(run.environmentSteps)"
                    if let total = settings.actorCritic?.totalSteps {
                        let width = 20, filled = Swift.min(width, Int(Double(width) * Double(run.environmentSteps) / Double(total)))
                        line = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + " " + line
                    }
                    FileHandle.standardOutput.write(("\r\u{1B}[2K" + line + "  \(Int(rate)) steps/s").data(using: .utf8)!)
                }
                if interruptRequested != 0 { interrupted = true; break }
                if Date().timeIntervalSince(lastCheckpoint) >= checkpointEvery {
                    try writeEpisodes(records, to: file(folder, "metrics.jsonl"))
                    try run.saveCheckpoint(folder: folder)
                    lastCheckpoint = Date()
                }
            }
            if terminal { FileHandle.standardOutput.write("\r\u{1B}[2K".data(using: .utf8)!) }
            try writeEpisodes(records, to: file(folder, "metrics.jsonl"))
            try run.saveCheckpoint(folder: folder)
            if interrupted {
                printError("interrupted after \(run.episodes) episodes: the checkpoint is in \(folder); continue with: nabla rl --resume \(folder)")
                throw ExitCode(130)
            }
            let seconds = Date().timeIntervalSince(start)
            try run.policy.save(to: file(folder, "policy.safetensors"))
            try writeReturnsPlot(records, settings: settings, to: file(folder, "returns.svg"))
            var evaluation: [Double] = []
            if evalEpisodes > 0 {
                evaluation = try evaluatePolicy(run.policy, environment: try Environments.make(settings.environment), episodes: evalEpisodes,
                                                seed: (settings.reinforce?.seed ?? settings.actorCritic!.seed) &+ 1000)
            }
            let (mean, std) = meanAndStd(evaluation)
            let solved = settings.algorithm == .reinforce ? run.runningReturn > settings.solvedThreshold : (!evaluation.isEmpty && mean >= settings.solvedThreshold)
            var pairs: [(String, JSONValue)] = [("environment", .string(settings.environment)), ("algorithm", .string(settings.algorithm.rawValue)),
                                                ("solved", .bool(solved)), ("episodes", .number(Double(run.episodes))), ("env_steps", .number(Double(run.environmentSteps))),
                                                ("seconds", .number(seconds)), ("running_return", .number(run.runningReturn)), ("folder", .string(folder))]
            if !evaluation.isEmpty {
                pairs += [("eval_episodes", .number(Double(evaluation.count))), ("mean_return", .number(mean)), ("std_return", .number(std))]
            }
            let summary = OrderedJSON(pairs).text
            try writeAtomically(summary + "\n", to: file(folder, "summary.json"))
            if json { print(summary); return }
            if !quiet {
                print("\(solved ? "solved" : "not solved") after \(run.episodes) episodes, \(run.environmentSteps) environment steps, \(fmt(seconds, digits: 3)) s; running return \(fmt(run.runningReturn, digits: 4))")
                if !evaluation.isEmpty { print("evaluation over \(evaluation.count) episodes: \(fmt(mean, digits: 4)) ± \(fmt(std, digits: 3))") }
                print("policy, metrics.jsonl, returns.svg and summary.json in \(folder)")
            }
        }
    }

    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Play episodes with a trained policy and print the mean ± std return.")
        @Argument(help: "A folder of `nabla rl`.") var folder: String
        @Option(help: "Episodes.") var episodes: Int = 100
        @Option(help: "Seed of the start states (and of sampled actions).") var seed: UInt64 = 1000
        @Flag(help: "Sample actions instead of taking the most likely one.") var stochastic = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws { guard (1...1_000_000).contains(episodes) else { throw ValidationError("--episodes must be between 1 and 1000000, got \(episodes)") } }

        func run() throws {
            do {
                let (policy, settings) = try AgentRun.loadPolicy(folder: folder)
                let returns = try evaluatePolicy(policy, environment: try Environments.make(settings.environment), episodes: episodes, deterministic: !stochastic, seed: seed)
                let (mean, std) = meanAndStd(returns)
                if json {
                    print(OrderedJSON([("environment", .string(settings.environment)), ("episodes", .number(Double(episodes))),
                                       ("mean_return", .number(mean)), ("std_return", .number(std)), ("solved", .bool(mean >= settings.solvedThreshold))]).text)
                } else {
                    print("\(settings.environment), \(episodes) episodes: return \(fmt(mean, digits: 4)) ± \(fmt(std, digits: 3)) (min \(fmt(returns.min()!, digits: 4)), max \(fmt(returns.max()!, digits: 4)))")
                }
            } catch {
                printError("error: \(error)")
                throw ExitCode.failure
            }
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Play one episode with a trained policy, drawn in the terminal.")
        @Argument(help: "A folder of `nabla rl`.") var folder: String
        @Option(help: "Seed of the start state.") var seed: UInt64 = 1000
        @Option(help: "Frames per second (0: print every frame at once).") var fps: Double = 25
        @Option(help: "Most steps to show.") var steps: Int = 500

        func run() throws {
            do {
                let (policy, settings) = try AgentRun.loadPolicy(folder: folder)
                let env = try Environments.make(settings.environment)
                var generator = RandomGenerator(seed: seed), actions = RandomGenerator(seed: seed)
                var observation = env.reset(using: &generator), total = 0.0
                let animate = fps > 0 && isatty(STDOUT_FILENO) != 0
                for step in 1...Swift.max(1, steps) {
                    let head = withoutGradients { policy.head(Tensor<Float>(shape: [1, observation.count], scalars: observation.map { Float($0) })) }
                    let t = try env.step(policy.environmentAction(policy.sample(head: head, deterministic: true, using: &actions)[0]))
                    total += t.reward
                    observation = t.observation
                    let frame = (env.render(width: 60) ?? "step \(step)") + "  return \(fmt(total, digits: 4))"
                    if animate {
                        print("\u{1B}[H\u{1B}[2J" + frame)
                        usleep(useconds_t(1_000_000 / fps))
                    } else if step % 25 == 1 || t.terminated || t.truncated {
                        print(frame + "\n")
                    }
                    if t.terminated || t.truncated { break }
                }
                print("episode over: return \(fmt(total, digits: 4))")
            } catch {
                printError("error: \(error)")
                throw ExitCode.failure
            }
        }
    }
}

func meanAndStd(_ v: [Double]) -> (Double, Double) {
    guard !v.isEmpty else { return (.nan, .nan) }
    let m = v.reduce(0, +) / Double(v.count)
    return (m, (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count)).squareRoot())
}

func writeEpisodes(_ records: [EpisodeRecord], to path: String) throws {
    let lines = records.map { r in
        OrderedJSON([("episode", .number(Double(r.episode))), ("steps", .number(Double(r.steps))), ("return", .number(r.episodeReturn)),
                     ("running_return", .number(r.runningReturn)), ("env_steps", .number(Double(r.environmentSteps)))]).text
    }
    try writeAtomically(lines.map { $0 + "\n" }.joined(), to: path)
}

func readEpisodes(_ path: String) throws -> [EpisodeRecord] {
    // JSONDecoder reads the numbers back exactly (JSONSerialization may not).
    struct Line: Decodable {
        var episode: Int, steps: Int, `return`: Double, running_return: Double, env_steps: Int
    }
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    let decoder = JSONDecoder()
    return String(decoding: data, as: UTF8.self).components(separatedBy: "\n").compactMap { text -> EpisodeRecord? in
        guard let l = try? decoder.decode(Line.self, from: Data(text.utf8)) else { return nil }
        return EpisodeRecord(episode: l.episode, steps: l.steps, episodeReturn: l.return, runningReturn: l.running_return, environmentSteps: l.env_steps, seconds: 0)
    }
}

func writeReturnsPlot(_ records: [EpisodeRecord], settings: AgentSettings, to path: String) throws {
    let plot = LinePlot(title: "\(settings.algorithm.rawValue.uppercased()) on \(settings.environment)", xLabel: "episode", yLabel: "return",
                        series: [LinePlot.Series(name: "episode return", points: records.map { (Double($0.episode), $0.episodeReturn) }),
                                 LinePlot.Series(name: "running return", points: records.map { (Double($0.episode), $0.runningReturn) }),
                                 LinePlot.Series(name: "solved", points: [(1, settings.solvedThreshold), (Double(Swift.max(2, records.count)), settings.solvedThreshold)])])
    try plot.write(to: path)
}
