import Foundation

/// What a generative run folder holds about itself (`generative.json`): the settings and where the
/// images came from, so `nabla train --resume` and `nabla sample` rebuild the model.
public struct GenerativeRunCard: Sendable, Codable, Equatable {
    public static let fileName = "generative.json"
    public var settings: GenerativeSettings
    /// The image set's name (`mnist`, `fashion-mnist`).
    public var data: String
    public var dataDirectory: String?

    public init(settings: GenerativeSettings, data: String, dataDirectory: String?) {
        (self.settings, self.data, self.dataDirectory) = (settings, data, dataDirectory)
    }

    /// The card of the run in `folder`, checked; an error names the folder when there is none or
    /// it does not decode.
    public static func read(folder: String) throws -> GenerativeRunCard {
        let path = (folder as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GenerativeError("\(folder): no \(fileName); give the folder of a `nabla train --model vae|gan|cgan` run")
        }
        let card: GenerativeRunCard
        do { card = try JSONDecoder().decode(GenerativeRunCard.self, from: data) } catch {
            throw GenerativeError("\(path): not a generative run card (\(error))")
        }
        do { try card.settings.check() } catch let e as GenerativeError { throw GenerativeError("\(path): \(e.message)") }
        guard card.settings.height * card.settings.width <= 1 << 24 else { throw GenerativeError("\(path): images of \(card.settings.height) × \(card.settings.width) pixels are too large") }
        return card
    }

    /// The trained model of the run in `folder` (model.safetensors), in evaluation mode.
    public static func model(folder: String) throws -> (card: GenerativeRunCard, model: GenerativeModel) {
        let card = try read(folder: folder)
        let model = GenerativeModel(card.settings)
        let path = (folder as NSString).appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: path) else {
            throw GenerativeError("\(folder): no model.safetensors yet; the run has not finished an epoch")
        }
        try model.module.load(from: path)
        model.module.eval()
        return (card, model)
    }
}

/// How often a classifier labels a conditional generator's samples as the class they were asked
/// for: `perClass` samples of each class.
public struct ClassAgreement: Sendable, Codable, Equatable {
    /// The fraction of all samples labelled as asked.
    public var overall: Double
    /// The fraction per class, in class order.
    public var perClass: [Double]
    public var samples: Int
}

extension GenerativeModel {
    /// `classify(rows)` gives a class index per row of pixels in [0, 1]; the model must be a
    /// conditional GAN.
    public func classAgreement(perClass: Int, seed: UInt64, classify: (Tensor<Float>) throws -> [Int]) throws -> ClassAgreement {
        guard case .gan(let m) = self, m.classes > 0 else { throw GenerativeError("the class agreement needs a class-conditional GAN (cgan)") }
        guard perClass >= 1 else { throw GenerativeError("at least one sample per class") }
        var g = RandomGenerator(seed: seed)
        var rates: [Double] = []
        for c in 0..<m.classes {
            let predicted = try classify(sample(count: perClass, label: c, using: &g))
            rates.append(Double(predicted.filter { $0 == c }.count) / Double(perClass))
        }
        return ClassAgreement(overall: rates.reduce(0, +) / Double(rates.count), perClass: rates, samples: perClass * m.classes)
    }
}
