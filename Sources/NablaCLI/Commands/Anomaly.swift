import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla anomaly fit|score`: find unusual rows with gradients and models.
struct Anomaly: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Anomaly detection: fit an autoencoder on normal rows, or score rows with a trained classifier.",
        discussion: """
        nabla anomaly fit --data breast_cancer --normal 1 --out runs/detector
        nabla anomaly score runs/detector --data breast_cancer --normal 1 --plot roc.svg
        nabla anomaly score RUN --method gradnorm --data in.csv --anomalies out.csv   (RUN: a `nabla train` classifier)
        """,
        subcommands: [Fit.self, Score.self])

    struct Fit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fit an autoencoder on the normal rows of a data set.")
        @Option(help: "Bundled data set name or a CSV file.") var data: String
        @Option(help: "The target column (default: the last); it is not a feature.") var target: String?
        @Option(help: "The target value of the normal rows (default: every row is normal).") var normal: String?
        @Option(help: "Hidden units.") var hidden: Int = 32
        @Option(help: "Code (bottleneck) units.") var code: Int = 8
        @Option(help: "Autoencoders averaged (seeds seed, seed+1, …).") var members: Int = 5
        @Option(help: "Training epochs.") var epochs: Int = 100
        @Option(help: "standardized (each feature's squared residual over its mean on the fitting rows) or mse (plain mean squared error).")
        var scoring: String = "standardized"
        @Option(help: "False-positive rate the threshold is set for, on held-out normal rows.") var fpr: Double = 0.05
        @Option(help: "Seed of the split, the weights and the batches.") var seed: UInt64 = 0
        @Option(help: "The detector's folder.") var out: String

        func validate() throws {
            guard (1...100_000).contains(hidden), (1...100_000).contains(code) else { throw ValidationError("--hidden and --code must be between 1 and 100000") }
            guard (1...1_000).contains(members) else { throw ValidationError("--members must be between 1 and 1000") }
            guard ["standardized", "mse"].contains(scoring) else { throw ValidationError("--scoring must be standardized or mse, got '\(scoring)'") }
            guard (1...100_000).contains(epochs) else { throw ValidationError("--epochs must be between 1 and 100000") }
            guard fpr > 0, fpr < 1 else { throw ValidationError("--fpr must be a rate between 0 and 1, got \(fpr)") }
            guard !FileManager.default.fileExists(atPath: file(out, DetectorCard.fileName)) else {
                throw ValidationError("--out \(out) already holds a detector; choose another folder")
            }
        }

        func run() throws {
            do {
                let table = try readTable(data)
                let targetName = target ?? table.header.last!
                guard let t = table.header.firstIndex(of: targetName) else { throw RunSettingsError("\(data): no column '\(targetName)'") }
                let features = table.header.enumerated().filter { $0.offset != t }.map(\.element)
                let normalRows = table.rows.indices.filter { normal == nil || table.rows[$0][t].trimmingCharacters(in: .whitespaces) == normal }
                guard !normalRows.isEmpty else {
                    let values = Set(table.rows.map { $0[t].trimmingCharacters(in: .whitespaces) }).sorted().prefix(10)
                    throw RunSettingsError("--normal \(normal ?? ""): no row of \(data) has that '\(targetName)' (values: \(values.joined(separator: ", ")))")
                }
                let all = try featureMatrix(from: table, features: features, path: data)
                let x = all.indexSelect(axis: 0, indices: normalRows)
                let detector = AutoencoderDetector(hidden: hidden, code: code, members: members, epochs: epochs,
                                                   scoring: scoring == "mse" ? .meanSquaredError : .standardized, seed: seed)
                let (threshold, held) = try detector.fit(normal: x, falsePositiveRate: fpr, seed: seed)
                try detector.save(to: out, card: detector.card(features: features, threshold: threshold, falsePositiveRate: fpr, target: targetName, normalValue: normal))
                print("fitted \(members == 1 ? "an autoencoder" : "\(members) autoencoders") (\(features.count) → \(hidden) → \(code) → \(hidden) → \(features.count)) on \(x.shape[0] - held.count) normal rows of \(data); threshold \(fmt(threshold, digits: 4)) flags \(fmt(fpr * 100, digits: 3)) % of \(held.count) held-out normal rows")
                print("detector written to \(out)")
            } catch let e as ValidationError { throw e } catch {
                printError("error: \(error)")
                throw ExitCode.failure
            }
        }
    }

    struct Score: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Score rows: an autoencoder detector's reconstruction error, or a classifier's MSP or GradNorm.")
        @Argument(help: "A folder of `nabla anomaly fit`, or of a `nabla train` classifier.") var folder: String
        @Option(help: "Bundled data set name or a CSV file to score.") var data: String
        @Option(help: "With a classifier: msp (1 − max softmax probability) or gradnorm.") var method: String = "msp"
        @Option(help: "A second file whose rows are all anomalies (for ROC AUC against --data's rows as normal).") var anomalies: String?
        @Option(help: "The target value of normal rows in --data (the others are anomalies), for ROC AUC.") var normal: String?
        @Option(help: "Write row, score and flag as CSV to this file.") var out: String?
        @Option(help: "Draw the ROC curve in this SVG file (needs --normal or --anomalies).") var plot: String?
        @Flag(help: "Print the evaluation as JSON.") var json = false

        func validate() throws {
            guard ["msp", "gradnorm"].contains(method) else { throw ValidationError("--method must be msp or gradnorm") }
            guard plot == nil || normal != nil || anomalies != nil else { throw ValidationError("--plot needs --normal or --anomalies to know which rows are anomalies") }
        }

        func run() throws {
            do {
                let scorer: (CSVTable, String) throws -> [Double]
                var threshold: Double?
                var targetName: String?
                if FileManager.default.fileExists(atPath: file(folder, DetectorCard.fileName)) {
                    let (detector, card) = try AutoencoderDetector.load(from: folder)
                    threshold = card.threshold
                    targetName = card.target
                    scorer = { table, path in detector.score(try featureMatrix(from: table, features: card.features, path: path)) }
                } else {
                    let model = try TrainedModel(runFolder: folder)
                    guard model.card.task == .classification else { throw RunSettingsError("\(folder): MSP and GradNorm need a classifier; this run does regression") }
                    targetName = model.card.target
                    let gradNorm = method == "gradnorm"
                    scorer = { table, path in
                        let x = try model.features(from: table, path: path)
                        if gradNorm {
                            let (h, z) = model.lastLayer(x)
                            return AnomalyScores.gradNorm(features: h, logits: z)
                        }
                        return AnomalyScores.maximumSoftmax(logits: model.outputs(x))
                    }
                }
                let table = try readTable(data)
                var scores = try scorer(table, data)
                var truth: [Bool]?
                if let anomalies {
                    let other = try scorer(try readTable(anomalies), anomalies)
                    truth = Array(repeating: false, count: scores.count) + Array(repeating: true, count: other.count)
                    scores += other
                } else if let normal {
                    guard let name = targetName, let t = table.header.firstIndex(of: name) else {
                        throw RunSettingsError("--normal: \(data) has no target column '\(targetName ?? "")' to compare with")
                    }
                    truth = table.rows.map { $0[t].trimmingCharacters(in: .whitespaces) != normal }
                }
                if let out {
                    let lines = ["row,score,flagged"] + scores.enumerated().map { row, score in
                        "\(row),\(score),\(threshold.map { score > $0 ? "1" : "0" } ?? "")"
                    }
                    try writeAtomically(lines.joined(separator: "\n") + "\n", to: out)
                }
                guard let truth else {
                    let flagged = threshold.map { t in scores.filter { $0 > t }.count }
                    print("scored \(scores.count) rows\(flagged.map { "; \($0) above the threshold" } ?? "")\(out.map { "; written to \($0)" } ?? "")")
                    return
                }
                guard truth.contains(true), truth.contains(false) else {
                    throw RunSettingsError("the rows are all \(truth[0] ? "anomalies" : "normal"): ROC AUC needs both kinds (check --normal)")
                }
                let auc = DetectionMetrics.rocAUC(scores: scores, anomalies: truth)
                let ap = DetectionMetrics.averagePrecision(scores: scores, anomalies: truth)
                let flaggedRates = threshold.map { t -> (Double, Double) in
                    let normalScores = zip(scores, truth).filter { !$0.1 }.map(\.0), anomalous = zip(scores, truth).filter { $0.1 }.map(\.0)
                    return (Double(normalScores.filter { $0 > t }.count) / Double(normalScores.count), Double(anomalous.filter { $0 > t }.count) / Double(anomalous.count))
                }
                if json {
                    var pairs: [(String, JSONValue)] = [("rows", .number(Double(scores.count))), ("anomalies", .number(Double(truth.filter { $0 }.count))),
                                                        ("roc_auc", .number(auc)), ("average_precision", .number(ap))]
                    if let (fpr, tpr) = flaggedRates { pairs += [("false_positive_rate", .number(fpr)), ("true_positive_rate", .number(tpr))] }
                    print(OrderedJSON(pairs).text)
                } else {
                    print("\(scores.count) rows, \(truth.filter { $0 }.count) anomalies: ROC AUC \(fmt(auc, digits: 4)), average precision \(fmt(ap, digits: 4))")
                    if let (fpr, tpr) = flaggedRates { print("at the threshold: \(fmt(tpr * 100, digits: 3)) % of anomalies flagged, \(fmt(fpr * 100, digits: 3)) % of normal rows") }
                }
                if let plot {
                    let curve = DetectionMetrics.rocCurve(scores: scores, anomalies: truth)
                    let chart = LinePlot(title: "ROC curve (AUC \(fmt(auc, digits: 3)))", xLabel: "false-positive rate", yLabel: "true-positive rate",
                                         series: [LinePlot.Series(name: "detector", points: curve.map { ($0.falsePositiveRate, $0.truePositiveRate) }),
                                                  LinePlot.Series(name: "chance", points: [(0, 0), (1, 1)])])
                    try chart.write(to: plot)
                    if !json { print("ROC curve written to \(plot)") }
                }
            } catch let e as ValidationError { throw e } catch {
                printError("error: \(error)")
                throw ExitCode.failure
            }
        }
    }
}
