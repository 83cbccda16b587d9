import Foundation
import Nabla
import NablaConformance
import Testing

/// Paths that used to hang, overflow the stack or answer wrongly, and the fuzz suite's short run.
@Suite struct ReliabilityTests {
    @Test func longGraphsAreReleasedAndDifferentiatedWithoutRecursion() {
        // 50,000 chained operations: freeing the graph (and the backward pass) must not recurse.
        let x = Tensor<Double>([0.5]).requiringGradient()
        var y = x
        for _ in 0..<50_000 { y = (y * 0.9999).sin() + 0.0001 }
        let g = gradients(of: y.sum(), wrt: [x])[0]
        #expect(g.scalars[0].isFinite && g.scalars[0] > 0)
        // Recorded and dropped without a backward pass.
        do {
            var z = x
            for _ in 0..<50_000 { z = z + 1 }
            #expect(z.scalars[0] == 50_000.5)
        }
    }

    @Test func deepExpressionsParseAndDifferentiate() throws {
        let nested = try Expression(String(repeating: "(", count: 30_000) + "x^2" + String(repeating: ")", count: 30_000))
        #expect(try nested.valueWithGradient(at: ["x": 3]) == (9, [6]))
        let sum = try Expression(Array(repeating: "x", count: 60_000).joined(separator: " + "))
        #expect(try sum.valueWithGradient(at: ["x": 2]) == (120_000, [60_000]))
        let signs = try Expression(String(repeating: "-", count: 30_001) + "x")
        #expect(try signs.value(at: ["x": 2]) == -2)
        let tower = try Expression(Array(repeating: "x", count: 2_000).joined(separator: "^"))
        let h = try tower.hessian(at: ["x": 1])
        #expect(h.count == 1 && h[0][0].isFinite)
    }

    @Test func minimizersEndOnUnboundedObjectives() {
        for method in MinimizationMethod.unconstrained {
            let r = minimize({ $0.sum() }, from: Tensor([1.0]), method: method, options: MinimizeOptions(maxIterations: 3))
            #expect(r.iterations <= 3, "\(method)")
            #expect(!r.success, "\(method): \(r)")
        }
        let saddle = try! Expression("-x^2 + y^2").function()
        let r = minimize(saddle, from: Tensor([1.0, 1.0]), method: .lbfgs)
        #expect(r.status == .unbounded, "\(r)")
        let cg = minimize(saddle, from: Tensor([1.0, 1.0]), method: .conjugateGradient(.polakRibierePlus))
        #expect(cg.status == .unbounded || cg.status == .diverged, "\(cg)")
    }

    @Test func nanPropagatesThroughReluAndExtrema() {
        let x = Tensor<Float>([1, .nan, 2, -1])
        #expect(x.relu().scalars[1].isNaN && x.relu().scalars[3] == 0 && x.relu().scalars[2] == 2)
        #expect(x.max().scalar.isNaN && x.min().scalar.isNaN)
        #expect(x.argmax() == [1])
        let rows = Tensor<Double>(shape: [2, 3], scalars: [1, .nan, 2, 3, 1, 2])
        #expect(rows.argmax(axis: 1) == [1, 0])
        #expect(rows.max(axes: [1]).scalars[0].isNaN && rows.max(axes: [1]).scalars[1] == 3)
        #expect(rows.max(axes: [0]).scalars[1].isNaN)
        // The fused dense-ReLU layer agrees.
        let layer = Linear<Float>(weight: Tensor(shape: [2, 1], scalars: [1, -1]), bias: Tensor([0, 0]))
        let fused = Sequential<Float>(layer, Activation(.relu))(Tensor(shape: [1, 1], scalars: [.nan]))
        #expect(fused.scalars.allSatisfy { $0.isNaN })
    }

