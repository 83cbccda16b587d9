import Foundation

/// Rows of a CSV file read a chunk at a time, in constant memory, as they arrive: at the end of
/// the file ``nextChunk(maxRows:)`` returns what is there, and later calls see rows appended
/// since. Each row is one line (quoted fields may hold separators, not line breaks).
public final class CSVStream {
    public let path: String
    public let header: [String]
    let handle: FileHandle
    var buffer = Data()
    var nextLine = 2
    var headerLine: String

    public init(path: String) throws {
        guard let h = FileHandle(forReadingAtPath: path) else { throw DataFileError(path: path, message: "cannot open the file") }
        handle = h
        self.path = path
        // The header: the first line.
        var data = Data()
        while !data.contains(UInt8(ascii: "\n")) {
            let more = h.readData(ofLength: 65_536)
            if more.isEmpty { break }
            data += more
            guard data.count <= 16 << 20 else { throw DataFileError(path: path, line: 1, message: "the header line is longer than 16 MiB") }
        }
        guard let end = data.firstIndex(of: UInt8(ascii: "\n")) else {
            throw DataFileError(path: path, line: 1, message: "no complete header line (a stream starts with its header)")
        }
        headerLine = String(decoding: data[data.startIndex..<end], as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
        header = try CSVTable.parse(headerLine + "\n" + headerLine.split(separator: ",", omittingEmptySubsequences: false).map { _ in "0" }.joined(separator: ","),
                                    path: path).header
        buffer = Data(data[data.index(after: end)...])
    }

    /// Up to `maxRows` complete rows (nil when none has arrived yet). With `atEnd`, a last line
    /// without its line break is taken as a row if it has every field, and is an error naming
    /// the line otherwise (the stream stopped mid-row).
    public func nextChunk(maxRows: Int, atEnd: Bool = false) throws -> CSVTable? {
        // Read until the buffer holds `maxRows` line ends (counting only what each read adds),
        // then cut the lines out with one pass and drop them from the buffer at once.
        var ends = buffer.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        while ends < maxRows {
            let more = handle.readData(ofLength: 1 << 20)
            if more.isEmpty { break }
            ends += more.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            buffer += more
        }
        var lines: [String] = []
        var lineStart = buffer.startIndex
        while lines.count < maxRows, let end = buffer[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: buffer[lineStart..<end], as: UTF8.self))
            lineStart = buffer.index(after: end)
        }
        buffer = Data(buffer[lineStart...])
        if atEnd && lines.count < maxRows && !buffer.isEmpty {
            let last = String(decoding: buffer, as: UTF8.self)
            let fields = last.split(separator: ",", omittingEmptySubsequences: false).count
            guard fields == header.count else {
                throw DataFileError(path: path, line: nextLine + lines.count, message: "the stream stops mid-row (\(fields) of \(header.count) fields)")
            }
            lines.append(last)
            buffer = Data()
        }
        let first = nextLine
        nextLine += lines.count
        let text = lines.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !text.isEmpty else { return nil }
        do {
            var table = try CSVTable.parse(headerLine + "\n" + lines.joined(separator: "\n"), path: path)
            table.lineNumbers = table.lineNumbers.map { $0 - 2 + first }
            return table
        } catch var e as DataFileError {
            e.line = e.line.map { $0 - 2 + first }
            throw e
        }
    }
}

/// A model that learns from chunks of rows as they arrive: test, then train. Each chunk is first
/// scored by the model as it stands (the prequential loss and accuracy: an honest estimate on
/// unseen rows), then the running standardization takes it in and the model takes one pass over
/// it, continuing its optimizer's state.
public final class StreamingLearner {
    public let spec: ModelSpec
    public let features: [String]
    public let target: String
    /// Classification: the class names (fixed up front); nil: regression.
    public let classes: [String]?
    public let network: Sequential<Float>
    public private(set) var standardizer: RunningStandardizer
    public var optimizer: Optimizer<Float>
    public var batchSize: Int
    public private(set) var rowsSeen = 0
    public private(set) var prequentialLossSum = 0.0, prequentialCorrect = 0, prequentialRows = 0

