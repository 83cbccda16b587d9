import Foundation

/// How a generative model scores a pixel: Bernoulli (binary cross-entropy of the decoder's
/// logits, for pixels in [0, 1]) or Gaussian with unit variance (squared error plus ½ log 2π).
public enum PixelLikelihood: String, Sendable, Codable, CaseIterable {
    case bernoulli, gaussian
}

/// The ELBO's two terms for a batch, each summed over the batch (not averaged), as PyTorch's VAE
/// example reports them: the negative log-likelihood of the pixels under the decoder and the KL
/// divergence of the encoder's Gaussian from N(0, I). `total` = their sum = −ELBO.
public struct VAELoss<Scalar: TensorScalar> {
    public var total: Tensor<Scalar>
    public var reconstruction: Tensor<Scalar>
    public var divergence: Tensor<Scalar>
}

/// A variational autoencoder (Kingma and Welling, 2014) over rows of pixels: an encoder of
/// dense ReLU layers to the mean and log-variance of a diagonal Gaussian over the latent code,
/// z = μ + ε · exp(½ log σ²) with ε ~ N(0, I) (the reparameterization trick, so gradients flow
/// through the sample), and a decoder of dense ReLU layers back to pixel logits (Bernoulli) or
/// means (Gaussian).
///
/// `VariationalAutoencoder(inputs: 784, hidden: [400], latent: 20)` is the network of PyTorch's
/// official example (fc1, fc21, fc22, fc3, fc4, built in that order with PyTorch's default
/// initialization).
public final class VariationalAutoencoder<Scalar: TensorScalar>: Module<Scalar> {
    public let encoder: [Linear<Scalar>]
    public let mean: Linear<Scalar>
    public let logVariance: Linear<Scalar>
    public let decoder: [Linear<Scalar>]
    public let output: Linear<Scalar>
    public let likelihood: PixelLikelihood
    public let latentSize: Int
    public let inputSize: Int

    public init(inputs: Int, hidden: [Int], latent: Int, likelihood: PixelLikelihood = .bernoulli) {
        require(inputs > 0 && latent > 0 && hidden.allSatisfy { $0 > 0 },
                "VariationalAutoencoder: sizes must be positive, got inputs \(inputs), hidden \(hidden), latent \(latent)")
        var width = inputs
        var enc: [Linear<Scalar>] = []
        for h in hidden { enc.append(Linear(inputSize: width, outputSize: h)); width = h }
        encoder = enc
        mean = Linear(inputSize: width, outputSize: latent)
        logVariance = Linear(inputSize: width, outputSize: latent)
        var dec: [Linear<Scalar>] = []
        width = latent
        for h in hidden.reversed() { dec.append(Linear(inputSize: width, outputSize: h)); width = h }
        decoder = dec
        output = Linear(inputSize: width, outputSize: inputs)
        (self.likelihood, latentSize, inputSize) = (likelihood, latent, inputs)
        super.init()
    }

    /// The mean and log-variance of q(z | x) for rows x [N, inputs].
    public func encode(_ x: Tensor<Scalar>) -> (mean: Tensor<Scalar>, logVariance: Tensor<Scalar>) {
        require(x.rank == 2 && x.shape[1] == inputSize, "VariationalAutoencoder.encode: input \(x.shape) is not [N, \(inputSize)]")
        var h = x
        for layer in encoder { h = layer(h, thenReLU: true) }
        return (mean(h), logVariance(h))
    }

    /// z = μ + ε · exp(½ log σ²), ε ~ N(0, I) drawn from `generator`.
    public func reparameterize(mean mu: Tensor<Scalar>, logVariance lv: Tensor<Scalar>, using generator: inout RandomGenerator) -> Tensor<Scalar> {
        let eps = Tensor<Scalar>.normal(shape: mu.shape, using: &generator)
        return mu + eps * (lv * 0.5).exp()
    }

    /// The decoder's last layer before the link function: logits (Bernoulli) or means (Gaussian).
    public func decodeParameters(_ z: Tensor<Scalar>) -> Tensor<Scalar> {
        require(z.rank == 2 && z.shape[1] == latentSize, "VariationalAutoencoder.decode: code \(z.shape) is not [N, \(latentSize)]")
        var h = z
        for layer in decoder { h = layer(h, thenReLU: true) }
        return output(h)
    }

    /// The expected pixels for codes z [N, latent]: σ(logits) (Bernoulli) or the means (Gaussian).
    public func decode(_ z: Tensor<Scalar>) -> Tensor<Scalar> {
        let p = decodeParameters(z)
        return likelihood == .bernoulli ? p.sigmoid() : p
    }

    /// −ELBO of rows x [N, inputs] with one sample of z per row, summed over the batch.
    public func loss(_ x: Tensor<Scalar>, using generator: inout RandomGenerator) -> VAELoss<Scalar> {
        let (mu, lv) = encode(x)
        let z = reparameterize(mean: mu, logVariance: lv, using: &generator)
        let p = decodeParameters(z)
        let reconstruction: Tensor<Scalar>
        switch likelihood {
        case .bernoulli:
            reconstruction = binaryCrossEntropy(logits: p, targets: x, reduction: .sum)
        case .gaussian:
            let d = p - x
            reconstruction = (d * d).sum() * 0.5 + Scalar(0.5 * log(2 * Double.pi) * Double(x.count))
        }
        // KL(N(μ, σ²) ‖ N(0, 1)) = −½ Σ (1 + log σ² − μ² − σ²).
        let divergence = (1 + lv - mu * mu - lv.exp()).sum() * -0.5
        return VAELoss(total: reconstruction + divergence, reconstruction: reconstruction, divergence: divergence)
    }

    /// Reconstructions of x: the decoded mean of q(z | x) (no sampling).
    public func reconstruct(_ x: Tensor<Scalar>) -> Tensor<Scalar> { decode(encode(x).mean) }
}
