import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla explain RUN --data …`: which features moved the model's predictions.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain the model of a `nabla train` run: feature importances and per-row attributions.",
        discussion: """
        Attributes each row's predicted class (or --output K) to the input features with saliency (|∇|), input × \
        gradient, integrated gradients (--steps, --baseline zeros|mean; Gauss–Legendre) or SmoothGrad, and ranks the \
        features by mean |attribution|; --method permutation ranks them by the drop of accuracy or R² when a column is \
        shuffled (the data must hold the target column). --plot draws the importances, or for images (digits, MNIST) \
        the rows' attributions as heat maps.
        Example: nabla explain runs/mlp-64-breast_cancer-… --data breast_cancer --method integrated-gradients --rows 0,1 --plot ig.svg
        """)

    @Argument(help: "The run folder (it holds model.safetensors and model.json).") var runFolder: String
    @Option(help: "Bundled data set name or a CSV file with the run's feature columns.") var data: String
    @Option(help: "Rows (0-based) whose attributions to print, comma-separated.") var rows: String = "0"
    @Option(help: "saliency, input-x-gradient, integrated-gradients, smoothgrad or permutation.") var method: String = "integrated-gradients"
    @Option(help: "Integrated gradients' baseline: zeros (the scaled mean of the training data) or mean (of these rows).") var baseline: String = "zeros"
    @Option(help: "Integration points of integrated gradients.") var steps: Int = 50
    @Option(help: "The class index (or output) to explain for every row (default: each row's predicted class).") var output: Int?
    @Option(help: "Repeats of permutation importance.") var repeats: Int = 5
    @Option(help: "Seed of SmoothGrad's noise and of the permutations.") var seed: UInt64 = 0
    @Option(help: "Features to list (most important first).") var top: Int = 15
    @Option(help: "A second method whose importances are ranked beside the first, with the Spearman rank correlation of the two.") var compare: String?
    @Option(help: "Write a picture to this SVG file: importances, or heat maps for image data (a .png name writes the heat maps as PNG).") var plot: String?
    @Flag(help: "Print one JSON object: importances (sorted) and the rows' attributions.") var json = false

    func validate() throws {
        guard ModelExplanation.Method(rawValue: method) != nil else {
            throw ValidationError("--method must be one of \(ModelExplanation.Method.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard compare.map({ ModelExplanation.Method(rawValue: $0) != nil }) ?? true else {
            throw ValidationError("--compare must be one of \(ModelExplanation.Method.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard ["zeros", "mean"].contains(baseline) else { throw ValidationError("--baseline must be zeros or mean") }
        guard steps >= 1, steps <= 10_000 else { throw ValidationError("--steps must be between 1 and 10000, got \(steps)") }
        guard repeats >= 1, repeats <= 1000 else { throw ValidationError("--repeats must be between 1 and 1000") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        guard rowList != nil else { throw ValidationError("--rows must be comma-separated row numbers (0-based), got '\(rows)'") }
    }

    var rowList: [Int]? {
        let r = rows.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return r.allSatisfy { ($0 ?? -1) >= 0 } ? r.map { $0! } : nil
    }

    func run() throws {
        do {
            let model = try TrainedModel(runFolder: runFolder)
            let x: Tensor<Double>
            var labels: [Int]?, values: [Double]?
            if data.contains("idx3-ubyte") {
                // MNIST-style images with the labels file beside them (pixels named pixel_…).
                let images = try Dataset.readIDX(images: data, labels: IDX.labelsPath(forImages: data))
                guard images.featureNames == model.card.features else {
                    throw RunSettingsError("\(data): \(images.featureCount) pixels, but the model was trained on \(model.card.features.count) features")
                }
                x = images.features
                // IDX labels are class indices, in the order the model's classes were read.
                let indices = images.targets.map { Int($0) }
                labels = indices.allSatisfy { $0 < model.card.classes.count } ? indices : nil
            } else {
                let table = try readTable(data)
                x = try model.features(from: table, path: data)
                labels = try model.labels(from: table, path: data)
                values = model.values(from: table)
            }
            let wanted = rowList!
            if let bad = wanted.first(where: { $0 >= x.shape[0] }) {
                throw RunSettingsError("--rows: row \(bad) is past the last row of \(data) (\(x.shape[0]) rows, numbered from 0)")
            }
            let m = ModelExplanation.Method(rawValue: method)!
            let e = try ModelExplanation.explain(model, features: x, method: m, output: output, baselineMean: baseline == "mean",
                                                 steps: steps, repeats: repeats, seed: seed,
                                                 labels: labels, values: values)
            let other = try compare.map {
                try ModelExplanation.explain(model, features: x, method: ModelExplanation.Method(rawValue: $0)!, output: output, baselineMean: baseline == "mean",
                                             steps: steps, repeats: repeats, seed: seed, labels: labels, values: values)
            }
            let correlation = other.map { rankCorrelation(e.importance.importances, $0.importance.importances) }
            let card = model.card
            let ranked = e.importance.ranking
            func outputName(_ k: Int) -> String { card.task == .classification ? card.classes[k] : card.target }
            if json {
                var pairs: [(String, JSONValue)] = [("method", .string(m.rawValue)), ("rows_explained", .number(Double(x.shape[0]))),
                    ("importances", .array(ranked.map { .object(["feature": .string(card.features[$0]), "importance": .number(e.importance.importances[$0])]) }))]
                if let other, let correlation {
                    pairs.append(("comparison", .object(["method": .string(other.method.rawValue), "rank_correlation": .number(correlation),
                        "importances": .array(other.importance.ranking.map { .object(["feature": .string(card.features[$0]), "importance": .number(other.importance.importances[$0])]) })])))
                }
                if let a = e.attributions {
                    let d = a.shape[1]
                    pairs.append(("rows", .array(wanted.map { r in
                        var o: [String: JSONValue] = ["row": .number(Double(r)), "output": .string(outputName(e.explainedOutputs[r])),
                                                      "attributions": .array((0..<d).map { .number(a.scalars[r * d + $0]) })]
                        if let delta = e.convergenceDelta { o["convergence_delta"] = .number(delta[r]) }
                        return .object(o)
                    })))
                }
                print(OrderedJSON(pairs).text)
            } else {
                print("\(m.rawValue) over \(x.shape[0]) rows of \(data)\(m == .permutation ? " (drop of \(card.task == .classification ? "accuracy" : "R²"), \(repeats) repeats)" : ", explaining \(output.map { "output \(outputName($0))" } ?? "each row's prediction")")")
                let width = Swift.min(40, card.features.map(\.count).max() ?? 8)
                func line(_ e: ModelExplanation, _ j: Int) -> String {
                    pad(String(card.features[j].prefix(width)), width + 2) + pad(fmt(e.importance.importances[j], digits: 4)
                        + (e.method == .permutation ? " ± \(fmt(e.importance.standardDeviations[j], digits: 2))" : ""), 20)
                }
                if let other {
                    print(pad("", 5) + pad(m.rawValue, width + 22) + other.method.rawValue)
                }
                for (rank, j) in ranked.prefix(top).enumerated() {
                    let beside = other.map { o in o.importance.ranking.count > rank ? line(o, o.importance.ranking[rank]) : "" } ?? ""
                    let text = pad("\(rank + 1).", 5) + line(e, j) + beside
                    print(String(text.reversed().drop { $0 == " " }.reversed()))
                }
                if let other, let correlation {
                    let shared = Set(ranked.prefix(top)).intersection(other.importance.ranking.prefix(top)).count
                    print("Spearman rank correlation of the two rankings over all \(card.features.count) features: \(fmt(correlation, digits: 3)); \(shared) features in both top \(Swift.min(top, card.features.count))")
                }
                if let a = e.attributions {
                    let d = a.shape[1]
                    for r in wanted {
                        let values = (0..<d).map { a.scalars[r * d + $0] }
                        let strongest = values.indices.sorted { Swift.abs(values[$0]) > Swift.abs(values[$1]) }.prefix(5)
                        print("row \(r) (\(outputName(e.explainedOutputs[r]))): " + strongest.map { "\(card.features[$0]) \(fmt(values[$0], digits: 3))" }.joined(separator: ", ")
                              + (e.convergenceDelta.map { "  [convergence delta \(fmt($0[r], digits: 2))]" } ?? ""))
                    }
                }
            }
            if let plot {
                let side = Int(Double(card.features.count).squareRoot())
                let isImage = side * side == card.features.count && side >= 8 && card.features.allSatisfy { $0.hasPrefix("pixel") }
                let svg: String
                if isImage, let a = e.attributions {
                    let d = a.shape[1], raw = x.scalars
                    let maps = AttributionHeatmaps(title: "\(m.rawValue): \((data as NSString).lastPathComponent)", side: side, rows: wanted.prefix(6).map { r in
                        ("row \(r): \(outputName(e.explainedOutputs[r]))", Array(raw[(r * d)..<((r + 1) * d)]), (0..<d).map { a.scalars[r * d + $0] })
                    })
                    if plot.lowercased().hasSuffix(".png") {
                        try maps.png().write(to: plot)
                        if !json { print("heat maps written to \(plot) (input | attribution, red +, blue −)") }
                        return
                    }
                    svg = maps.svg()
                } else {
                    svg = BarChart(title: "\(m.rawValue): feature importance (\((data as NSString).lastPathComponent))",
                                   bars: ranked.prefix(top).map { (card.features[$0], e.importance.importances[$0]) },
                                   valueLabel: m == .permutation ? "drop of \(card.task == .classification ? "accuracy" : "R²")" : "mean |attribution|").svg()
                }
                try writeAtomically(svg, to: plot)
                if !json { print("plot written to \(plot)") }
            }
        } catch let e as ValidationError { throw e } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