    @Test func leastSquaresIsExactOnTheReadmePoints() throws {
        let x = Tensor<Double>(shape: [5, 1], scalars: [1, 2, 3, 4, 5])
        var exact = LinearRegression()
        try exact.fit(x, [2, 4, 5, 4, 5])
        #expect(Swift.abs(exact.weights[0] - 0.6) < 1e-15 && Swift.abs(exact.intercept - 2.2) < 1e-14)
        var descent = LinearRegression(solver: .gradientDescent(learningRate: 0.01, steps: 1000))
        try descent.fit(x, [2, 4, 5, 4, 5])
        #expect(descent.weights[0] == 0.6176946148762643 && descent.intercept == 2.136116825825789)
        // Collinear features still get a solution.
        var collinear = LinearRegression()
        try collinear.fit(Tensor(shape: [4, 2], scalars: [1, 2, 2, 4, 3, 6, 4, 8]), [1, 2, 3, 4])
        #expect(collinear.weights.allSatisfy { $0.isFinite })
    }

    @Test func convexModelsAreSolvedToTheirOptimum() throws {
        let data = try Dataset.bundled(.iris)
        let spec = ModelSpec(parsing: "logistic")!
        let labels = data.targets.map { Int($0) }
        let solution = try spec.solve(features: data.features, labels: labels, classes: 3)
        #expect(solution.weight.shape == [3, 4] && solution.bias.count == 3)
        // scikit-learn's objective (C = 1) at the solution is within its tolerance of the optimum.
        var reference = LogisticRegression(tolerance: 1e-10)
        try reference.fit(data.features, labels: labels)
        let objective = LogisticRegression.objectiveFunction(x: data.features, labels: labels, classes: 3, c: 1)
        let theta = Tensor(solution.weight.scalars + solution.bias)
        let value = withoutGradients { objective(theta).scalar }
        #expect(value >= reference.objective - 1e-12 && value - reference.objective < 1e-5 * reference.objective, "\(value) against \(reference.objective)")
        #expect(isClose(solution.weight.scalars, reference.weights.scalars, tolerance: 2e-2))
        let linear = try ModelSpec(parsing: "linear")!.solve(features: data.features, values: data.features.scalars.enumerated().filter { $0.offset % 4 == 0 }.map { 2 * $0.element + 1 })
        #expect(Swift.abs(linear.weight.scalars[0] - 2) < 1e-12 && Swift.abs(linear.bias[0] - 1) < 1e-12)
    }

    @Test func trainingNotesALossStillFalling() {
        var h = TrainingHistory()
        h.records = (1...10).map { EpochRecord(epoch: $0, trainLoss: Foundation.pow(0.9, Double($0)), validation: [:], learningRate: 1e-3, seconds: 0) }
        h.stopReason = .maxEpochs
        #expect(h.stillImprovingNote?.contains("still falling") == true)
        h.records = (1...10).map { EpochRecord(epoch: $0, trainLoss: 1 + 1e-4 / Double($0), validation: [:], learningRate: 1e-3, seconds: 0) }
        #expect(h.stillImprovingNote == nil)
    }

