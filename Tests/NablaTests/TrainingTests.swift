import Foundation
import Nabla
import Testing

func csvError(_ text: String, target: String? = nil) -> DataFileError? {
    do {
        _ = try Dataset.fromCSV(CSVTable.parse(text, path: "t.csv"), path: "t.csv", target: target)
        return nil
    } catch let e as DataFileError { return e } catch { return nil }
}

@Suite struct DataTests {
    @Test func malformedCSVErrorsNameFileLineAndColumn() {
        #expect(csvError("a,b,y\n1,2,0\n3,4\n")?.description == "t.csv:3:3: this row has 2 fields but the header has 3")
        #expect(csvError("a,b,y\n1,2,0\n3,x,1\n")?.description == "t.csv:3:2: column 'b': 'x' is not a number (the column's other cells are numeric)")
        #expect(csvError("")?.description == "t.csv:1:1: the file is empty; a CSV file needs a header row and data rows")
        #expect(csvError("a,b,y\n1,2,0\n", target: "z")?.description == "t.csv:1: no column named 'z' in the header (columns: a, b, y)")
        #expect(csvError("a,b,y\n1,,0\n")?.description.hasPrefix("t.csv:2:2: column 'b': missing value") == true)
        #expect(csvError("a,b,y\n1,NaN,0\n")?.line == 2)
        #expect(csvError("a,a,y\n1,2,0\n")?.description == "t.csv:1:2: column name 'a' repeats column 1")
        #expect(csvError("a,y\n\"1,0\n")?.message.contains("not closed") == true)
    }

    @Test func quotedFieldsCategoricalColumnsAndTextTargets() throws {
        let text = "size,color,\"note, quoted\",label\r\n1.5,red,\"a \"\"b\"\"\",cat\r\n2,blue,x,dog\r\n\r\n3,red,y,cat\r\n"
        let d = try Dataset.fromCSV(CSVTable.parse(text, path: "p.csv"), path: "p.csv")
        #expect(d.featureNames == ["size", "color=blue", "color=red", "note, quoted=a \"b\"", "note, quoted=x", "note, quoted=y"])
        #expect(d.features.shape == [3, 6] && d.features.rows[1] == [2, 1, 0, 0, 1, 0])
        #expect(d.task == .classification && d.classNames == ["cat", "dog"] && d.targets == [0, 1, 0])
    }

    @Test func bundledDataSetsLoadWithTheirShapes() throws {
        let digits = try Dataset.bundled(.digits)
        #expect(digits.features.shape == [1797, 64] && digits.classCount == 10 && digits.task == .classification)
        let diabetes = try Dataset.bundled(.diabetes)
        #expect(diabetes.features.shape == [442, 10] && diabetes.task == .regression)
        let split = try #require(Dataset.referenceSplit(.breastCancer))
        #expect(split.train.count == 455 && split.test.count == 114 && Set(split.train).isDisjoint(with: split.test))
    }

    @Test func stratifiedSplitsKeepClassProportionsAndScalingUsesTrainingRowsOnly() throws {
        let iris = try Dataset.bundled(.iris)
        let (train, validation, test) = iris.split(validation: 0.2, test: 0.2, seed: 3)
        #expect(train.count == 90 && validation?.count == 30 && test.count == 30)
        for c in 0..<3 { #expect(test.targets.filter { $0 == Double(c) }.count == 10) }
        let scaler = FeatureScaler.standard(fittedOn: train.features)
        let scaled = scaler.transform(train.features)
        #expect(isClose(scaled.mean(axes: [0]).scalars, [0, 0, 0, 0], tolerance: 1e-12))
        #expect(isClose(scaled.variance(axes: [0], correction: 0).scalars, [1, 1, 1, 1], tolerance: 1e-12))
        let constant = FeatureScaler.standard(fittedOn: Tensor(shape: [3, 2], scalars: [1, 5, 2, 5, 3, 5]))
        #expect(constant.scale == [(2.0 / 3).squareRoot(), 1] && constant.shift == [2, 5])
        let b1 = BatchSampler(count: 10, batchSize: 4, seed: 1)
        #expect(b1.batches(epoch: 2) == b1.batches(epoch: 2) && b1.batches(epoch: 1) != b1.batches(epoch: 2))
        #expect(b1.batches(epoch: 0).map(\.count) == [4, 4, 2] && Set(b1.batches(epoch: 0).flatMap { $0 }) == Set(0..<10))
    }
}

@Suite struct TrainingTests {
    func irisTrainer(epochs: Int, checkpoint: String?) throws -> (Trainer<Float>, Sequential<Float>) {
        let iris = try Dataset.bundled(.iris)
        let x = Tensor<Float>(converting: FeatureScaler.standard(fittedOn: iris.features).transform(iris.features))
        let y = iris.labels.values
        let model = GlobalRandom.withSeed(21) {
            Sequential<Float>(Linear(inputSize: 4, outputSize: 16), Activation(.relu), Dropout(probability: 0.2), Linear(inputSize: 16, outputSize: 3))
        }
        let trainer = Trainer(model: model, optimizer: Optimizer(rule: Adam(), learningRate: 0.01, schedule: CosineAnnealing(maxSteps: 60)),
                              trainingCount: 150, options: TrainingOptions(epochs: epochs, batchSize: 16, seed: 5, checkpointPath: checkpoint)) { m, rows in
            crossEntropy(logits: (m as! Sequential<Float>)(x.indexSelect(axis: 0, indices: rows)), targets: IndexTensor(rows.map { y[$0] }))
        }
        return (trainer, model)
    }

