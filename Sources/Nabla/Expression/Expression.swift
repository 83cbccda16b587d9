/// A parsed mathematical expression of named variables, differentiable through Nabla.
///
/// Grammar: `+ - * /`, `^` (or `**`, right-associative, binding tighter than unary minus:
/// `-x^2` is `-(x^2)`), parentheses, numbers (`2`, `0.5`, `1e-3`), variables (letters, digits
/// and `_`), the functions `sin cos tan exp log sqrt abs tanh sigmoid`, and the constants `pi`
/// and `e`.
///
/// ```swift
/// let f = try Expression("x^2 + y^2 + x*y")
/// let (value, grad) = try f.valueWithGradient(at: ["x": 1, "y": 3])   // 13, [5, 7]
/// ```
public struct Expression: Sendable, CustomStringConvertible {
    /// One node of the parsed expression. Nodes live in one array, each after its operands
    /// (post-order), so parsing, evaluation and release are loops: an expression of 60,000 terms
    /// or 30,000 nested parentheses needs no deeper stack than `x + y`.
    enum Node: Sendable {
        case number(Double)
        case variable(String, position: Int)
        /// A prefix sign applied to the node at the index.
        case unary(Character, Int)
        /// An operator applied to the nodes at the two indices.
        case binary(Character, Int, Int)
        /// A function applied to the node at the index.
        case call(String, Int)
    }

    public static let functions = ["sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sigmoid"]
    public static let constants: [String: Double] = ["pi": Double.pi, "e": 2.718281828459045]

    /// The nodes in post-order; the last is the root.
    let nodes: [Node]
    /// The source text.
    public let text: String
    /// Variable names in order of first appearance.
    public let variables: [String]

    public init(_ text: String) throws {
        var parser = Parser(text: text)
        nodes = try parser.parseAll()
        self.text = text
        // Operands are emitted in the order they are read, so this is the order of appearance.
        var seen: [String] = []
        var known = Set<String>()
        for case .variable(let name, _) in nodes where known.insert(name).inserted { seen.append(name) }
        variables = seen
    }

    public var description: String { text }

    /// Evaluates with each variable bound to a tensor (all broadcast together).
    public func evaluate<Scalar: TensorScalar>(_ bindings: [String: Tensor<Scalar>]) throws -> Tensor<Scalar> {
        try fold(bindings) { Tensor(Scalar($0)) }
    }

    /// The expression traced into a compiled program, each variable bound to a traced value.
    public func traced<Scalar: TensorScalar>(_ bindings: [String: Traced<Scalar>]) throws -> Traced<Scalar> {
        guard let graph = bindings.values.first?.graph else {
            throw ExpressionError(message: "a compiled expression needs at least one variable", text: text, position: 0)
        }
        return try fold(bindings) { Traced(graph, graph.scalar($0)) }
    }

    /// The expression applied to values of any kind that has its operations.
    func fold<V: ExpressionValue>(_ bindings: [String: V], number: (Double) -> V) throws -> V {
        var values = [V?](repeating: nil, count: nodes.count)
        // Every node but the root is the operand of exactly one other: take it out when used.
        func take(_ i: Int) -> V { defer { values[i] = nil }; return values[i]! }
        for (index, node) in nodes.enumerated() {
            let result: V
            switch node {
            case .number(let v): result = number(v)
            case .variable(let name, let pos):
                guard let t = bindings[name] else {
                    throw ExpressionError(message: "no value given for variable '\(name)'", text: text, position: pos)
                }
                result = t
            case .unary(let op, let a):
                let x = take(a)
                result = op == "-" ? -x : x
            case .binary(let op, let a, let b):
                let x = take(a), y = take(b)
                switch op {
                case "+": result = x + y
                case "-": result = x - y
                case "*": result = x * y
                case "/": result = x / y
                default:
                    // A constant exponent takes the scalar power (exact for x^2, defined for x < 0).
                    if let p = constantValue(b) { result = x.power(p) } else { result = V.power(x, y) }
                }
            case .call(let f, let a):
                let x = take(a)
                switch f {
                case "sin": result = x.sin()
                case "cos": result = x.cos()
                case "tan": result = x.tan()
                case "exp": result = x.exp()
                case "log": result = x.log()
                case "sqrt": result = x.squareRoot()
                case "abs": result = x.abs()
                case "tanh": result = x.tanh()
                default: result = x.sigmoid()
                }
            }
            values[index] = result
        }
        return values[nodes.count - 1]!
    }

    /// The expression compiled as a function of one vector holding the variables in `order`.
    public func compiledFunction(order: [String]? = nil) -> CompiledFunction<Double> {
        let names = order ?? variables
        let expression = self
        return compiled { (x: Traced<Double>) -> Traced<Double> in
            var b: [String: Traced<Double>] = [:]
            for (i, n) in names.enumerated() { b[n] = x[i] }
            return (try? expression.traced(b)) ?? Traced(x.graph, x.graph.scalar(.nan))
        }
    }

