import Foundation

/// What an agent may do in an environment.
public enum ActionSpace: Sendable, Equatable, CustomStringConvertible {
    /// Actions 0..<n.
    case discrete(Int)
    /// Real vectors with each component in [low[i], high[i]].
    case box(low: [Double], high: [Double])

    /// The policy's output size: one logit per action, or one mean per component.
    public var size: Int {
        switch self {
        case .discrete(let n): return n
        case .box(let low, _): return low.count
        }
    }

    public var description: String {
        switch self {
        case .discrete(let n): return "discrete(\(n))"
        case .box(let low, let high): return "box(\(low.count): \(zip(low, high).map { "[\($0), \($1)]" }.joined(separator: ", ")))"
        }
    }
}

/// One action: an index for a discrete space, a vector for a box.
public enum Action: Sendable, Equatable, CustomStringConvertible {
    case discrete(Int)
    case continuous([Double])

    public var description: String {
        switch self {
        case .discrete(let a): return "\(a)"
        case .continuous(let v): return "\(v)"
        }
    }
}

/// What one step returns. An episode ends when `terminated` (a terminal state of the task) or
/// `truncated` (a time limit) is set; the next call must be ``Environment/reset(using:)``.
public struct Transition: Sendable, Equatable {
    public var observation: [Double]
    public var reward: Double
    public var terminated: Bool
    public var truncated: Bool
    public init(observation: [Double], reward: Double, terminated: Bool, truncated: Bool) {
        (self.observation, self.reward, self.terminated, self.truncated) = (observation, reward, terminated, truncated)
    }
}

/// A misused or misbehaving environment.
public struct EnvironmentError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A task for reinforcement learning. Conform to plug in your own:
///
/// ```swift
/// final class Corridor: Environment {
///     let name = "corridor", observationSize = 1, actionSpace = ActionSpace.discrete(2)
///     var position = 0
///     func reset(using generator: inout RandomGenerator) -> [Double] { position = 0; return [0] }
///     func step(_ action: Action) throws -> Transition {
///         guard case .discrete(let a) = action, a == 0 || a == 1 else { throw invalidAction(action) }
///         position += a == 1 ? 1 : -1
///         return Transition(observation: [Double(position)], reward: position == 5 ? 1 : 0, terminated: position == 5, truncated: false)
///     }
/// }
/// ```
///
/// The algorithms check every action against ``actionSpace`` before `step` (and clip box actions
/// into it), and stop with the episode and step when an observation or reward is not finite.
public protocol Environment: AnyObject {
    /// A short name for messages (`CartPole-v1`).
    var name: String { get }
    var observationSize: Int { get }
    var actionSpace: ActionSpace { get }
    /// Starts an episode; the start state is drawn from `generator`.
    func reset(using generator: inout RandomGenerator) -> [Double]
    func step(_ action: Action) throws -> Transition
    /// The state that resumes the environment exactly (for checkpoints); nil if it cannot.
    var snapshot: [Double]? { get }
    /// Puts back a state from ``snapshot``.
    func restore(_ snapshot: [Double]) throws
    /// A picture of the current state in text, for `nabla rl watch` (nil: none).
    func render(width: Int) -> String?
}

extension Environment {
    public var snapshot: [Double]? { nil }
    public func restore(_ snapshot: [Double]) throws { throw EnvironmentError("\(name) cannot restore a snapshot") }
    public func render(width: Int) -> String? { nil }

    /// The error for an action outside ``actionSpace``.
    public func invalidAction(_ action: Action) -> EnvironmentError {
        EnvironmentError("\(name): the action \(action) is outside the action space \(actionSpace)")
    }

    /// Throws unless `action` lies in the action space (a box action must also be finite).
    public func checkAction(_ action: Action) throws {
        switch (actionSpace, action) {
        case (.discrete(let n), .discrete(let a)) where a >= 0 && a < n: return
        case (.box(let low, let high), .continuous(let v)) where v.count == low.count:
            if v.indices.allSatisfy({ v[$0].isFinite && v[$0] >= low[$0] && v[$0] <= high[$0] }) { return }
        default: break
        }
        throw invalidAction(action)
    }
}

/// The environments Nabla ships, by name.
public enum Environments {
    public static let names = ["cartpole", "pendulum"]

    public static func make(_ name: String) throws -> any Environment {
        switch name.lowercased() {
        case "cartpole", "cartpole-v1": return CartPole()
        case "pendulum", "pendulum-v1": return Pendulum()
        default: throw EnvironmentError("unknown environment '\(name)' (known: \(names.joined(separator: ", ")))")
        }
    }
}

