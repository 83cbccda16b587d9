import ArgumentParser
import Foundation
import Nabla
import NablaConformance

/// `nabla minimize FUNCTION`: race optimization methods on a test function or an expression.
struct Minimize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Minimize a test function or an expression with one or several methods.",
        discussion: """
        FUNCTION is one of \(TestFunction.names.joined(separator: ", ")), or an expression such as 'x^2 + 3*y^2 - x*y'.
        Methods: \(MinimizationMethod.unconstrained.map(\.description).joined(separator: ", ")), \
        and with --constraint: pgd (projected gradient), frank-wolfe, frank-wolfe-ls.
        Example: nabla minimize rosenbrock --method gd,momentum,adam,lbfgs --plot out.svg
        """)

    @Argument(help: "A test function name or an expression.") var function: String
    @Option(help: "Dimension of rosenbrock, rastrigin and quadratic.") var dim: Int = 2
    @Option(help: "Starting point, comma-separated (default: the function's customary start).") var from: String?
    @Option(help: "Method, or a comma-separated list to race.") var method: String = "lbfgs"
    @Option(help: "Step size of the first-order methods and projected gradient.") var learningRate: Double?
    @Option(help: "Momentum of momentum and nesterov.") var momentum: Double = 0.9
    @Option(name: [.customLong("max-iterations"), .customLong("steps")], help: "Most iterations per run.") var maxIterations: Int = 1000
    @Option(help: "Stop when max |∂f/∂xᵢ| (or the gap for constrained methods) falls to this.") var tolerance: Double = 1e-5
    @Option(help: "Stop when the relative change of f falls to this (default: 2.2e-9 for lbfgs, off for the others).") var valueTolerance: Double?
    @Option(help: "Stop when the step length falls to this.") var stepTolerance: Double = 0
    @Option(help: "Constraint for pgd and frank-wolfe: simplex[:r], box:lo,hi, l1:r, l2:r.") var constraint: String?
    @Option(help: "Extra runs from random starts around the first; the best is kept.") var restarts: Int = 0
    @Option(help: "Seed of the random restarts.") var seed: UInt64 = 0
    @Option(help: "At a saddle point, step along its direction of descent and minimize again, at most this many times.") var escapeSaddles: Int = 0
    @Flag(help: "Print the results as JSON.") var json = false
    @Flag(help: "Compile the function first (traced once, fused): values, gradients, Hessians and Hessian-vector products run as compiled programs.") var compile = false
    @Option(help: "Write every method's trajectory to this JSON file.") var trace: String?
    @Option(help: "Draw the trajectories on a contour plot (2-D objectives) in this SVG file.") var plot: String?

    struct Problem {
        var name: String
        var function: (Tensor<Double>) -> Tensor<Double>
        var compiled: () -> CompiledFunction<Double>
        var start: [Double]
        var variables: [String]
        var minimizers: [[Double]]
        var window: (x: ClosedRange<Double>, y: ClosedRange<Double>)?
    }

    func problem() throws -> Problem {
        let function = self.function.trimmingCharacters(in: .whitespaces)
        if let t = TestFunction.named(function, dimension: dim) {
            let names = t.dimension == 2 ? ["x", "y"] : (0..<t.dimension).map { "x\($0)" }
            return Problem(name: t.name, function: t.function, compiled: { t.compiled }, start: t.start, variables: names,
                           minimizers: t.name == "himmelblau" ? [[3, 2], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]] : [t.minimizer],
                           window: t.window)
        }
        if TestFunction.names.contains(function.lowercased()) {
            throw ValidationError("\(function) needs --dim of at least 2")
        }
        let expr: Nabla.Expression
        do { expr = try Nabla.Expression(function) } catch let e as ExpressionError {
            throw ValidationError("'\(function)' is neither a test function (\(TestFunction.names.joined(separator: ", "))) nor a valid expression:\n\(e)")
        }
        guard !expr.variables.isEmpty else { throw ValidationError("the expression has no variables to minimize over") }
        return Problem(name: function, function: expr.function(), compiled: { expr.compiledFunction() }, start: Array(repeating: 0, count: expr.variables.count),
                       variables: expr.variables, minimizers: [], window: nil)
    }

    func parseConstraint() throws -> ConvexSet? {
        guard let c = constraint else { return nil }
        let parts = c.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let kind = parts.first, !kind.isEmpty else {
            throw ValidationError("--constraint is empty; give simplex[:r], box:lo,hi, l1:r or l2:r")
        }
        let args = parts.count > 1 ? parts[1].split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) } : []
        guard args.allSatisfy({ $0 != nil && $0!.isFinite }) else { throw ValidationError("--constraint: '\(c)' has a value that is not a number") }
        let v = args.map { $0! }
        if kind != "box" {
            guard v.count <= 1 else { throw ValidationError("--constraint \(kind) takes one radius, e.g. \(kind):1") }
            guard (v.first ?? 1) > 0 else { throw ValidationError("--constraint \(kind): the radius must be positive, got \(fmt(v[0]))") }
        }
        switch kind {
        case "simplex": return .simplex(radius: v.first ?? 1)
        case "box":
            guard v.count == 2, v[0] <= v[1] else { throw ValidationError("--constraint box needs box:lower,upper with lower ≤ upper") }
            return .box(lower: v[0], upper: v[1])
        case "l1": return .l1Ball(radius: v.first ?? 1)
        case "l2": return .l2Ball(radius: v.first ?? 1)
        default: throw ValidationError("--constraint: unknown set '\(kind)' (simplex, box, l1, l2)")
        }
    }

    func validate() throws {
        guard maxIterations >= 1 else { throw ValidationError("--max-iterations must be at least 1") }
        guard tolerance >= 0, stepTolerance >= 0 else { throw ValidationError("tolerances must not be negative") }
        if let lr = learningRate { guard lr > 0, lr.isFinite else { throw ValidationError("--learning-rate must be a positive number") } }
        guard restarts >= 0 else { throw ValidationError("--restarts must not be negative") }
        guard dim >= 1 && dim <= 100_000 else { throw ValidationError("--dim must be between 1 and 100000") }
    }

    func run() throws {
        var p = try problem()
        if let from {
            let v = from.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard v.allSatisfy({ $0 != nil && $0!.isFinite }) else { throw ValidationError("--from: '\(from)' is not a comma-separated list of numbers") }
            guard v.count == p.start.count else {
                throw ValidationError("--from has \(v.count) values but \(p.name) has \(p.start.count) variables (\(p.variables.joined(separator: ", ")))")
            }
            p.start = v.map { $0! }
        }
        let set = try parseConstraint()
        var methods: [MinimizationMethod] = []
        for name in method.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let m = MinimizationMethod(name: name, constraint: set) else {
                if ["pgd", "projected-gradient", "frank-wolfe", "fw", "frank-wolfe-ls", "fw-ls"].contains(name) {
                    throw ValidationError("method '\(name)' needs --constraint (simplex, box:lo,hi, l1:r or l2:r)")
                }
                throw ValidationError("unknown method '\(name)'; known: \(MinimizationMethod.unconstrained.map(\.description).joined(separator: ", ")), pgd, frank-wolfe, frank-wolfe-ls")
            }
            methods.append(m)
        }
        guard !methods.isEmpty else { throw ValidationError("--method is empty") }
        if set != nil, let m = methods.first(where: { !$0.isConstrained }) {
            throw ValidationError("--constraint applies only to pgd, frank-wolfe and frank-wolfe-ls; \(m) is unconstrained")
        }
        let n = p.start.count
        for m in methods where m.keepsDenseMatrix && n > 16_384 {
            let gigabytes = Double(n) * Double(n) * 8 / 1e9
            throw ValidationError("\(m) keeps a \(n)×\(n) matrix (\(fmt(gigabytes, digits: 3)) GB) for \(n) variables; use lbfgs, cg or newton-cg")
        }
        if plot != nil && p.start.count != 2 { throw ValidationError("--plot needs a function of 2 variables; this one has \(p.start.count)") }

        var options = MinimizeOptions(maxIterations: maxIterations, gradientTolerance: tolerance, learningRate: learningRate,
                                      recordsTrajectory: trace != nil || plot != nil)
        options.valueTolerance = valueTolerance
        options.stepTolerance = stepTolerance
        options.momentum = momentum
        options.restarts = restarts
        options.seed = seed
        options.saddleEscapes = Swift.max(0, escapeSaddles)
        let x0 = Tensor<Double>(p.start)
        var results: [(MinimizationMethod, MinimizeResult, Double)] = []
        let compiledFunction = compile ? p.compiled() : nil
        for m in methods {
            let t0 = Date()
            let r = compiledFunction.map { minimize($0, from: x0, method: m, options: options) } ?? minimize(p.function, from: x0, method: m, options: options)
            results.append((m, r, Date().timeIntervalSince(t0)))
        }

        if json {
            print(OrderedJSON([("function", .string(p.name)), ("variables", .array(p.variables.map { .string($0) })),
                               ("start", .array(p.start.map { .number($0) })),
                               ("results", .array(results.map { .object(Minimize.summary($0.1, seconds: $0.2)) }))]).text)
        } else {
            print("minimize \(p.name) from \(vectorText(p.start, digits: 4))\(set.map { " over the \($0)" } ?? "")")
            let header = pad("method", 20) + pad("f", 14) + pad("|∇f|", 12) + pad("iterations", 12) + pad("evaluations", 13) + pad("ms", 9) + "result"
            print(header)
            for (m, r, s) in results {
                let xs = r.x.count <= 4 ? "  x = " + vectorText(r.x, digits: 6) : ""
                print(pad(m.description, 20) + pad(fmt(r.value, digits: 6), 14) + pad(fmt(r.gradientNorm, digits: 3), 12)
                      + pad("\(r.iterations)", 12) + pad("\(r.evaluations)", 13) + pad(fmt(s * 1000, digits: 3), 9)
                      + (r.success ? "converged" : "stopped") + " (\(r.message))" + xs)
            }
            for (m, r, _) in results {
                if r.saddleEscapes > 0 { print("\(m): left \(counted(r.saddleEscapes, "saddle point")) along the direction of descent") }
                if let c = r.curvature, c.isSaddle {
                    printError("nabla minimize: \(m) stopped at \(c.verdict.rawValue) (smallest Hessian eigenvalue \(fmt(c.smallestEigenvalue, digits: 3))); --escape-saddles N leaves it along the direction of descent")
                }
            }
            for (m, r, _) in results where r.status == .unbounded {
                printError("nabla minimize: \(m) found f falling without bound; the objective seems unbounded below (add a constraint or a penalty)")
            }
            for (m, r, _) in results where r.status == .diverged {
                let hint = m.isFirstOrderRule
                    ? "try a smaller --learning-rate" : "the objective may be undefined or unbounded along the way (a log or sqrt of a negative number, a division by zero)"
                printError("nabla minimize: \(m) diverged (f or its gradient became NaN or infinite, or f grew without bound); \(hint)")
            }
        }
        if let trace {
            let methodsJSON: [JSONValue] = results.map { m, r, s in
                .object(["method": .string(m.description),
                         "steps": .array(r.trajectory.map { pt in .object(["x": .array(pt.x.map { .number($0) }), "value": .number(pt.value), "gradientNorm": .number(pt.gradientNorm)]) }),
                         "result": .object(Minimize.summary(r, seconds: s))])
            }
            do { try writeAtomically(OrderedJSON([("methods", .array(methodsJSON))]).text + "\n", to: trace) } catch {
                printError("nabla minimize: \(error)")
                throw ExitCode(1)
            }
        }
        if let plot {
            var xr = p.window?.x ?? -3...3, yr = p.window?.y ?? -3...3
            // Widen the window to hold the paths (but not paths that ran off to infinity).
            let pts = (results.flatMap { $0.1.trajectory.map { ($0.x[0], $0.x[1]) } } + (set?.boundary2D.points ?? [])).filter { abs($0.0) < 1e3 && abs($0.1) < 1e3 }
            if let minX = pts.map(\.0).min(), let maxX = pts.map(\.0).max(), let minY = pts.map(\.1).min(), let maxY = pts.map(\.1).max() {
                let padX = 0.05 * (max(maxX, xr.upperBound) - min(minX, xr.lowerBound)), padY = 0.05 * (max(maxY, yr.upperBound) - min(minY, yr.lowerBound))
                xr = min(minX - padX, xr.lowerBound)...max(maxX + padX, xr.upperBound)
                yr = min(minY - padY, yr.lowerBound)...max(maxY + padY, yr.upperBound)
            }
            let f = p.function
            var chart = ContourPlot(title: "\(p.name): \(results.map { $0.0.description }.joined(separator: ", "))", xRange: xr, yRange: yr) { x, y in
                withoutGradients { f(Tensor([x, y])).scalar }
            }
            chart.xLabel = p.variables[0]
            chart.yLabel = p.variables[1]
            chart.paths = results.map { m, r, _ in
                ContourPlot.Path(label: m.description, detail: "\(counted(r.iterations, "iteration")), f = \(fmt(r.value, digits: 2))", points: r.trajectory.map { ($0.x[0], $0.x[1]) })
            }
            chart.minimizers = p.minimizers.filter { $0.count == 2 }.map { ($0[0], $0[1]) }
            if let set {
                let b = set.boundary2D
                chart.feasibleSet = (b.points, b.closed, set.description)
            }
            do { try writeAtomically(chart.svg(), to: plot) } catch {
                printError("nabla minimize: \(error)")
                throw ExitCode(1)
            }
            if !json { print("plot written to \(plot)") }
        }
    }

    static func summary(_ r: MinimizeResult, seconds: Double) -> [String: JSONValue] {
        var o: [String: JSONValue] = ["method": .string(r.method.description), "x": .array(r.x.map { .number($0) }), "value": .number(r.value),
         "gradientNorm": .number(r.gradientNorm), "iterations": .number(Double(r.iterations)), "evaluations": .number(Double(r.evaluations)),
         "hessianEvaluations": .number(Double(r.hessianEvaluations)), "success": .bool(r.success), "status": .string(r.message),
         "runs": .number(Double(r.runs)), "seconds": .number(seconds), "saddleEscapes": .number(Double(r.saddleEscapes))]
        if let c = r.curvature {
            o["curvature"] = .object(["verdict": .string(c.verdict == .minimum ? "minimum" : c.verdict == .saddle ? "saddle" : "degenerate-saddle"),
                                      "smallestEigenvalue": .number(c.smallestEigenvalue), "exact": .bool(c.exact)])
        }
        return o
    }
}
