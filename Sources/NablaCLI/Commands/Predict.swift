import ArgumentParser
import Foundation
import Nabla

/// `nabla predict RUN --data FILE.csv`: applies a trained model to new rows.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the model of a `nabla train` run to a CSV file.",
        discussion: """
        The CSV needs the run's feature columns (by name, any order; extra columns are ignored). Prints a CSV \
        with the row number and the prediction (and for classification the probability of the predicted \
        class); when the file also has the target column, the accuracy or R² follows on standard error.
        """)

    @Argument(help: "The run folder (it holds model.safetensors and model.json).") var runFolder: String
    @Option(help: "The CSV file to predict.") var data: String
    @Option(help: "Write the predictions to this file instead of standard output.") var out: String?

    func run() throws {
        do {
            let cardData = FileManager.default.contents(atPath: file(runFolder, "model.json"))
            guard let cardData else { throw RunFailure(message: "\(runFolder): no model.json; is it the folder of a finished `nabla train` run?") }
            let card: ModelCard
            do { card = try ModelCard.decode(cardData) } catch { throw RunFailure(message: "\(runFolder): \(error)") }
            let network: Sequential<Float> = card.spec.build(inputs: card.features.count, outputs: card.outputs)
            try network.load(from: file(runFolder, "model.safetensors"))
            network.eval()
            let table = try CSVTable.read(data)
            let x = try features(table, card: card)
            let scores = withoutGradients { network(Tensor<Float>(converting: card.scaler.transform(x))) }
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
            if let t = table.header.firstIndex(of: card.target) {
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

    /// The model's feature columns from the table: numeric ones by name, one-hot ones
    /// (`name=level`) from their source column.
    func features(_ table: CSVTable, card: ModelCard) throws -> Tensor<Double> {
        let n = table.rows.count, d = card.features.count
        var flat = [Double](repeating: 0, count: n * d)
        for (j, name) in card.features.enumerated() {
            if let c = table.header.firstIndex(of: name) {
                for (i, row) in table.rows.enumerated() {
                    let cell = row[c].trimmingCharacters(in: .whitespaces)
                    guard let v = Double(cell), v.isFinite else {
                        throw DataFileError(path: data, line: table.lineNumbers[i], column: c + 1, columnName: name, message: "'\(cell)' is not a number")
                    }
                    flat[i * d + j] = v
                }
            } else if let eq = name.firstIndex(of: "="), let c = table.header.firstIndex(of: String(name[..<eq])) {
                let source = String(name[..<eq]), level = String(name[name.index(after: eq)...])
                // Every value of a one-hot column must be a level the model was trained on.
                let known = Set(card.features.filter { $0.hasPrefix(source + "=") }.map { String($0.dropFirst(source.count + 1)) })
                for (i, row) in table.rows.enumerated() {
                    let cell = row[c].trimmingCharacters(in: .whitespaces)
                    guard known.contains(cell) else {
                        throw DataFileError(path: data, line: table.lineNumbers[i], column: c + 1, columnName: source,
                                            message: "'\(cell)' is not a value the model was trained on (\(known.sorted().prefix(10).joined(separator: ", ")))")
                    }
                    flat[i * d + j] = cell == level ? 1 : 0
                }
            } else {
                throw DataFileError(path: data, line: 1, message: "no column '\(name)', which the model was trained on")
            }
        }
        return Tensor(shape: [n, d], scalars: flat)
    }
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

