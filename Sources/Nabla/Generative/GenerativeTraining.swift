import Foundation

/// A failure of a generative run's settings or files, with a message for the user.
public struct GenerativeError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A generative model in a few words, as `nabla train --model` takes it:
/// `vae:H1,…,Z` (dense hidden sizes, then the latent size; `+gaussian` for a Gaussian pixel
/// likelihood), `gan[:Z]` or `cgan[:Z]` (class-conditional), Z the latent size (default 100).
public enum GenerativeSpec: Sendable, Codable, Equatable, CustomStringConvertible {
    case vae(hidden: [Int], latent: Int, likelihood: PixelLikelihood)
    case gan(latent: Int, conditional: Bool)

    /// Whether `text` names a generative model (`vae…`, `gan…`, `cgan…`).
    public static func names(_ text: String) -> Bool {
        let t = text.lowercased()
        return ["vae", "gan", "cgan"].contains { t == $0 || t.hasPrefix($0 + ":") || t.hasPrefix($0 + "+") }
    }

    public init(parsing text: String) throws {
        var body = text.lowercased()
        let written = PixelLikelihood.allCases.first { body.hasSuffix("+" + $0.rawValue) }
        if let written { body = String(body.dropLast(written.rawValue.count + 1)) }
        let likelihood = written ?? .bernoulli
        let parts = body.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let numbers = parts.count == 2 ? parts[1].split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) } : []
        if numbers.contains(where: { $0 == nil }) { throw GenerativeError("--model \(text): sizes must be whole numbers, e.g. vae:400,20") }
        let sizes = numbers.map { $0! }
        switch parts[0] {
        case "vae":
            if parts.count == 1 { self = .vae(hidden: [400], latent: 20, likelihood: likelihood); return }
            guard let latent = sizes.last, !sizes.isEmpty else { throw GenerativeError("--model \(text): write vae:HIDDEN,…,LATENT, e.g. vae:400,20") }
            guard latent >= 1 else { throw GenerativeError("--model \(text): the latent size must be at least 1, got \(latent)") }
            guard sizes.dropLast().allSatisfy({ $0 >= 1 }) else { throw GenerativeError("--model \(text): hidden sizes must be at least 1") }
            guard latent <= 4096, sizes.allSatisfy({ $0 <= 1 << 16 }) else { throw GenerativeError("--model \(text): sizes up to 65536 (latent up to 4096)") }
            self = .vae(hidden: Array(sizes.dropLast()), latent: latent, likelihood: likelihood)
        case "gan", "cgan":
            guard written == nil else { throw GenerativeError("--model \(text): a likelihood (+gaussian) belongs to a vae") }
            guard sizes.count <= 1 else { throw GenerativeError("--model \(text): write \(parts[0]):LATENT, e.g. \(parts[0]):100") }
            let latent = sizes.first ?? 100
            guard latent >= 1, latent <= 4096 else { throw GenerativeError("--model \(text): the latent size must be between 1 and 4096, got \(latent)") }
            self = .gan(latent: latent, conditional: parts[0] == "cgan")
        default:
            throw GenerativeError("--model \(text): the generative models are vae:HIDDEN,…,LATENT, gan:LATENT and cgan:LATENT")
        }
    }

    public var description: String {
        switch self {
        case let .vae(h, z, l): return "vae:" + (h + [z]).map(String.init).joined(separator: ",") + (l == .gaussian ? "+gaussian" : "")
        case let .gan(z, c): return (c ? "cgan:" : "gan:") + String(z)
        }
    }

    public var isVAE: Bool { if case .vae = self { return true } else { return false } }
    public var latentSize: Int { switch self { case let .vae(_, z, _): return z; case let .gan(z, _): return z } }
    public var isConditional: Bool { if case let .gan(_, c) = self { return c } else { return false } }
}

/// Everything a generative run is made of, saved with it (`generative.json`) so that `--resume`
/// and `nabla sample` rebuild the same model.
public struct GenerativeSettings: Sendable, Codable, Equatable {
    public var model: GenerativeSpec
    public var epochs: Int
    public var batch: Int
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var seed: UInt64
    /// Image height and width (pixels per row = height · width).
    public var height: Int
    public var width: Int
    /// The class names (for a conditional GAN: what `--class` chooses from).
    public var classNames: [String]

