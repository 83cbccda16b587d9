import Foundation
import Nabla
import Testing

@Suite struct PCATests {
    struct Reference: Decodable {
        var components: [[Double]], explained_variance: [Double], explained_variance_ratio: [Double], mean: [Double]
    }

    /// Components and explained variance as scikit-learn computes them on digits (the fixture is
    /// its output), to 1e-8 up to sign.
    @Test(arguments: [PCA.Solver.exact, .randomized])
    func matchesScikitLearnOnDigits(_ solver: PCA.Solver) throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: fixture("pca/pca-digits.json"))))
        let x = try Dataset.bundled(.digits).features
        let k = solver == .exact ? 10 : 5
        let pca = try PCA(components: k, fittedOn: x, solver: solver, iterations: 30)
        let tolerance = solver == .exact ? 1e-8 : 1e-6
        for c in 0..<k {
            let ours = Array(pca.components.scalars[(c * 64)..<((c + 1) * 64)]), theirs = reference.components[c]
            let sign = zip(ours, theirs).reduce(0.0) { $0 + $1.0 * $1.1 } < 0 ? -1.0 : 1.0
            let worst = zip(ours, theirs).map { Swift.abs(sign * $0 - $1) }.max()!
            #expect(worst <= tolerance, "component \(c): \(worst)")
            #expect(Swift.abs(pca.explainedVariance[c] - reference.explained_variance[c]) <= tolerance * reference.explained_variance[c])
            #expect(Swift.abs(pca.explainedVarianceRatio[c] - reference.explained_variance_ratio[c]) <= tolerance * reference.explained_variance_ratio[c])
        }
        #expect(zip(pca.mean, reference.mean).allSatisfy { Swift.abs($0 - $1) <= 1e-12 })
    }

    @Test func allComponentsRebuildTheDataAndBadRequestsAreRefused() throws {
        var rng = RandomGenerator(seed: 4)
        let x = Tensor<Double>.normal(shape: [30, 6], using: &rng)
        let pca = try PCA(components: 6, fittedOn: x)
        let back = pca.inverseTransform(pca.transform(x))
        #expect(zip(back.scalars, x.scalars).allSatisfy { Swift.abs($0 - $1) < 1e-12 })
        #expect(Swift.abs(pca.explainedVarianceRatio.reduce(0, +) - 1) < 1e-12)
        #expect { try PCA(components: 7, fittedOn: x) } throws: { "\($0)".contains("at most 6") }
        #expect { try PCA(components: 1, fittedOn: Tensor(shape: [2, 1], scalars: [1, .nan])) } throws: { "\($0)".contains("NaN") }
    }
}

@Suite struct SaddleTests {
    let hyperbolic = { (v: Tensor<Double>) -> Tensor<Double> in v[0] * v[0] - v[1] * v[1] }
    let monkey = { (v: Tensor<Double>) -> Tensor<Double> in v[0] * v[0] * v[0] - 3 * v[0] * v[1] * v[1] }

    /// x² − y² from (1, 0): every method reaches the origin with y = 0 and the check calls it a
    /// saddle; with an escape it leaves along y and finds f unbounded.
    @Test func flagsTheSaddleOfXSquaredMinusYSquared() {
        let r = minimize(hyperbolic, from: Tensor([1, 0]), method: .lbfgs)
        #expect(r.success && Swift.abs(r.x[0]) < 1e-5)
        #expect(r.curvature?.verdict == .saddle && Swift.abs(r.curvature!.smallestEigenvalue + 2) < 1e-9)
        #expect(Swift.abs(Swift.abs(r.curvature!.descentDirection![1]) - 1) < 1e-9)
        #expect(r.description.contains("a saddle point, not a minimum"))
        var options = MinimizeOptions()
        options.saddleEscapes = 1
        let escaped = minimize(hyperbolic, from: Tensor([1, 0]), method: .lbfgs, options: options)
        #expect(escaped.saddleEscapes == 1 && escaped.status == .unbounded)
    }

