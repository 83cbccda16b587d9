import Foundation

/// Classification and regression metrics.
public enum Metrics {
    /// The fraction of predictions equal to the labels.
    public static func accuracy(predicted: [Int], actual: [Int]) -> Double {
        require(predicted.count == actual.count && !actual.isEmpty, "accuracy: \(predicted.count) predictions for \(actual.count) labels")
        return Double(zip(predicted, actual).filter { $0 == $1 }.count) / Double(actual.count)
    }

    /// counts[actual][predicted].
    public static func confusionMatrix(predicted: [Int], actual: [Int], classes: Int) -> [[Int]] {
        var m = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        for (p, a) in zip(predicted, actual) { m[a][p] += 1 }
        return m
    }

    public struct ClassScores: Sendable, Equatable {
        public var precision: Double, recall: Double, f1: Double, support: Int
    }

    /// Precision, recall and F1 of each class (0 where undefined), from a confusion matrix.
    public static func perClass(_ confusion: [[Int]]) -> [ClassScores] {
        let k = confusion.count
        return (0..<k).map { c in
            let tp = Double(confusion[c][c])
            let predicted = Double((0..<k).reduce(0) { $0 + confusion[$1][c] })
            let actual = Double(confusion[c].reduce(0, +))
            let p = predicted > 0 ? tp / predicted : 0, r = actual > 0 ? tp / actual : 0
            return ClassScores(precision: p, recall: r, f1: p + r > 0 ? 2 * p * r / (p + r) : 0, support: Int(actual))
        }
    }

    /// Unweighted means over the classes of precision, recall and F1.
    public static func macro(_ scores: [ClassScores]) -> (precision: Double, recall: Double, f1: Double) {
        let n = Double(scores.count)
        return (scores.reduce(0) { $0 + $1.precision } / n, scores.reduce(0) { $0 + $1.recall } / n, scores.reduce(0) { $0 + $1.f1 } / n)
    }

    /// Mean −log p[label] of rows of class probabilities (clipped to [1e-15, 1]).
    public static func logLoss(probabilities: Tensor<Double>, actual: [Int]) -> Double {
        let k = probabilities.shape[1], p = probabilities.scalars
        return actual.enumerated().reduce(0) { $0 - Foundation.log(Swift.max(1e-15, Swift.min(1, p[$1.offset * k + $1.element]))) } / Double(actual.count)
    }

    public static func meanSquaredError(predicted: [Double], actual: [Double]) -> Double {
        zip(predicted, actual).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(actual.count)
    }

    /// The coefficient of determination 1 − SS_res / SS_tot.
    public static func r2(predicted: [Double], actual: [Double]) -> Double {
        let mean = actual.reduce(0, +) / Double(actual.count)
        let total = actual.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        let residual = zip(predicted, actual).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return total > 0 ? 1 - residual / total : (residual == 0 ? 1 : 0)
    }
}