    @Test func hostileFileHeadersAreRefusedBeforeAllocating() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let p = folder.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            return p
        }
        // safetensors: shape [2^40, 2^22] of F32 overflows.
        let header = Array(#"{"w":{"dtype":"F32","shape":[1099511627776,4194304],"data_offsets":[0,4]}}"#.utf8)
        var st = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        st += [0, 0, 0, 0]
        #expect(throws: TensorFileError.self) { try SafeTensors.read(try write("big.safetensors", st)) }
        // NPY: shape (2^63 − 1,) and (2^40, 2^40).
        for shape in ["(9223372036854775807,)", "(1099511627776, 1099511627776)"] {
            var text = "{'descr': '<f8', 'fortran_order': False, 'shape': \(shape), }"
            while (10 + text.utf8.count + 1) % 64 != 0 { text += " " }
            let npy: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(text.utf8.count + 1), 0] + Array(text.utf8) + [10]
            #expect(throws: TensorFileError.self) { try NPY.read(try write("big.npy", npy)) }
        }
        // IDX: [2^31] x 3 dimensions, and [n, 0, 0].
        #expect(throws: TensorFileError.self) { try IDX.read(try write("big-idx3-ubyte", Fuzz.idxHeader(type: 8, dims: [1 << 31, 1 << 31, 1 << 31]))) }
        let empty = try write("empty-images-idx3-ubyte", Fuzz.idxHeader(type: 8, dims: [2, 0, 0]))
        let labels = try write("empty-labels-idx1-ubyte", Fuzz.idxHeader(type: 8, dims: [2]) + [0, 1])
        #expect(throws: DataFileError.self) { try Dataset.readIDX(images: empty, labels: labels) }
        // Labels that are not classes: 255 is fine, a float label of −1 or NaN is not.
        let images = try write("ok-images-idx3-ubyte", Fuzz.idxHeader(type: 8, dims: [2, 1, 1]) + [3, 4])
        for bad: Float in [-1, .nan, 1e6] {
            let bytes = Fuzz.idxHeader(type: 0x0D, dims: [2]) + [bad, 0].flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian, Array.init) }
            let path = try write("bad-labels-idx1-ubyte", bytes)
            #expect(throws: DataFileError.self) { try Dataset.readIDX(images: images, labels: path) }
        }
    }

    @Test func fuzzSuiteShortRun() throws {
        let expressions = Fuzz.expressions(count: 300, seed: 1)
        #expect(expressions.failures.isEmpty, "\(expressions)")
        #expect(expressions.values > 0 && expressions.errors > 0)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-fuzz-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let files = Fuzz.files(count: 300, seed: 2, folder: folder)
        #expect(files.failures.isEmpty, "\(files)")
        #expect(files.errors > 0)
        let objectives = Fuzz.objectives(count: 20, seed: 3, maxIterations: 20)
        #expect(objectives.failures.isEmpty, "\(objectives)")
    }
}

@Suite struct FirstContactTests {
    @Test func rangeSubscripts() {
        let x = Tensor<Double>(shape: [4, 3], scalars: (0..<12).map(Double.init))
        #expect(x[1..<3].shape == [2, 3] && x[1..<3].scalars == [3, 4, 5, 6, 7, 8])
        #expect(x[2...].scalars == [6, 7, 8, 9, 10, 11] && x[..<1].scalars == [0, 1, 2] && x[...0].scalars == [0, 1, 2])
        #expect(x[(-1)...].scalars == [9, 10, 11] && x[(-2)...(-1)].shape == [2, 3])
        #expect(x[..., -1].scalars == [2, 5, 8, 11] && x[..., 0..<2].shape == [4, 2])
        // Differentiable like any slice.
        let g = gradient(at: x) { $0[..., -1].sum() + $0[1..<2].sum() }
        #expect(g.scalars == [0, 0, 1, 1, 1, 2, 0, 0, 1, 0, 0, 1])
    }

    @Test func modelsPrintTheirLayerTree() {
        final class Classifier: Module<Float> {
            let encoder = Sequential<Float>(Linear(inputSize: 4, outputSize: 3), Activation(.relu))
            let head = Linear<Float>(inputSize: 3, outputSize: 2)
        }
        let text = "\(Classifier())"
        #expect(text.hasPrefix("Classifier: 23 parameters"), "\(text)")
        #expect(text.contains("  encoder: Sequential  (15)"), "\(text)")
        #expect(text.contains("    0: Linear  weight [3, 4], bias [3]  (15)"), "\(text)")
        #expect(text.contains("  head: Linear  weight [2, 3], bias [2]  (8)"), "\(text)")
    }

    @Test func fitRefusesNonFiniteData() {
        var model = LinearRegression()
        #expect(throws: FitError.self) { try model.fit(Tensor(shape: [2, 1], scalars: [1, .nan]), [1, 2]) }
        #expect(throws: FitError.self) { try model.fit(Tensor(shape: [2, 1], scalars: [1, 2]), [1, .infinity]) }
    }
}

