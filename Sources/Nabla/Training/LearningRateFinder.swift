import Foundation

/// The learning-rate range test (Smith, 2017): a short run whose rate grows exponentially from
/// `start` to `end`, one step per batch, with the loss after each. The suggestion is the rate where
/// the loss falls fastest (the steepest descent of the loss against log rate).
public struct LearningRateRangeTest: Sendable {
    public var rates: [Double]
    public var losses: [Double]
    /// Exponentially smoothed losses (β = 0.9, bias-corrected).
    public var smoothedLosses: [Double]
    /// The rate at the steepest descent of the smoothed loss (nil: the loss never fell).
    public var suggestion: Double?
    /// Why the test stopped early (the loss diverged), if it did.
    public var stoppedEarly: Bool
}

extension Trainer {
    /// Runs the range test on this trainer's model, loss and optimizer over shuffled batches, then
    /// puts back the weights and the optimizer's state: the model is left as it was.
    public func findLearningRate(from start: Double = 1e-7, to end: Double = 10, steps: Int = 100) throws -> LearningRateRangeTest {
        require(start > 0 && end > start && steps >= 5, "findLearningRate: rates from \(start) to \(end) over \(steps) steps; need 0 < start < end and at least 5 steps")
        let savedWeights = model.parameters.map(\.value), savedBuffers = model.namedBuffers.map(\.buffer.value)
        let savedOptimizer = optimizer
        defer {
            for (p, v) in zip(model.parameters, savedWeights) { p.value = v; p.gradient = nil }
            for (b, v) in zip(model.namedBuffers.map(\.buffer), savedBuffers) { b.value = v }
            optimizer = savedOptimizer
        }
        var o = optimizer
        o.schedule = nil
        let sampler = self.sampler
        var batches: [[Int]] = [], epoch = 0
        var rates: [Double] = [], losses: [Double] = [], smoothed: [Double] = []
        var average = 0.0, best = Double.infinity, stoppedEarly = false
        model.train()
        for i in 0..<steps {
            if batches.isEmpty { batches = sampler.batches(epoch: epoch); epoch += 1 }
            let rows = batches.removeFirst()
            let rate = start * Foundation.pow(end / start, Double(i) / Double(steps - 1))
            o.learningRate = rate
            let value = Double(model.valueWithGradient { loss($0, rows) }.scalar)
            guard value.isFinite else { stoppedEarly = true; break }
            o.step(model)
            average = 0.9 * average + 0.1 * value
            let s = average / (1 - Foundation.pow(0.9, Double(i + 1)))
            rates.append(rate); losses.append(value); smoothed.append(s)
            best = Swift.min(best, s)
            if i > 5 && s > 4 * best { stoppedEarly = true; break }
        }
        // The steepest fall of the loss against log rate: the least-squares slope of the raw
        // losses over 11 points centred on each rate (centred, so without the smoothing's lag),
        // after the first tenth of the run and before the smoothed loss's lowest point.
        var suggestion: Double?
        let minimum = smoothed.indices.min { smoothed[$0] < smoothed[$1] } ?? 0
        let lo = Swift.max(5, smoothed.count / 10), hi = Swift.min(minimum, smoothed.count - 6)
        if hi > lo {
            var steepest = 0.0
            for i in lo...hi {
                let window = (i - 5)...(i + 5)
                let xs = window.map { Foundation.log(rates[$0]) }, ys = window.map { losses[$0] }
                let mx = xs.reduce(0, +) / 11, my = ys.reduce(0, +) / 11
                let slope = zip(xs, ys).reduce(0.0) { $0 + ($1.0 - mx) * ($1.1 - my) } / xs.reduce(0.0) { $0 + ($1 - mx) * ($1 - mx) }
                if slope < steepest { steepest = slope; suggestion = rates[i] }
            }
        }
        return LearningRateRangeTest(rates: rates, losses: losses, smoothedLosses: smoothed, suggestion: suggestion, stoppedEarly: stoppedEarly)
    }
}