    /// The monkey saddle x³ − 3xy² at the origin: the Hessian is zero, but f falls along a flat direction.
    @Test func flagsTheMonkeySaddle() {
        let r = minimize(monkey, from: Tensor([0, 0]), method: .bfgs)
        #expect(r.success && r.curvature?.verdict == .degenerateSaddle)
        let direction = r.curvature!.descentDirection!
        let moved = Tensor(direction.map { $0 * 1e-3 })
        #expect(monkey(moved).scalar < 0)
    }

    /// Rosenbrock's minimum, and a large problem through the Lanczos estimate: no saddle.
    @Test func staysSilentAtMinima() {
        let rosenbrock = TestFunction.named("rosenbrock", dimension: 2)!.function
        let r = minimize(rosenbrock, from: Tensor([-1.2, 1]), method: .lbfgs)
        #expect(r.success && r.curvature?.verdict == .minimum && r.curvature!.exact)
        let weights = Tensor<Double>((0..<400).map { 1 + Double($0) / 100 })
        let bowl = { (v: Tensor<Double>) -> Tensor<Double> in (weights * (v - 1) * (v - 1)).sum() }
        let big = minimize(bowl, from: Tensor(repeating: 0, shape: [400]), method: .lbfgs)
        #expect(big.success && big.curvature?.verdict == .minimum && big.curvature?.exact == false, "\(big) \(String(describing: big.curvature))")
        // A saddle of a 400-variable function is found by Lanczos too.
        let tilted = { (v: Tensor<Double>) -> Tensor<Double> in (v * v).sum() - 2 * v[7] * v[7] }
        let s = minimize(tilted, from: Tensor((0..<400).map { $0 == 7 ? 0 : 0.5 }), method: .lbfgs)
        #expect(s.curvature?.verdict == .saddle && s.curvature?.exact == false && Swift.abs(s.curvature!.smallestEigenvalue + 2) < 1e-6)
    }
}

@Suite struct LearningRateFinderTests {
    /// On a least-squares problem the suggested rate lies where the loss falls, below the rates
    /// that diverge, and the model and optimizer are left as they were.
    @Test func suggestsARateAndLeavesTheModelAlone() throws {
        var rng = RandomGenerator(seed: 9)
        let x = Tensor<Float>.normal(shape: [256, 4], using: &rng)
        let y = Tensor.matmul(x, Tensor<Float>(shape: [4, 1], scalars: [1, -2, 0.5, 3]))
        let model = GlobalRandom.withSeed(1) { Sequential<Float>(Linear(inputSize: 4, outputSize: 1)) }
        let before = model.parameters.map(\.value.scalars)
        let trainer = Trainer(model: model, optimizer: Optimizer(rule: SGD(), learningRate: 0.01), trainingCount: 256,
                              options: TrainingOptions(epochs: 1, batchSize: 16, seed: 2)) { m, rows in
            meanSquaredError((m as! Sequential<Float>)(x.indexSelect(axis: 0, indices: rows)), y.indexSelect(axis: 0, indices: rows))
        }
        let test = try trainer.findLearningRate(from: 1e-5, to: 10, steps: 80)
        #expect(model.parameters.map(\.value.scalars) == before && trainer.optimizer.stepCount == 0)
        let s = try #require(test.suggestion)
        let i = try #require(test.rates.firstIndex(of: s))
        let lowest = test.smoothedLosses.indices.min { test.smoothedLosses[$0] < test.smoothedLosses[$1] }!
        #expect(s > 1e-4 && s < 1 && i < lowest, "suggested \(s)")
        #expect(test.losses[i + 5] < 0.8 * test.losses[i - 5], "the loss around the suggestion: \(test.losses[(i - 5)...(i + 5)])")
        #expect(test.stoppedEarly && test.rates.count < 80 && test.losses.count == test.rates.count)
    }
}

