import Foundation

/// Whether targets are class labels or real values.
public enum Task: String, Sendable, Codable { case classification, regression }

/// A table of samples: features [n, d] in Double and one target per sample (a class index for
/// classification, a value for regression).
public struct Dataset: Sendable {
    public var features: Tensor<Double>
    public var targets: [Double]
    public var featureNames: [String]
    public var targetName: String
    public var task: Task
    /// For classification: the label of each class index, in order.
    public var classNames: [String]

    public init(features: Tensor<Double>, targets: [Double], featureNames: [String]? = nil, targetName: String = "target",
                task: Task, classNames: [String]? = nil) {
        require(features.rank == 2 && features.shape[0] == targets.count,
                     "Dataset: features \(features.shape) and \(targets.count) targets do not agree")
        self.features = features
        self.targets = targets
        self.featureNames = featureNames ?? (0..<features.shape[1]).map { "x\($0)" }
        self.targetName = targetName
        self.task = task
        let k = task == .classification ? Int(targets.max() ?? 0) + 1 : 0
        self.classNames = classNames ?? (0..<k).map(String.init)
    }

    public var count: Int { targets.count }
    public var featureCount: Int { features.shape[1] }
    public var classCount: Int { classNames.count }
    /// Class indices as an index tensor (classification).
    public var labels: IndexTensor { IndexTensor(targets.map { Int($0) }) }