    @Test func resumedRunEndsWithBitIdenticalWeights() throws {
        let (whole, wholeModel) = try irisTrainer(epochs: 6, checkpoint: nil)
        try whole.fit()
        let path = temporaryPath("checkpoint.safetensors")
        defer { removeTemporary(path) }
        let (first, _) = try irisTrainer(epochs: 3, checkpoint: path)   // "interrupted" after epoch 3
        try first.fit()
        let (second, resumedModel) = try irisTrainer(epochs: 6, checkpoint: path)
        try second.resume(from: path)
        #expect(second.epoch == 3 && second.history.records.count == 3)
        try second.fit()
        for (a, b) in zip(wholeModel.parameters, resumedModel.parameters) { #expect(a.value.scalars == b.value.scalars) }
        #expect(second.history.records.map(\.trainLoss) == whole.history.records.map(\.trainLoss))
    }

    @Test func interruptionStopsAtOnceAndTheCheckpointResumes() throws {
        let path = temporaryPath("interrupted.safetensors")
        defer { removeTemporary(path) }
        let (t, _) = try irisTrainer(epochs: 6, checkpoint: path)
        var batches = 0
        t.onBatch = { _ in batches += 1 }
        t.shouldInterrupt = { batches == 25 }                         // during epoch 3 (10 batches each)
        let h = try t.fit()
        #expect(h.stopReason == .interrupted && h.records.count == 2)
        let (resumed, model) = try irisTrainer(epochs: 6, checkpoint: path)
        try resumed.resume(from: path)
        try resumed.fit()
        let (whole, wholeModel) = try irisTrainer(epochs: 6, checkpoint: nil)
        try whole.fit()
        for (a, b) in zip(wholeModel.parameters, model.parameters) { #expect(a.value.scalars == b.value.scalars) }
    }

    @Test func earlyStoppingRestoresTheBestWeightsAndLossToleranceStops() throws {
        let (t, model) = try irisTrainer(epochs: 200, checkpoint: nil)
        t.options.patience = 3
        t.options.minimumImprovement = 0.05
        var bestWeights: [Float] = []
        t.onEpoch = { r in
            if r.epoch == t.history.bestEpoch { bestWeights = model.parameters[0].value.scalars }
            return true
        }
        let h = try t.fit()
        #expect(h.stopReason == .earlyStopping && h.records.count == h.bestEpoch! + 3)
        #expect(model.parameters[0].value.scalars == bestWeights)
        let (t2, _) = try irisTrainer(epochs: 500, checkpoint: nil)
        t2.options.lossChangeTolerance = 1e-3
        let h2 = try t2.fit()
        #expect(h2.stopReason == .lossConverged && h2.records.count < 500)
    }

    @Test func batchVariantsTakeTheirNumberOfSteps() throws {
        for (size, steps) in [(nil, 1), (1, 150), (32, 5)] as [(Int?, Int)] {
            let (t, _) = try irisTrainer(epochs: 1, checkpoint: nil)
            t.options.batchSize = size
            var count = 0
            t.onBatch = { _ in count += 1 }
            try t.fit()
            #expect(count == steps && t.optimizer.stepCount == steps)
        }
    }

    @Test func gradientMonitorHookReportsDuringTraining() throws {
        let (t, _) = try irisTrainer(epochs: 1, checkpoint: nil)
        t.gradientMonitor = GradientMonitor(vanishingBelow: 1e-7, explodingAbove: 1e-3)   // everything "explodes"
        var reports: [(Int, Int, Int)] = []
        t.onGradientWarnings = { e, b, w in reports.append((e, b, w.count)) }
        try t.fit()
        #expect(reports.count == 10 && reports[0].0 == 1 && reports[0].1 == 1 && reports.allSatisfy { $0.2 == 4 })
    }

    @Test func divergingTrainingIsAClearError() throws {
        let (t, _) = try irisTrainer(epochs: 5, checkpoint: nil)
        t.optimizer.learningRate = 1e30
        t.optimizer.rule = SGD()
        #expect { try t.fit() } throws: { ($0 as? TrainingError)?.message.contains("lower the learning rate") == true }
    }

    @Test func tensorBoardEventsReadBackWithValidChecksums() throws {
        #expect(CRC32CCheck.value == 0xE306_9283)
        let folder = NSTemporaryDirectory() + "nabla-tb-\(UUID().uuidString.prefix(8))"
        defer { removeTemporary(folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let w = try TensorBoardWriter(folder: folder)
        try w.add(scalars: ["train/loss": 0.5, "validation/accuracy": 0.75], step: 1)
        try w.add(scalars: ["train/loss": 0.25], step: 2)
        let read = try TensorBoardWriter.readScalars(w.path)
        #expect(read.map(\.step) == [1, 1, 2] && read.map(\.tag) == ["train/loss", "validation/accuracy", "train/loss"])
        #expect(read.map(\.value) == [0.5, 0.75, 0.25])
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: w.path)))
        bytes[bytes.count - 6] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: w.path + ".bad"))
        #expect(throws: TensorFileError.self) { try TensorBoardWriter.readScalars(w.path + ".bad") }
    }
}

