import Foundation

/// The model of a finished `nabla train` run, read back from its folder: model.json (checked)
/// and model.safetensors, in evaluation mode.
public struct TrainedModel {
    public let card: ModelCard
    public let network: Sequential<Float>

    public init(runFolder: String) throws {
        let cardPath = (runFolder as NSString).appendingPathComponent("model.json")
        guard let data = FileManager.default.contents(atPath: cardPath) else {
            throw RunSettingsError("\(runFolder): no model.json; is it the folder of a finished `nabla train` run?")
        }
        do { card = try ModelCard.decode(data) } catch { throw RunSettingsError("\(runFolder): \(error)") }
        network = card.spec.build(inputs: card.features.count, outputs: card.outputs)
        try network.load(from: (runFolder as NSString).appendingPathComponent("model.safetensors"))
        network.eval()
    }

    /// The model's inputs for raw features [n, d] (the run's scaling applied), in Float.
    public func scaled(_ x: Tensor<Double>) -> Tensor<Float> { Tensor<Float>(converting: card.scaler.transform(x)) }

    /// The network's outputs (scores, or standardized values for regression) for raw features.
    public func outputs(_ x: Tensor<Double>) -> Tensor<Float> { withoutGradients { network.outputs(scaled(x)) } }

    /// The class index of each row's target cell (classification), or nil when the table has no
    /// target column; a class the model does not know is an error naming the row.
    public func labels(from table: CSVTable, path: String) throws -> [Int]? {
        guard card.task == .classification, let t = table.header.firstIndex(of: card.target) else { return nil }
        return try table.rows.enumerated().map { i, row in
            let cell = row[t].trimmingCharacters(in: .whitespaces)
            guard let k = card.classes.firstIndex(of: cell) else {
                throw DataFileError(path: path, line: table.lineNumbers[i], column: t + 1, columnName: card.target,
                                    message: "'\(cell)' is not one of the model's classes (\(card.classes.prefix(10).joined(separator: ", ")))")
            }
            return k
        }
    }

    /// The target values of a regression table, or nil.
    public func values(from table: CSVTable) -> [Double]? {
        guard card.task == .regression, let t = table.header.firstIndex(of: card.target) else { return nil }
        let ys = table.rows.compactMap { Double($0[t].trimmingCharacters(in: .whitespaces)) }
        return ys.count == table.rows.count ? ys : nil
    }

    /// The model's feature columns from the table: numeric ones by name, one-hot ones
    /// (`name=level`) from their source column.
    public func features(from table: CSVTable, path data: String) throws -> Tensor<Double> {
        try featureMatrix(from: table, features: card.features, path: data)
    }

    /// The inputs of the last layer and the logits, for raw features (GradNorm needs both).
    public func lastLayer(_ x: Tensor<Double>) -> (features: Tensor<Float>, logits: Tensor<Float>) {
        let (h, z) = network.lastLayerInputsAndOutputs(scaled(x))
        return (h, z)
    }
}

/// The columns `features` from a table: numeric ones by name, one-hot ones (`name=level`) from
/// their source column, where every value must be a level among `features`.
public func featureMatrix(from table: CSVTable, features: [String], path data: String) throws -> Tensor<Double> {
    let n = table.rows.count, d = features.count
    var flat = [Double](repeating: 0, count: n * d)
    for (j, name) in features.enumerated() {
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
            let known = Set(features.filter { $0.hasPrefix(source + "=") }.map { String($0.dropFirst(source.count + 1)) })
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
