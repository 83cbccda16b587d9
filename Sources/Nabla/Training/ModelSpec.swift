/// A model described in a few words, as `nabla train --model` takes it: `linear`, `logistic`,
/// `svm`, or `mlp:64,32` (hidden layer sizes). It builds the network and names its loss, so a
/// saved run can be rebuilt from its description.
public struct ModelSpec: Sendable, Codable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable, CaseIterable { case linear, logistic, svm, mlp }
    public var kind: Kind
    public var hidden: [Int]
    public var activation: String
    public var dropout: Double
    /// Inputs projected on their first `pca` principal components by a frozen first layer
    /// (nil: none).
    public var pca: Int?

    public init(kind: Kind, hidden: [Int] = [], activation: String = "relu", dropout: Double = 0) {
        (self.kind, self.hidden, self.activation, self.dropout) = (kind, hidden, activation, dropout)
    }

    /// Parses `linear`, `logistic`, `svm`, `mlp` (one hidden layer of 64) or `mlp:64,32`.
    public init?(parsing text: String, activation: String = "relu", dropout: Double = 0) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let kind = Kind(rawValue: first.lowercased()) else { return nil }
        var hidden: [Int] = []
        if parts.count == 2 {
            guard kind == .mlp else { return nil }
            let sizes = parts[1].split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
            hidden = sizes.map { $0! }
        } else if kind == .mlp {
            hidden = [64]
        }
        guard ["relu", "tanh", "sigmoid", "gelu"].contains(activation), dropout >= 0, dropout < 1 else { return nil }
        self.init(kind: kind, hidden: hidden, activation: activation, dropout: dropout)
    }

    public var description: String { kind == .mlp ? "mlp:" + hidden.map(String.init).joined(separator: ",") : kind.rawValue }

    /// The network from `inputs` features to `outputs` scores (or values).
    public func build<Scalar: TensorScalar>(inputs: Int, outputs: Int) -> Sequential<Scalar> {
        var layers: [any Layer<Scalar>] = []
        var width = inputs
        if let k = pca {
            // The projection (x − μ) Cᵀ as x Cᵀ + b; its weights come from the PCA fit.
            layers.append(Linear(inputSize: inputs, outputSize: k, weightInitializer: .zeros, biasInitializer: .zeros))
            width = k
        }
        for h in (kind == .mlp ? hidden : []) {
            layers.append(Linear(inputSize: width, outputSize: h,
                                 weightInitializer: activation == "relu" ? .kaimingUniform(nonlinearity: .relu) : .xavierUniform()))
            switch activation {
            case "tanh": layers.append(Activation(.tanh))
            case "sigmoid": layers.append(Activation(.sigmoid))
            case "gelu": layers.append(Activation(.gelu))
            default: layers.append(Activation(.relu))
            }
            if dropout > 0 { layers.append(Dropout(probability: dropout)) }
            width = h
        }
        layers.append(Linear(inputSize: width, outputSize: outputs))
        return Sequential(layers)
    }

    /// Whether the model fits `task`: linear regression and MLPs do regression; logistic
    /// regression, SVMs and MLPs classify.
    public func supports(_ task: Task) -> Bool {
        switch kind {
        case .linear: return task == .regression
        case .logistic, .svm: return task == .classification
        case .mlp: return true
        }
    }

    /// The loss of the model's outputs: cross-entropy (logistic, MLP classifier), the multi-class
    /// hinge loss (SVM) or the mean squared error (regression).
    public func loss<Scalar: TensorScalar>(_ outputs: Tensor<Scalar>, classes: IndexTensor?, values: Tensor<Scalar>?) -> Tensor<Scalar> {
        if let classes {
            return kind == .svm ? multiMarginLoss(outputs, targets: classes) : crossEntropy(logits: outputs, targets: classes)
        }
        return meanSquaredError(outputs, values!)
    }
}
