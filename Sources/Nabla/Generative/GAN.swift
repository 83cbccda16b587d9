import Foundation

/// A generative adversarial network (Goodfellow et al., 2014) of dense layers: a generator from a
/// latent code z ~ N(0, I) (and, conditioned, a class as one-hot) to pixels in [−1, 1] (tanh), and
/// a discriminator from pixels (and the class) to the logit that they are real. Trained with the
/// non-saturating losses: the discriminator descends −log D(x) − log(1 − D(G(z))), the generator
/// −log D(G(z)).
public final class GenerativeAdversarialNetwork<Scalar: TensorScalar>: Module<Scalar> {
    /// z (+ one-hot class) → 256 → 512 → 1024 (LeakyReLU 0.2, batch norm after the first) → pixels, tanh.
    public let generator: Sequential<Scalar>
    /// pixels (+ one-hot class) → 512 → 256 (LeakyReLU 0.2) → 1 logit.
    public let discriminator: Sequential<Scalar>
    public let latentSize: Int
    public let pixels: Int
    /// Classes the generator is conditioned on (0: unconditional).
    public let classes: Int

    public init(pixels: Int, latent: Int, classes: Int = 0,
                generatorHidden: [Int] = [256, 512, 1024], discriminatorHidden: [Int] = [512, 256]) {
        require(pixels > 0 && latent > 0 && classes >= 0, "GenerativeAdversarialNetwork: pixels \(pixels), latent \(latent) and classes \(classes) must be positive")
        var g: [any Layer<Scalar>] = []
        var width = latent + classes
        for (i, h) in generatorHidden.enumerated() {
            g.append(Linear<Scalar>(inputSize: width, outputSize: h))
            if i > 0 { g.append(BatchNorm<Scalar>(featureCount: h, epsilon: 1e-5, momentum: 0.1)) }
            g.append(Activation<Scalar>(.leakyRelu(0.2)))
            width = h
        }
        g.append(Linear<Scalar>(inputSize: width, outputSize: pixels))
        g.append(Activation<Scalar>(.tanh))
        generator = Sequential(g)
        var d: [any Layer<Scalar>] = []
        width = pixels + classes
        for h in discriminatorHidden {
            d.append(Linear<Scalar>(inputSize: width, outputSize: h))
            d.append(Activation<Scalar>(.leakyRelu(0.2)))
            width = h
        }
        d.append(Linear<Scalar>(inputSize: width, outputSize: 1))
        discriminator = Sequential(d)
        (latentSize, self.pixels, self.classes) = (latent, pixels, classes)
        super.init()
    }

    /// One-hot rows [N, classes] for class indices, or nil for an unconditional network.
    func oneHot(_ labels: [Int]?, rows: Int, op: String) -> Tensor<Scalar>? {
        guard classes > 0 else {
            require(labels == nil, "GenerativeAdversarialNetwork.\(op): the network is not conditioned on classes; pass no labels")
            return nil
        }
        guard let labels else { usageFailure("GenerativeAdversarialNetwork.\(op): the network is conditioned on \(classes) classes; pass a label per row") }
        require(labels.count == rows && labels.allSatisfy { $0 >= 0 && $0 < classes },
                "GenerativeAdversarialNetwork.\(op): \(labels.count) labels for \(rows) rows, each in 0..<\(classes)")
        var s = [Scalar](repeating: 0, count: rows * classes)
        for (i, c) in labels.enumerated() { s[i * classes + c] = 1 }
        return Tensor(shape: [rows, classes], scalars: s)
    }

    /// Pixels in [−1, 1] for codes z [N, latent] (and one class per row when conditioned).
    public func generate(_ z: Tensor<Scalar>, labels: [Int]? = nil) -> Tensor<Scalar> {
        require(z.rank == 2 && z.shape[1] == latentSize, "GenerativeAdversarialNetwork.generate: code \(z.shape) is not [N, \(latentSize)]")
        let c = oneHot(labels, rows: z.shape[0], op: "generate")
        return generator(c.map { Tensor.concatenate([z, $0], axis: 1) } ?? z)
    }

    /// The logit that pixel rows x [N, pixels] (in [−1, 1]) are real (of the given classes).
    public func discriminate(_ x: Tensor<Scalar>, labels: [Int]? = nil) -> Tensor<Scalar> {
        require(x.rank == 2 && x.shape[1] == pixels, "GenerativeAdversarialNetwork.discriminate: input \(x.shape) is not [N, \(pixels)]")
        let c = oneHot(labels, rows: x.shape[0], op: "discriminate")
        return discriminator(c.map { Tensor.concatenate([x, $0], axis: 1) } ?? x)
    }

    /// The discriminator's loss, −mean log D(x) − mean log(1 − D(fake)), with `fake` a constant.
    public func discriminatorLoss(real x: Tensor<Scalar>, fake: Tensor<Scalar>, labels: [Int]?, fakeLabels: [Int]?) -> Tensor<Scalar> {
        let r = discriminate(x, labels: labels), f = discriminate(fake.detached(), labels: fakeLabels)
        return binaryCrossEntropy(logits: r, targets: Tensor(repeating: 1, shape: r.shape))
            + binaryCrossEntropy(logits: f, targets: Tensor(repeating: 0, shape: f.shape))
    }

    /// The generator's non-saturating loss, −mean log D(G(z)).
    public func generatorLoss(fake: Tensor<Scalar>, labels: [Int]?) -> Tensor<Scalar> {
        let f = discriminate(fake, labels: labels)
        return binaryCrossEntropy(logits: f, targets: Tensor(repeating: 1, shape: f.shape))
    }
}
