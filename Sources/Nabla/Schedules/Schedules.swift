import Foundation

/// Maps a step index t = 0, 1, 2, … (the number of optimizer steps taken) to a learning rate.
/// `base` is the optimizer's learning rate; schedules that define their own range ignore it.
public protocol LearningRateSchedule: Sendable {
    func learningRate(at step: Int, base: Double) -> Double
}

/// `base · γ^⌊t / stepSize⌋`.
public struct StepDecay: LearningRateSchedule {
    public var stepSize: Int, gamma: Double
    public init(stepSize: Int, gamma: Double = 0.1) {
        require(stepSize > 0, "StepDecay: stepSize must be positive")
        self.stepSize = stepSize; self.gamma = gamma
    }
    public func learningRate(at t: Int, base: Double) -> Double { base * pow(gamma, Double(t / stepSize)) }
}

/// `base · γ^(number of milestones ≤ t)`.
public struct MultiStepDecay: LearningRateSchedule {
    public var milestones: [Int], gamma: Double
    public init(milestones: [Int], gamma: Double = 0.1) { self.milestones = milestones.sorted(); self.gamma = gamma }
    public func learningRate(at t: Int, base: Double) -> Double { base * pow(gamma, Double(milestones.filter { $0 <= t }.count)) }
}

/// `base · γ^t`.
public struct ExponentialDecay: LearningRateSchedule {
    public var gamma: Double
    public init(gamma: Double) { self.gamma = gamma }
    public func learningRate(at t: Int, base: Double) -> Double { base * pow(gamma, Double(t)) }
}

/// `min + (base − min)(1 + cos(π t / maxSteps)) / 2`, for every t (past maxSteps it rises again).
public struct CosineAnnealing: LearningRateSchedule {
    public var maxSteps: Int, minimum: Double
    public init(maxSteps: Int, minimum: Double = 0) {
        require(maxSteps > 0, "CosineAnnealing: maxSteps must be positive")
        self.maxSteps = maxSteps; self.minimum = minimum
    }
    public func learningRate(at t: Int, base: Double) -> Double {
        minimum + (base - minimum) * (1 + cos(Double.pi * Double(t) / Double(maxSteps))) / 2
    }
}

/// Cosine annealing restarted after `period` steps, each period `periodMultiplier` times longer
/// than the last (SGDR).
public struct CosineAnnealingWarmRestarts: LearningRateSchedule {
    public var period: Int, periodMultiplier: Int, minimum: Double
    public init(period: Int, periodMultiplier: Int = 1, minimum: Double = 0) {
        require(period > 0 && periodMultiplier >= 1, "CosineAnnealingWarmRestarts: period must be positive and the multiplier at least 1")
        self.period = period; self.periodMultiplier = periodMultiplier; self.minimum = minimum
    }
    public func learningRate(at t: Int, base: Double) -> Double {
        var ti = period, cur = t
        while cur >= ti { cur -= ti; ti *= periodMultiplier }
        return minimum + (base - minimum) * (1 + cos(Double.pi * Double(cur) / Double(ti))) / 2
    }
}

/// Linear change of the factor from `startFactor` to `endFactor` over `totalSteps`, then constant:
/// `base (s + (e − s) min(t, T) / T)`. With `endFactor` 1 this is linear warmup.
public struct LinearSchedule: LearningRateSchedule {
    public var startFactor: Double, endFactor: Double, totalSteps: Int
    public init(startFactor: Double = 1.0 / 3, endFactor: Double = 1, totalSteps: Int = 5) {
        require(totalSteps > 0, "LinearSchedule: totalSteps must be positive")
        self.startFactor = startFactor; self.endFactor = endFactor; self.totalSteps = totalSteps
    }
    public func learningRate(at t: Int, base: Double) -> Double {
        base * (startFactor + (endFactor - startFactor) * Double(min(t, totalSteps)) / Double(totalSteps))
    }
}

/// `base (1 − min(t, T) / T)^power`.
public struct PolynomialDecay: LearningRateSchedule {
    public var totalSteps: Int, power: Double
    public init(totalSteps: Int, power: Double = 1) {
        require(totalSteps > 0, "PolynomialDecay: totalSteps must be positive")
        self.totalSteps = totalSteps; self.power = power
    }
    public func learningRate(at t: Int, base: Double) -> Double {
        base * pow(1 - Double(min(t, totalSteps)) / Double(totalSteps), power)
    }
}

