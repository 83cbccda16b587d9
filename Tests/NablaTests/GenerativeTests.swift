import Foundation
@testable import Nabla
import Testing

@Suite struct GenerativeTests {
    /// The fused binary cross-entropy of logits against the element-wise formula in double
    /// precision: value and gradient, saturated logits included (where log σ would underflow),
    /// a recorded backward pass (second order) and NaN.
    @Test func fusedBinaryCrossEntropyOfLogitsMatchesTheFormula() {
        let x = Tensor<Double>(shape: [2, 4], scalars: [-40, -3, -0.5, 0, 0.25, 2, 35, 800])
        let y = Tensor<Double>(shape: [2, 4], scalars: [0, 1, 0.3, 0.5, 1, 0, 0.9, 1])
        func reference(_ v: Double, _ t: Double) -> Double {
            // −(t log σ(v) + (1 − t) log(1 − σ(v))), with log σ(v) = −log(1 + e^−v) written stably.
            let logSigma = v >= 0 ? -log1p(exp(-v)) : v - log1p(exp(v))
            let logOneMinus = v >= 0 ? -v - log1p(exp(-v)) : -log1p(exp(v))
            return -(t * logSigma + (1 - t) * logOneMinus)
        }
        let expected = zip(x.scalars, y.scalars).map(reference).reduce(0, +)
        let (value, grad) = valueWithGradient(at: x) { binaryCrossEntropy(logits: $0, targets: y, reduction: .sum) }
        #expect(isClose(value.scalar, expected, tolerance: 1e-14), "\(value.scalar) vs \(expected)")
        let sigma = x.scalars.map { 1 / (1 + exp(-$0)) }
        #expect(isClose(grad.scalars, zip(sigma, y.scalars).map { $0 - $1 }, tolerance: 1e-14))
        let mean = valueWithGradient(at: x) { binaryCrossEntropy(logits: $0, targets: y) }
        #expect(isClose(mean.0.scalar, expected / 8, tolerance: 1e-14) && isClose(mean.1.scalars, grad.scalars.map { $0 / 8 }, tolerance: 1e-14))
        // The composite path (a weight forces it) gives the same value.
        let composite = binaryCrossEntropy(logits: x, targets: y, weight: Tensor(repeating: 1, shape: [2, 4]), reduction: .sum)
        #expect(isClose(composite.scalar, expected, tolerance: 1e-12))
        // Second order: d²/dx² Σ = σ(x)(1 − σ(x)) on the diagonal.
        let hvp = gradient(at: x) { v in (gradient(at: v) { binaryCrossEntropy(logits: $0, targets: y, reduction: .sum) } * Tensor(repeating: 1, shape: [2, 4])).sum() }
        #expect(isClose(hvp.scalars, sigma.map { $0 * (1 - $0) }, tolerance: 1e-12))
        // Single precision (vectorized where the machine has AVX2): 1003 logits from −100 to 100
        // against the double-precision formula, to float's rounding; NaN in any lane.
        let xs = (0..<1003).map { -100 + 200 * Double($0) / 1002 }, ts = (0..<1003).map { Double($0 % 11) / 10 }
        let fx = Tensor<Float>(shape: [1003], scalars: xs.map(Float.init)), ft = Tensor<Float>(shape: [1003], scalars: ts.map(Float.init))
        let (fv, fg) = valueWithGradient(at: fx) { binaryCrossEntropy(logits: $0, targets: ft, reduction: .sum) }
        let exact = zip(fx.scalars.map(Double.init), ft.scalars.map(Double.init)).map(reference).reduce(0, +)
        #expect(Swift.abs(Double(fv.scalar) - exact) <= 1e-6 * exact, "\(fv.scalar) vs \(exact)")
        for (i, g) in fg.scalars.enumerated() {
            let v = Double(fx.scalars[i]), e = 1 / (1 + exp(-v)) - Double(ft.scalars[i])
            #expect(Swift.abs(Double(g) - e) <= 1e-6, "logit \(v): \(g) vs \(e)")
        }
        for k in [0, 5, 9] {
            var s = [Float](repeating: 0.5, count: 10)
            s[k] = .nan
            let (v, g) = valueWithGradient(at: Tensor<Float>(shape: [10], scalars: s)) { binaryCrossEntropy(logits: $0, targets: Tensor(repeating: 1, shape: [10]), reduction: .sum) }
            #expect(v.scalar.isNaN && g.scalars[k].isNaN && g.scalars.enumerated().allSatisfy { $0.offset == k || !$0.element.isNaN })
        }
    }

