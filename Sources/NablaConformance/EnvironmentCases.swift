import Nabla

/// Evaluators for `environments.json`: CartPole-v1 and Pendulum-v1 stepped from a given state
/// with given actions, every state, reward and flag after each step.
enum EnvironmentCases {
    static func steps(_ c: ReferenceCase, count: Int) throws -> Int {
        let steps = try c.int("steps")
        guard steps >= 1, steps == count else { throw c.fail("config steps \(steps) for \(count) actions") }
        return steps
    }

    static let evaluators: [String: ConformanceRunner.Evaluator] = [
        "cartpole": { c in
            let state0 = try c.input("state0"), actions = try c.index("actions").values
            guard state0.shape == [4] else { throw c.fail("state0 has shape \(state0.shape), not [4]") }
            let n = try steps(c, count: actions.count)
            let limit = try c.int("time_limit")
            guard limit >= 1 else { throw c.fail("time_limit \(limit) must be positive") }
            let env = CartPole(timeLimit: limit)
            env.state = state0.scalars
            var states: [Double] = [], rewards: [Double] = [], terminated: [Double] = [], truncated: [Double] = []
            for a in actions {
                guard a == 0 || a == 1 else { throw c.fail("action \(a) is not 0 or 1") }
                let t = try env.step(.discrete(a))
                states += env.state
                rewards.append(t.reward)
                terminated.append(t.terminated ? 1 : 0)
                truncated.append(t.truncated ? 1 : 0)
            }
            return ["states": Tensor(shape: [n, 4], scalars: states), "rewards": Tensor(rewards),
                    "terminated": Tensor(terminated), "truncated": Tensor(truncated)]
        },
        "pendulum": { c in
            let state0 = try c.input("state0"), torques = try c.input("torques")
            guard state0.shape == [2] else { throw c.fail("state0 has shape \(state0.shape), not [2]") }
            let n = try steps(c, count: torques.count)
            let limit = try c.int("time_limit"), g = try c.number("g")
            guard limit >= 1, g.isFinite else { throw c.fail("time_limit \(limit) and g \(g)") }
            let env = Pendulum(g: g, timeLimit: limit)
            env.state = state0.scalars
            var states: [Double] = [], rewards: [Double] = [], truncated: [Double] = []
            for u in torques.scalars {
                let t = env.step(torque: u)
                states += env.state
                rewards.append(t.reward)
                truncated.append(t.truncated ? 1 : 0)
            }
            return ["states": Tensor(shape: [n, 2], scalars: states), "rewards": Tensor(rewards), "truncated": Tensor(truncated)]
        },
    ]
}