/// The one-cycle policy: up from `maxLearningRate / divFactor` to `maxLearningRate` over the
/// first `pctStart` of the steps, then down to `initial / finalDivFactor` (with `threePhase`,
/// back to the initial rate first). Ignores the optimizer's base rate.
public struct OneCycle: LearningRateSchedule {
    public enum Annealing: String, Sendable { case cosine = "cos", linear }
    public var maxLearningRate: Double, totalSteps: Int, pctStart: Double, annealing: Annealing
    public var divFactor: Double, finalDivFactor: Double, threePhase: Bool

    public init(maxLearningRate: Double, totalSteps: Int, pctStart: Double = 0.3, annealing: Annealing = .cosine,
                divFactor: Double = 25, finalDivFactor: Double = 1e4, threePhase: Bool = false) {
        require(totalSteps > 0 && pctStart > 0 && pctStart < 1, "OneCycle: totalSteps must be positive and pctStart in (0, 1)")
        self.maxLearningRate = maxLearningRate; self.totalSteps = totalSteps; self.pctStart = pctStart
        self.annealing = annealing; self.divFactor = divFactor; self.finalDivFactor = finalDivFactor; self.threePhase = threePhase
    }

    public func learningRate(at t: Int, base: Double) -> Double {
        let initial = maxLearningRate / divFactor, minLR = initial / finalDivFactor
        let total = Double(totalSteps)
        let phases: [(end: Double, from: Double, to: Double)] = threePhase
            ? [(pctStart * total - 1, initial, maxLearningRate), (2 * pctStart * total - 2, maxLearningRate, initial), (total - 1, initial, minLR)]
            : [(pctStart * total - 1, initial, maxLearningRate), (total - 1, maxLearningRate, minLR)]
        var start = 0.0
        for (i, phase) in phases.enumerated() {
            if Double(t) <= phase.end || i == phases.count - 1 {
                let pct = (Double(t) - start) / (phase.end - start)
                switch annealing {
                case .cosine: return phase.to + (phase.from - phase.to) / 2 * (1 + cos(Double.pi * pct))
                case .linear: return phase.from + (phase.to - phase.from) * pct
                }
            }
            start = phase.end
        }
        return minLR
    }
}

/// Cyclical learning rates between `baseLearningRate` and `maxLearningRate` (triangular,
/// triangular2 or exp_range). Ignores the optimizer's base rate.
public struct CyclicSchedule: LearningRateSchedule {
    public enum Mode: String, Sendable { case triangular, triangular2, expRange = "exp_range" }
    public var baseLearningRate: Double, maxLearningRate: Double, stepsUp: Int, stepsDown: Int, mode: Mode, gamma: Double

    public init(baseLearningRate: Double, maxLearningRate: Double, stepsUp: Int = 2000, stepsDown: Int? = nil,
                mode: Mode = .triangular, gamma: Double = 1) {
        require(stepsUp > 0 && (stepsDown ?? 1) > 0, "CyclicSchedule: step counts must be positive")
        self.baseLearningRate = baseLearningRate; self.maxLearningRate = maxLearningRate
        self.stepsUp = stepsUp; self.stepsDown = stepsDown ?? stepsUp; self.mode = mode; self.gamma = gamma
    }

    public func learningRate(at t: Int, base: Double) -> Double {
        let total = Double(stepsUp + stepsDown), ratio = Double(stepsUp) / total
        let cycle = (1 + Double(t) / total).rounded(.down)
        let x = 1 + Double(t) / total - cycle
        let scale = x <= ratio ? x / ratio : (x - 1) / (ratio - 1)
        let s: Double
        switch mode {
        case .triangular: s = 1
        case .triangular2: s = 1 / pow(2, cycle - 1)
        case .expRange: s = pow(gamma, Double(t))
        }
        return baseLearningRate + (maxLearningRate - baseLearningRate) * scale * s
    }
}

/// Linear warmup from `startFactor · lr` over `steps`, then `schedule` counted from the end of
/// the warmup.
public struct Warmup: LearningRateSchedule {
    public var steps: Int, startFactor: Double
    public var schedule: (any LearningRateSchedule)?
    public init(steps: Int, startFactor: Double = 0, then schedule: (any LearningRateSchedule)? = nil) {
        require(steps > 0, "Warmup: steps must be positive")
        self.steps = steps; self.startFactor = startFactor; self.schedule = schedule
    }
    public func learningRate(at t: Int, base: Double) -> Double {
        if t < steps { return base * (startFactor + (1 - startFactor) * Double(t) / Double(steps)) }
        return schedule?.learningRate(at: t - steps, base: base) ?? base
    }
}