@Suite struct FineTuningTests {
    /// Matching names and shapes load; the rest stay as initialized and are reported.
    @Test func loadsWhatMatchesAndFreezesByLayer() throws {
        let source = GlobalRandom.withSeed(1) { Sequential<Float>(Linear(inputSize: 4, outputSize: 8), Activation(.relu), Linear(inputSize: 8, outputSize: 3)) }
        let target = GlobalRandom.withSeed(2) { Sequential<Float>(Linear(inputSize: 4, outputSize: 8), Activation(.relu), Linear(inputSize: 8, outputSize: 5)) }
        let headBefore = target.parameters[2].value.scalars
        let report = target.loadMatching(source.archive())
        #expect(report.loaded == ["0.weight", "0.bias"] && report.shapeMismatches.map(\.name) == ["2.weight", "2.bias"])
        #expect(target.parameters[0].value.scalars == source.parameters[0].value.scalars && target.parameters[2].value.scalars == headBefore)
        #expect(report.description.contains("kept as initialized: 2.weight (the model has shape [5, 8], the file [3, 8])"))

        let frozen = try target.freeze(selectors: ["0"])
        #expect(frozen == ["0.weight", "0.bias"] && target.parameters[0].isFrozen && !target.parameters[2].isFrozen)
        #expect(try target.freeze(selectors: ["2.bias"]) == ["2.bias"])
        #expect { try target.freeze(selectors: ["5", "decoder"]) } throws: { "\($0)".contains("5, decoder match no layer (2 linear layers") }
    }
}

@Suite struct HyperparameterSearchTests {
    @Test func parsesSpacesAndPlansTrials() throws {
        #expect(try HyperparameterSearch.Domain.parse("1e-4..1e-1:log") == .logUniform(1e-4, 0.1))
        #expect(try HyperparameterSearch.Domain.parse("16,32,64") == .choice(["16", "32", "64"]))
        #expect(try HyperparameterSearch.Domain.parse("mlp:32|mlp:64,32") == .choice(["mlp:32", "mlp:64,32"]))
        #expect(try HyperparameterSearch.Domain.parse("2..8:int") == .integer(2, 8))
        #expect(try HyperparameterSearch.Domain.parse("mlp:64,32") == nil && HyperparameterSearch.Domain.parse("0.01") == nil)
        #expect { try HyperparameterSearch.Domain.parse("5..1") } throws: { "\($0)".contains("lo < hi") }
        #expect { try HyperparameterSearch.Domain.parse("0..1:log") } throws: { "\($0)".contains("positive bounds") }

        let space: [String: HyperparameterSearch.Domain] = ["lr": .logUniform(1e-4, 1e-1), "batch": .choice(["16", "32"])]
        let random = HyperparameterSearch(space: space, trials: 50, seed: 3)
        let planned = random.plannedTrials()
        #expect(planned == random.plannedTrials() && planned.count == 50)
        #expect(planned.allSatisfy { Double($0.settings["lr"]!)! >= 1e-4 && Double($0.settings["lr"]!)! <= 0.1 && ["16", "32"].contains($0.settings["batch"]!) })
        let grid = HyperparameterSearch(space: space, strategy: .grid, trials: 100)
        #expect(grid.plannedTrials().count == 6 && Set(grid.plannedTrials().map { $0.settings["lr"]! }) == ["0.0001", "0.003162", "0.1"])
        #expect(HyperparameterSearch(space: space, halving: (3, 81, 3)).rungs == [3, 9, 27, 81])
    }

