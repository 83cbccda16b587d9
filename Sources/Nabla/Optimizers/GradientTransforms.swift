import Foundation

/// A transformation of all gradients of one step before the update rule sees them: clipping,
/// weight decay. Transforms chain with any rule in ``Optimizer``.
public protocol GradientTransform: Sendable {
    func transform<Scalar: TensorScalar>(_ gradients: inout [Tensor<Scalar>], parameters: [Tensor<Scalar>])
}

/// Clipping by the norm of all gradients together, as one vector.
///
/// `total = (Σ |g|^p)^(1/p)` over every element of every gradient (`max |g|` for p = ∞); all
/// gradients are multiplied by `min(maxNorm / (total + 1e-6), 1)`.
public struct ClipByGlobalNorm: GradientTransform {
    public enum NormType: Sendable, Equatable { case p(Double), infinity }
    public var maxNorm: Double
    public var normType: NormType

    public init(maxNorm: Double, normType: NormType = .p(2)) {
        require(maxNorm >= 0, "ClipByGlobalNorm: maxNorm must not be negative")
        self.maxNorm = maxNorm
        self.normType = normType
    }

    /// The norm of all gradients together.
    public func totalNorm<Scalar: TensorScalar>(_ gradients: [Tensor<Scalar>]) -> Double {
        switch normType {
        case .infinity:
            return gradients.reduce(0.0) { Swift.max($0, $1.count == 0 ? 0 : Double($1.abs().max().scalar)) }
        case .p(let p):
            if p == 2 { return gradients.reduce(0.0) { $0 + Double(($1 * $1).sum().scalar) }.squareRoot() }
            if p == 1 { return gradients.reduce(0.0) { $0 + Double($1.abs().sum().scalar) } }
            let s = gradients.reduce(0.0) { $0 + Double($1.abs().pow(Scalar(p)).sum().scalar) }
            return Foundation.pow(s, 1 / p)
        }
    }

    /// Clips in place and returns the norm before clipping.
    @discardableResult
    public func clip<Scalar: TensorScalar>(_ gradients: inout [Tensor<Scalar>]) -> Double {
        let total = totalNorm(gradients)
        let coefficient = Swift.min(maxNorm / (total + 1e-6), 1)
        if coefficient < 1 { gradients = gradients.map { $0 * Scalar(coefficient) } }
        return total
    }

    public func transform<Scalar: TensorScalar>(_ gradients: inout [Tensor<Scalar>], parameters: [Tensor<Scalar>]) {
        clip(&gradients)
    }
}

/// Clamps every gradient element to [−clipValue, clipValue].
public struct ClipByValue: GradientTransform {
    public var clipValue: Double
    public init(_ clipValue: Double) {
        require(clipValue >= 0, "ClipByValue: clipValue must not be negative")
        self.clipValue = clipValue
    }
    public func transform<Scalar: TensorScalar>(_ gradients: inout [Tensor<Scalar>], parameters: [Tensor<Scalar>]) {
        gradients = gradients.map { $0.clamped(min: Scalar(-clipValue), max: Scalar(clipValue)) }
    }
}

/// L2 regularization through the gradient: adds `λ x` to each parameter's gradient (use the
/// rules' own `weightDecay`, or AdamW, for the decoupled form).
public struct AddWeightDecay: GradientTransform {
    public var lambda: Double
    public init(_ lambda: Double) { self.lambda = lambda }
    public func transform<Scalar: TensorScalar>(_ gradients: inout [Tensor<Scalar>], parameters: [Tensor<Scalar>]) {
        gradients = zip(gradients, parameters).map { $0 + $1 * Scalar(lambda) }
    }
}