/// CartPole-v1: keep a pole upright on a cart by pushing it left (0) or right (1). Reward 1 per
/// step; the episode terminates when |x| > 2.4 or |θ| > 12° and is truncated after `timeLimit`
/// steps. The dynamics are the classic-control reference's, step for step (explicit Euler,
/// τ = 0.02); the start state is uniform in ±0.05.
public final class CartPole: Environment {
    public let name = "CartPole-v1"
    public let observationSize = 4
    public let actionSpace = ActionSpace.discrete(2)
    public let timeLimit: Int
    /// (x, ẋ, θ, θ̇).
    public var state: [Double] = [0, 0, 0, 0]
    public var elapsedSteps = 0
    public static let thetaThreshold = 12 * 2 * Double.pi / 360, xThreshold = 2.4

    public init(timeLimit: Int = 500) {
        require(timeLimit > 0, "CartPole: timeLimit \(timeLimit) must be positive")
        self.timeLimit = timeLimit
    }

    public func reset(using generator: inout RandomGenerator) -> [Double] {
        state = (0..<4).map { _ in generator.nextUniform() * 0.1 - 0.05 }
        elapsedSteps = 0
        return state
    }

    public func step(_ action: Action) throws -> Transition {
        guard case .discrete(let a) = action, a == 0 || a == 1 else { throw invalidAction(action) }
        let (x, xDot, theta, thetaDot) = (state[0], state[1], state[2], state[3])
        let force = a == 1 ? 10.0 : -10.0
        let (cosTheta, sinTheta) = (Foundation.cos(theta), Foundation.sin(theta))
        // Grouped as the reference groups them (squares first), so that rounding agrees to the bit.
        let temp = (force + 0.05 * (thetaDot * thetaDot) * sinTheta) / 1.1
        let thetaAcc = (9.8 * sinTheta - cosTheta * temp) / (0.5 * (4.0 / 3.0 - 0.1 * (cosTheta * cosTheta) / 1.1))
        let xAcc = temp - 0.05 * thetaAcc * cosTheta / 1.1
        let tau = 0.02
        state = [x + tau * xDot, xDot + tau * xAcc, theta + tau * thetaDot, thetaDot + tau * thetaAcc]
        elapsedSteps += 1
        let terminated = state[0] < -Self.xThreshold || state[0] > Self.xThreshold || state[2] < -Self.thetaThreshold || state[2] > Self.thetaThreshold
        return Transition(observation: state, reward: 1, terminated: terminated, truncated: elapsedSteps >= timeLimit && !terminated)
    }

    public var snapshot: [Double]? { state + [Double(elapsedSteps)] }
    public func restore(_ snapshot: [Double]) throws {
        guard snapshot.count == 5, snapshot.allSatisfy(\.isFinite), snapshot[4] >= 0, snapshot[4] < Double(timeLimit) else {
            throw EnvironmentError("\(name): a snapshot is (x, ẋ, θ, θ̇, steps), got \(snapshot)")
        }
        (state, elapsedSteps) = (Array(snapshot.prefix(4)), Int(snapshot[4]))
    }

    public func render(width: Int) -> String? {
        // The track is [-2.4, 2.4]; the pole is drawn leaning by θ over five rows.
        let w = Swift.max(21, width)
        func column(_ x: Double) -> Int { Swift.min(w - 1, Swift.max(0, Int(((x + 2.4) / 4.8 * Double(w - 1)).rounded()))) }
        let cart = column(state[0])
        var rows = [[Character]](repeating: [Character](repeating: " ", count: w), count: 6)
        for k in 1...5 {
            let c = Swift.min(w - 1, Swift.max(0, cart + Int((Double(k) * 1.6 * Foundation.sin(state[2]) * 2).rounded())))
            rows[5 - k][c] = state[2] > 0.05 ? "/" : state[2] < -0.05 ? "\\" : "|"
        }
        var track = [Character](repeating: "─", count: w)
        for c in Swift.max(0, cart - 2)...Swift.min(w - 1, cart + 2) { track[c] = "█" }
        rows[5] = track
        return rows.map { String($0) }.joined(separator: "\n")
            + "\nx \(String(format: "%+.3f", state[0]))  θ \(String(format: "%+.1f", state[2] * 180 / .pi))°  step \(elapsedSteps)"
    }
}

/// Pendulum-v1: swing a pendulum up and hold it with a torque in [−2, 2]. Observation
/// (cos θ, sin θ, θ̇) with θ = 0 upright; reward −(θ² + 0.1 θ̇² + 0.001 u²) from the state
/// before the step; never terminates, truncated after `timeLimit` steps. Start θ ~ U(−π, π),
/// θ̇ ~ U(−1, 1). As the classic-control reference, u² is computed in single precision.
public final class Pendulum: Environment {
    public let name = "Pendulum-v1"
    public let observationSize = 3
    public let actionSpace = ActionSpace.box(low: [-2], high: [2])
    public let g: Double, timeLimit: Int
    /// (θ, θ̇).
    public var state: [Double] = [0, 0]
    public var elapsedSteps = 0