    /// An expression of one variable applied to every element of a vector and summed, compiled
    /// (Σᵢ f(xᵢ): one fused pass for the value and the gradient).
    public func compiledSum() -> CompiledFunction<Double> {
        let expression = self, name = variables.first ?? "x"
        return compiled { (x: Traced<Double>) -> Traced<Double> in
            ((try? expression.traced([name: x])) ?? Traced(x.graph, x.graph.scalar(.nan))).sum()
        }
    }

    /// The value of node `i` when it is a number or a signed number.
    func constantValue(_ i: Int) -> Double? {
        switch nodes[i] {
        case .number(let v): return v
        case .unary(let op, let a):
            if case .number(let v) = nodes[a] { return op == "-" ? -v : v }
            return nil
        default: return nil
        }
    }

    /// Value at a point given by name. Extra names are ignored; a missing one is an error.
    public func value(at point: [String: Double]) throws -> Double {
        try withoutGradients { try evaluate(point.mapValues { Tensor<Double>($0) }).scalar }
    }

    /// Value and gradient, the gradient ordered as `order` (default: ``variables``).
    public func valueWithGradient(at point: [String: Double], order: [String]? = nil) throws -> (value: Double, gradient: [Double]) {
        let names = order ?? variables
        let x = try vector(point, names)
        var failure: Error?
        let (v, g) = Nabla.valueWithGradient(at: x) { t in
            do { return try evaluate(bindings(t, names)) } catch { failure = error; return Tensor(0) }
        }
        if let failure { throw failure }
        return (v.scalar, g.scalars)
    }

    /// The Hessian (row-major, n×n) ordered as `order` (default: ``variables``).
    public func hessian(at point: [String: Double], order: [String]? = nil) throws -> [[Double]] {
        let names = order ?? variables
        let x = try vector(point, names)
        var failure: Error?
        let h = Nabla.hessian(at: x) { t in
            do { return try evaluate(bindings(t, names)) } catch { failure = error; return Tensor(0) }
        }
        if let failure { throw failure }
        return names.isEmpty ? [] : h.rows
    }

    /// The expression as a function of one vector holding the variables in `order`.
    public func function(order: [String]? = nil) -> (Tensor<Double>) -> Tensor<Double> {
        let names = order ?? variables
        return { t in (try? evaluate(bindings(t, names))) ?? Tensor(.nan) }
    }

    func vector(_ point: [String: Double], _ names: [String]) throws -> Tensor<Double> {
        for v in variables where point[v] == nil {
            throw ExpressionError(message: "no value given for variable '\(v)'", text: text, position: position(of: v))
        }
        return Tensor(names.map { point[$0] ?? 0 })
    }

    func bindings(_ t: Tensor<Double>, _ names: [String]) -> [String: Tensor<Double>] {
        var b: [String: Tensor<Double>] = [:]
        for (i, n) in names.enumerated() { b[n] = t[i] }
        return b
    }

    /// Where `name` first appears (0-based), or 0.
    public func position(of name: String) -> Int {
        for case .variable(let v, let p) in nodes where v == name { return p }
        return 0
    }

    /// Operator precedence parsing with explicit stacks (no recursion).
    ///
    /// Precedence, loosest first: `+ -`, `* /`, prefix `-`/`+`, `^`/`**` (right-associative), so
    /// `-x^2` is `-(x^2)`, `-x*y` is `(-x)*y` and `2^-x` is `2^(-x)`.
    struct Parser {
        let chars: [Character]
        let text: String
        var pos = 0
        var output: [Node] = []
        /// The index in `output` of each finished operand not yet consumed.
        var operands: [Int] = []
        var operators: [Pending] = []

        enum Pending {
            case binary(Character)
            case sign(Character)
            /// An open parenthesis at the offset.
            case group(Int)
            /// A function's open parenthesis.
            case call(String, Int)

            var precedence: Int? {
                switch self {
                case .binary(let c): return c == "^" ? 4 : c == "*" || c == "/" ? 2 : 1
                case .sign: return 3
                default: return nil
                }
            }
        }

        init(text: String) { self.text = text; chars = Array(text) }

        func error(_ message: String, at p: Int? = nil) -> ExpressionError {
            ExpressionError(message: message, text: text, position: p ?? pos)
        }

        mutating func skipSpace() { while pos < chars.count, chars[pos].isWhitespace { pos += 1 } }

        mutating func peek() -> Character? { skipSpace(); return pos < chars.count ? chars[pos] : nil }

        mutating func emit(_ node: Node) {
            output.append(node)
            operands.append(output.count - 1)
        }

        /// Applies the operator on top of the stack to its operands.
        mutating func reduce() {
            switch operators.removeLast() {
            case .binary(let c):
                let b = operands.removeLast(), a = operands.removeLast()
                emit(.binary(c, a, b))
            case .sign(let c):
                emit(.unary(c, operands.removeLast()))
            default:
                break
            }
        }

        /// Applies the stacked operators that bind at least as tightly as a new binary `op`.
        mutating func reduce(before op: Character) {
            let p = Pending.binary(op).precedence!
            while let top = operators.last, let q = top.precedence, q > p || (q == p && op != "^") { reduce() }
        }

