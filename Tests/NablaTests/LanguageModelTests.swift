import Foundation
@testable import Nabla
import Testing

@Suite struct LanguageModelTests {
    let text = String(repeating: "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n", count: 12)

    @Test func tokenizerSortsCharactersAndNamesUnknownOnes() throws {
        let t = try CharacterTokenizer(text: "hello world\n")
        #expect(t.characters == ["\n", " ", "d", "e", "h", "l", "o", "r", "w"])
        #expect(t.decode(try t.encode("hello\n")) == "hello\n")
        #expect(throws: TextError.self) { try t.encode("help!") }
        do { _ = try t.encode("help!") } catch let e as TextError { #expect(e.message.contains("\"p\"") && e.message.contains("\"!\"")) }
        #expect(throws: TextError.self) { try CharacterTokenizer(text: "") }
        let decoded = try JSONDecoder().decode(CharacterTokenizer.self, from: JSONEncoder().encode(t))
        #expect(decoded == t)
    }

    @Test func corpusSplitsByPositionAndBatchesShiftByOne() throws {
        let corpus = try TextCorpus(text: text)
        let ids = try corpus.tokenizer.encode(text)
        #expect(corpus.train + corpus.validation == ids)
        #expect(corpus.train.count == Int(0.9 * Double(ids.count)))
        var g = RandomGenerator(seed: 1)
        let (x, y) = TextCorpus.batch(from: corpus.train, size: 3, context: 8, generator: &g)
        #expect(x.shape == [3, 8] && y.shape == [3, 8])
        for b in 0..<3 { #expect(Array(x.values[(b * 8 + 1)..<(b * 8 + 8)]) == Array(y.values[(b * 8)..<(b * 8 + 7)])) }
        #expect(throws: TextError.self) { try TextCorpus(text: "abc").check(context: 8) }
    }

    @Test func binaryAndEmptyFilesAreRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-text-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let binary = folder.appendingPathComponent("b.bin"), empty = folder.appendingPathComponent("e.txt")
        try Data([0xFF, 0xFE, 0x00, 0x81, 0x00]).write(to: binary)
        try Data().write(to: empty)
        #expect(throws: TextError.self) { try TextCorpus(file: binary.path) }
        #expect(throws: TextError.self) { try TextCorpus(file: empty.path) }
    }

    func smallGPT(_ seed: UInt64 = 0, dropout: Double = 0) -> GPT<Double> {
        var g = RandomGenerator(seed: seed)
        return GPT(GPTConfiguration(vocabularySize: 7, contextLength: 8, layers: 2, heads: 2, embedding: 8, dropout: dropout), generator: &g)
    }

    /// The GPT block (LayerNorm, causal attention, GELU MLP, residuals) against central
    /// differences, in double precision, through every input: x and all weights.
    @Test func gptBlockGradientMatchesCentralDifferences() {
        var g = RandomGenerator(seed: 5)
        let block = GPTBlock<Double>(GPTConfiguration(vocabularySize: 7, contextLength: 6, layers: 1, heads: 2, embedding: 8))
        let params = block.parameters
        // LayerNorm scales away from 1, so their gradients are tested too.
        let inputs = [Tensor<Double>.normal(shape: [2, 6, 8], using: &g)] + params.map { p in
            p.value.rank == 1 ? 1 + 0.3 * Tensor<Double>.normal(shape: p.shape, using: &g) : 0.4 * Tensor<Double>.normal(shape: p.shape, using: &g)
        }
        let report = GradientCheck.dotProductTest(at: inputs, tolerance: 1e-6) { v in
            for (p, value) in zip(params, v.dropFirst()) { p.value = value }
            return block(v[0])
        }
        #expect(report.passed, "\(report)")
    }

    /// The LSTM language model through 64 time steps (embedding, two layers, head, cross-entropy)
    /// against central differences in double precision.
    @Test func lstmLanguageModelGradientThrough64Steps() {
        var g = RandomGenerator(seed: 9)
        let model = LSTMLanguageModel<Double>(LSTMLanguageModelConfiguration(vocabularySize: 6, embedding: 3, hidden: 4, layers: 2), generator: &g)
        let tokens = IndexTensor(shape: [2, 64], values: (0..<128).map { ($0 * 7 + $0 / 5) % 6 })
        let targets = IndexTensor(shape: [2, 64], values: (0..<128).map { ($0 * 3 + 1) % 6 })
        let params = model.parameters
        let report = GradientCheck.dotProductTest(at: params.map(\.value), tolerance: 1e-6) { v in
            for (p, value) in zip(params, v) { p.value = value }
            return model.loss(tokens, targets: targets)
        }
        #expect(report.passed, "\(report)")
    }

    /// A batch with at least as many tokens as the vocabulary reads its first layer's inputs from
    /// the projected embedding table; a smaller one projects its embeddings: the same logits, and
    /// the same gradients as the plain embedding → LSTM → head composition.
    @Test func lstmLanguageModelProjectedTableMatchesEmbeddingThenProjection() {
        var g = RandomGenerator(seed: 4)
        let model = LSTMLanguageModel<Double>(LSTMLanguageModelConfiguration(vocabularySize: 7, embedding: 3, hidden: 4, layers: 2), generator: &g)
        let tokens = IndexTensor(shape: [2, 5], values: [0, 3, 6, 2, 2, 5, 1, 4, 0, 6])
        let targets = IndexTensor(shape: [2, 5], values: [3, 6, 2, 2, 5, 1, 4, 0, 6, 1])
        func plain() -> Tensor<Double> {
            let (out, _) = model.lstm(model.embedding(tokens))
            return model.head(out.reshaped(to: [10, 4])).reshaped(to: [10, 7]).softmaxCrossEntropy(targets: targets.values)
        }
        let lossViaTable = model.valueWithGradient { $0.loss(tokens, targets: targets) }
        let viaTable = model.parameters.map { $0.gradient! }
        let lossViaEmbedding = model.valueWithGradient { _ in plain() }
        let viaEmbedding = model.parameters.map { $0.gradient! }
        #expect(abs(lossViaTable.scalar - lossViaEmbedding.scalar) <= 1e-13)
        #expect(viaTable.count == 11)
        for (a, e) in zip(viaTable, viaEmbedding) { #expect(isClose(a, e, tolerance: 1e-12)) }
        // Rows one at a time (fewer tokens than the vocabulary) take the embedding path.
        let whole = withoutGradients { model.logits(tokens) }
        for r in 0..<2 {
            let row = IndexTensor(shape: [1, 5], values: Array(tokens.values[(r * 5)..<(r * 5 + 5)]))
            #expect(isClose(withoutGradients { model.logits(row) }, whole.slice(axis: 0, start: r, end: r + 1), tolerance: 1e-12))
        }
    }

    /// The fused primitives agree with their compositions, values and gradients (and the
    /// recorded backward passes, through second derivatives in the dot-product test above).
    @Test func layerNormAndCausalSoftmaxMatchTheirCompositions() {
        var g = RandomGenerator(seed: 2)
        let x = Tensor<Double>.normal(shape: [3, 4, 5], using: &g), w = Tensor<Double>.normal(shape: [5], using: &g), b = Tensor<Double>.normal(shape: [5], using: &g)
        let c = Tensor<Double>.normal(shape: [3, 4, 5], using: &g)
        func composite(_ x: Tensor<Double>, _ w: Tensor<Double>, _ b: Tensor<Double>) -> Tensor<Double> {
            let centered = x - x.mean(axes: [-1], keepingDimensions: true)
            return centered / ((centered * centered).mean(axes: [-1], keepingDimensions: true) + 1e-5).squareRoot() * w + b
        }
        let (xv, wv, bv) = (x.requiringGradient(), w.requiringGradient(), b.requiringGradient())
        let fused = gradients(of: (Tensor.layerNorm(xv, weight: wv, bias: bv) * c).sum(), wrt: [xv, wv, bv])
        let plain = gradients(of: (composite(xv, wv, bv) * c).sum(), wrt: [xv, wv, bv])
        #expect(isClose(withoutGradients { Tensor.layerNorm(x, weight: w, bias: b) }, withoutGradients { composite(x, w, b) }, tolerance: 1e-12))
        for (a, e) in zip(fused, plain) { #expect(isClose(a, e, tolerance: 1e-11)) }

        let s = Tensor<Double>.normal(shape: [2, 4, 4], using: &g), cs = Tensor<Double>.normal(shape: [2, 4, 4], using: &g)
        let visible = Tensor<Double>(shape: [4, 4], (0..<16).map { $0 % 4 <= $0 / 4 ? 1 : 0 })
        let sv = s.requiringGradient()
        let viaPrimitive = gradients(of: (sv.causalSoftmax(scale: 0.7) * cs).sum(), wrt: [sv])[0]
        let viaComposite = gradients(of: (Tensor.where(visible, sv * 0.7, Tensor(-Double.infinity)).softmax(axis: -1) * cs).sum(), wrt: [sv])[0]
        #expect(isClose(viaPrimitive, viaComposite, tolerance: 1e-12))
        let report = GradientCheck.dotProductTest(at: [s]) { v in v[0].causalSoftmax(scale: 0.7) }
        #expect(report.passed, "\(report)")
    }

    /// Incremental decoding with the key/value cache gives the logits of the full forward pass.
    @Test func cachedDecodingMatchesTheFullForwardPass() {
        let model = smallGPT(3)
        let tokens = [1, 4, 2, 6, 0, 3, 5, 2]
        let full = withoutGradients { model(IndexTensor(shape: [1, 8], values: tokens)) }
        var cache = GPT<Double>.Cache(layers: 2)
        for (i, t) in tokens.enumerated() {
            let step = model.nextLogits(after: t, cache: &cache)
            #expect(isClose(step, full.slice(axis: 1, start: i, end: i + 1).reshaped(to: [7]), tolerance: 1e-12), "position \(i)")
        }
        let (prefilled, c) = model.prefill(Array(tokens.prefix(5)))
        #expect(c.count == 5)
        #expect(isClose(prefilled, full.slice(axis: 1, start: 4, end: 5).reshaped(to: [7]), tolerance: 1e-12))
    }

    @Test func samplingIsSeededGreedyAtZeroAndChecked() throws {
        var g = RandomGenerator(seed: 1)
        let model = AnyLanguageModel.gpt(GPT(GPTConfiguration(vocabularySize: 7, contextLength: 8, layers: 1, heads: 1, embedding: 4), generator: &g))
        let a = try model.generate(prompt: [1, 2], count: 30, options: SamplingOptions(temperature: 1, topK: nil, seed: 4))
        let b = try model.generate(prompt: [1, 2], count: 30, options: SamplingOptions(temperature: 1, topK: nil, seed: 4, useCache: false))
        #expect(a.count == 30 && Array(a.prefix(6)) == Array(b.prefix(6)))   // the same draws while the context holds
        let greedy = try model.generate(prompt: [1, 2], count: 10, options: SamplingOptions(temperature: 0, topK: nil, seed: 1))
        let topOne = try model.generate(prompt: [1, 2], count: 10, options: SamplingOptions(temperature: 1.5, topK: 1, seed: 9))
        #expect(greedy == topOne)
        #expect(throws: TextError.self) { try model.generate(prompt: [1], count: 3, options: SamplingOptions(temperature: -1)) }
        #expect(throws: TextError.self) { try model.generate(prompt: [], count: 3, options: SamplingOptions()) }
    }

    /// Training stopped and resumed from its checkpoint reaches the uninterrupted run's weights.
    @Test(arguments: ["gpt:1,2,8", "lstm:1,8"])
    func resumedTrainingMatchesUninterrupted(_ spec: String) throws {
        let corpus = try TextCorpus(text: text)
        var s = LanguageModelSettings.preset(for: try LanguageModelSpec(parsing: spec))
        (s.context, s.batch, s.iterations, s.warmup) = (8, 3, 6, 2)
        let whole = try LanguageModelTrainer(settings: s, corpus: corpus)
        for _ in 0..<6 { whole.step() }
        let first = try LanguageModelTrainer(settings: s, corpus: corpus)
        for _ in 0..<3 { first.step() }
        let archive = try first.checkpoint()
        let second = try LanguageModelTrainer(settings: s, corpus: corpus)
        try second.resume(from: SafeTensors.decode(SafeTensors.encode(archive)), path: "checkpoint")
        for _ in 0..<3 { second.step() }
        #expect(second.iteration == 6)
        for (p, q) in zip(whole.model.module.parameters, second.model.module.parameters) { #expect(p.value.scalars == q.value.scalars) }
        let e = second.evaluate()
        #expect(e.validationLoss.isFinite && e.trainLoss < Foundation.log(Double(corpus.tokenizer.count)) + 0.5)
    }

    @Test func specsAndSettingsAreChecked() throws {
        #expect(try LanguageModelSpec(parsing: "gpt:4,4,128") == .gpt(layers: 4, heads: 4, embedding: 128))
        #expect(try LanguageModelSpec(parsing: "lstm:2,256") == .lstm(layers: 2, hidden: 256))
        for bad in ["gpt:4,3,128", "gpt:4,4", "lstm:0,10", "rnn:1", "gpt:a,b,c"] {
            #expect(throws: TextError.self, "\(bad)") { try LanguageModelSpec(parsing: bad) }
        }
        let s = LanguageModelSettings.preset(for: .gpt(layers: 4, heads: 4, embedding: 128))
        #expect(s.batch == 12 && s.context == 64 && s.weightDecay == 0.1 && s.beta2 == 0.99 && s.minimumLearningRate == 1e-4)
        let schedule = WarmupCosineDecay(warmup: 100, decaySteps: 2000, minimum: 1e-4)
        #expect(isClose(schedule.learningRate(at: 0, base: 1e-3), 1e-3 / 101))
        #expect(isClose(schedule.learningRate(at: 100, base: 1e-3), 1e-3))
        #expect(isClose(schedule.learningRate(at: 1050, base: 1e-3), 5.5e-4))
        #expect(isClose(schedule.learningRate(at: 2001, base: 1e-3), 1e-4))
    }
}
