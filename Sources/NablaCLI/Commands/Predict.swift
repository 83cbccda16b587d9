import ArgumentParser
import Foundation
import Nabla

/// `nabla predict RUN --data FILE.csv`: applies a trained model to new rows.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the model of a `nabla train` run to a CSV file or to MNIST-style images.",
        discussion: """
        The CSV needs the run's feature columns (by name, any order; extra columns are ignored). Prints a CSV \
        with the row number and the prediction (and for classification the probability of the predicted \
        class); when the file also has the target column, the accuracy or R² follows on standard error. \
        An IDX images file (…-images-idx3-ubyte[.gz]) is predicted image by image; with its labels file beside \
        it, the accuracy follows.
        """)

    @Argument(help: "The run folder (it holds model.safetensors and model.json).") var runFolder: String
    @Option(help: "The CSV file to predict, or an IDX images file (…-images-idx3-ubyte[.gz]) for a model trained on images.") var data: String
    @Option(help: "Write the predictions to this file instead of standard output.") var out: String?

    func run() throws {
        do {
            let trained = try TrainedModel(runFolder: runFolder)
            let card = trained.card
            let x: Tensor<Double>
            var table: CSVTable?
            var imageLabels: [Int]?
            if data.contains("idx3-ubyte") {
                // With its labels file beside it: read together (checked against each other).
                let labels = IDX.labelsPath(forImages: data)
                if labels != data, FileManager.default.fileExists(atPath: labels) {
                    let set = try Dataset.readIDX(images: data, labels: labels)
                    (x, imageLabels) = (set.features, set.targets.map { Int($0) })
                } else {
                    x = try IDX.images(data)
                }
                guard x.shape[1] == card.features.count else {
                    throw RunSettingsError("\(data): images of \(x.shape[1]) pixels, but the model was trained on \(card.features.count) features")
                }
            } else {
                table = try CSVTable.read(data)
                x = try trained.features(from: table!, path: data)
            }
            let scores = trained.outputs(x)
            var lines = ["row,prediction" + (card.task == .classification ? ",probability" : "")]
            var predictedClasses: [Int] = [], predictedValues: [Double] = []
            if card.task == .classification {
                let p = scores.softmax(axis: 1)
                predictedClasses = p.argmax(axis: 1)
                let k = card.classes.count, ps = p.scalars
                for (i, c) in predictedClasses.enumerated() { lines.append("\(i + 1),\(csvField(card.classes[c])),\(ps[i * k + c])") }
            } else {
                let (mean, scale) = (card.targetMean ?? 0, card.targetScale ?? 1)
                predictedValues = scores.scalars.map { Double($0) * scale + mean }
                for (i, v) in predictedValues.enumerated() { lines.append("\(i + 1),\(v)") }
            }
            let text = lines.joined(separator: "\n") + "\n"
            if let path = out { try writeAtomically(text, to: path) } else { print(text, terminator: "") }
            if let imageLabels, card.task == .classification {
                printError("accuracy \(fmt(Metrics.accuracy(predicted: predictedClasses, actual: imageLabels), digits: 4)) on \(imageLabels.count) images with labels (\((IDX.labelsPath(forImages: data) as NSString).lastPathComponent))")
            }
            if let table, let t = table.header.firstIndex(of: card.target) {
                let cells = table.rows.map { $0[t].trimmingCharacters(in: .whitespaces) }
                if card.task == .classification {
                    let actual = cells.map { card.classes.firstIndex(of: $0) ?? -1 }
                    printError("accuracy \(fmt(Metrics.accuracy(predicted: predictedClasses, actual: actual), digits: 4)) on \(actual.count) rows with a '\(card.target)' column")
                } else if case let ys = cells.compactMap(Double.init), ys.count == cells.count {
                    printError("R² \(fmt(Metrics.r2(predicted: predictedValues, actual: ys), digits: 4)) on \(ys.count) rows")
                }
            }
        } catch let e as ValidationError { throw e } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