    /// −ELBO of a small VAE with Bernoulli pixels, recomputed by hand from its layers with the same
    /// ε; and its gradient through the reparameterization against central differences.
    @Test func vaeLossIsTheNegativeELBOAndItsGradientIsExact() {
        let vae = GlobalRandom.withSeed(3) { VariationalAutoencoder<Double>(inputs: 6, hidden: [5], latent: 2) }
        var g = RandomGenerator(seed: 1)
        let x = Tensor<Double>.uniform(shape: [3, 6], using: &g)
        var noise = RandomGenerator(seed: 7)
        let loss = vae.loss(x, using: &noise)
        // By hand.
        var replay = RandomGenerator(seed: 7)
        let eps = Tensor<Double>.normal(shape: [3, 2], using: &replay)
        let h = vae.encoder[0](x).relu()
        let mu = vae.mean(h), lv = vae.logVariance(h)
        let z = mu + eps * (lv * 0.5).exp()
        let p = vae.output(vae.decoder[0](z).relu()).sigmoid()
        var bce = 0.0
        for (pi, xi) in zip(p.scalars, x.scalars) { bce -= xi * log(pi) + (1 - xi) * log(1 - pi) }
        var kl = 0.0
        for (m, l) in zip(mu.scalars, lv.scalars) { kl += -0.5 * (1 + l - m * m - exp(l)) }
        #expect(isClose(loss.reconstruction.scalar, bce, tolerance: 1e-12) && isClose(loss.divergence.scalar, kl, tolerance: 1e-12))
        #expect(isClose(loss.total.scalar, bce + kl, tolerance: 1e-12))
        // Gradient through every weight with ε fixed (the same generator state each evaluation).
        let params = vae.parameters
        let report = GradientCheck.dotProductTest(at: params.map(\.value), tolerance: 1e-6) { v in
            for (p, value) in zip(params, v) { p.value = value }
            var n = RandomGenerator(seed: 7)
            return vae.loss(x, using: &n).total
        }
        #expect(report.passed, "\(report)")
        // The Gaussian likelihood: ½‖x − μ‖² + ½ D log 2π per image.
        let gauss = GlobalRandom.withSeed(3) { VariationalAutoencoder<Double>(inputs: 6, hidden: [5], latent: 2, likelihood: .gaussian) }
        var n1 = RandomGenerator(seed: 7)
        let gl = gauss.loss(x, using: &n1)
        let means = gauss.output(gauss.decoder[0](z).relu())
        let sq = zip(means.scalars, x.scalars).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
        #expect(isClose(gl.reconstruction.scalar, 0.5 * sq + 0.5 * 18 * log(2 * Double.pi), tolerance: 1e-12))
    }

    @Test func generativeSpecsParseAndRefuseWhatCannotBeBuilt() throws {
        #expect(try GenerativeSpec(parsing: "vae:400,20") == .vae(hidden: [400], latent: 20, likelihood: .bernoulli))
        #expect(try GenerativeSpec(parsing: "vae") == .vae(hidden: [400], latent: 20, likelihood: .bernoulli))
        #expect(try GenerativeSpec(parsing: "vae:512,256,2+gaussian") == .vae(hidden: [512, 256], latent: 2, likelihood: .gaussian))
        #expect(try GenerativeSpec(parsing: "vae:2") == .vae(hidden: [], latent: 2, likelihood: .bernoulli))
        #expect(try GenerativeSpec(parsing: "cgan") == .gan(latent: 100, conditional: true))
        #expect(try GenerativeSpec(parsing: "gan:64") == .gan(latent: 64, conditional: false))
        for text in ["vae:400,20", "vae:512,256,2+gaussian", "cgan:100", "gan:64"] {
            #expect(try GenerativeSpec(parsing: text).description == text)
        }
        for (text, fragment) in [("vae:400,0", "latent size must be at least 1"), ("vae:0,20", "hidden sizes"), ("vae:4x", "whole numbers"),
                                 ("gan:0", "latent size"), ("gan:3,4", "gan:LATENT"), ("cgan+gaussian", "belongs to a vae"), ("wae:3", "generative models are")] {
            do { _ = try GenerativeSpec(parsing: text); Issue.record("\(text) was accepted") } catch let e as GenerativeError {
                #expect(e.message.contains("--model \(text)") && e.message.contains(fragment), "\(e.message)")
            }
        }
        #expect(GenerativeSpec.names("vae:400,20") && GenerativeSpec.names("CGAN") && !GenerativeSpec.names("mlp:64") && !GenerativeSpec.names("vaex"))
    }

