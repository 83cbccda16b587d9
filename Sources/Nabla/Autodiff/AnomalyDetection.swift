import CNablaKernels
import Foundation

/// The first operation that produced a NaN or an infinity, found by ``detectingAnomalies(_:)``.
public struct Anomaly: Sendable, CustomStringConvertible, Equatable {
    public enum Phase: String, Sendable { case forward, backward }
    /// The operation's name (`log`, `div`, `matmul`, ...).
    public var op: String
    /// Whether its output (forward) or the cotangents it passed back (backward) were non-finite.
    public var phase: Phase
    public var shape: [Int]
    public var nanCount: Int
    public var infinityCount: Int

    public var description: String {
        "\(phase == .forward ? "" : "backward of ")\(op) produced \(nanCount) NaN and \(infinityCount) infinite values in a tensor of shape \(shape)"
    }
}

/// Runs `body` checking the output of every recorded operation and every cotangent of the
/// backward passes inside it for NaN and infinity; returns the first operation that produced one
/// (nil when all stayed finite). Slower than normal execution: a debugging aid.
///
/// ```swift
/// let (loss, anomaly) = detectingAnomalies { model.valueWithGradient { lossFunction($0) } }
/// if let anomaly { print("first non-finite value: \(anomaly)") }
/// ```
public func detectingAnomalies<R>(_ body: () throws -> R) rethrows -> (result: R, anomaly: Anomaly?) {
    let previous = nb_anomaly_detection()
    let recorder = AnomalyDetection.Recorder()
    let key = AnomalyDetection.key
    let outer = Thread.current.threadDictionary[key]
    Thread.current.threadDictionary[key] = recorder
    nb_set_anomaly_detection(1)
    defer {
        nb_set_anomaly_detection(previous)
        Thread.current.threadDictionary[key] = outer
    }
    let result = try body()
    return (result, recorder.first)
}

@usableFromInline enum AnomalyDetection {
    static let key = "nabla.anomaly-recorder"
    final class Recorder { var first: Anomaly? }

    @usableFromInline @inline(never)
    static func check<Scalar>(_ t: Tensor<Scalar>, op: String, phase: Anomaly.Phase) {
        guard let recorder = Thread.current.threadDictionary[key] as? Recorder, recorder.first == nil else { return }
        var nan = 0, inf = 0
        t.withUnsafeBufferPointer { b in
            for v in b where !v.isFinite { if v.isNaN { nan += 1 } else { inf += 1 } }
        }
        if nan + inf > 0 { recorder.first = Anomaly(op: op, phase: phase, shape: t.shape, nanCount: nan, infinityCount: inf) }
    }
}

/// Watches gradient norms after each backward pass and reports parameters whose gradients
/// vanish, explode or are not finite.
public struct GradientMonitor: Sendable {
    public enum Warning: Sendable, Equatable, CustomStringConvertible {
        case vanishing(parameter: String, norm: Double)
        case exploding(parameter: String, norm: Double)
        case nonFinite(parameter: String)

        /// The parameter the warning is about.
        public var parameterName: String {
            switch self {
            case let .vanishing(p, _), let .exploding(p, _), let .nonFinite(p): return p
            }
        }

        public var description: String {
            switch self {
            case let .vanishing(p, n): return "gradient of \(p) is vanishing (norm \(n))"
            case let .exploding(p, n): return "gradient of \(p) is exploding (norm \(n))"
            case let .nonFinite(p): return "gradient of \(p) has NaN or infinite values"
            }
        }
    }

    /// Norms below this are reported as vanishing.
    public var vanishingBelow: Double
    /// Norms above this are reported as exploding.
    public var explodingAbove: Double

    public init(vanishingBelow: Double = 1e-7, explodingAbove: Double = 1e3) {
        self.vanishingBelow = vanishingBelow
        self.explodingAbove = explodingAbove
    }

    /// The warnings for `model`'s stored gradients, in parameter order.
    public func check<Scalar>(_ model: Module<Scalar>) -> [Warning] {
        model.gradientNorms.compactMap { name, norm in
            if !norm.isFinite { return .nonFinite(parameter: name) }
            if norm < vanishingBelow { return .vanishing(parameter: name, norm: norm) }
            if norm > explodingAbove { return .exploding(parameter: name, norm: norm) }
            return nil
        }
    }
}

/// Watches the loss and the gradient norm step by step and reports when both have stayed flat
/// for `window` steps: a plateau (or convergence, if the loss is as low as it gets). Reported
/// once per plateau; the loss must move again before the next report.
public struct PlateauDetector: Sendable {
    public struct Plateau: Sendable, Equatable, CustomStringConvertible {
        public var steps: Int
        public var loss: Double
        public var gradientNorm: Double
        public var description: String {
            "the loss (\(loss)) and the gradient norm (\(gradientNorm)) have been flat for \(steps) steps: a plateau, or convergence if the loss is as low as it gets; if it is still high, try a larger learning rate, another initialization or normalization"
        }
    }

    public var window: Int
    /// Flat: the mean loss of the window's second half differs from its first half's by less
    /// than this fraction…
    public var relativeChange: Double
    /// …and the mean gradient norm by less than this one (batch gradients are noisy).
    public var gradientChange: Double
    var losses: [Double] = [], norms: [Double] = []
    /// The mean loss of the last reported plateau: the next report waits until the loss has
    /// left it by ten times `relativeChange`.
    var reportedLoss: Double?

    public init(window: Int = 200, relativeChange: Double = 1e-3, gradientChange: Double = 0.25) {
        require(window >= 4 && relativeChange > 0 && gradientChange > 0, "PlateauDetector: window \(window) must be at least 4 and the changes positive")
        (self.window, self.relativeChange, self.gradientChange) = (window, relativeChange, gradientChange)
    }

    /// Feeds one step; returns a plateau the first time one is seen.
    public mutating func observe(loss: Double, gradientNorm: Double) -> Plateau? {
        guard loss.isFinite, gradientNorm.isFinite else { return nil }
        losses.append(loss); norms.append(gradientNorm)
        if losses.count > window { losses.removeFirst(); norms.removeFirst() }
        guard losses.count == window else { return nil }
        func flat(_ v: [Double], _ tolerance: Double) -> Bool {
            let h = v.count / 2
            let a = v[..<h].reduce(0, +) / Double(h), b = v[h...].reduce(0, +) / Double(v.count - h)
            return Swift.abs(a - b) <= tolerance * Swift.max(Swift.abs(a), Swift.abs(b), 1e-12)
        }
        let mean = losses.reduce(0, +) / Double(window)
        if let last = reportedLoss {
            guard Swift.abs(mean - last) > 10 * relativeChange * Swift.max(Swift.abs(last), 1e-12) else { return nil }
        }
        guard flat(losses, relativeChange) && flat(norms, gradientChange) else { return nil }
        reportedLoss = mean
        return Plateau(steps: window, loss: mean, gradientNorm: norms.reduce(0, +) / Double(window))
    }
}
