import ArgumentParser
import Foundation
import Nabla

/// `nabla compile FUNCTION`: the compiled program of a test function or an expression, as text
/// (the optimized graph and its fused kernels) or as a Graphviz picture.
struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the compiled program of a function: its graph, fused kernels and buffers.",
        discussion: """
        FUNCTION is a test function (\(TestFunction.names.joined(separator: ", "))) or an expression; \
        with --sum-over N an expression of one variable is summed over a vector of N elements \
        (the element-wise workload). The program is traced for the variant asked for, transformed, \
        optimized and lowered; the text shows every value and each fused kernel.
        Example: nabla compile rosenbrock --dim 1000 --variant hvp --dot hvp.dot && dot -Tsvg hvp.dot -o hvp.svg
        """)

    @Argument(help: "A test function name or an expression.") var function: String
    @Option(help: "Dimension of rosenbrock, rastrigin and quadratic.") var dim: Int = 2
    @Option(help: "An expression of one variable summed over a vector of this many elements.") var sumOver: Int?
    @Option(help: "value, gradient, value-and-gradient, hvp or hessian.") var variant: String = "value-and-gradient"
    @Option(help: "Write the program as a Graphviz DOT file.") var dot: String?
    @Flag(help: "Also print every fused kernel's register program, one instruction a line.") var listing = false

    func validate() throws {
        guard dim >= 1 && dim <= 100_000 else { throw ValidationError("--dim must be between 1 and 100000") }
        if let n = sumOver { guard n >= 1 && n <= 100_000_000 else { throw ValidationError("--sum-over must be between 1 and 100000000") } }
        guard Compile.variants[variant] != nil else {
            throw ValidationError("--variant must be one of \(Compile.variants.keys.sorted().joined(separator: ", ")), got '\(variant)'")
        }
    }

    static let variants: [String: CompiledFunction<Double>.Variant] = [
        "value": .value, "gradient": .gradient, "value-and-gradient": .valueAndGradient, "hvp": .hessianVectorProduct, "hessian": .hessian,
    ]

    func run() throws {
        let (f, shape) = try program()
        let e = f.executable(Compile.variants[variant]!, shapes: [shape])
        print(e.graph.description)
        print(e.summary)
        if listing { print(e.listing) }
        if let dot {
            try writeAtomically(e.graph.dot + "\n", to: dot)
            print("wrote \(dot)")
        }
    }

    func program() throws -> (CompiledFunction<Double>, [Int]) {
        let name = function.trimmingCharacters(in: .whitespaces)
        if sumOver == nil, let t = TestFunction.named(name, dimension: dim) { return (t.compiled, [t.dimension]) }
        let expr: Nabla.Expression
        do { expr = try Nabla.Expression(name) } catch let e as ExpressionError {
            throw ValidationError("'\(name)' is neither a test function (\(TestFunction.names.joined(separator: ", "))) nor a valid expression:\n\(e)")
        }
        guard !expr.variables.isEmpty else { throw ValidationError("the expression has no variables") }
        if let n = sumOver {
            guard expr.variables.count == 1 else {
                throw ValidationError("--sum-over needs an expression of one variable; this one has \(expr.variables.joined(separator: ", "))")
            }
            return (expr.compiledSum(), [n])
        }
        return (expr.compiledFunction(), [expr.variables.count])
    }
}