    /// Successive halving keeps the best third at each rung; a rerun in the same folder
    /// evaluates nothing that finished.
    @Test func halvesAndResumesWithoutRerunning() throws {
        let folder = NSTemporaryDirectory() + "nabla-search-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let search = HyperparameterSearch(space: ["x": .uniform(0, 1)], trials: 9, halving: (1, 9, 3), jobs: 2, seed: 1)
        final class Counter: @unchecked Sendable { let lock = NSLock(); var calls: [(Int, Int)] = [] }
        let counter = Counter()
        let score: @Sendable (HyperparameterSearch.Trial, Int) throws -> (score: Double, details: [String: Double]) = { t, budget in
            counter.lock.lock(); counter.calls.append((t.number, budget)); counter.lock.unlock()
            return (-Swift.abs(Double(t.settings["x"]!)! - 0.5) + Double(budget) * 1e-3, [:])
        }
        let results = try search.run(folder: folder, evaluate: score)
        #expect(counter.calls.filter { $0.1 == 1 }.count == 9 && counter.calls.filter { $0.1 == 3 }.count == 3 && counter.calls.filter { $0.1 == 9 }.count == 1)
        let finalist = try #require(results.first { $0.budget == 9 })
        let closest = search.plannedTrials().min { Swift.abs(Double($0.settings["x"]!)! - 0.5) < Swift.abs(Double($1.settings["x"]!)! - 0.5) }!
        #expect(finalist.trial == closest)
        counter.calls = []
        let again = try search.run(folder: folder, evaluate: score)
        #expect(counter.calls.isEmpty && again.count == results.count)
    }
}

@Suite struct PlateauTests {
    @Test func reportsFlatStretchesOnce() {
        var detector = PlateauDetector(window: 50)
        // Falling: nothing to report.
        #expect((0..<100).compactMap { detector.observe(loss: 2 * Foundation.exp(-Double($0) / 20), gradientNorm: Foundation.exp(-Double($0) / 20)) }.isEmpty)
        // Flat with noise far below the threshold: reported once.
        let flat = (0..<150).compactMap { detector.observe(loss: 0.6931 + 1e-7 * Double($0 % 3), gradientNorm: 1e-4) }
        #expect(flat.count == 1 && Swift.abs(flat[0].loss - 0.6931) < 1e-6 && flat[0].steps == 50)
        // Moving again, then flat again: a second report.
        for k in 0..<60 { _ = detector.observe(loss: 0.6931 - Double(k) * 0.01, gradientNorm: 0.5) }
        #expect((0..<60).compactMap { _ in detector.observe(loss: 0.1, gradientNorm: 1e-3) }.count == 1)
    }

    /// A sigmoid network saturated from the start sits on a plateau; the trainer reports it.
    @Test func theTrainerReportsAPlateau() throws {
        var rng = RandomGenerator(seed: 5)
        let x = Tensor<Float>.normal(shape: [64, 2], using: &rng)
        let y = IndexTensor((0..<64).map { x.scalars[2 * $0] > 0 ? 1 : 0 })
        let model = GlobalRandom.withSeed(3) {
            Sequential<Float>(Linear(inputSize: 2, outputSize: 8, weightInitializer: .constant(0), biasInitializer: .constant(60)), Activation(.sigmoid),
                              Linear(inputSize: 8, outputSize: 2, weightInitializer: .constant(0), biasInitializer: .zeros))
        }
        let trainer = Trainer(model: model, optimizer: Optimizer(rule: SGD(), learningRate: 1e-4), trainingCount: 64,
                              options: TrainingOptions(epochs: 30, batchSize: 8, seed: 1)) { m, rows in
            (m as! Sequential<Float>)(x.indexSelect(axis: 0, indices: rows)).softmaxCrossEntropy(targets: rows.map { y.values[$0] })
        }
        trainer.plateauDetector = PlateauDetector(window: 100)
        var seen: [PlateauDetector.Plateau] = []
        trainer.onPlateau = { (_: Int, _: Int, p: PlateauDetector.Plateau) in seen.append(p) }
        try trainer.fit()
        #expect(seen.count == 1 && Swift.abs(seen[0].loss - Foundation.log(2)) < 0.01, "\(seen)")
    }
}

@Suite struct OnlineLearningTests {
    @Test func runningStatisticsMatchTheWholeData() {
        var rng = RandomGenerator(seed: 2)
        let x = Tensor<Double>.normal(shape: [90, 3], mean: 5, standardDeviation: 2, using: &rng)
        var running = RunningStandardizer(features: 3)
        for part in [0..<10, 10..<55, 55..<90] { running.update(x[part]) }
        let whole = FeatureScaler.standard(fittedOn: x)
        #expect(running.count == 90 && isClose(running.scaler.shift, whole.shift, tolerance: 1e-12) && isClose(running.scaler.scale, whole.scale, tolerance: 1e-12))
    }

