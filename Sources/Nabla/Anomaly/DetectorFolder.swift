import Foundation

/// What `nabla anomaly fit` saves beside the autoencoder's weights (detector.json): the inputs,
/// their scaling, the architecture and the threshold chosen for a false-positive rate.
public struct DetectorCard: RunSettingsFile, Sendable, Equatable {
    public static let fileName = "detector.json"
    public var detector: String
    public var features: [String]
    public var scaler: FeatureScaler
    public var hidden: Int
    public var code: Int
    /// How many autoencoders are averaged, and how their residuals are weighted.
    public var members: Int
    public var scoring: AutoencoderDetector.Scoring
    /// Per member, each feature's mean squared residual on the fitting rows.
    public var residualVariances: [[Double]]
    /// Scores above this are flagged.
    public var threshold: Double
    /// The false-positive rate the threshold was chosen for, on held-out normal rows.
    public var falsePositiveRate: Double
    /// The target column and the value that marked the normal rows, if one did.
    public var target: String?
    public var normalValue: String?

    public init(detector: String, features: [String], scaler: FeatureScaler, hidden: Int, code: Int, members: Int,
                scoring: AutoencoderDetector.Scoring, residualVariances: [[Double]], threshold: Double,
                falsePositiveRate: Double, target: String? = nil, normalValue: String? = nil) {
        (self.detector, self.features, self.scaler, self.hidden, self.code) = (detector, features, scaler, hidden, code)
        (self.members, self.scoring, self.residualVariances) = (members, scoring, residualVariances)
        (self.threshold, self.falsePositiveRate, self.target, self.normalValue) = (threshold, falsePositiveRate, target, normalValue)
    }

    public func check() throws {
        guard detector == "autoencoder" else { throw RunSettingsError("'detector' '\(detector)' is unknown (autoencoder)") }
        guard !features.isEmpty, features.count <= 10_000_000 else { throw RunSettingsError("'features' must list between 1 and 10000000 names") }
        guard (1...100_000).contains(hidden), (1...100_000).contains(code) else { throw RunSettingsError("'hidden' and 'code' must be between 1 and 100000") }
        guard scaler.shift.count == features.count, scaler.scale.count == features.count, scaler.scale.allSatisfy({ $0.isFinite && $0 != 0 }) else {
            throw RunSettingsError("'scaler' needs one finite shift and non-zero scale per feature")
        }
        guard (1...1_000).contains(members) else { throw RunSettingsError("'members' must be between 1 and 1000") }
        guard residualVariances.count == members, residualVariances.allSatisfy({ $0.count == features.count && $0.allSatisfy { $0.isFinite && $0 > 0 } }) else {
            throw RunSettingsError("'residualVariances' needs, for each of the \(members) members, one finite positive value per feature")
        }
        guard threshold.isFinite, falsePositiveRate >= 0, falsePositiveRate <= 1 else { throw RunSettingsError("'threshold' and 'falsePositiveRate' are out of range") }
    }
}

extension AutoencoderDetector {
    /// The card of this fitted detector, for ``save(to:card:)``.
    public func card(features: [String], threshold: Double, falsePositiveRate: Double, target: String? = nil, normalValue: String? = nil) -> DetectorCard {
        guard let scaler else { usageFailure("AutoencoderDetector.card: call fit first") }
        require(features.count == scaler.shift.count, "AutoencoderDetector.card: \(features.count) feature names for a detector of \(scaler.shift.count) features")
        return DetectorCard(detector: "autoencoder", features: features, scaler: scaler, hidden: hidden, code: code, members: members, scoring: scoring,
                            residualVariances: residualVariances, threshold: threshold, falsePositiveRate: falsePositiveRate, target: target, normalValue: normalValue)
    }

    /// Writes detector.json and model.safetensors (member k's tensors under `k.`) into `folder`
    /// (created if needed); the weights first, so that a folder with a card is whole.
    public func save(to folder: String, card: DetectorCard) throws {
        guard !networks.isEmpty else { usageFailure("AutoencoderDetector.save: call fit first") }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var archive = SafeTensors.Archive(metadata: ["nabla.members": String(networks.count)])
        for (k, network) in networks.enumerated() {
            for (name, tensor) in network.archive().tensors { archive.tensors["\(k).\(name)"] = tensor }
        }
        try SafeTensors.write(archive, to: (folder as NSString).appendingPathComponent("model.safetensors"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(encoder.encode(card), to: (folder as NSString).appendingPathComponent(DetectorCard.fileName))
    }

    /// Reads a detector saved by ``save(to:card:)``.
    public static func load(from folder: String) throws -> (AutoencoderDetector, DetectorCard) {
        guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent(DetectorCard.fileName)) else {
            throw RunSettingsError("\(folder): no \(DetectorCard.fileName); is it the folder of `nabla anomaly fit`?")
        }
        let card = try DetectorCard.decode(data)
        let detector = AutoencoderDetector(hidden: card.hidden, code: card.code, members: card.members, scoring: card.scoring)
        let path = (folder as NSString).appendingPathComponent("model.safetensors")
        let archive = try SafeTensors.read(path)
        let networks = try (0..<card.members).map { k in
            let network = detector.architecture(features: card.features.count)
            var part = SafeTensors.Archive(metadata: [:])
            for (name, tensor) in archive.tensors where name.hasPrefix("\(k).") { part.tensors[String(name.dropFirst("\(k).".count))] = tensor }
            try network.load(part, path: "\(path) (member \(k))")
            return network
        }
        let known = Set((0..<card.members).flatMap { k in networks[k].archive().tensors.keys.map { "\(k).\($0)" } })
        if let extra = archive.tensors.keys.first(where: { !known.contains($0) }) {
            throw RunSettingsError("\(path): the tensor '\(extra)' belongs to no member of the detector")
        }
        detector.restore(networks: networks, scaler: card.scaler, residualVariances: card.residualVariances)
        return (detector, card)
    }
}

extension AutoencoderDetector {
    /// Fits on a seeded share of the normal rows and chooses the threshold on the rest, so that
    /// about `falsePositiveRate` of normal data is flagged. Returns it with the held-out rows.
    public func fit(normal x: Tensor<Double>, falsePositiveRate: Double, heldOut: Double = 0.2, seed: UInt64 = 0) throws
        -> (threshold: Double, heldOutRows: [Int]) {
        require(falsePositiveRate >= 0 && falsePositiveRate <= 1 && heldOut > 0 && heldOut < 1,
                "AutoencoderDetector.fit: a false-positive rate of \(falsePositiveRate) and a held-out share of \(heldOut)")
        let n = x.shape.first ?? 0
        guard n >= 10 else { throw FitError(message: "AutoencoderDetector.fit: \(n) normal rows are too few (at least 10)") }
        var rng = RandomGenerator(seed: seed)
        let order = rng.permutation(n)
        let held = Swift.max(1, Int(Double(n) * heldOut))
        let (heldRows, fitRows) = (Array(order.prefix(held)).sorted(), Array(order.dropFirst(held)).sorted())
        try fit(x.indexSelect(axis: 0, indices: fitRows))
        let threshold = DetectionMetrics.threshold(normalScores: score(x.indexSelect(axis: 0, indices: heldRows)), falsePositiveRate: falsePositiveRate)
        return (threshold, heldRows)
    }
}