@Suite struct CheckpointTrustTests {
    func trainer(epochs: Int, checkpoint: String, interval: Double = 10) throws -> Trainer<Float> {
        let iris = try Dataset.bundled(.iris)
        let x = Tensor<Float>(converting: FeatureScaler.standard(fittedOn: iris.features).transform(iris.features)), y = iris.labels.values
        let model = GlobalRandom.withSeed(3) { Sequential<Float>(Linear(inputSize: 4, outputSize: 8), Activation(.relu), Linear(inputSize: 8, outputSize: 3)) }
        var options = TrainingOptions(epochs: epochs, batchSize: 50, seed: 1, checkpointPath: checkpoint)
        options.checkpointInterval = interval
        return Trainer(model: model, optimizer: Optimizer(rule: Adam(), learningRate: 0.01), trainingCount: 150, options: options) { m, rows in
            crossEntropy(logits: (m as! Sequential<Float>)(x.indexSelect(axis: 0, indices: rows)), targets: IndexTensor(rows.map { y[$0] }))
        }
    }

    @Test func theLastEpochIsOnDiskWhateverTheInterval() throws {
        let path = temporaryPath("interval.safetensors")
        defer { removeTemporary(path) }
        try trainer(epochs: 5, checkpoint: path, interval: 3600).fit()
        let resumed = try trainer(epochs: 5, checkpoint: path)
        try resumed.resume(from: path)
        #expect(resumed.epoch == 5)
    }

    @Test func tamperedCheckpointsAreRefused() throws {
        let path = temporaryPath("tampered.safetensors")
        defer { removeTemporary(path) }
        try trainer(epochs: 2, checkpoint: path).fit()
        var archive = try SafeTensors.read(path)
        let original = archive
        archive.metadata["trainer.epoch"] = String(Int.min)
        try SafeTensors.write(archive, to: path)
        #expect(throws: TrainingError.self) { try trainer(epochs: 4, checkpoint: path).resume(from: path) }
        archive = original
        let name = archive.tensors.keys.sorted().first { $0.hasPrefix("model.") }!
        let weights = archive.tensors[name]!
        archive.tensors[name] = StoredTensor(Tensor<Float>(repeating: .nan, shape: weights.shape))
        try SafeTensors.write(archive, to: path)
        do {
            try trainer(epochs: 4, checkpoint: path).resume(from: path)
            Issue.record("a checkpoint of NaN weights was resumed")
        } catch let e as TrainingError {
            #expect(e.message.contains("nan"), "\(e)")
        }
    }

    @Test func methodsAreNamedAndConstraintSetsDrawn() {
        #expect(MinimizationMethod.frankWolfe(.simplex(radius: 1), .lineSearch).description == "frank-wolfe-ls")
        #expect(MinimizationMethod(name: "frank-wolfe-ls", constraint: .l2Ball(radius: 1)) == .frankWolfe(.l2Ball(radius: 1), .lineSearch))
        var plot = ContourPlot(title: "t", xRange: -2...2, yRange: -2...2) { x, y in x * x + y * y }
        let b = ConvexSet.box(lower: -1, upper: 1).boundary2D
        plot.feasibleSet = (b.points, b.closed, "box")
        #expect(plot.svg().contains("<polygon points=\"") && plot.svg().contains(">box</text>"))
    }
}

@Suite struct AttributionTests {
    /// 400 rows of 6 features where only features 1 and 4 decide the class.
    func synthetic() -> (x: Tensor<Double>, y: [Int]) {
        var rng = RandomGenerator(seed: 11)
        let n = 400, d = 6
        let x = (0..<(n * d)).map { _ in rng.nextNormal() }
        let y = (0..<n).map { i in 1.5 * x[i * d + 1] - x[i * d + 4] > 0 ? 1 : 0 }
        return (Tensor(shape: [n, d], scalars: x), y)
    }

