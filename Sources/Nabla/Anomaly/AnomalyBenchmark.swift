import Foundation

/// The anomaly benchmarks of Nabla's detectors, each a fixed split that other libraries can
/// reproduce from its description (bench/anomaly runs scikit-learn and PyOD on the same rows):
/// - breast_cancer: fit on the benign rows of even index; score the rows of odd index;
///   malignant = anomaly.
/// - digits: fit on the rows of even index that are not a 9; score the rows of odd index;
///   9 = anomaly.
/// - MNIST vs Fashion-MNIST: fit on the first `train` MNIST training images; score the first
///   `test` MNIST test images (normal) and the first `test` Fashion-MNIST test images (anomalies).
public struct AnomalyBenchmark {
    public var name: String
    public var fitFeatures: Tensor<Double>
    /// Class labels of the fitting rows, for the classifier-based detectors (nil: one class).
    public var fitLabels: [Int]?
    public var testFeatures: Tensor<Double>
    public var testAnomalies: [Bool]

    public static func breastCancer() throws -> AnomalyBenchmark {
        let d = try Dataset.bundled(.breastCancer)
        let fit = (0..<d.count).filter { $0 % 2 == 0 && d.targets[$0] == 1 }, test = (0..<d.count).filter { $0 % 2 == 1 }
        return AnomalyBenchmark(name: "breast_cancer", fitFeatures: d.features.indexSelect(axis: 0, indices: fit), fitLabels: nil,
                                testFeatures: d.features.indexSelect(axis: 0, indices: test), testAnomalies: test.map { d.targets[$0] == 0 })
    }

    public static func digits() throws -> AnomalyBenchmark {
        let d = try Dataset.bundled(.digits)
        let fit = (0..<d.count).filter { $0 % 2 == 0 && d.targets[$0] != 9 }, test = (0..<d.count).filter { $0 % 2 == 1 }
        return AnomalyBenchmark(name: "digits (9 unseen)", fitFeatures: d.features.indexSelect(axis: 0, indices: fit), fitLabels: fit.map { Int(d.targets[$0]) },
                                testFeatures: d.features.indexSelect(axis: 0, indices: test), testAnomalies: test.map { d.targets[$0] == 9 })
    }

    /// `mnist` and `fashion` are folders holding the IDX files (plain or gzip'd) under their usual names.
    public static func mnistVersusFashion(mnist: String, fashion: String, train: Int = 10_000, test: Int = 2_000) throws -> AnomalyBenchmark {
        func find(_ folder: String, _ stem: String) throws -> String {
            guard let path = ImageSet.locate(stem, in: folder) else {
                throw DataFileError(path: (folder as NSString).appendingPathComponent(stem), message: "not found (plain or .gz)")
            }
            return path
        }
        let trainSet = try Dataset.readIDX(images: try find(mnist, "train-images-idx3-ubyte"), labels: try find(mnist, "train-labels-idx1-ubyte"), limit: train)
        let normal = try Dataset.readIDX(images: try find(mnist, "t10k-images-idx3-ubyte"), labels: try find(mnist, "t10k-labels-idx1-ubyte"), limit: test)
        let outside = try Dataset.readIDX(images: try find(fashion, "t10k-images-idx3-ubyte"), labels: try find(fashion, "t10k-labels-idx1-ubyte"), limit: test)
        return AnomalyBenchmark(name: "MNIST vs Fashion-MNIST", fitFeatures: trainSet.features, fitLabels: trainSet.targets.map { Int($0) },
                                testFeatures: Tensor.concatenate([normal.features, outside.features], axis: 0),
                                testAnomalies: Array(repeating: false, count: normal.count) + Array(repeating: true, count: outside.count))
    }

    /// ROC AUC of each of Nabla's detectors: the autoencoders (standardized residuals, and the
    /// plain mean squared error of the same networks), and where the fitting rows have
    /// classes, an MLP classifier's maximum softmax probability and GradNorm.
    public func run(seed: UInt64 = 0) throws -> [(detector: String, rocAUC: Double)] {
        var results: [(String, Double)] = []
        let d = fitFeatures.shape[1]
        let autoencoder = AutoencoderDetector(hidden: Swift.min(64, Swift.max(16, d / 2)), code: Swift.min(16, Swift.max(4, d / 8)),
                                              epochs: d > 100 ? 50 : 200, seed: seed)
        try autoencoder.fit(fitFeatures)
        results.append(("autoencoder", DetectionMetrics.rocAUC(scores: autoencoder.score(testFeatures), anomalies: testAnomalies)))
        autoencoder.scoring = .meanSquaredError
        results.append(("autoencoder (MSE)", DetectionMetrics.rocAUC(scores: autoencoder.score(testFeatures), anomalies: testAnomalies)))
        if let labels = fitLabels {
            // Images keep their [0, 1] pixels: standardizing nearly constant border pixels would
            // blow up any ink there (exactly what out-of-distribution images have).
            let scaler = d > 100 ? FeatureScaler.identity(features: d) : FeatureScaler.standard(fittedOn: fitFeatures)
            let classifier = MLPClassifier(hidden: [128], epochs: d > 100 ? 10 : 60, batchSize: 64, learningRate: 1e-3,
                                           patience: nil, validationFraction: 0, seed: seed)
            try classifier.fit(scaler.transform(fitFeatures), labels: labels)
            let (h, z) = classifier.network!.lastLayerInputsAndOutputs(Tensor<Float>(converting: scaler.transform(testFeatures)))
            results.append(("classifier MSP", DetectionMetrics.rocAUC(scores: AnomalyScores.maximumSoftmax(logits: z), anomalies: testAnomalies)))
            results.append(("classifier GradNorm", DetectionMetrics.rocAUC(scores: AnomalyScores.gradNorm(features: h, logits: z), anomalies: testAnomalies)))
        }
        return results
    }
}