    /// W10's settings for a VAE (PyTorch's example: batch 128, Adam 1e-3, 10 epochs), and the
    /// usual GAN settings (batch 64, Adam 2e-4 with β₁ = 0.5, 20 epochs).
    public static func preset(for model: GenerativeSpec, height: Int, width: Int, classNames: [String]) -> GenerativeSettings {
        switch model {
        case .vae:
            return GenerativeSettings(model: model, epochs: 10, batch: 128, learningRate: 1e-3, beta1: 0.9, beta2: 0.999, seed: 1,
                                      height: height, width: width, classNames: classNames)
        case .gan:
            return GenerativeSettings(model: model, epochs: 20, batch: 64, learningRate: 2e-4, beta1: 0.5, beta2: 0.999, seed: 1,
                                      height: height, width: width, classNames: classNames)
        }
    }

    public func check() throws {
        guard epochs >= 1 else { throw GenerativeError("--epochs must be at least 1, got \(epochs)") }
        guard batch >= 1 else { throw GenerativeError("--batch must be at least 1, got \(batch)") }
        guard learningRate > 0, learningRate.isFinite else { throw GenerativeError("--lr must be a positive number, got \(learningRate)") }
        guard beta1 >= 0, beta1 < 1, beta2 >= 0, beta2 < 1 else { throw GenerativeError("Adam's β₁ and β₂ must be in [0, 1)") }
        guard height >= 1, width >= 1 else { throw GenerativeError("images of \(height) × \(width) pixels") }
        if model.isConditional && classNames.count < 2 { throw GenerativeError("--model \(model): a conditional GAN needs labelled images of at least two classes") }
    }
}

/// One epoch of a generative run. VAE: `trainLoss` and `testLoss` are −ELBO per image (the
/// example's "Average loss" and "Test set loss"). GAN: `trainLoss` is the generator's mean loss,
/// `discriminatorLoss` the discriminator's, `testLoss` nil.
public struct GenerativeEpoch: Sendable, Codable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var testLoss: Double?
    public var discriminatorLoss: Double?
    /// Training time of the epoch (evaluation excluded).
    public var seconds: Double
}

/// Either generative model, in Float.
public enum GenerativeModel {
    case vae(VariationalAutoencoder<Float>)
    case gan(GenerativeAdversarialNetwork<Float>)

    /// The model of `settings`, weights from its seed.
    public init(_ s: GenerativeSettings) {
        let pixels = s.height * s.width
        switch s.model {
        case let .vae(h, z, l):
            self = .vae(GlobalRandom.withSeed(s.seed) { VariationalAutoencoder(inputs: pixels, hidden: h, latent: z, likelihood: l) })
        case let .gan(z, c):
            self = .gan(GlobalRandom.withSeed(s.seed) { GenerativeAdversarialNetwork(pixels: pixels, latent: z, classes: c ? s.classNames.count : 0) })
        }
    }

    public var module: Module<Float> { switch self { case .vae(let m): return m; case .gan(let m): return m } }

    /// `count` new images [count, pixels] in [0, 1]: decoded codes z ~ N(0, I); a conditional
    /// GAN's of `label` (or the classes in turn when nil).
    public func sample(count: Int, label: Int? = nil, using g: inout RandomGenerator) -> Tensor<Float> {
        evaluating(module) {
            switch self {
            case .vae(let m):
                return m.decode(Tensor<Float>.normal(shape: [count, m.latentSize], using: &g))
            case .gan(let m):
                let z = Tensor<Float>.normal(shape: [count, m.latentSize], using: &g)
                let labels = m.classes > 0 ? (0..<count).map { label ?? ($0 % m.classes) } : nil
                return (m.generate(z, labels: labels) + 1) * 0.5
            }
        }
    }
}

/// `body` in evaluation mode without recording gradients; the module's mode is restored after.
func evaluating<T>(_ module: Module<Float>, _ body: () throws -> T) rethrows -> T {
    let training = module.isTraining
    module.eval()
    defer { module.setTraining(training) }
    return try withoutGradients { try body() }
}

/// The training loop of a VAE or a GAN over image rows: a fresh permutation of the training
/// images each epoch, Adam, per-epoch evaluation (VAE: −ELBO per test image), checkpoints at
/// the end of each epoch from which a run continues exactly.
public final class GenerativeTrainer {
    public let settings: GenerativeSettings
    public let train: ImageRows
    public let test: ImageRows
    public let model: GenerativeModel
    /// The VAE's optimizer, or the GAN generator's.
    public var optimizer: Optimizer<Float>
    /// The GAN discriminator's optimizer.
    public var discriminatorOptimizer: Optimizer<Float>?
    public private(set) var history: [GenerativeEpoch] = []
    public var epoch: Int { history.count }
    /// Data order and noise (ε of the VAE, z of the GAN).
    var order: RandomGenerator
    var noise: RandomGenerator