        /// The message for input that should have closed the innermost open parenthesis.
        func unclosed() -> String? {
            for entry in operators.reversed() {
                switch entry {
                case .group(let start): return "missing ')' to close the '(' at position \(start + 1)"
                case .call(let name, _): return "missing ')' after the argument of '\(name)'"
                default: continue
                }
            }
            return nil
        }

        mutating func parseAll() throws -> [Node] {
            if peek() == nil { throw error("the expression is empty") }
            var expectingOperand = true
            while true {
                let c = peek()
                if expectingOperand {
                    guard let c else { throw error("the expression ends where a number, variable or '(' was expected") }
                    let start = pos
                    if c == "-" || c == "+" {
                        pos += 1
                        operators.append(.sign(c))
                    } else if c == "(" {
                        pos += 1
                        operators.append(.group(start))
                    } else if c.isNumber || c == "." {
                        emit(.number(try number()))
                        expectingOperand = false
                    } else if c.isLetter || c == "_" {
                        while pos < chars.count, chars[pos].isLetter || chars[pos].isNumber || chars[pos] == "_" { pos += 1 }
                        let name = String(chars[start..<pos])
                        if Expression.functions.contains(name) {
                            guard peek() == "(" else { throw error("function '\(name)' needs an argument in parentheses", at: pos) }
                            operators.append(.call(name, pos))
                            pos += 1
                        } else if let v = Expression.constants[name] {
                            emit(.number(v))
                            expectingOperand = false
                        } else {
                            if peek() == "(" {
                                throw error("unknown function '\(name)' (known: \(Expression.functions.joined(separator: ", ")))", at: start)
                            }
                            emit(.variable(name, position: start))
                            expectingOperand = false
                        }
                    } else {
                        throw error("unexpected '\(c)'")
                    }
                    continue
                }
                guard let c else { break }
                switch c {
                case "+", "-", "/":
                    pos += 1
                    reduce(before: c)
                    operators.append(.binary(c))
                    expectingOperand = true
                case "*", "^":
                    let power = c == "^" || (pos + 1 < chars.count && chars[pos + 1] == "*")
                    pos += c == "*" && power ? 2 : 1
                    let op: Character = power ? "^" : "*"
                    reduce(before: op)
                    operators.append(.binary(op))
                    expectingOperand = true
                case ")":
                    while let top = operators.last, top.precedence != nil { reduce() }
                    guard let open = operators.popLast() else { throw error("unmatched ')'") }
                    if case .call(let name, _) = open { emit(.call(name, operands.removeLast())) }
                    pos += 1
                default:
                    throw error(unclosed() ?? "unexpected '\(c)'")
                }
            }
            while let top = operators.last {
                guard top.precedence != nil else { throw error(unclosed()!) }
                reduce()
            }
            return output
        }

        /// A number starting at `pos`: digits and points, then an optional exponent.
        mutating func number() throws -> Double {
            let start = pos
            while pos < chars.count, chars[pos].isNumber || chars[pos] == "." { pos += 1 }
            if pos < chars.count, chars[pos] == "e" || chars[pos] == "E" {
                var q = pos + 1
                if q < chars.count, chars[q] == "+" || chars[q] == "-" { q += 1 }
                if q < chars.count, chars[q].isNumber {
                    pos = q
                    while pos < chars.count, chars[pos].isNumber { pos += 1 }
                }
            }
            let s = String(chars[start..<pos])
            guard let v = Double(s) else { throw error("'\(s)' is not a number", at: start) }
            return v
        }
    }
}

/// A syntax error or missing value in an ``Expression``, with the position it refers to.
public struct ExpressionError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var text: String
    /// 0-based character offset.
    public var position: Int

    public init(message: String, text: String, position: Int) {
        self.message = message
        self.text = text
        self.position = position
    }

    /// The message, the expression, and a caret under the position.
    public var description: String {
        "error at position \(position + 1): \(message)\n  \(text)\n  \(String(repeating: " ", count: position))^"
    }
}

/// What an expression can be evaluated to: eager tensors, and traced values of a compiled program.
protocol ExpressionValue {
    static func + (a: Self, b: Self) -> Self
    static func - (a: Self, b: Self) -> Self
    static func * (a: Self, b: Self) -> Self
    static func / (a: Self, b: Self) -> Self
    static prefix func - (x: Self) -> Self
    /// xᵖ for a constant exponent.
    func power(_ p: Double) -> Self
    static func power(_ a: Self, _ b: Self) -> Self
    func sin() -> Self
    func cos() -> Self
    func tan() -> Self
    func exp() -> Self
    func log() -> Self
    func squareRoot() -> Self
    func abs() -> Self
    func tanh() -> Self
    func sigmoid() -> Self
}

extension Tensor: ExpressionValue {
    func power(_ p: Double) -> Tensor { pow(Scalar(p)) }
    static func power(_ a: Tensor, _ b: Tensor) -> Tensor { pow(a, b) }
}

extension Traced: ExpressionValue {
    func power(_ p: Double) -> Traced { pow(Scalar(p)) }
    static func power(_ a: Traced, _ b: Traced) -> Traced { pow(a, b) }
    /// sin x / cos x.
    public func tan() -> Traced { sin() / cos() }
}