    public init(spec: ModelSpec, features: [String], target: String, classes: [String]?, learningRate: Double, batchSize: Int = 32, seed: UInt64 = 0) {
        require(!features.isEmpty && (classes.map { $0.count >= 2 } ?? true) && batchSize > 0,
                "StreamingLearner: \(features.count) features, classes \(classes ?? []), batch size \(batchSize)")
        (self.spec, self.features, self.target, self.classes, self.batchSize) = (spec, features, target, classes, batchSize)
        network = GlobalRandom.withSeed(seed) { spec.build(inputs: features.count, outputs: classes?.count ?? 1) }
        standardizer = RunningStandardizer(features: features.count)
        optimizer = Optimizer(rule: Adam(), learningRate: learningRate)
    }

    /// Learns from one chunk (its columns by name); returns the chunk's prequential loss.
    @discardableResult
    public func learn(_ chunk: CSVTable, path: String) throws -> Double {
        let x = try featureMatrix(from: chunk, features: features, path: path)
        guard let t = chunk.header.firstIndex(of: target) else { throw DataFileError(path: path, line: 1, message: "no target column '\(target)'") }
        let n = chunk.rows.count
        var labels: [Int] = [], values: [Float] = []
        for (i, row) in chunk.rows.enumerated() {
            let cell = row[t].trimmingCharacters(in: .whitespaces)
            if let classes {
                guard let k = classes.firstIndex(of: cell) else {
                    throw DataFileError(path: path, line: chunk.lineNumbers[i], column: t + 1, columnName: target, message: "'\(cell)' is not one of the classes \(classes.joined(separator: ", "))")
                }
                labels.append(k)
            } else {
                guard let v = Double(cell), v.isFinite else {
                    throw DataFileError(path: path, line: chunk.lineNumbers[i], column: t + 1, columnName: target, message: "'\(cell)' is not a number")
                }
                values.append(Float(v))
            }
        }
        let spec = self.spec
        func loss(_ out: Tensor<Float>, _ rows: [Int]) -> Tensor<Float> {
            spec.loss(out, classes: classes == nil ? nil : IndexTensor(rows.map { labels[$0] }),
                      values: classes == nil ? Tensor(shape: [rows.count, 1], scalars: rows.map { values[$0] }) : nil)
        }
        // Test…
        var chunkLoss = Double.nan
        if rowsSeen > 0 {
            let xs = Tensor<Float>(converting: standardizer.scaler.transform(x))
            withoutGradients {
                network.eval()
                let out = network(xs)
                chunkLoss = Double(loss(out, Array(0..<n)).scalar)
                prequentialLossSum += chunkLoss * Double(n)
                prequentialRows += n
                if classes != nil { prequentialCorrect += zip(out.argmax(axis: 1), labels).filter { $0 == $1 }.count }
            }
        }
        // …then train.
        standardizer.update(x)
        let xs = Tensor<Float>(converting: standardizer.scaler.transform(x))
        let trainer = Trainer(model: network, optimizer: optimizer, trainingCount: n, options: TrainingOptions(epochs: 1, batchSize: batchSize, shuffle: false)) { m, rows in
            loss((m as! Sequential<Float>)(xs.indexSelect(axis: 0, indices: rows)), rows)
        }
        try trainer.partialFit(rows: Array(0..<n))
        optimizer = trainer.optimizer
        rowsSeen += n
        return chunkLoss
    }

    /// The prequential (test-then-train) loss and accuracy so far.
    public var prequentialLoss: Double? { prequentialRows > 0 ? prequentialLossSum / Double(prequentialRows) : nil }
    public var prequentialAccuracy: Double? { classes != nil && prequentialRows > 0 ? Double(prequentialCorrect) / Double(prequentialRows) : nil }

    /// The card and weights of a `nabla train` run folder, so that `nabla predict` and
    /// `nabla explain` take the streamed model.
    public func save(to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try network.save(to: (folder as NSString).appendingPathComponent("model.safetensors"))
        let card = ModelCard(spec: spec, task: classes == nil ? .regression : .classification, features: features, target: target,
                             classes: classes ?? [], scaler: standardizer.scaler, outputs: classes?.count ?? 1)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(encoder.encode(card), to: (folder as NSString).appendingPathComponent(ModelCard.fileName))
    }
}