    @Test func normalQuantileInvertsTheDistributionFunction() {
        for p in [1e-10, 0.001, 0.0243, 0.1, 0.5, 0.77, 0.975, 0.99999] {
            let x = normalQuantile(p)
            #expect(isClose(0.5 * erfc(-x / 2.0.squareRoot()), p, tolerance: 1e-13), "p = \(p): x = \(x)")
        }
        #expect(isClose(normalQuantile(0.975), 1.959963984540054, tolerance: 1e-13))
    }

    func slice() throws -> (ImageRows, ImageRows) { try ImageSet.mnist.loadRows(from: fixture("mnist-slice")) }

    /// The single-precision loader gives the data set loader's pixels (to rounding: float32
    /// division by 255 against double) and labels, and its errors for missing files.
    @Test func imageRowsLoadTheSamePixelsAndLabels() throws {
        let (train, test) = try slice()
        let (dTrain, dTest) = try ImageSet.mnist.load(from: fixture("mnist-slice"))
        #expect(train.count == 300 && test.count == 100 && train.labels == dTrain.targets.map { Int($0) } && test.labels == dTest.targets.map { Int($0) })
        #expect(zip(train.pixels.scalars, dTrain.features.scalars).allSatisfy { Swift.abs(Double($0) - $1) <= 1e-7 })
        #expect(train.pixels.scalars.contains(1) && train.pixels.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        do { _ = try ImageSet.fashionMNIST.loadRows(from: fixture("fashion-slice")); Issue.record("loaded without training files") } catch let e as DataFileError {
            #expect(e.message.contains("train-images-idx3-ubyte") && e.message.contains("train-labels-idx1-ubyte"))
        }
    }

    /// A VAE learns the 300-image slice (−ELBO per image falls), its pictures have the expected
    /// shapes and range, and a run stopped after an epoch and resumed from its checkpoint ends
    /// with the uninterrupted run's history and weights, bit for bit.
    @Test func vaeTrainsAndResumesExactly() throws {
        let (train, test) = try slice()
        var s = GenerativeSettings.preset(for: .vae(hidden: [32], latent: 2, likelihood: .bernoulli), height: 28, width: 28, classNames: ImageSet.mnist.classNames)
        (s.epochs, s.batch, s.seed) = (3, 32, 4)
        let full = try GenerativeTrainer(settings: s, train: train, test: test)
        for _ in 0..<3 { full.runEpoch() }
        let losses = full.history.map(\.trainLoss), tests = full.history.compactMap(\.testLoss)
        #expect(tests.count == 3 && losses[2] < losses[0] && tests[2] < tests[0], "\(losses) \(tests)")
        #expect(losses[2] < 0.9 * losses[0] && losses[1] < losses[0], "\(losses)")

        let first = try GenerativeTrainer(settings: s, train: train, test: test)
        first.runEpoch()
        let archive = try first.checkpoint()
        let second = try GenerativeTrainer(settings: s, train: train, test: test)
        try second.resume(from: archive, path: "checkpoint")
        second.runEpoch()
        second.runEpoch()
        #expect(second.history == full.history.map { var e = $0; e.seconds = second.history[$0.epoch - 1].seconds; return e })
        for ((_, a), (_, b)) in zip(full.model.module.namedParameters, second.model.module.namedParameters) {
            #expect(a.value.scalars == b.value.scalars)
        }
        let samples = full.samples(count: 6, seed: 0)
        #expect(samples.shape == [6, 28, 28] && samples.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(full.samples(count: 6, seed: 0).scalars == samples.scalars)
        #expect(full.reconstructions(count: 5)?.shape == [10, 28, 28])
        #expect(full.manifold(side: 4)?.shape == [16, 28, 28])
        // A checkpoint of another kind of run is refused, and the trainer is unchanged.
        var other = SafeTensors.Archive()
        other.metadata["lm.iteration"] = "3"
        #expect(throws: GenerativeError.self) { try second.resume(from: other, path: "x") }
        #expect(second.epoch == 3)
    }

    /// A conditional GAN's two steps: the generator step changes only the generator's weights,
    /// the discriminator step only the discriminator's; samples of a class are in [0, 1]; the
    /// class agreement asks the classifier for the classes in turn.
    @Test func conditionalGANStepsTouchTheirOwnNetworkOnly() throws {
        let (train, test) = try slice()
        var s = GenerativeSettings.preset(for: .gan(latent: 8, conditional: true), height: 28, width: 28, classNames: ImageSet.mnist.classNames)
        (s.epochs, s.batch) = (1, 50)
        let t = try GenerativeTrainer(settings: s, train: train, test: test)
        guard case .gan(let gan) = t.model else { Issue.record("not a GAN"); return }
        let g0 = gan.generator.parameters.map(\.value.scalars), d0 = gan.discriminator.parameters.map(\.value.scalars)
        var steps = 0
        t.runEpoch { _, _, _ in steps += 1; return steps < 1 }   // one batch, then stop
        let g1 = gan.generator.parameters.map(\.value.scalars), d1 = gan.discriminator.parameters.map(\.value.scalars)
        #expect(zip(g0, g1).contains { $0 != $1 })
        #expect(zip(d0, d1).contains { $0 != $1 })
        // Only the generator step: the discriminator's weights stay.
        var z = RandomGenerator(seed: 3)
        let code = Tensor<Float>.normal(shape: [4, 8], using: &z)
        let labels = [0, 1, 2, 3]
        let before = gan.discriminator.parameters.map(\.value.scalars)
        gan.generator.valueWithGradient { _ in gan.generatorLoss(fake: gan.generate(code, labels: labels), labels: labels) }
        #expect(gan.discriminator.parameters.allSatisfy { $0.value.node == nil })
        #expect(gan.discriminator.parameters.map(\.value.scalars) == before)
        #expect(gan.generator.parameters.allSatisfy { $0.gradient != nil })
        t.runEpoch()
        #expect(t.history.count == 1 && t.history[0].trainLoss.isFinite && t.history[0].discriminatorLoss!.isFinite)
        let threes = t.samples(count: 5, label: 3, seed: 1)
        #expect(threes.shape == [5, 28, 28] && threes.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        var asked: [Int] = []
        let agreement = try t.model.classAgreement(perClass: 2, seed: 0) { rows in
            asked.append(rows.shape[0])
            return Array(repeating: 3, count: rows.shape[0])
        }
        #expect(asked == Array(repeating: 2, count: 10) && agreement.samples == 20)
        #expect(agreement.perClass == (0..<10).map { $0 == 3 ? 1 : 0 } && isClose(agreement.overall, 0.1))
    }

    /// Augmentation moves each image by at most `shift` pixels with zeros coming in, mirrors it
    /// with `flip`, and depends on the seed, epoch and row only (not on the batch it sits in).
    @Test func augmentationShiftsAndFlipsDeterministically() throws {
        let (h, w) = (4, 5)
        let images = Tensor<Float>(shape: [3, h * w], scalars: (0..<(3 * h * w)).map { Float($0 + 1) })
        let rows = [7, 2, 9]
        let shift = ImageAugmentation(shift: 1)
        let out = shift.apply(images, indices: rows, height: h, width: w, seed: 5, epoch: 0).scalars
        for i in 0..<3 {
            let src = Array(images.scalars[(i * h * w)..<((i + 1) * h * w)]), got = Array(out[(i * h * w)..<((i + 1) * h * w)])
            // Some (dy, dx) in [−1, 1]² explains the image exactly.
            let explained = (-1...1).contains { dy in (-1...1).contains { dx in
                (0..<h).allSatisfy { y in (0..<w).allSatisfy { x in
                    let (sy, sx) = (y - dy, x - dx)
                    return got[y * w + x] == (sy >= 0 && sy < h && sx >= 0 && sx < w ? src[sy * w + sx] : 0)
                } }
            } }
            #expect(explained, "image \(i): \(got)")
        }
        // The same rows in another order or batch: the same images.
        let reordered = shift.apply(Tensor(shape: [1, h * w], scalars: Array(images.scalars[(2 * h * w)...])), indices: [9], height: h, width: w, seed: 5, epoch: 0)
        #expect(reordered.scalars == Array(out[(2 * h * w)...]))
        // Another epoch draws again (over many rows, some move differently).
        let many = Tensor<Float>(shape: [40, h * w], scalars: (0..<(40 * h * w)).map { Float($0 % 13 + 1) })
        let e0 = shift.apply(many, indices: Array(0..<40), height: h, width: w, seed: 5, epoch: 0)
        let e1 = shift.apply(many, indices: Array(0..<40), height: h, width: w, seed: 5, epoch: 1)
        #expect(e0.scalars != e1.scalars)
        // Flipping only: every image is itself or its mirror, both occur.
        let flips = ImageAugmentation(flip: true).apply(many, indices: Array(0..<40), height: h, width: w, seed: 1, epoch: 0).scalars
        var mirrored = 0
        for i in 0..<40 {
            let src = Array(many.scalars[(i * h * w)..<((i + 1) * h * w)]), got = Array(flips[(i * h * w)..<((i + 1) * h * w)])
            let mirror = (0..<(h * w)).map { k in src[(k / w) * w + (w - 1 - k % w)] }
            #expect(got == src || got == mirror)
            if got == mirror && got != src { mirrored += 1 }
        }
        #expect(mirrored > 5 && mirrored < 35, "\(mirrored) of 40 mirrored")
        #expect(try ImageAugmentation(parsing: "shift:2,flip") == ImageAugmentation(shift: 2, flip: true))
        #expect(try ImageAugmentation(parsing: "flip").description == "flip")
        for bad in ["shift:0", "rotate", "", "shift:99"] {
            #expect(throws: RunSettingsError.self) { try ImageAugmentation(parsing: bad) }
        }
    }

    /// Broken image files, each a clear error naming the file, from both loaders: a wrong magic
    /// number, a count larger than the file holds, images and labels that disagree, a truncated
    /// gzip stream.
    @Test func brokenImageFilesAreNamed() throws {
        let source = fixture("mnist-slice")
        func raw(_ name: String) throws -> [UInt8] {
            let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source + "/" + name + ".gz")))
            return try Gzip.decompress(b, path: name)
        }
        let originals = try ImageSet.fileNames.map { try raw($0) }
        let cases: [(String, (inout [[UInt8]]) -> Void, String)] = [
            ("magic", { $0[0][2] = 0x42 }, "train-images-idx3-ubyte"),
            ("count", { $0[0][7] = 0xFF }, "train-images-idx3-ubyte"),            // 300 → 511 images: truncated
            ("mismatch", { $0[3][7] = 99 }, "t10k-images-idx3-ubyte"),            // 99 test labels for 100 images
        ]
        for (name, damage, file) in cases {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-broken-\(name)-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            var files = originals
            damage(&files)
            for (n, bytes) in zip(ImageSet.fileNames, files) { try Data(bytes).write(to: folder.appendingPathComponent(n)) }
            for load in [{ _ = try ImageSet.mnist.loadRows(from: folder.path) }, { _ = try ImageSet.mnist.load(from: folder.path) }] {
                do { try load(); Issue.record("\(name): loaded") } catch {
                    #expect("\(error)".contains(file), "\(name): \(error)")
                }
            }
        }
        // A gzip stream cut short.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-broken-gzip-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for n in ImageSet.fileNames {
            var b = try Data(contentsOf: URL(fileURLWithPath: source + "/" + n + ".gz"))
            if n == ImageSet.fileNames[0] { b = b.prefix(b.count / 2) }
            try b.write(to: folder.appendingPathComponent(n + ".gz"))
        }
        do { _ = try ImageSet.mnist.loadRows(from: folder.path); Issue.record("a truncated gzip stream loaded") } catch {
            #expect("\(error)".contains("train-images-idx3-ubyte.gz"), "\(error)")
        }
    }
}