    public init(settings: GenerativeSettings, train: ImageRows, test: ImageRows) throws {
        try settings.check()
        let pixels = settings.height * settings.width
        guard train.count >= 1, train.pixels.shape[1] == pixels, test.pixels.shape[1] == pixels else {
            throw GenerativeError("the images have \(train.pixels.shape[1]) pixels and \(train.count) training rows; the model takes \(settings.height) × \(settings.width)")
        }
        if settings.model.isConditional, let bad = (train.labels + test.labels).first(where: { $0 < 0 || $0 >= settings.classNames.count }) {
            throw GenerativeError("a label \(bad) is outside the \(settings.classNames.count) classes")
        }
        (self.settings, self.train, self.test) = (settings, train, test)
        model = GenerativeModel(settings)
        let adam = Adam(beta1: settings.beta1, beta2: settings.beta2)
        optimizer = Optimizer(rule: adam, learningRate: settings.learningRate)
        if case .gan = model { discriminatorOptimizer = Optimizer(rule: adam, learningRate: settings.learningRate) }
        order = RandomGenerator(seed: settings.seed &+ 1)
        noise = RandomGenerator(seed: settings.seed &+ 2)
    }

    /// One epoch over the training images; `progress(batch, batches, loss)` after each step.
    /// Returning false stops the epoch there and returns nil: nothing is recorded, and the model
    /// holds the stopped epoch's updates (resume from the last checkpoint to continue exactly).
    @discardableResult
    public func runEpoch(progress: (Int, Int, Double) -> Bool = { _, _, _ in true }) -> GenerativeEpoch? {
        let start = Date()
        let permutation = order.permutation(train.count)
        let b = settings.batch, batches = (train.count + b - 1) / b
        model.module.train()
        var total = 0.0, dTotal = 0.0
        for k in 0..<batches {
            let rows = Array(permutation[(k * b)..<Swift.min((k + 1) * b, train.count)])
            let x = train.pixels.takeRows(rows)
            switch model {
            case .vae(let m):
                let loss = m.recordedValueWithGradient { m.loss(x, using: &noise).total }
                optimizer.step(m)
                total += Double(loss.scalar)
            case .gan(let m):
                let labels = m.classes > 0 ? rows.map { train.labels[$0] } : nil
                let real = x * 2 - 1
                let z = Tensor<Float>.normal(shape: [rows.count, m.latentSize], using: &noise)
                var fake = Tensor<Float>(0)
                let gLoss = m.generator.recordedValueWithGradient {
                    let f = m.generate(z, labels: labels)
                    fake = f.detached()
                    return m.generatorLoss(fake: f, labels: labels)
                }
                optimizer.step(m.generator)
                let dLoss = m.discriminator.recordedValueWithGradient {
                    m.discriminatorLoss(real: real, fake: fake, labels: labels, fakeLabels: labels) * 0.5
                }
                discriminatorOptimizer!.step(m.discriminator)
                total += Double(gLoss.scalar) * Double(rows.count)
                dTotal += Double(dLoss.scalar) * Double(rows.count)
            }
            if !progress(k + 1, batches, total / Double(Swift.min((k + 1) * b, train.count))) { return nil }
        }
        let seconds = Date().timeIntervalSince(start)
        var record = GenerativeEpoch(epoch: epoch + 1, trainLoss: total / Double(train.count), testLoss: nil,
                                     discriminatorLoss: nil, seconds: seconds)
        switch model {
        case .vae: record.testLoss = testLoss()
        case .gan: record.discriminatorLoss = dTotal / Double(train.count)
        }
        history.append(record)
        return record
    }

    /// A VAE's −ELBO per test image, in batches of `settings.batch` in file order, with ε sampled
    /// (as PyTorch's example evaluates it).
    public func testLoss() -> Double? {
        guard case .vae(let m) = model, test.count > 0 else { return nil }
        let b = settings.batch
        var sum = 0.0
        evaluating(m) {
            for start in stride(from: 0, to: test.count, by: b) {
                let x = test.pixels.takeRows(Array(start..<Swift.min(start + b, test.count)))
                sum += Double(m.loss(x, using: &noise).total.scalar)
            }
        }
        return sum / Double(test.count)
    }

    // MARK: Pictures

    /// `count` samples as [count, H, W] in [0, 1] (a conditional GAN: the classes in turn, or
    /// `label`), drawn from a generator seeded `seed` (the same pictures for the same seed).
    public func samples(count: Int, label: Int? = nil, seed: UInt64) -> Tensor<Double> {
        var g = RandomGenerator(seed: seed)
        return images(model.sample(count: count, label: label, using: &g))
    }