    public init(g: Double = 10, timeLimit: Int = 200) {
        require(timeLimit > 0 && g.isFinite, "Pendulum: g \(g) and timeLimit \(timeLimit)")
        (self.g, self.timeLimit) = (g, timeLimit)
    }

    public var observation: [Double] { [Foundation.cos(state[0]), Foundation.sin(state[0]), state[1]] }

    public func reset(using generator: inout RandomGenerator) -> [Double] {
        state = [(generator.nextUniform() * 2 - 1) * Double.pi, generator.nextUniform() * 2 - 1]
        elapsedSteps = 0
        return observation
    }

    /// Applies a torque (clipped into [−2, 2], as the reference does).
    public func step(torque: Double) -> Transition {
        let u32 = Float(Swift.min(2, Swift.max(-2, torque)))
        let u = Double(u32)
        let (theta, thetaDot) = (state[0], state[1])
        let normalized = (theta + .pi).truncatingRemainder(dividingBy: 2 * .pi)
        let angle = (normalized < 0 ? normalized + 2 * .pi : normalized) - .pi
        let cost = angle * angle + 0.1 * thetaDot * thetaDot + 0.001 * Double(u32 * u32)
        let dt = 0.05
        let newThetaDot = Swift.min(8, Swift.max(-8, thetaDot + (3 * g / 2 * Foundation.sin(theta) + 3 * u) * dt))
        state = [theta + newThetaDot * dt, newThetaDot]
        elapsedSteps += 1
        return Transition(observation: observation, reward: -cost, terminated: false, truncated: elapsedSteps >= timeLimit)
    }

    public func step(_ action: Action) throws -> Transition {
        guard case .continuous(let v) = action, v.count == 1, v[0].isFinite else { throw invalidAction(action) }
        return step(torque: v[0])
    }

    public var snapshot: [Double]? { state + [Double(elapsedSteps)] }
    public func restore(_ snapshot: [Double]) throws {
        guard snapshot.count == 3, snapshot.allSatisfy(\.isFinite), snapshot[2] >= 0, snapshot[2] < Double(timeLimit) else {
            throw EnvironmentError("\(name): a snapshot is (θ, θ̇, steps), got \(snapshot)")
        }
        (state, elapsedSteps) = (Array(snapshot.prefix(2)), Int(snapshot[2]))
    }

    public func render(width: Int) -> String? {
        // A circle of radius 5 rows; the bob at angle θ from upright.
        let h = 11, w = Swift.max(23, Swift.min(width, 45))
        var rows = [[Character]](repeating: [Character](repeating: " ", count: w), count: h)
        let (cy, cx) = (h / 2, w / 2)
        for k in 0...5 {
            let r = Double(k) / 5 * 5
            let y = cy - Int((r * Foundation.cos(state[0])).rounded()), x = cx + Int((r * 2 * Foundation.sin(state[0])).rounded())
            if y >= 0 && y < h && x >= 0 && x < w { rows[y][x] = k == 5 ? "●" : "·" }
        }
        rows[cy][cx] = "o"
        return rows.map { String($0) }.joined(separator: "\n")
            + "\nθ \(String(format: "%+.1f", state[0] * 180 / .pi))°  θ̇ \(String(format: "%+.2f", state[1]))  step \(elapsedSteps)"
    }
}

/// N copies of an environment stepped together. A copy whose episode ends is reset at once: its
/// transition keeps the episode's final observation, and ``observations`` holds the new start.
public final class VectorEnvironment {
    public let environments: [any Environment]
    /// Each copy's current observation (after any reset).
    public private(set) var observations: [[Double]]
    var generator: RandomGenerator

    /// `make` builds each of `count` copies; their start states are drawn from `seed`.
    public init(count: Int, seed: UInt64, make: () throws -> any Environment) rethrows {
        require(count > 0, "VectorEnvironment: \(count) copies; need at least 1")
        environments = try (0..<count).map { _ in try make() }
        var g = RandomGenerator(seed: seed)
        observations = environments.map { $0.reset(using: &g) }
        generator = g
    }

    /// One action per copy; each is checked against the action space first.
    public func step(_ actions: [Action]) throws -> [Transition] {
        require(actions.count == environments.count, "VectorEnvironment.step: \(actions.count) actions for \(environments.count) environments")
        return try zip(environments, actions).enumerated().map { i, pair in
            let (env, action) = pair
            try env.checkAction(action)
            let t = try env.step(action)
            observations[i] = t.terminated || t.truncated ? env.reset(using: &generator) : t.observation
            return t
        }
    }
}
