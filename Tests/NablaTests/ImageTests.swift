import Foundation
import Nabla
import Testing

/// Images from the command line: MNIST-format sets by name, and convolutional networks from a
/// model spec.
@Suite struct ImageTests {
    /// The four IDX files of a folder (gzip'd here): the training images for training and
    /// validation, the t10k ones for the test, pixels in [0, 1], the set's class names.
    @Test func imageSetLoadsTrainingAndTestFiles() throws {
        let (train, test) = try ImageSet.mnist.load(from: fixture("mnist-slice"))
        #expect(train.count == 300 && test.count == 100)
        #expect(train.featureCount == 784 && test.featureCount == 784)
        #expect(train.features.scalars.allSatisfy { $0 >= 0 && $0 <= 1 } && train.features.scalars.contains(1))
        #expect(train.classNames == (0..<10).map(String.init) && Set(train.targets).count == 10)
        #expect(ImageSet.fashionMNIST.classNames.count == 10)
    }

    /// A folder without the training files names them and says where they go.
    @Test func missingImageFilesAreNamed() {
        do {
            _ = try ImageSet.fashionMNIST.load(from: fixture("fashion-slice"))
            Issue.record("loading a folder without training files succeeded")
        } catch {
            let message = "\(error)"
            #expect(message.contains("train-images-idx3-ubyte") && message.contains("train-labels-idx1-ubyte"), "\(message)")
            #expect(message.contains("--data-dir") && message.contains(ImageSet.environmentVariable), "\(message)")
            #expect(message.contains("missing train-images-idx3-ubyte, train-labels-idx1-ubyte (plain or .gz)"), "\(message)")
        }
        #expect(ImageSet.mnist.folder(nil, environment: [ImageSet.environmentVariable: "/data"]) == "/data/mnist")
        #expect(ImageSet.mnist.folder("/here", environment: [ImageSet.environmentVariable: "/data"]) == "/here")
    }

    /// `cnn` specs: channels / dense sizes, +bn; the default network; specs that cannot be.
    @Test func convolutionalModelSpecs() throws {
        let plain = try #require(ModelSpec(parsing: "cnn:32,64/128"))
        #expect(plain.kind == .cnn && plain.channels == [32, 64] && plain.hidden == [128] && plain.batchNorm == false)
        #expect(plain.description == "cnn:32,64/128")
        let standard = try #require(ModelSpec(parsing: "cnn"))
        #expect(standard.description == ModelSpec.defaultCNN && standard.batchNorm == true)
        #expect(ModelSpec(parsing: "cnn:8+bn")?.description == "cnn:8+bn")
        for bad in ["cnn:0", "cnn:8/", "cnn:/16", "cnn:a", "cnn8", "cnn:8/16/4"] { #expect(ModelSpec(parsing: bad) == nil, "\(bad)") }
        #expect(plain.problem(inputs: 784) == nil)
        let deep = try #require(ModelSpec(parsing: "cnn:2,2,2,2,2"))
        #expect(deep.problem(inputs: 784)?.contains("below 1 × 1") == true)
        #expect(plain.problem(inputs: 10)?.contains("square") == true)
        #expect(!plain.isConvex && plain.supports(.classification))
    }

    /// The network a spec builds: shapes through the blocks, batch norm and dropout where asked,
    /// PyTorch's parameter count for W7's network (421,642).
    @Test func convolutionalNetworkShapes() {
        let w7: Sequential<Float> = GlobalRandom.withSeed(1) { ModelSpec(parsing: "cnn:32,64/128")!.build(inputs: 784, outputs: 10) }
        #expect(w7.parameterCount() == 421_642)
        let spec = ModelSpec(parsing: "cnn:4,8/16+bn", dropout: 0.5)!
        let net: Sequential<Float> = GlobalRandom.withSeed(2) { spec.build(inputs: 28 * 28, outputs: 3) }
        #expect(net.layers.contains { $0 is BatchNorm<Float> } && net.layers.contains { $0 is Dropout<Float> })
        net.eval()
        let y = net(Tensor<Float>(repeating: 0.5, shape: [5, 784]))
        #expect(y.shape == [5, 3])
        // Rows in chunks give the outputs of all rows at once (to the rounding of products of
        // other shapes).
        var g = RandomGenerator(seed: 3)
        let x = Tensor<Float>(converting: Tensor<Double>.uniform(shape: [7, 784], using: &g))
        let chunked = net.outputs(x, rows: 3), whole = net(x)
        #expect(chunked.shape == whole.shape && zip(chunked.scalars, whole.scalars).allSatisfy { abs($0 - $1) <= 1e-5 })
    }

    /// 2×2 max pooling (the vectorized path for rows of eight windows and more, the scalar path
    /// for the rest) against a plain reference: the first of equal values wins, a NaN only where
    /// it comes first; the gradient goes to each window's winner. Float and Double agree.
    @Test func maxPoolingTwoByTwoMatchesAReference() {
        let (n, c, h, w) = (2, 3, 22, 37)   // 11 × 18 windows per plane: vector and scalar columns
        var g = RandomGenerator(seed: 11)
        var values = (0..<(n * c * h * w)).map { _ in Float((g.nextUniform() * 8).rounded(.down)) }   // many ties
        for k in stride(from: 5, to: values.count, by: 97) { values[k] = .nan }
        let x = Tensor<Float>(shape: [n, c, h, w], scalars: values)
        let (oh, ow) = (h / 2, w / 2)
        var expected = [Float](), winners = [Int]()
        for p in 0..<(n * c) {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var best = p * h * w + 2 * oy * w + 2 * ox
                    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                        let k = p * h * w + (2 * oy + dy) * w + 2 * ox + dx
                        if values[k] > values[best] { best = k }
                    }
                    expected.append(values[best]); winners.append(best)
                }
            }
        }
        let (y, grad) = valueWithGradient(at: x) { $0.maxPool2d(kernelSize: [2, 2]).sum() }
        #expect(y.shape == [] && grad.shape == x.shape)
        let pooled = x.maxPool2d(kernelSize: [2, 2])
        #expect(pooled.shape == [n, c, oh, ow])
        #expect(zip(pooled.scalars, expected).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
        var counts = [Float](repeating: 0, count: values.count)
        for k in winners { counts[k] += 1 }
        #expect(grad.scalars == counts)
        let double = Tensor<Double>(converting: x).maxPool2d(kernelSize: [2, 2])
        #expect(zip(double.scalars, expected).allSatisfy { Float($0) == $1 || ($0.isNaN && $1.isNaN) })
    }
}
