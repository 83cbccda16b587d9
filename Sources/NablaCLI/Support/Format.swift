import Foundation
import Nabla

/// "1 epoch", "3 epochs".
func counted(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

/// Shortest text that reads back as the same Double; integers without a fraction.
func fmt(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d > 0 ? "inf" : "-inf" }
    if d == d.rounded() && Swift.abs(d) < 1e15 { return String(Int64(d)) }
    return "\(d)"
}

/// Fixed number of significant digits for tables.
func fmt(_ d: Double, digits: Int) -> String {
    if d.isNaN || d.isInfinite { return fmt(d) }
    return String(format: "%.\(digits)g", d)
}

func vectorText(_ v: [Double], digits: Int? = nil) -> String {
    "(" + v.map { x in digits.map { fmt(x, digits: $0) } ?? fmt(x) }.joined(separator: ", ") + ")"
}

func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

/// Writes a line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
}

/// The rows of `data`: a bundled data set's name or a CSV file.
func readTable(_ data: String) throws -> CSVTable {
    try CSVTable.read(Dataset.Bundled(rawValue: data)?.url?.path ?? data)
}
