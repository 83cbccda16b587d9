/// Explains a trained model (a `nabla train` run) on a table of rows: attributions for every row
/// of the explained output — the predicted class, a chosen class or output — global importances,
/// and the rows asked for. The logic behind `nabla explain`.
public struct ModelExplanation {
    public enum Method: String, CaseIterable, Sendable {
        case saliency, inputXGradient = "input-x-gradient", integratedGradients = "integrated-gradients", smoothGrad = "smoothgrad", permutation
    }

    public var method: Method
    /// Global importance of each feature: mean |attribution| over the rows, or the permutation
    /// importance (the drop of accuracy or R²).
    public var importance: FeatureImportance
    /// Attributions [N, D] in the model's (scaled) input space; nil for permutation importance.
    public var attributions: Tensor<Double>?
    /// The output explained for each row (a class index; 0 for regression).
    public var explainedOutputs: [Int]
    /// Integrated gradients' convergence delta per row.
    public var convergenceDelta: [Double]?

    /// - Parameters:
    ///   - x: raw features [N, D] (the run's scaling is applied here).
    ///   - output: the class (or output column) to explain for every row; nil: each row's
    ///     predicted class (regression: its one output).
    ///   - labels, values: the true targets, needed by permutation importance.
    public static func explain(_ model: TrainedModel, features x: Tensor<Double>, method: Method, output: Int? = nil,
                               baselineMean: Bool = false, steps: Int = 50, repeats: Int = 5, seed: UInt64 = 0,
                               labels: [Int]? = nil, values: [Double]? = nil) throws -> ModelExplanation {
        let card = model.card
        let n = x.shape[0], outputs = card.outputs
        guard n > 0 else { throw RunSettingsError("the data has no rows to explain") }
        guard steps >= 1 else { throw RunSettingsError("--steps must be at least 1, got \(steps)") }
        if let output { guard output >= 0 && output < outputs else {
            throw RunSettingsError("output \(output) is outside 0..<\(outputs) (the model's \(card.task == .classification ? "classes: \(card.classes.joined(separator: ", "))" : "outputs"))")
        } }
        let scores = model.outputs(x)
        let explained = output.map { Array(repeating: $0, count: n) } ?? (card.task == .classification ? scores.argmax(axis: 1) : Array(repeating: 0, count: n))
        if method == .permutation {
            let importance: FeatureImportance
            if card.task == .classification {
                guard let labels, labels.count == n else { throw RunSettingsError("permutation importance needs the target column '\(card.target)' in the data") }
                importance = FeatureImportance.permutation(features: x, repeats: repeats, seed: seed) { v in
                    Metrics.accuracy(predicted: model.outputs(v).argmax(axis: 1), actual: labels)
                }
            } else {
                guard let values, values.count == n else { throw RunSettingsError("permutation importance needs the target column '\(card.target)' in the data") }
                let (mean, scale) = (card.targetMean ?? 0, card.targetScale ?? 1)
                importance = FeatureImportance.permutation(features: x, repeats: repeats, seed: seed) { v in
                    Metrics.r2(predicted: model.outputs(v).scalars.map { Double($0) * scale + mean }, actual: values)
                }
            }
            return ModelExplanation(method: method, importance: importance, attributions: nil, explainedOutputs: explained, convergenceDelta: nil)
        }
        let inputs = Tensor<Double>(converting: model.scaled(x))
        // The network in Double (the same weights), so that attributions and the convergence
        // delta are not limited by Float rounding.
        let network: Sequential<Double> = card.spec.build(inputs: card.features.count, outputs: outputs)
        try network.load(model.network.archive(), path: "the run's model", convertingTypes: true)
        network.eval()
        var chunks: [Tensor<Double>] = [], deltas: [Double] = []
        // Rows in chunks, so that a path of `steps` points per row stays a moderate batch.
        let chunk = Swift.max(1, 4096 / Swift.max(1, method == .integratedGradients ? steps : method == .smoothGrad ? 25 : 1))
        var start = 0
        while start < n {
            let end = Swift.min(n, start + chunk)
            let rows = inputs[start..<end]
            let explainer = Attribution<Double>(target: .classes(Array(explained[start..<end]))) { network($0) }
            switch method {
            case .saliency: chunks.append(explainer.saliency(rows).values)
            case .inputXGradient: chunks.append(explainer.inputXGradient(rows).values)
            case .smoothGrad: chunks.append(explainer.smoothGrad(rows, seed: seed &+ UInt64(start)).values)
            case .integratedGradients:
                let baseline: Attribution<Double>.Baseline = baselineMean ? .tensor(inputs.mean(axes: [0])) : .zeros
                let r = explainer.integratedGradients(rows, baseline: baseline, steps: steps)
                chunks.append(r.values)
                deltas += r.convergenceDelta!
            case .permutation: break
            }
            start = end
        }
        let all = Tensor.concatenate(chunks, axis: 0)
        return ModelExplanation(method: method, importance: .meanAbsolute(all), attributions: all, explainedOutputs: explained,
                                convergenceDelta: method == .integratedGradients ? deltas : nil)
    }
}
