import Foundation

/// A problem in a data file, located like a compiler error: `file:line:column: message`.
public struct DataFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var line: Int?
    public var column: Int?
    public var columnName: String?
    public var message: String

    public init(path: String, line: Int? = nil, column: Int? = nil, columnName: String? = nil, message: String) {
        (self.path, self.line, self.column, self.columnName, self.message) = (path, line, column, columnName, message)
    }

    public var description: String {
        var location = path
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return "\(location): \(columnName.map { "column '\($0)': " } ?? "")\(message)"
    }
}

/// A parsed CSV file: the header and the rows as text, with their line numbers.
public struct CSVTable: Sendable {
    public var header: [String]
    public var rows: [[String]]
    /// The 1-based line number of each row in the file.
    public var lineNumbers: [Int]

    public init(header: [String], rows: [[String]], lineNumbers: [Int]) {
        require(lineNumbers.count == rows.count && rows.allSatisfy { $0.count == header.count },
                "CSVTable: \(rows.count) rows, \(lineNumbers.count) line numbers, and rows whose field counts differ from the header's \(header.count)")
        (self.header, self.rows, self.lineNumbers) = (header, rows, lineNumbers)
    }

    /// Reads comma-separated text with a header row. Fields may be quoted ("a, b" and "" for a
    /// quote); lines end in \n or \r\n; blank lines are skipped. Every row must have as many
    /// fields as the header.
    public static func parse(_ text: String, path: String, separator: Character = ",") throws -> CSVTable {
        var records: [([String], Int)] = []
        var field = "", record: [String] = []
        var line = 1, recordLine = 1, column = 1
        var inQuotes = false, fieldWasQuoted = false
        var iterator = text.makeIterator()
        var pending: Character? = nil
        func next() -> Character? {
            if let p = pending { pending = nil; return p }
            return iterator.next()
        }
        func endRecord() {
            record.append(field)
            if !(record.count == 1 && record[0].isEmpty && !fieldWasQuoted) { records.append((record, recordLine)) }
            record = []; field = ""; fieldWasQuoted = false
        }
        while let c = next() {
            if inQuotes {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.append("\"") } else { inQuotes = false; pending = n }
                    } else { inQuotes = false }
                } else {
                    if c == "\n" || c == "\r\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty:
                inQuotes = true; fieldWasQuoted = true
            case separator:
                record.append(field); field = ""; fieldWasQuoted = false; column += 1
            case "\n", "\r\n", "\r":
                endRecord(); line += 1; recordLine = line; column = 1
            default:
                field.append(c)
            }
        }
        if inQuotes { throw DataFileError(path: path, line: recordLine, column: column, message: "a quoted field is not closed before the end of the file") }
        if !field.isEmpty || !record.isEmpty || fieldWasQuoted { endRecord() }
        guard let (header, _) = records.first else {
            throw DataFileError(path: path, line: 1, column: 1, message: "the file is empty; a CSV file needs a header row and data rows")
        }
        let names = header.map { $0.trimmingCharacters(in: .whitespaces) }
        for (i, n) in names.enumerated() where n.isEmpty {
            throw DataFileError(path: path, line: 1, column: i + 1, message: "the header has an empty column name")
        }
        var seen: [String: Int] = [:]
        for (i, n) in names.enumerated() {
            if let j = seen[n] { throw DataFileError(path: path, line: 1, column: i + 1, message: "column name '\(n)' repeats column \(j + 1)") }
            seen[n] = i
        }
        var table = CSVTable(header: names, rows: [], lineNumbers: [])
        for (fields, l) in records.dropFirst() {
            guard fields.count == names.count else {
                throw DataFileError(path: path, line: l, column: Swift.min(fields.count, names.count) + 1,
                                    message: "this row has \(fields.count) fields but the header has \(names.count)")
            }
            table.rows.append(fields)
            table.lineNumbers.append(l)
        }
        guard !table.rows.isEmpty else { throw DataFileError(path: path, line: 2, column: 1, message: "the file has a header but no data rows") }
        return table
    }

    public static func read(_ path: String) throws -> CSVTable {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DataFileError(path: path, message: "cannot read the file (\((error as NSError).localizedDescription))")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw DataFileError(path: path, message: "the file is not UTF-8 text") }
        return try parse(text, path: path)
    }
}