    /// One partialFit pass over the rows in order is one epoch of fit without shuffling.
    @Test func partialFitIsAnEpochInOrder() throws {
        var rng = RandomGenerator(seed: 3)
        let x = Tensor<Float>.normal(shape: [40, 3], using: &rng)
        let y = Tensor.matmul(x, Tensor<Float>(shape: [3, 1], scalars: [1, -1, 2]))
        func make() -> (Sequential<Float>, Trainer<Float>) {
            let m = GlobalRandom.withSeed(4) { Sequential<Float>(Linear(inputSize: 3, outputSize: 1)) }
            let t = Trainer(model: m, optimizer: Optimizer(rule: Adam(), learningRate: 0.05), trainingCount: 40,
                            options: TrainingOptions(epochs: 1, batchSize: 8, shuffle: false)) { mm, rows in
                meanSquaredError((mm as! Sequential<Float>)(x.indexSelect(axis: 0, indices: rows)), y.indexSelect(axis: 0, indices: rows))
            }
            return (m, t)
        }
        let (a, fitter) = make(), (b, online) = make()
        try fitter.fit()
        try online.partialFit(rows: Array(0..<24))
        try online.partialFit(rows: Array(24..<40))
        #expect(a.parameters.map(\.value.scalars) == b.parameters.map(\.value.scalars) && online.optimizer.stepCount == 5, "\(a.parameters.map(\.value.scalars)) \(b.parameters.map(\.value.scalars)) \(online.optimizer.stepCount) \(fitter.optimizer.stepCount)")
    }

    /// Digits arriving in chunks of 100: the classifier learns them about as well as from all the
    /// rows at once (the same settings and passes, shuffled whole epochs).
    @Test func anMLPLearnsFromChunks() throws {
        let d = try Dataset.bundled(.digits)
        let x = FeatureScaler.standard(fittedOn: d.features).transform(d.features)
        let labels = d.targets.map { Int($0) }
        let classifier = MLPClassifier(hidden: [32], batchSize: 20, learningRate: 3e-3, seed: 1)
        #expect { try classifier.partialFit(x[0..<10], labels: Array(labels[0..<10])) } throws: { "\($0)".contains("give classes:") }
        for pass in 0..<6 {
            for start in stride(from: 0, to: 1400, by: 100) {
                try classifier.partialFit(x[start..<(start + 100)], labels: Array(labels[start..<(start + 100)]), classes: pass == 0 && start == 0 ? 10 : nil)
            }
        }
        let accuracy = classifier.score(x[1400..<1797], labels: Array(labels[1400..<1797]))
        let batch = MLPClassifier(hidden: [32], epochs: 6, batchSize: 20, learningRate: 3e-3, validationFraction: 0, seed: 1)
        try batch.fit(x[0..<1400], labels: Array(labels[0..<1400]))
        let reference = batch.score(x[1400..<1797], labels: Array(labels[1400..<1797]))
        #expect(accuracy > 0.85 && accuracy >= reference - 0.03, "held-out accuracy \(accuracy) from chunks, \(reference) from whole epochs")
        #expect { try classifier.partialFit(x[0..<5], labels: [0, 1, 2, 3, 12]) } throws: { "\($0)".contains("label 12 is outside the 10 classes") }
    }
}

