import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla tensors show|copy`: look inside safetensors and .npy files.
struct Tensors: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and copy tensor files (safetensors, .npy).",
        subcommands: [Show.self, Copy.self])

    static func read(_ path: String) throws -> SafeTensors.Archive {
        if path.hasSuffix(".npy") { return SafeTensors.Archive(tensors: ["array": try NPY.read(path)]) }
        return try SafeTensors.read(path)
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a file's tensors: name, dtype, shape and a summary of the values.")
        @Argument(help: "A .safetensors or .npy file.") var path: String
        @Flag(help: "Print the file as JSON with every value.") var json = false

        func run() throws {
            let archive: SafeTensors.Archive
            do { archive = try Tensors.read(path) } catch { printError("error: \(error)"); throw ExitCode.failure }
            let names = archive.tensors.keys.sorted()
            if json {
                // Numbers as exact shortest decimals; non-finite values as Infinity, -Infinity and
                // NaN (as JavaScript and Python's json module write them).
                func number(_ v: Double) -> String { v.isNaN ? "NaN" : v.isInfinite ? (v > 0 ? "Infinity" : "-Infinity") : "\(v)" }
                func string(_ s: String) -> String { JSONValue.string(s).jsonText }
                let meta = archive.metadata.sorted { $0.key < $1.key }.map { "\(string($0.key)):\(string($0.value))" }.joined(separator: ",")
                let entries = names.map { n -> String in
                    let t = archive.tensors[n]!
                    return "\(string(n)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":\(t.shape),\"data\":[\(t.doubles.map(number).joined(separator: ","))]}"
                }
                print("{\"metadata\":{\(meta)},\"tensors\":{\(entries.joined(separator: ","))}}")
                return
            }
            for (k, v) in archive.metadata.sorted(by: { $0.key < $1.key }) {
                // Long values (a checkpoint's training history) are cut: --json prints them whole.
                let shown = v.count > 160 ? String(v.prefix(120)) + "… (\(v.count) characters; --json prints all)" : v
                print("metadata \(k) = \(shown)")
            }
            let width = names.map(\.count).max() ?? 0
            for n in names {
                let t = archive.tensors[n]!, d = t.doubles
                let summary = d.isEmpty ? "empty" : "min \(fmt(d.min()!)), max \(fmt(d.max()!)), mean \(fmt(d.reduce(0, +) / Double(d.count)))"
                print("\(n.padding(toLength: width, withPad: " ", startingAt: 0))  \(t.dtype.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))  \(t.shape)  \(summary)")
            }
            print("\(names.count) tensors, \(archive.tensors.values.reduce(0) { $0 + $1.count }) values")
        }
    }

    struct Copy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a file with Nabla's reader and write it with Nabla's writer (safetensors, or .npy for one array).")
        @Argument(help: "The file to read.") var input: String
        @Argument(help: "The file to write (atomically).") var output: String

        func run() throws {
            do {
                let archive = try Tensors.read(input)
                if output.hasSuffix(".npy") {
                    guard archive.tensors.count == 1, let t = archive.tensors.values.first else {
                        throw ValidationError("an .npy file holds one array; \(input) has \(archive.tensors.count)")
                    }
                    if t.dtype == .F32 { try NPY.write(t.tensor(as: Float.self), to: output) } else { try NPY.write(t.tensor(as: Double.self), to: output) }
                } else {
                    try SafeTensors.write(archive, to: output)
                }
            } catch let e as ValidationError { throw e } catch { printError("error: \(error)"); throw ExitCode.failure }
        }
    }
}