    @Test func everyMethodRanksTheTwoSignalFeaturesFirst() throws {
        let (x, y) = synthetic()
        let model = GlobalRandom.withSeed(2) { Sequential<Double>(Linear(inputSize: 6, outputSize: 16), Activation(.tanh), Linear(inputSize: 16, outputSize: 2)) }
        var optimizer = Optimizer<Double>(rule: Adam(), learningRate: 0.02)
        for _ in 0..<300 {
            _ = model.valueWithGradient { m in crossEntropy(logits: (m as! Sequential<Double>)(x), targets: IndexTensor(y)) }
            optimizer.step(model)
        }
        let explainer = Attribution<Double>(target: .classes(y)) { model($0) }
        let methods: [(String, Tensor<Double>)] = [
            ("saliency", explainer.saliency(x).values),
            ("input × gradient", explainer.inputXGradient(x).values),
            ("integrated gradients", explainer.integratedGradients(x, steps: 20).values),
            ("smoothgrad", explainer.smoothGrad(x, samples: 10, seed: 1).values),
        ]
        for (name, values) in methods {
            #expect(Set(FeatureImportance.meanAbsolute(values).ranking.prefix(2)) == [1, 4], "\(name)")
        }
        let permutation = FeatureImportance.permutation(features: x, repeats: 3, seed: 1) { v in
            Metrics.accuracy(predicted: withoutGradients { model(v) }.argmax(axis: 1), actual: y)
        }
        #expect(Set(permutation.ranking.prefix(2)) == [1, 4], "\(permutation.importances)")
        // Completeness: Σ attributions = F(x) − F(0) up to the quadrature error.
        let ig = Attribution<Double>(target: .classes(Array(y[0..<5]))) { model($0) }.integratedGradients(x[0..<5], steps: 64)
        #expect(ig.convergenceDelta!.allSatisfy { Swift.abs($0) < 1e-4 }, "\(ig.convergenceDelta!)")
    }

    @Test func quadratureRulesIntegrateExactlyWhereTheyShould() {
        // m-point Gauss–Legendre integrates polynomials of degree 2m − 1 exactly.
        let (points, weights) = Quadrature.gaussLegendre.rule(steps: 5)
        let integral = zip(points, weights).reduce(0.0) { $0 + $1.1 * Foundation.pow($1.0, 9) }
        #expect(Swift.abs(integral - 0.1) < 1e-15)
        #expect(Quadrature.riemannLeft.rule(steps: 4).points == [0, 0.25, 0.5, 0.75])
        #expect(Quadrature.riemannRight.rule(steps: 4).points == [0.25, 0.5, 0.75, 1])
        #expect(Quadrature.riemannMiddle.rule(steps: 2).points == [0.25, 0.75])
        #expect(Swift.abs(rankCorrelation([1, 2, 3, 4], [10, 20, 30, 40]) - 1) < 1e-15 && rankCorrelation([1, 2, 3], [3, 2, 1]) == -1)
    }
}