@Suite struct StreamingTests {
    /// Rows appended after the end was reached arrive in later chunks; a row cut short is held
    /// back until it is whole, and named if the stream ends there.
    @Test func chunksFollowAGrowingFile() throws {
        let path = NSTemporaryDirectory() + "nabla-stream-\(UUID().uuidString).csv"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "a,b,y\n1,2,0\n3,4,1\n5,".write(toFile: path, atomically: true, encoding: .utf8)
        let stream = try CSVStream(path: path)
        #expect(stream.header == ["a", "b", "y"])
        let first = try #require(try stream.nextChunk(maxRows: 10))
        #expect(first.rows == [["1", "2", "0"], ["3", "4", "1"]] && first.lineNumbers == [2, 3])
        #expect(try stream.nextChunk(maxRows: 10) == nil)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write("6,1\n7,8,0\n9,9".data(using: .utf8)!)
        try handle.close()
        let second = try #require(try stream.nextChunk(maxRows: 10))
        #expect(second.rows == [["5", "6", "1"], ["7", "8", "0"]] && second.lineNumbers == [4, 5])
        #expect { try stream.nextChunk(maxRows: 10, atEnd: true) } throws: { "\($0)".contains(":6: the stream stops mid-row (2 of 3 fields)") }
    }

    /// Test-then-train on digits in one pass: the prequential accuracy counts only rows the model
    /// had not seen, and the model it leaves predicts well.
    @Test func learnsDigitsInOnePass() throws {
        let table = try CSVTable.read(try #require(Dataset.Bundled(rawValue: "digits")?.url?.path))
        let learner = StreamingLearner(spec: ModelSpec(kind: .mlp, hidden: [32]), features: Array(table.header.dropLast()), target: "target",
                                       classes: (0...9).map(String.init), learningRate: 3e-3, batchSize: 16, seed: 1)
        for start in stride(from: 0, to: table.rows.count, by: 200) {
            let end = Swift.min(table.rows.count, start + 200)
            try learner.learn(CSVTable(header: table.header, rows: Array(table.rows[start..<end]), lineNumbers: Array(table.lineNumbers[start..<end])), path: "digits")
        }
        #expect(learner.rowsSeen == 1797 && learner.prequentialRows == 1597)
        let accuracy = try #require(learner.prequentialAccuracy)
        #expect(accuracy > 0.6 && accuracy < 1, "prequential accuracy \(accuracy) (chance: 0.1)")
    }
}

@Suite struct ClassicPartialFitTests {
    /// Rows in chunks: linear regression finds the generating weights; logistic regression
    /// classifies wine about as well as its full fit.
    @Test func classicModelsLearnFromChunks() throws {
        var rng = RandomGenerator(seed: 6)
        let x = Tensor<Double>.normal(shape: [600, 3], using: &rng)
        let v = x.scalars
        let y: [Double] = (0..<600).map { (i: Int) -> Double in
            let a = 2 * v[3 * i], b = v[3 * i + 1], c = 0.5 * v[3 * i + 2]
            return a - b + c + 1
        }
        var linear = LinearRegression()
        for _ in 0..<20 { for start in stride(from: 0, to: 600, by: 100) { try linear.partialFit(x[start..<(start + 100)], Array(y[start..<(start + 100)]), learningRate: 0.05) } }
        #expect(isClose(linear.weights, [2, -1, 0.5], tolerance: 1e-3) && Swift.abs(linear.intercept - 1) < 1e-3, "\(linear.weights) \(linear.intercept)")

        let wine = try Dataset.bundled(.wine)
        let xs = FeatureScaler.standard(fittedOn: wine.features).transform(wine.features)
        let labels = wine.targets.map { Int($0) }
        var online = LogisticRegression()
        #expect { try online.partialFit(xs[0..<10], labels: Array(labels[0..<10])) } throws: { "\($0)".contains("give classes:") }
        var shuffler = RandomGenerator(seed: 1)
        let order = shuffler.permutation(wine.count)
        for pass in 0..<10 {
            for start in stride(from: 0, to: wine.count, by: 40) {
                let rows = Array(order[start..<Swift.min(wine.count, start + 40)])
                try online.partialFit(xs.indexSelect(axis: 0, indices: rows), labels: rows.map { labels[$0] }, classes: pass == 0 && start == 0 ? 3 : nil)
            }
        }
        var full = LogisticRegression()
        try full.fit(xs, labels: labels)
        #expect(online.score(xs, labels: labels) >= full.score(xs, labels: labels) - 0.02)
    }
}
