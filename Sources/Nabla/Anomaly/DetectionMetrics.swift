/// How well anomaly scores (higher: more anomalous) separate anomalies from normal rows.
public enum DetectionMetrics {
    /// The area under the ROC curve: the probability that an anomaly scores above a normal row
    /// (ties count one half), as scikit-learn's `roc_auc_score`.
    public static func rocAUC(scores: [Double], anomalies: [Bool]) -> Double {
        check(scores, anomalies, "rocAUC")
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0, i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j where anomalies[order[k]] { rankSum += rank }
            i = j + 1
        }
        let positives = Double(anomalies.filter { $0 }.count), negatives = Double(anomalies.count) - positives
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    /// Average precision, as scikit-learn's `average_precision_score`: Σₙ (Rₙ − Rₙ₋₁) Pₙ over
    /// the distinct score thresholds, from the highest down.
    public static func averagePrecision(scores: [Double], anomalies: [Bool]) -> Double {
        check(scores, anomalies, "averagePrecision")
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let positives = Double(anomalies.filter { $0 }.count)
        var truePositives = 0.0, seen = 0.0, previousRecall = 0.0, ap = 0.0, i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j { seen += 1; if anomalies[order[k]] { truePositives += 1 } }
            let recall = truePositives / positives, precision = truePositives / seen
            ap += (recall - previousRecall) * precision
            previousRecall = recall
            i = j + 1
        }
        return ap
    }

    /// The ROC curve: (false-positive rate, true-positive rate) at every distinct threshold,
    /// from (0, 0) to (1, 1).
    public static func rocCurve(scores: [Double], anomalies: [Bool]) -> [(falsePositiveRate: Double, truePositiveRate: Double)] {
        check(scores, anomalies, "rocCurve")
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let positives = Double(anomalies.filter { $0 }.count), negatives = Double(anomalies.count) - positives
        var points = [(0.0, 0.0)], tp = 0.0, fp = 0.0, i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j { if anomalies[order[k]] { tp += 1 } else { fp += 1 } }
            points.append((fp / negatives, tp / positives))
            i = j + 1
        }
        return points.map { (falsePositiveRate: $0.0, truePositiveRate: $0.1) }
    }

    /// The score above which a fraction `rate` of `normalScores` lies: flagging scores above it
    /// gives that false-positive rate on data like them.
    public static func threshold(normalScores: [Double], falsePositiveRate rate: Double) -> Double {
        require(!normalScores.isEmpty && rate >= 0 && rate <= 1, "DetectionMetrics.threshold: \(normalScores.count) scores and a rate of \(rate); need scores and a rate in [0, 1]")
        let sorted = normalScores.sorted()
        let index = Swift.min(sorted.count - 1, Swift.max(0, Int((Double(sorted.count) * (1 - rate)).rounded(.up)) - 1))
        return sorted[index]
    }

    static func check(_ scores: [Double], _ anomalies: [Bool], _ op: String) {
        require(scores.count == anomalies.count, "\(op): \(scores.count) scores for \(anomalies.count) labels")
        require(anomalies.contains(true) && anomalies.contains(false), "\(op): the labels need both anomalies and normal rows")
        require(scores.allSatisfy { !$0.isNaN }, "\(op): a score is NaN")
    }
}