@Suite struct AnomalyTests {
    @Test func metricsMatchScikitLearn() {
        // roc_auc_score and average_precision_score on these (with ties): 0.75 and 0.7.
        let anomalies = [false, false, true, true, false, true, false]
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.05]
        #expect(Swift.abs(DetectionMetrics.rocAUC(scores: scores, anomalies: anomalies) - 0.75) < 1e-15)
        #expect(Swift.abs(DetectionMetrics.averagePrecision(scores: scores, anomalies: anomalies) - 0.7) < 1e-15)
        let curve = DetectionMetrics.rocCurve(scores: scores, anomalies: anomalies)
        #expect(curve.first! == (0, 0) && curve.last! == (1, 1))
        #expect(DetectionMetrics.threshold(normalScores: (1...100).map(Double.init), falsePositiveRate: 0.05) == 95)
    }

    @Test func gradNormIsTheLastLayersGradientNorm() {
        var rng = RandomGenerator(seed: 4)
        let h = Tensor<Double>.normal(shape: [3, 5], using: &rng), w = Tensor<Double>.normal(shape: [4, 5], using: &rng)
        let z = Tensor.matmul(h, w, transposeB: true)
        let scores = AnomalyScores.gradNorm(features: h, logits: z)
        for i in 0..<3 {
            // KL(u ‖ softmax(W hᵢ)) differentiated by automatic differentiation.
            let g = gradient(at: w) { w in -(Tensor.matmul(h[i..<(i + 1)], w, transposeB: true).logSoftmax(axis: 1)).mean() - Foundation.log(4.0) }
            #expect(Swift.abs(-scores[i] - g.abs().sum().scalar) < 1e-12)
        }
        #expect(AnomalyScores.maximumSoftmax(logits: Tensor<Double>(shape: [1, 2], scalars: [0, 0])) == [0.5])
    }

    @Test func anAutoencoderFindsMalignantRowsAfterSeeingBenignOnes() throws {
        let data = try Dataset.bundled(.breastCancer)
        // In this data set class 1 is benign: fit on the benign rows of one half, score the other half.
        let (train, test) = (0..<data.count).reduce(into: ([Int](), [Int]())) { $1 % 2 == 0 ? $0.0.append($1) : $0.1.append($1) }
        let benign = train.filter { data.targets[$0] == 1 }
        let detector = AutoencoderDetector(hidden: 16, code: 4, members: 2, epochs: 40, seed: 1)
        try detector.fit(data.features.indexSelect(axis: 0, indices: benign))
        let x = data.features.indexSelect(axis: 0, indices: test)
        let scores = detector.score(x)
        let auc = DetectionMetrics.rocAUC(scores: scores, anomalies: test.map { data.targets[$0] == 0 })
        #expect(auc > 0.85, "ROC AUC \(auc)")

        // The standardized score, by hand: each member's residuals over its fitting-row variances, averaged.
        let xs = Tensor<Float>(converting: detector.scaler!.transform(x))
        let byHand = (0..<test.count).map { i in
            zip(detector.networks, detector.residualVariances).reduce(0.0) { total, member in
                let r = (member.0(xs[i..<(i + 1)]) - xs[i..<(i + 1)]).scalars
                return total + r.indices.reduce(0.0) { $0 + Double(r[$1]) * Double(r[$1]) / member.1[$1] } / Double(r.count)
            } / 2
        }
        #expect(zip(scores, byHand).allSatisfy { Swift.abs($0 - $1) <= 1e-5 * Swift.max(1, Swift.abs($1)) })

        // Saved and loaded: the same scores; a card that does not fit its weights is refused.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nabla-detector-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let names = (0..<30).map { "f\($0)" }
        try detector.save(to: folder, card: detector.card(features: names, threshold: 1, falsePositiveRate: 0.05))
        let (loaded, card) = try AutoencoderDetector.load(from: folder)
        #expect(card.members == 2 && loaded.score(x) == scores)
        var wrong = card
        wrong.members = 3
        try writeAtomically(JSONEncoder().encode(wrong), to: folder + "/" + DetectorCard.fileName)
        #expect(throws: RunSettingsError.self) { try AutoencoderDetector.load(from: folder) }
        wrong.residualVariances.append(card.residualVariances[0])
        try writeAtomically(JSONEncoder().encode(wrong), to: folder + "/" + DetectorCard.fileName)
        #expect { try AutoencoderDetector.load(from: folder) } throws: { "\($0)".contains("member 2") }
    }
}

@Suite struct AnomalyBenchmarkTests {
    /// The MNIST vs Fashion-MNIST protocol on the bundled slices: every detector runs, and the
    /// autoencoder tells the two apart.
    @Test func mnistVersusFashionOnSlices() throws {
        let b = try AnomalyBenchmark.mnistVersusFashion(mnist: fixture("mnist-slice"), fashion: fixture("fashion-slice"), train: 300, test: 100)
        #expect(b.fitFeatures.shape == [300, 784] && b.testFeatures.shape == [200, 784] && b.testAnomalies.filter { $0 }.count == 100)
        let results = try b.run()
        #expect(results.map(\.detector) == ["autoencoder", "autoencoder (MSE)", "classifier MSP", "classifier GradNorm"])
        #expect(results[0].rocAUC > 0.9, "\(results)")
    }
}
