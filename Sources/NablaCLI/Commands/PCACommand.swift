import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla pca`: principal components of a data set, their explained variance, and a scatter plot.
struct PCACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pca",
        abstract: "Principal component analysis of a data set: explained variance and a scatter plot of the first two components.",
        discussion: """
        nabla pca --data digits --components 2 --plot pca.svg
        nabla pca --data my.csv --target label --components 5 --json
        """)
    @Option(help: "Bundled data set name or a CSV file.") var data: String = "digits"
    @Option(help: "The target column (default: the last); it is not a feature and colours the plot. 'none': every column is a feature.") var target: String?
    @Option(help: "Components to keep.") var components: Int = 2
    @Option(help: "exact (eigendecomposition of the covariance) or randomized (subspace iteration; default for more than 1000 features).") var solver: String?
    @Flag(help: "Standardize the features first (PCA of the correlation matrix).") var standardize = false
    @Option(help: "Draw the rows on the first two components in this SVG file, coloured by the target.") var plot: String?
    @Flag(help: "Print components, explained_variance and explained_variance_ratio as JSON.") var json = false

    func validate() throws {
        guard components >= 1 else { throw ValidationError("--components must be at least 1, got \(components)") }
        if let solver { guard PCA.Solver(rawValue: solver) != nil else { throw ValidationError("--solver must be exact or randomized, got '\(solver)'") } }
    }

    func run() throws {
        do {
            let table = try readTable(data)
            let targetName = target == "none" ? nil : (target ?? table.header.last!)
            var targetIndex: Int?
            if let targetName {
                guard let t = table.header.firstIndex(of: targetName) else { throw RunSettingsError("\(data): no column '\(targetName)' (columns: \(table.header.prefix(10).joined(separator: ", "))…)") }
                targetIndex = t
            }
            let features = table.header.enumerated().filter { $0.offset != targetIndex }.map(\.element)
            guard !features.isEmpty else { throw RunSettingsError("\(data): no feature columns besides the target") }
            var x = try featureMatrix(from: table, features: features, path: data)
            if standardize { x = FeatureScaler.standard(fittedOn: x).transform(x) }
            let pca = try PCA(components: components, fittedOn: x, solver: solver.flatMap(PCA.Solver.init(rawValue:)))
            let k = components, d = features.count
            if json {
                print(OrderedJSON([("features", .array(features.map { .string($0) })),
                                   ("components", .array((0..<k).map { c in .array((0..<d).map { .number(pca.components.scalars[c * d + $0]) }) })),
                                   ("explained_variance", .array(pca.explainedVariance.map { .number($0) })),
                                   ("explained_variance_ratio", .array(pca.explainedVarianceRatio.map { .number($0) }))]).text)
            } else {
                print("PCA of \(table.rows.count) rows × \(d) features of \(data)\(standardize ? " (standardized)" : "")")
                var cumulative = 0.0
                for c in 0..<k {
                    cumulative += pca.explainedVarianceRatio[c]
                    let row = (0..<d).map { pca.components.scalars[c * d + $0] }
                    let top = row.indices.sorted { Swift.abs(row[$0]) > Swift.abs(row[$1]) }.prefix(3).map { "\(features[$0]) \(fmt(row[$0], digits: 2))" }
                    print("PC\(c + 1)  \(pad(fmt(pca.explainedVarianceRatio[c] * 100, digits: 3) + " %", 9)) cumulative \(pad(fmt(cumulative * 100, digits: 3) + " %", 9)) largest loadings: \(top.joined(separator: ", "))")
                }
            }
            if let plot {
                guard k >= 2 else { throw RunSettingsError("--plot needs --components 2 or more") }
                let z = pca.transform(x).scalars
                let labels = targetIndex.map { t in table.rows.map { $0[t].trimmingCharacters(in: .whitespaces) } } ?? Array(repeating: "rows", count: table.rows.count)
                let classes = Array(Set(labels)).sorted { (Double($0) ?? .infinity, $0) < (Double($1) ?? .infinity, $1) }
                let series = classes.prefix(10).map { label in
                    LinePlot.Series(name: label, points: labels.indices.filter { labels[$0] == label }.map { (z[$0 * k], z[$0 * k + 1]) }, markersOnly: true)
                }
                let chart = LinePlot(title: "PCA of \((data as NSString).lastPathComponent): \(fmt((pca.explainedVarianceRatio[0] + pca.explainedVarianceRatio[1]) * 100, digits: 3)) % of the variance",
                                     xLabel: "PC1 (\(fmt(pca.explainedVarianceRatio[0] * 100, digits: 3)) %)", yLabel: "PC2 (\(fmt(pca.explainedVarianceRatio[1] * 100, digits: 3)) %)",
                                     series: series)
                try chart.write(to: plot)
                if !json { print("plot written to \(plot)\(classes.count > 10 ? " (the first 10 of \(classes.count) classes)" : "")") }
            }
        } catch let e as ValidationError { throw e } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