@Suite struct ClassicModelTests {
    @Test func textbookLineByGradientDescentAndClosedForm() throws {
        let x = Tensor<Double>(shape: [5, 1], scalars: [1, 2, 3, 4, 5]), y: [Double] = [2, 4, 5, 4, 5]
        var gd = LinearRegression(solver: .gradientDescent(learningRate: 0.01, steps: 1000))
        try gd.fit(x, y)
        #expect(isClose(gd.weights[0], 0.617695, tolerance: 1e-6) && isClose(gd.intercept, 2.136117, tolerance: 1e-6))
        var exact = LinearRegression()
        try exact.fit(x, y)
        #expect(isClose(exact.weights[0], 0.6, tolerance: 1e-12) && isClose(exact.intercept, 2.2, tolerance: 1e-12))
        var long = LinearRegression(solver: .gradientDescent(learningRate: 0.05, steps: 20_000))
        try long.fit(x, y)
        #expect(isClose(long.weights[0], exact.weights[0], tolerance: 1e-9) && isClose(long.intercept, exact.intercept, tolerance: 1e-9))
        #expect(gd.lossHistory.first! > gd.lossHistory.last!)
    }

    @Test func ridgeAndLassoSatisfyTheirOptimalityConditions() throws {
        let d = try Dataset.bundled(.diabetes)
        let (n, p) = (d.count, d.featureCount)
        var ridge = LinearRegression(alpha: 0.5)
        try ridge.fit(d.features, d.targets)
        let residual = zip(d.targets, ridge.predict(d.features)).map { $0 - $1 }
        let xs = d.features.scalars
        for j in 0..<p {   // Xᵀ r = α w
            let g = (0..<n).reduce(0.0) { $0 + xs[$1 * p + j] * residual[$1] }
            #expect(Swift.abs(g - 0.5 * ridge.weights[j]) < 1e-6 * Swift.max(1, Swift.abs(g)))
        }
        var lasso = Lasso(alpha: 0.5)
        try lasso.fit(d.features, d.targets)
        let r = zip(d.targets, lasso.predict(d.features)).map { $0 - $1 }
        #expect(lasso.weights.contains(0) && lasso.weights.contains { $0 != 0 })
        for j in 0..<p {   // subgradient condition: Xᵀr/n = α sign(w), or |Xᵀr/n| ≤ α where w = 0
            let g = (0..<n).reduce(0.0) { $0 + xs[$1 * p + j] * r[$1] } / Double(n)
            if lasso.weights[j] == 0 { #expect(Swift.abs(g) <= 0.5 + 1e-6) } else { #expect(Swift.abs(g - 0.5 * (lasso.weights[j] > 0 ? 1 : -1)) < 1e-6) }
        }
        #expect(Swift.abs(r.reduce(0, +)) < 1e-6 * Double(n))
    }

    func breastCancer() throws -> (x: Tensor<Double>, y: [Int], xt: Tensor<Double>, yt: [Int]) {
        let d = try Dataset.bundled(.breastCancer)
        let split = try #require(Dataset.referenceSplit(.breastCancer))
        let train = d.subset(split.train), test = d.subset(split.test)
        let s = FeatureScaler.standard(fittedOn: train.features)
        return (s.transform(train.features), train.labels.values, s.transform(test.features), test.labels.values)
    }

    @Test func logisticRegressionSolversAgreeAtTheOptimum() throws {
        let (x, y, xt, yt) = try breastCancer()
        var lbfgs = LogisticRegression(solver: .lbfgs, tolerance: 1e-9)
        try lbfgs.fit(x, labels: y)
        var newton = LogisticRegression(solver: .newton, tolerance: 1e-9)
        try newton.fit(x, labels: y)
        #expect(isClose(lbfgs.objective, newton.objective, tolerance: 1e-10))
        #expect(Swift.abs(lbfgs.objective - 0.0656) < 5e-4)   // the reference optimum, 3 digits
        #expect(lbfgs.score(xt, labels: yt) > 0.97)
        var loose = LogisticRegression()   // scikit-learn's tolerances: close to, and above, the optimum
        try loose.fit(x, labels: y)
        #expect(loose.objective >= lbfgs.objective && loose.objective - lbfgs.objective < 1e-4 * lbfgs.objective)
        var gd = LogisticRegression(solver: .gradientDescent, maxIterations: 300, learningRate: 1)
        try gd.fit(x, labels: y)
        #expect(gd.objective > lbfgs.objective && gd.objective < lbfgs.objective * 1.5)
        let g = gradient(at: Tensor(lbfgs.weights.scalars + lbfgs.intercepts), of: LogisticRegression.objectiveFunction(x: x, labels: y, classes: 2, c: 1))
        #expect(g.abs().max().scalar < 1e-7)
    }

    @Test func linearSVMsSeparateBreastCancer() throws {
        let (x, y, xt, yt) = try breastCancer()
        var squared = LinearSVM(loss: .squaredHinge)
        try squared.fit(x, labels: y)
        #expect(squared.score(xt, labels: yt) > 0.95)
        var hinge = LinearSVM(loss: .hinge, maxIterations: 300)
        try hinge.fit(x, labels: y)
        #expect(hinge.score(xt, labels: yt) > 0.93)
    }

    @Test func mlpClassifierAndRegressorFitPredictScore() throws {
        let (x, y, xt, yt) = try breastCancer()
        let clf = MLPClassifier(hidden: [16], epochs: 30)
        try clf.fit(x, labels: y)
        #expect(clf.score(xt, labels: yt) > 0.95)
        #expect(isClose(clf.predictProbabilities(xt).sum(axes: [1]).scalars, [Double](repeating: 1, count: yt.count), tolerance: 1e-5))
        let d = try Dataset.bundled(.diabetes)
        let s = FeatureScaler.standard(fittedOn: d.features)
        let mean = d.targets.reduce(0, +) / Double(d.count), sd = (d.targets.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d.count)).squareRoot()
        let reg = MLPRegressor(hidden: [16], epochs: 60, learningRate: 0.01)
        try reg.fit(s.transform(d.features), d.targets.map { ($0 - mean) / sd })
        #expect(reg.score(s.transform(d.features), d.targets.map { ($0 - mean) / sd }) > 0.4)
    }

    @Test func metricsOfAKnownConfusion() {
        let predicted = [0, 0, 1, 1, 2, 2, 2], actual = [0, 1, 1, 1, 2, 0, 2]
        let m = Metrics.confusionMatrix(predicted: predicted, actual: actual, classes: 3)
        #expect(m == [[1, 0, 1], [1, 2, 0], [0, 0, 2]])
        let s = Metrics.perClass(m)
        #expect(isClose(s[0].precision, 0.5) && isClose(s[0].recall, 0.5) && isClose(s[2].precision, 2.0 / 3) && s[1].support == 3)
        #expect(isClose(Metrics.accuracy(predicted: predicted, actual: actual), 5.0 / 7))
        #expect(isClose(Metrics.r2(predicted: [1, 2, 3], actual: [1, 2, 4]), 1 - 1.0 / (14.0 / 3)))
    }
}