    /// The samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        var d = self
        d.features = features.indexSelect(axis: 0, indices: indices).detached()
        d.targets = indices.map { targets[$0] }
        return d
    }

    // MARK: Reading

    /// Reads a CSV file with a header. `target` names the target column (default: the last).
    /// Columns listed in `categorical`, and text columns, are one-hot encoded (`color=red`, ...);
    /// every other cell must be a finite number. The task is classification when the target is
    /// text or holds at most 100 distinct integers (at most one per two rows), unless `task` says
    /// otherwise.
    public static func readCSV(_ path: String, target: String? = nil, categorical: Set<String> = [], task: Task? = nil) throws -> Dataset {
        try fromCSV(CSVTable.read(path), path: path, target: target, categorical: categorical, task: task)
    }

    public static func fromCSV(_ table: CSVTable, path: String, target: String? = nil, categorical: Set<String> = [], task: Task? = nil) throws -> Dataset {
        let targetName = target ?? table.header.last!
        guard let targetColumn = table.header.firstIndex(of: targetName) else {
            throw DataFileError(path: path, line: 1, message: "no column named '\(targetName)' in the header (columns: \(table.header.joined(separator: ", ")))")
        }
        for c in categorical where !table.header.contains(c) {
            throw DataFileError(path: path, line: 1, message: "no column named '\(c)' to treat as categorical")
        }
        func missing(_ s: String) -> Bool { ["", "na", "nan", "n/a", "null", "?"].contains(s.lowercased()) }
        func number(_ s: String) -> Double? {
            guard let v = Double(s), v.isFinite else { return nil }
            return v
        }
        let n = table.rows.count
        // Missing values are an error wherever they are.
        for (r, row) in table.rows.enumerated() {
            for (c, raw) in row.enumerated() where missing(raw.trimmingCharacters(in: .whitespaces)) {
                throw DataFileError(path: path, line: table.lineNumbers[r], column: c + 1, columnName: table.header[c],
                                    message: "missing value '\(raw)'; fill or drop incomplete rows first")
            }
        }
        var columns: [[Double]] = [], names: [String] = []
        for (c, name) in table.header.enumerated() where c != targetColumn {
            let cells = table.rows.map { $0[c].trimmingCharacters(in: .whitespaces) }
            let parsed = cells.map(number)
            let numericCount = parsed.filter { $0 != nil }.count
            if categorical.contains(name) || numericCount == 0 {
                let levels = Array(Set(cells)).sorted()
                for level in levels {
                    columns.append(cells.map { $0 == level ? 1 : 0 })
                    names.append("\(name)=\(level)")
                }
                continue
            }
            if let r = parsed.firstIndex(where: { $0 == nil }) {
                throw DataFileError(path: path, line: table.lineNumbers[r], column: c + 1, columnName: name,
                                    message: "'\(cells[r])' is not a number (the column's other cells are numeric)")
            }
            columns.append(parsed.map { $0! })
            names.append(name)
        }
        let targetCells = table.rows.map { $0[targetColumn].trimmingCharacters(in: .whitespaces) }
        let targetNumbers = targetCells.map(number)
        let numericTarget = targetNumbers.allSatisfy { $0 != nil }
        let distinct = Set(targetCells)
        let integral = numericTarget && targetNumbers.allSatisfy { $0! == $0!.rounded() }
        // Whole numbers are class labels when there are few of them, and several rows per label.
        let resolvedTask = task ?? (!numericTarget || (integral && distinct.count <= 100 && 2 * distinct.count <= n) ? .classification : .regression)
        if resolvedTask == .classification && distinct.count > 100 && n < 5 * distinct.count {
            throw DataFileError(path: path, line: 1, column: targetColumn + 1, columnName: targetName,
                                message: "the target has \(distinct.count) distinct values in \(n) rows: classes need several samples each (is it a regression target?)")
        }
        var targets: [Double], classNames: [String]? = nil
        switch resolvedTask {
        case .regression:
            guard numericTarget else {
                let r = targetNumbers.firstIndex { $0 == nil }!
                throw DataFileError(path: path, line: table.lineNumbers[r], column: targetColumn + 1, columnName: targetName,
                                    message: "'\(targetCells[r])' is not a number, and regression needs numeric targets")
            }
            targets = targetNumbers.map { $0! }
        case .classification:
            let levels = numericTarget ? distinct.sorted { number($0)! < number($1)! } : distinct.sorted()
            let index = Dictionary(uniqueKeysWithValues: levels.enumerated().map { ($1, $0) })
            targets = targetCells.map { Double(index[$0]!) }
            classNames = levels
        }
        let d = columns.count
        guard d > 0 else {
            let hint = table.header.count == 1 && table.header[0].contains(";") ? " (the header holds ';': Nabla reads comma-separated files)" : ""
            throw DataFileError(path: path, line: 1, message: "no feature columns besides the target '\(targetName)'\(hint)")
        }
        guard n > 0 else { throw DataFileError(path: path, line: 1, message: "the file has a header but no rows") }
        var flat = [Double](repeating: 0, count: n * d)
        for (j, col) in columns.enumerated() { for i in 0..<n { flat[i * d + j] = col[i] } }
        return Dataset(features: Tensor(shape: [n, d], scalars: flat), targets: targets, featureNames: names, targetName: targetName,
                       task: resolvedTask, classNames: classNames)
    }

    // MARK: Bundled data

    /// The data sets that ship with Nabla.
    public enum Bundled: String, CaseIterable, Sendable {
        case iris, digits, breastCancer = "breast_cancer", wine, diabetes

        public var task: Task { self == .diabetes ? .regression : .classification }
        /// The bundled CSV file.
        public var url: URL? { Bundle.module.url(forResource: rawValue, withExtension: "csv", subdirectory: "Resources/datasets") }
    }

    /// A bundled data set by name: iris, digits, breast_cancer, wine or diabetes; `target` picks
    /// another column as the target (the task is then inferred unless given).
    public static func bundled(_ set: Bundled, target: String? = nil, task: Task? = nil) throws -> Dataset {
        guard let url = set.url else { throw DataFileError(path: set.rawValue, message: "the bundled data set is missing from the installation") }
        let dataset: Dataset
        do {
            dataset = try readCSV(url.path, target: target, task: task ?? (target == nil ? set.task : nil))
        } catch var e as DataFileError {
            e.path = set.rawValue   // the user named the set, not the installed file
            throw e
        }
        return dataset
    }

    /// The reference train/test split of a bundled data set (the stratified 80/20 split used by
    /// the benchmarks), as row indices; nil where none ships.
    public static func referenceSplit(_ set: Bundled) -> (train: [Int], test: [Int])? {
        func read(_ part: String) -> [Int]? {
            guard let url = Bundle.module.url(forResource: "\(set.rawValue)_\(part)_idx", withExtension: "txt", subdirectory: "Resources/datasets"),
                  let text = try? String(contentsOf: url, encoding: .utf8) else { return nil }
            return text.split(whereSeparator: \.isNewline).compactMap { Int($0) }
        }
        guard let train = read("train"), let test = read("test") else { return nil }
        return (train, test)
    }

    // MARK: Splitting

    /// Shuffled (seeded) split into parts of the given fractions of the samples; with `stratified`
    /// each class is split in the same proportions. Returns the row indices of each part.
    public func splitIndices(fractions: [Double], stratified: Bool = true, seed: UInt64 = 0) -> [[Int]] {
        require(fractions.allSatisfy { $0 >= 0 } && fractions.reduce(0, +) <= 1 + 1e-12,
                     "Dataset.splitIndices: fractions \(fractions) must be non-negative and sum to at most 1")
        var rng = RandomGenerator(seed: seed)
        let groups: [[Int]]
        if stratified && task == .classification {
            var byClass = [[Int]](repeating: [], count: classCount)
            for (i, t) in targets.enumerated() { byClass[Int(t)].append(i) }
            groups = byClass
        } else {
            groups = [Array(0..<count)]
        }
        var parts = [[Int]](repeating: [], count: fractions.count)
        for group in groups {
            let order = rng.permutation(group.count).map { group[$0] }
            var start = 0
            for (p, f) in fractions.enumerated() {
                let size = p == fractions.count - 1 && fractions.reduce(0, +) >= 1 - 1e-12
                    ? order.count - start : Int((Double(group.count) * f).rounded())
                let end = Swift.min(order.count, start + size)
                parts[p] += order[start..<end]
                start = end
            }
        }
        return parts.map { part in rng.permutation(part.count).map { part[$0] } }
    }

    /// Train, validation and test sets.
    public func split(validation: Double = 0, test: Double = 0.2, stratified: Bool = true, seed: UInt64 = 0)
        -> (train: Dataset, validation: Dataset?, test: Dataset) {
        let parts = splitIndices(fractions: [test, validation, 1 - test - validation], stratified: stratified, seed: seed)
        return (subset(parts[2]), validation > 0 ? subset(parts[1]) : nil, subset(parts[0]))
    }
}