    /// The first `count` test images above their reconstructions (a VAE), as [2·count, H, W].
    public func reconstructions(count: Int = 32) -> Tensor<Double>? {
        guard case .vae(let m) = model, test.count > 0 else { return nil }
        let n = Swift.min(count, test.count)
        let x = test.pixels.takeRows(Array(0..<n))
        return images(Tensor.concatenate([x, evaluating(m) { m.reconstruct(x) }], axis: 0))
    }

    /// For a VAE with a 2-D latent space: the decoded images on a `side` × `side` grid of codes at
    /// the normal distribution's quantiles (the learned manifold).
    public func manifold(side: Int = 20) -> Tensor<Double>? {
        guard case .vae(let m) = model, m.latentSize == 2 else { return nil }
        var codes: [Float] = []
        for i in 0..<side {
            for j in 0..<side {
                codes.append(Float(normalQuantile((Double(j) + 0.5) / Double(side))))
                codes.append(Float(normalQuantile(1 - (Double(i) + 0.5) / Double(side))))
            }
        }
        return images(evaluating(m) { m.decode(Tensor(shape: [side * side, 2], scalars: codes)) })
    }

    func images(_ rows: Tensor<Float>) -> Tensor<Double> {
        Tensor<Double>(converting: rows).reshaped(to: [rows.shape[0], settings.height, settings.width])
    }

    // MARK: Checkpoints

    /// The weights, both optimizers' states, the generators, the history.
    public func checkpoint() throws -> SafeTensors.Archive {
        var a = SafeTensors.Archive()
        for (k, v) in model.module.archive().tensors { a.tensors["model." + k] = v }
        func add(_ opt: Optimizer<Float>, _ module: Module<Float>, _ prefix: String) {
            let o = opt.archive(for: module)
            for (k, v) in o.tensors { a.tensors[prefix + k] = v }
            for (k, v) in o.metadata { a.metadata[prefix + k] = v }
        }
        switch model {
        case .vae(let m): add(optimizer, m, "optimizer.")
        case .gan(let m):
            add(optimizer, m.generator, "optimizer.")
            add(discriminatorOptimizer!, m.discriminator, "discriminator_optimizer.")
        }
        a.metadata["generative.order"] = order.snapshot
        a.metadata["generative.noise"] = noise.snapshot
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        a.metadata["generative.history"] = String(decoding: try encoder.encode(history), as: UTF8.self)
        return a
    }

    /// Continues from ``checkpoint()``'s archive: the next epoch is the one an uninterrupted run
    /// would train. A file of another model changes nothing and is an error naming it.
    public func resume(from a: SafeTensors.Archive, path: String) throws {
        func part(_ prefix: String) -> SafeTensors.Archive {
            var p = SafeTensors.Archive()
            for (k, v) in a.tensors where k.hasPrefix(prefix) { p.tensors[String(k.dropFirst(prefix.count))] = v }
            for (k, v) in a.metadata where k.hasPrefix(prefix) { p.metadata[String(k.dropFirst(prefix.count))] = v }
            return p
        }
        guard let o = a.metadata["generative.order"].flatMap(RandomGenerator.init(snapshot:)),
              let n = a.metadata["generative.noise"].flatMap(RandomGenerator.init(snapshot:)),
              let text = a.metadata["generative.history"],
              let h = try? JSONDecoder().decode([GenerativeEpoch].self, from: Data(text.utf8)) else {
            throw GenerativeError("\(path) is not a checkpoint of a generative run (no generators or history in its metadata)")
        }
        var opt = optimizer, dOpt = discriminatorOptimizer
        switch model {
        case .vae(let m): try opt.restore(part("optimizer."), for: m, path: path)
        case .gan(let m):
            try opt.restore(part("optimizer."), for: m.generator, path: path)
            try dOpt!.restore(part("discriminator_optimizer."), for: m.discriminator, path: path)
        }
        try model.module.load(part("model."), path: path)
        (optimizer, discriminatorOptimizer, order, noise, history) = (opt, dOpt, o, n, h)
    }
}

/// The standard normal distribution's quantile function (Acklam's rational approximation refined
/// by one Halley step: about 1e-15 relative).
public func normalQuantile(_ p: Double) -> Double {
    require(p > 0 && p < 1, "normalQuantile: p = \(p) is not in (0, 1)")
    let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
    let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
    let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    var x: Double
    if p < 0.02425 {
        let q = (-2 * log(p)).squareRoot()
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    } else if p > 1 - 0.02425 {
        let q = (-2 * log(1 - p)).squareRoot()
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    } else {
        let q = p - 0.5, r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }
    let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
    let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
    return x - u / (1 + x * u / 2)
}