/// Schedules one after another: each runs for its number of steps, counting from 0 when it
/// starts; the last runs on.
public struct SequentialSchedule: LearningRateSchedule {
    public var parts: [(schedule: any LearningRateSchedule, steps: Int)]
    public init(_ parts: [(schedule: any LearningRateSchedule, steps: Int)]) {
        require(!parts.isEmpty, "SequentialSchedule: no schedules")
        self.parts = parts
    }
    public func learningRate(at t: Int, base: Double) -> Double {
        var start = 0
        for (i, part) in parts.enumerated() {
            if t < start + part.steps || i == parts.count - 1 { return part.schedule.learningRate(at: t - start, base: base) }
            start += part.steps
        }
        return base
    }
}

/// Lowers the learning rate when a watched metric stops improving.
///
/// After each epoch call ``record(_:)`` with the metric; it returns the learning rate to use. A
/// metric is an improvement when it beats the best so far by `threshold` (relative or absolute);
/// after more than `patience` epochs without one, the rate is multiplied by `factor` (not below
/// `minimum`; reductions smaller than `epsilon` are skipped), then `cooldown` epochs pass
/// before counting again.
public struct ReduceLearningRateOnPlateau: Sendable {
    public enum Mode: String, Sendable { case min, max }
    public enum ThresholdMode: String, Sendable { case relative = "rel", absolute = "abs" }
    public var mode: Mode, factor: Double, patience: Int, threshold: Double, thresholdMode: ThresholdMode
    public var cooldown: Int, minimum: Double, epsilon: Double
    public private(set) var learningRate: Double
    public private(set) var best: Double
    var badEpochs = 0, cooldownLeft = 0

    public init(learningRate: Double, mode: Mode = .min, factor: Double = 0.1, patience: Int = 10, threshold: Double = 1e-4,
                thresholdMode: ThresholdMode = .relative, cooldown: Int = 0, minimum: Double = 0, epsilon: Double = 1e-8) {
        require(factor < 1 && factor >= 0, "ReduceLearningRateOnPlateau: factor must be in [0, 1)")
        self.learningRate = learningRate; self.mode = mode; self.factor = factor; self.patience = patience
        self.threshold = threshold; self.thresholdMode = thresholdMode; self.cooldown = cooldown
        self.minimum = minimum; self.epsilon = epsilon
        best = mode == .min ? .infinity : -.infinity
    }

    func isBetter(_ m: Double) -> Bool {
        switch (mode, thresholdMode) {
        case (.min, .relative): return m < best * (1 - threshold)
        case (.min, .absolute): return m < best - threshold
        case (.max, .relative): return m > best * (1 + threshold)
        case (.max, .absolute): return m > best + threshold
        }
    }

    /// Takes one epoch's metric; returns the learning rate from now on.
    @discardableResult
    public mutating func record(_ metric: Double) -> Double {
        if isBetter(metric) { best = metric; badEpochs = 0 } else { badEpochs += 1 }
        if cooldownLeft > 0 { cooldownLeft -= 1; badEpochs = 0 }
        if badEpochs > patience {
            let reduced = Swift.max(learningRate * factor, minimum)
            if learningRate - reduced > epsilon { learningRate = reduced }
            cooldownLeft = cooldown
            badEpochs = 0
        }
        return learningRate
    }
}

/// nanoGPT's schedule: linear warmup `lr·(t+1)/(warmup+1)` for t < `warmup`, then a cosine from
/// `lr` down to `minimum` at step `decaySteps`, and `minimum` after.
public struct WarmupCosineDecay: LearningRateSchedule {
    public var warmup: Int, decaySteps: Int, minimum: Double
    public init(warmup: Int, decaySteps: Int, minimum: Double) {
        require(warmup >= 0 && decaySteps > warmup && minimum >= 0,
                "WarmupCosineDecay: warmup \(warmup) must be ≥ 0 and below the decay steps \(decaySteps), minimum \(minimum) ≥ 0")
        (self.warmup, self.decaySteps, self.minimum) = (warmup, decaySteps, minimum)
    }
    public func learningRate(at t: Int, base: Double) -> Double {
        if t < warmup { return base * Double(t + 1) / Double(warmup + 1) }
        if t > decaySteps { return minimum }
        let progress = Double(t - warmup) / Double(decaySteps - warmup)
        return minimum + 0.5 * (1 + cos(Double.pi * progress)) * (base - minimum)
    }
}
