import Foundation

/// A model described in a few words, as `nabla train --model` takes it: `linear`, `logistic`,
/// `svm`, `mlp:64,32` (hidden layer sizes) or `cnn:32,64/128` (convolution channels / dense
/// sizes, `+bn` for batch norm). It builds the network and names its loss, so a saved run can
/// be rebuilt from its description.
public struct ModelSpec: Sendable, Codable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable, CaseIterable { case linear, logistic, svm, mlp, cnn }
    public var kind: Kind
    public var hidden: [Int]
    public var activation: String
    public var dropout: Double
    /// Inputs projected on their first `pca` principal components by a frozen first layer
    /// (nil: none).
    public var pca: Int?
    /// cnn: output channels of each 3×3 convolution block (convolution, optional batch norm,
    /// activation, 2×2 max pooling); `hidden` holds the dense layers after them.
    public var channels: [Int]?
    /// cnn: batch normalization after each convolution and dense hidden layer.
    public var batchNorm: Bool?

    public init(kind: Kind, hidden: [Int] = [], activation: String = "relu", dropout: Double = 0) {
        (self.kind, self.hidden, self.activation, self.dropout) = (kind, hidden, activation, dropout)
    }

    /// The CLI's default convolutional network: `cnn:32,64/256+bn` (two blocks of 3×3
    /// convolutions with batch norm, ReLU and 2×2 max pooling, then a dense layer of 256).
    public static let defaultCNN = "cnn:32,64/256+bn"

    /// Parses `linear`, `logistic`, `svm`, `mlp` (one hidden layer of 64) or `mlp:64,32`.
    public init?(parsing text: String, activation: String = "relu", dropout: Double = 0) {
        if text.lowercased() == "cnn" || text.lowercased().hasPrefix("cnn:") || text.lowercased().hasPrefix("cnn+") {
            self.init(parsingCNN: text.lowercased() == "cnn" ? ModelSpec.defaultCNN : text.lowercased(), activation: activation, dropout: dropout)
            return
        }
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

    /// `cnn:C1,C2,.../D1,...[+bn]`: convolution channels, then (after a slash, optional) dense
    /// hidden sizes; `cnn+bn` or `cnn:C1,C2+bn` too.
    init?(parsingCNN text: String, activation: String, dropout: Double) {
        var body = String(text.dropFirst(3))
        var batchNorm = false
        if body.hasSuffix("+bn") { batchNorm = true; body = String(body.dropLast(3)) }
        if body.isEmpty { body = ":32,64/256" }
        guard body.hasPrefix(":") else { return nil }
        let halves = body.dropFirst().split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        func sizes(_ t: String) -> [Int]? {
            let v = t.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            return v.allSatisfy({ ($0 ?? 0) > 0 }) ? v.map { $0! } : nil
        }
        guard let channels = sizes(halves[0]), !channels.isEmpty else { return nil }
        let dense = halves.count == 2 ? sizes(halves[1]) : []
        guard let dense, !(halves.count == 2 && dense.isEmpty) else { return nil }
        guard ["relu", "tanh", "sigmoid", "gelu"].contains(activation), dropout >= 0, dropout < 1 else { return nil }
        self.init(kind: .cnn, hidden: dense, activation: activation, dropout: dropout)
        self.channels = channels
        self.batchNorm = batchNorm
    }

    public var description: String {
        switch kind {
        case .mlp: return "mlp:" + hidden.map(String.init).joined(separator: ",")
        case .cnn:
            return "cnn:" + (channels ?? []).map(String.init).joined(separator: ",")
                + (hidden.isEmpty ? "" : "/" + hidden.map(String.init).joined(separator: ",")) + (batchNorm == true ? "+bn" : "")
        default: return kind.rawValue
        }
    }

    /// cnn: the image a row of `inputs` features holds — one channel, square (784 = 28 × 28).
    public static func imageShape(inputs: Int) -> (channels: Int, height: Int, width: Int)? {
        let side = Int(Double(inputs).squareRoot().rounded())
        return side > 0 && side * side == inputs ? (1, side, side) : nil
    }

    /// Why this model cannot take `inputs` features (nil when it can): a cnn needs square
    /// one-channel images large enough for its poolings.
    public func problem(inputs: Int) -> String? {
        guard kind == .cnn else { return nil }
        guard let (_, h, w) = ModelSpec.imageShape(inputs: inputs) else {
            return "--model \(self): a row of \(inputs) features is not a square one-channel image (28 × 28 = 784 pixels, say)"
        }
        let blocks = channels?.count ?? 0
        if h >> blocks < 1 || w >> blocks < 1 {
            return "--model \(self): \(blocks) poolings of 2 × 2 shrink a \(h) × \(w) image below 1 × 1 (at most \(Int(log2(Double(Swift.min(h, w))))) convolution blocks)"
        }
        return nil
    }

    /// The network from `inputs` features to `outputs` scores (or values).
    public func build<Scalar: TensorScalar>(inputs: Int, outputs: Int) -> Sequential<Scalar> {
        if kind == .cnn { return buildCNN(inputs: inputs, outputs: outputs) }
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
            layers.append(activationLayer())
            if dropout > 0 { layers.append(Dropout(probability: dropout)) }
            width = h
        }
        layers.append(Linear(inputSize: width, outputSize: outputs))
        return Sequential(layers)
    }

    func activationLayer<Scalar: TensorScalar>() -> any Layer<Scalar> {
        switch activation {
        case "tanh": return Activation<Scalar>(.tanh)
        case "sigmoid": return Activation<Scalar>(.sigmoid)
        case "gelu": return Activation<Scalar>(.gelu)
        default: return Activation<Scalar>(.relu)
        }
    }

    /// Rows of pixels reshaped to [N, 1, H, W]; per block a 3×3 convolution (padding 1), batch
    /// norm if asked, the activation and 2×2 max pooling; flattened (C, H, W); dense hidden
    /// layers (with batch norm and dropout if asked); a linear output. PyTorch's default
    /// initialization (U(−k, k), k = 1/√fan_in) throughout, as W7 defines it.
    func buildCNN<Scalar: TensorScalar>(inputs: Int, outputs: Int) -> Sequential<Scalar> {
        if let p = problem(inputs: inputs) { usageFailure("ModelSpec: \(p)") }
        let (c0, h0, w0) = ModelSpec.imageShape(inputs: inputs)!
        var layers: [any Layer<Scalar>] = [Lambda<Scalar> { $0.reshaped(to: [$0.shape[0], c0, h0, w0]) }]
        var (c, h, w) = (c0, h0, w0)
        for out in channels ?? [] {
            layers.append(Conv2d<Scalar>(inputChannels: c, outputChannels: out, kernelSize: [3, 3], padding: [1, 1]))
            if batchNorm == true { layers.append(BatchNorm<Scalar>(featureCount: out)) }
            layers.append(activationLayer())
            layers.append(MaxPool2d<Scalar>(kernelSize: [2, 2]))
            (c, h, w) = (out, h / 2, w / 2)
        }
        layers.append(Flatten<Scalar>())
        var width = c * h * w
        for size in hidden {
            layers.append(Linear<Scalar>(inputSize: width, outputSize: size, weightInitializer: .fanInUniform))
            if batchNorm == true { layers.append(BatchNorm<Scalar>(featureCount: size)) }
            layers.append(activationLayer() as any Layer<Scalar>)
            if dropout > 0 { layers.append(Dropout<Scalar>(probability: dropout)) }
            width = size
        }
        layers.append(Linear<Scalar>(inputSize: width, outputSize: outputs, weightInitializer: .fanInUniform))
        return Sequential(layers)
    }

    /// Whether the model fits `task`: linear regression, MLPs and CNNs do regression; logistic
    /// regression, SVMs, MLPs and CNNs classify.
    public func supports(_ task: Task) -> Bool {
        switch kind {
        case .linear: return task == .regression
        case .logistic, .svm: return task == .classification
        case .mlp, .cnn: return true
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
