import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla grad EXPR --at x=1,y=3`: value, gradient, magnitude, direction (and Hessian).
struct Grad: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Differentiate a math expression at a point.",
        discussion: """
        Expressions use + - * / ^ (or **), unary minus, parentheses, named variables, the functions \
        sin cos tan exp log sqrt abs tanh sigmoid and the constants pi and e.
        Example: nabla grad 'x^2 + y^2 + x*y' --at x=1,y=3
        """)

    @Argument(help: "The expression, e.g. 'x^2 + y^2 + x*y'.") var expression: String
    @Option(help: "The point: comma-separated name=value pairs, e.g. x=1,y=3.") var at: String = ""
    @Flag(help: "Also print the Hessian.") var hessian = false
    @Flag(help: "Print everything as one JSON object.") var json = false

    static func parsePoint(_ text: String) throws -> [(String, Double)] {
        var out: [(String, Double)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) where !text.isEmpty {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty else { throw ValidationError("--at: '\(part)' is not of the form name=value") }
            guard let v = Double(kv[1]), v.isFinite else { throw ValidationError("--at: '\(kv[1])' (for \(kv[0])) is not a finite number") }
            guard !out.contains(where: { $0.0 == kv[0] }) else { throw ValidationError("--at: '\(kv[0])' is given twice") }
            out.append((kv[0], v))
        }
        return out
    }

    func run() throws {
        // (A leading space is how an expression starting with '-' gets past the option parser.)
        let expression = self.expression.trimmingCharacters(in: .whitespaces)
        let expr: Nabla.Expression
        do { expr = try Nabla.Expression(expression) } catch let e as ExpressionError {
            printError("nabla grad: \(e)")
            throw ExitCode(2)
        }
        let point = try Grad.parsePoint(at)
        var names = point.map(\.0)
        for v in expr.variables where !names.contains(v) {
            printError("nabla grad: \(ExpressionError(message: "no value given for variable '\(v)' (add \(v)=VALUE to --at)", text: expression, position: expr.position(of: v)))")
            throw ExitCode(2)
        }
        if names.isEmpty { names = [] }
        let values = Dictionary(uniqueKeysWithValues: point)
        let (value, grad) = try expr.valueWithGradient(at: values, order: names)
        let magnitude = grad.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let direction: [Double]? = magnitude > 0 && magnitude.isFinite ? grad.map { $0 / magnitude } : nil
        let h = hessian ? try expr.hessian(at: values, order: names) : nil

        if json {
            var pairs: [(String, JSONValue)] = [
                ("expression", .string(expression)),
                ("variables", .array(names.map { .string($0) })),
                ("point", .array(point.map { .number($0.1) })),
                ("value", .number(value)),
                ("gradient", .array(grad.map { .number($0) })),
                ("magnitude", .number(magnitude)),
                ("direction", direction.map { .array($0.map { .number($0) }) } ?? .null),
            ]
            if let h { pairs.append(("hessian", .array(h.map { .array($0.map { .number($0) }) }))) }
            print(OrderedJSON(pairs).text)
        } else {
            let vars = "(" + names.joined(separator: ", ") + ")"
            print("f\(vars) = \(expression)")
            print("at \(vars) = \(vectorText(point.map(\.1)))")
            print("value      \(fmt(value))")
            print("gradient   \(vectorText(grad))")
            let squared = grad.reduce(0) { $0 + $1 * $1 }
            print("magnitude  \(fmt(magnitude))" + (squared.isFinite && squared == squared.rounded() && squared > 0 ? "  (√\(fmt(squared)))" : ""))
            print("direction  " + (direction.map { vectorText($0) } ?? (magnitude == 0 ? "undefined: the gradient is zero" : "undefined: the gradient is not finite")))
            if let h {
                print("hessian")
                for row in h { print("           " + vectorText(row)) }
            }
        }
        if !value.isFinite || grad.contains(where: { !$0.isFinite }) {
            printError("nabla grad: warning: the value or gradient is not finite at this point")
        }
    }
}
