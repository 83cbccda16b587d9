import Foundation
@testable import Nabla
import Testing

final class Block: Module<Double>, Layer {
    let encoder = Sequential<Double>(Linear(inputSize: 3, outputSize: 4), Activation(.tanh), Linear(inputSize: 4, outputSize: 2))
    let norms = [LayerNorm<Double>(2), LayerNorm<Double>(2)]
    let head: Linear<Double>? = Linear(inputSize: 2, outputSize: 1, bias: false)
    let dropout = Dropout<Double>(probability: 0.5)
    let batchNorm = BatchNorm<Double>(featureCount: 2)
    func callAsFunction(_ x: Tensor<Double>) -> Tensor<Double> { head!(norms[1](norms[0](batchNorm(dropout(encoder(x)))))) }
}

@Suite struct NetworkTests {
    @Test func parametersAreFoundAndNamedWithoutRegistration() {
        let m = Block()
        #expect(m.namedParameters.map(\.name) == [
            "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
            "norms.0.weight", "norms.0.bias", "norms.1.weight", "norms.1.bias", "head.weight",
            "batchNorm.weight", "batchNorm.bias"])
        #expect(m.namedBuffers.map(\.name) == ["batchNorm.running_mean", "batchNorm.running_var", "batchNorm.num_batches_tracked"])
        #expect(m.parameterCount() == 12 + 4 + 8 + 2 + 2 * 4 + 2 + 4)
        m.eval()
        #expect(m.namedModules.allSatisfy { !$0.module.isTraining } && !m.isTraining)
        m.encoder.freeze()
        #expect(m.parameterCount(trainableOnly: true) == 2 * 4 + 2 + 4)
        let cell = LSTMCell<Double>(inputSize: 2, hiddenSize: 3)
        #expect(cell.namedParameters.map(\.name) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"])
        #expect(MultiheadAttention<Double>(embedDimension: 4, heads: 2).namedParameters.map(\.name)
                == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"])
    }

    /// Sequential runs Linear + ReLU as one primitive: the same bits as the two layers one by one,
    /// forward and backward (first and second derivatives).
    @Test func fusedLinearReLUMatchesTheLayersOneByOne() {
        let m = GlobalRandom.withSeed(5) { Sequential<Double>(Linear(inputSize: 6, outputSize: 5), Activation(.relu), Linear(inputSize: 5, outputSize: 1)) }
        let first = m.layers[0] as! Linear<Double>, last = m.layers[2] as! Linear<Double>
        let x = randn([7, 6], seed: 6)
        let unfused = { (x: Tensor<Double>) in last(Tensor.linear(x, weight: first.weight.value, bias: first.bias!.value).relu()) }
        #expect(m(x).scalars == unfused(x).scalars)
        // The last layer's input is the fused primitive's output.
        let recorded = withGradientRecording(true) { m(x.requiringGradient()) }
        #expect(recorded.node?.input0?.op == "linear_relu")
        let (_, fusedGrads) = valueWithGradient(at: [x, first.weight.value, first.bias!.value]) { v in
            Tensor.linearReLU(v[0], weight: v[1], bias: v[2]).squared().sum()
        }
        let (_, plainGrads) = valueWithGradient(at: [x, first.weight.value, first.bias!.value]) { v in
            Tensor.linear(v[0], weight: v[1], bias: v[2]).relu().squared().sum()
        }
        for (a, b) in zip(fusedGrads, plainGrads) { #expect(a.scalars == b.scalars) }
        let hessian = { (fused: Bool) in Nabla.hessian(at: x.flattened()) { v in
            let y = fused ? Tensor.linearReLU(v.reshaped(to: [7, 6]), weight: first.weight.value, bias: first.bias!.value)
                          : Tensor.linear(v.reshaped(to: [7, 6]), weight: first.weight.value, bias: first.bias!.value).relu()
            return y.squared().sum()
        } }
        #expect(hessian(true).scalars == hessian(false).scalars)
    }

    @Test func frozenParametersStayPutAndOthersTrain() {
        let m = GlobalRandom.withSeed(1) { Sequential<Double>(Linear(inputSize: 2, outputSize: 3), Activation(.relu), Linear(inputSize: 3, outputSize: 1)) }
        let first = m.layers[0] as! Linear<Double>, last = m.layers[2] as! Linear<Double>
        first.freeze()
        let frozen = first.weight.value.scalars, before = last.weight.value.scalars
        var opt = Optimizer<Double>(rule: Adam(), learningRate: 0.1)
        let x = randn([8, 2], seed: 3), y = randn([8, 1], seed: 4)
        for _ in 0..<3 {
            m.valueWithGradient { meanSquaredError($0(x), y) }
            opt.step(m)
        }
        #expect(first.weight.value.scalars == frozen && first.weight.gradient == nil)
        #expect(last.weight.value.scalars != before)
        #expect(opt.states[0].step == 0 && opt.states[2].step == 3)
    }

    /// Layers (forward and backward) against central differences, inputs and parameters together.
    @Test(arguments: ["linear", "linear 2-D", "conv2d", "conv1d", "batchnorm", "layernorm", "rnn", "lstm", "gru", "attention", "encoder", "embedding"])
    func layerGradientsMatchCentralDifferences(_ name: String) {
        let (module, input, forward): (Module<Double>, Tensor<Double>, (Tensor<Double>) -> Tensor<Double>) = GlobalRandom.withSeed(7) {
            switch name {
            case "linear": let l = Linear<Double>(inputSize: 3, outputSize: 2); return (l, randn([2, 4, 3], seed: 1), { l($0) })
            case "linear 2-D": let l = Linear<Double>(inputSize: 3, outputSize: 2); return (l, randn([4, 3], seed: 1), { l($0) })
            case "conv2d": let l = Conv2d<Double>(inputChannels: 4, outputChannels: 2, kernelSize: [2, 3], stride: [1, 2], padding: [1, 1], groups: 2)
                return (l, randn([2, 4, 5, 5], seed: 2), { l($0) })
            case "conv1d": let l = Conv1d<Double>(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, dilation: 2)
                return (l, randn([2, 2, 7], seed: 3), { l($0) })
            case "batchnorm": let l = BatchNorm<Double>(featureCount: 3); return (l, randn([4, 3, 2], seed: 4), { l($0) })
            case "layernorm": let l = LayerNorm<Double>(shape: [2, 3]); return (l, randn([3, 2, 3], seed: 5), { l($0) })
            case "rnn": let l = RNN<Double>(inputSize: 2, hiddenSize: 3, layers: 2); return (l, randn([2, 4, 2], seed: 6), { l($0).output })
            case "lstm": let l = LSTM<Double>(inputSize: 2, hiddenSize: 3); return (l, randn([2, 4, 2], seed: 7), { x in let r = l(x); return r.output + r.state[0].c.expandingDimension(at: 1) })
            case "gru": let l = GRU<Double>(inputSize: 2, hiddenSize: 3); return (l, randn([2, 4, 2], seed: 8), { l($0).output })
            case "attention": let l = MultiheadAttention<Double>(embedDimension: 4, heads: 2)
                return (l, randn([2, 3, 4], seed: 9), { x in l(query: x, key: x * 0.5, value: x.tanh(), causal: true).output })
            case "encoder": let l = TransformerEncoderLayer<Double>(embedDimension: 4, heads: 2, feedForward: 6, dropout: 0)
                return (l, randn([2, 3, 4], seed: 10), { l($0) })
            default: let l = Embedding<Double>(count: 5, dimension: 3)   // (a padding row gets no gradient by design)
                return (l, randn([1], seed: 11), { x in l(IndexTensor(shape: [2, 3], values: [0, 1, 4, 4, 2, 1])) * x })
            }
        }
        let params = module.parameters
        let report = GradientCheck.dotProductTest(at: [input] + params.map(\.value), tolerance: 1e-6) { xs in
            for (p, v) in zip(params, xs.dropFirst()) { p.value = v }
            return forward(xs[0])
        }
        #expect(report.passed, "\(name): \(report)")
    }

    /// A model built inside `GlobalRandom.withSeed` gets the same weights while other threads
    /// draw from the global generator and build their own models.
    @Test func seededConstructionIsUndisturbedByOtherThreads() {
        let reference = GlobalRandom.withSeed(99) { Linear<Float>(inputSize: 16, outputSize: 8) }.weight.value.scalars
        var results = [[Float]](repeating: [], count: 8)
        results.withUnsafeMutableBufferPointer { out in
            DispatchQueue.concurrentPerform(iterations: 8) { i in
                if i % 2 == 0 {
                    out[i] = GlobalRandom.withSeed(99) { Linear<Float>(inputSize: 16, outputSize: 8) }.weight.value.scalars
                } else {
                    for _ in 0..<50 { _ = Linear<Float>(inputSize: 16, outputSize: 8) }
                }
            }
        }
        #expect(stride(from: 0, to: 8, by: 2).allSatisfy { results[$0] == reference })
    }

    @Test func initializersHaveTheirStatistics() {
        var g = RandomGenerator(seed: 3)
        let xavier: Tensor<Double> = Initializer.xavierUniform().tensor(shape: [200, 300], using: &g)
        let bound = (6.0 / 500).squareRoot()
        #expect(xavier.scalars.allSatisfy { Swift.abs($0) <= bound })
        #expect(isClose(xavier.variance(correction: 0).scalar, bound * bound / 3, tolerance: 0.03))
        let he: Tensor<Double> = Initializer.kaimingNormal().tensor(shape: [400, 100, 2], using: &g)
        #expect(isClose(he.variance(correction: 0).scalar, 2.0 / 200, tolerance: 0.03))
        let q: Tensor<Double> = Initializer.orthogonal(gain: 2).tensor(shape: [3, 5], using: &g)
        #expect(isClose(Tensor.matmul(q, q, transposeB: true), Tensor.identity(3) * 4, tolerance: 1e-12))
        let tall: Tensor<Double> = Initializer.orthogonal().tensor(shape: [6, 2], using: &g)
        #expect(isClose(Tensor.matmul(tall, tall, transposeA: true), Tensor.identity(2), tolerance: 1e-12))
        #expect(Initializer.fans([8, 3, 5, 5]) == (fanIn: 75, fanOut: 200))
    }

    @Test func dropoutScalesInTrainingAndIsTheIdentityInEvaluation() {
        let d = Dropout<Double>(probability: 0.25)
        let x = Tensor<Double>.ones(shape: [10_000])
        let y = d(x).scalars
        let kept = y.filter { $0 != 0 }
        #expect(kept.allSatisfy { isClose($0, 4.0 / 3) })
        #expect(Swift.abs(Double(kept.count) / 10_000 - 0.75) < 0.02)
        d.eval()
        #expect(d(x).scalars == x.scalars)
    }

    @Test func anomalyDetectionNamesTheFirstOp() {
        let x = Tensor<Double>([1, -1, 2]).requiringGradient()
        let (_, forward) = detectingAnomalies { (x.log() * 2).sum() }
        #expect(forward?.op == "log" && forward?.phase == .forward && forward?.shape == [3] && forward?.nanCount == 1 && forward?.infinityCount == 0)
        let z = Tensor<Double>([0, 4]).requiringGradient()
        let (_, backward) = detectingAnomalies { gradients(of: z.squareRoot().sum(), wrt: [z]) }
        #expect(backward?.phase == .backward && backward?.infinityCount == 1)
        let (_, none) = detectingAnomalies { gradients(of: (x * x).sum(), wrt: [x]) }
        #expect(none == nil)
    }

    @Test func gradientMonitorFlagsVanishingAndExploding() {
        let m = Linear<Double>(weight: Tensor(shape: [1, 2], scalars: [1e-9, 1e-9]), bias: Tensor([0]))
        m.valueWithGradient { l in (l(Tensor(shape: [1, 2], scalars: [1e-9, 1e4])) * 1e6).sum() }
        let warnings = GradientMonitor().check(m)
        #expect(warnings.contains(.exploding(parameter: "weight", norm: m.gradientNorms[0].norm)))
        #expect(m.gradientNorms.map(\.name) == ["weight", "bias"])
    }

    // MARK: Learning

    /// Adam steps on the whole batch; the loss before each step.
    func trainFullBatch<M: Module<Float>>(_ model: M, learningRate: Double, steps: Int, loss: (M) -> Tensor<Float>) -> [Float] {
        var opt = Optimizer<Float>(rule: Adam(), learningRate: learningRate)
        return (0..<steps).map { _ in
            defer { opt.step(model) }
            return model.valueWithGradient(loss).scalar
        }
    }

    /// Two conv layers tell vertical bars from horizontal ones.
    @Test func smallCNNLearnsBarOrientation() {
        var g = RandomGenerator(seed: 5)
        var images: [Float] = [], labels: [Int] = []
        for i in 0..<48 {
            let vertical = i % 2 == 0, pos = g.nextInt(below: 8)
            for r in 0..<8 { for c in 0..<8 { images.append(((vertical ? c : r) == pos ? 1 : 0) + Float(0.2 * g.nextNormal())) } }
            labels.append(vertical ? 1 : 0)
        }
        let x = Tensor<Float>(shape: [48, 1, 8, 8], scalars: images), y = IndexTensor(labels)
        let model = GlobalRandom.withSeed(11) {
            Sequential<Float>(
                Conv2d(inputChannels: 1, outputChannels: 4, kernelSize: 3, padding: 1), Activation(.relu), MaxPool2d(2),
                Conv2d(inputChannels: 4, outputChannels: 8, kernelSize: 3, padding: 1), Activation(.relu), AvgPool2d(4),
                Flatten(), Linear(inputSize: 8, outputSize: 2))
        }
        let losses = trainFullBatch(model, learningRate: 0.03, steps: 60) { crossEntropy(logits: $0(x), targets: y) }
        #expect(losses[0] > 0.5)
        #expect(losses.suffix(5).allSatisfy { $0 < 0.05 }, "losses: \(losses.suffix(5))")
    }

    /// An LSTM remembers the sign of the first step of a noisy sequence.
    @Test func lstmClassifierLearnsToRemember() {
        var g = RandomGenerator(seed: 6)
        let n = 48, steps = 6
        var values: [Float] = [], labels: [Int] = []
        for _ in 0..<n {
            let first = g.nextUniform() < 0.5 ? Float(-1) : 1
            values.append(first)
            for _ in 1..<steps { values.append(Float(g.nextNormal())) }
            labels.append(first > 0 ? 1 : 0)
        }
        let x = Tensor<Float>(shape: [n, steps, 1], scalars: values), y = IndexTensor(labels)
        final class Classifier: Module<Float> {
            let lstm = LSTM<Float>(inputSize: 1, hiddenSize: 8)
            let head = Linear<Float>(inputSize: 8, outputSize: 2)
            func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> { head(lstm(x).state[0].h) }
        }
        let classifier = GlobalRandom.withSeed(12) { Classifier() }
        let losses = trainFullBatch(classifier, learningRate: 0.05, steps: 80) { crossEntropy(logits: $0(x), targets: y) }
        #expect(losses[0] > 0.5)
        #expect(losses.suffix(5).allSatisfy { $0 < 0.05 }, "losses: \(losses.suffix(5))")
    }
}

@Suite struct FusedKernelTests {
    /// The one-pass Adam update (used inside `Optimizer.step`) gives the same bits as the
    /// op-by-op formula (used when the update itself is recorded), with and without weight decay.
    @Test(arguments: [(0.0, false), (0.01, false), (0.05, true)])
    func fusedAdamMatchesTheFormulaBitForBit(_ decay: Double, _ decoupled: Bool) {
        let rule = Adam(weightDecay: decay, decoupledWeightDecay: decoupled)
        var g = RandomGenerator(seed: 9)
        var fused = Tensor<Float>.normal(shape: [37], using: &g), plain = fused
        var sf = ParameterState<Float>(), sp = ParameterState<Float>()
        for _ in 0..<5 {
            let grad = Tensor<Float>.normal(shape: [37], using: &g)
            sf.step += 1; sp.step += 1
            withoutGradients { rule.update(&fused, gradient: grad, state: &sf, learningRate: 0.01) }
            rule.update(&plain, gradient: grad, state: &sp, learningRate: 0.01)
        }
        #expect(fused.scalars == plain.scalars)
        #expect(sf.slots["exp_avg_sq"]!.scalars == sp.slots["exp_avg_sq"]!.scalars)
    }
}
