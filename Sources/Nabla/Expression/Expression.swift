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
    indirect enum Node: Sendable {
        case number(Double)
        case variable(String, position: Int)
        case unary(Character, Node)
        case binary(Character, Node, Node)
        case call(String, Node)
    }

    public static let functions = ["sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "sigmoid"]
    public static let constants: [String: Double] = ["pi": Double.pi, "e": 2.718281828459045]

    let root: Node
    /// The source text.
    public let text: String
    /// Variable names in order of first appearance.
    public let variables: [String]

    public init(_ text: String) throws {
        var parser = Parser(text: text)
        root = try parser.parseAll()
        self.text = text
        var seen: [String] = []
        func collect(_ n: Node) {
            switch n {
            case .number: break
            case .variable(let name, _): if !seen.contains(name) { seen.append(name) }
            case .unary(_, let a), .call(_, let a): collect(a)
            case .binary(_, let a, let b): collect(a); collect(b)
            }
        }
        collect(root)
        variables = seen
    }

    public var description: String { text }

    /// Evaluates with each variable bound to a tensor (all broadcast together).
    public func evaluate<Scalar: TensorScalar>(_ bindings: [String: Tensor<Scalar>]) throws -> Tensor<Scalar> {
        func eval(_ n: Node) throws -> Tensor<Scalar> {
            switch n {
            case .number(let v): return Tensor(Scalar(v))
            case .variable(let name, let pos):
                guard let t = bindings[name] else {
                    throw ExpressionError(message: "no value given for variable '\(name)'", text: text, position: pos)
                }
                return t
            case .unary(let op, let a):
                let x = try eval(a)
                return op == "-" ? -x : x
            case .binary(let op, let a, let b):
                let x = try eval(a)
                if op == "^", case .number(let p) = b { return x.pow(Scalar(p)) }
                if op == "^", case .unary("-", .number(let p)) = b { return x.pow(Scalar(-p)) }
                let y = try eval(b)
                switch op {
                case "+": return x + y
                case "-": return x - y
                case "*": return x * y
                case "/": return x / y
                default: return Tensor.pow(x, y)
                }
            case .call(let f, let a):
                let x = try eval(a)
                switch f {
                case "sin": return x.sin()
                case "cos": return x.cos()
                case "tan": return x.tan()
                case "exp": return x.exp()
                case "log": return x.log()
                case "sqrt": return x.squareRoot()
                case "abs": return x.abs()
                case "tanh": return x.tanh()
                default: return x.sigmoid()
                }
            }
        }
        return try eval(root)
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
        func find(_ n: Node) -> Int? {
            switch n {
            case .number: return nil
            case .variable(let v, let p): return v == name ? p : nil
            case .unary(_, let a), .call(_, let a): return find(a)
            case .binary(_, let a, let b): return find(a) ?? find(b)
            }
        }
        return find(root) ?? 0
    }

    struct Parser {
        let chars: [Character]
        let text: String
        var pos = 0

        init(text: String) { self.text = text; chars = Array(text) }

        func error(_ message: String, at p: Int? = nil) -> ExpressionError {
            ExpressionError(message: message, text: text, position: p ?? pos)
        }

        mutating func skipSpace() { while pos < chars.count, chars[pos].isWhitespace { pos += 1 } }

        mutating func peek() -> Character? { skipSpace(); return pos < chars.count ? chars[pos] : nil }

        mutating func parseAll() throws -> Node {
            if peek() == nil { throw error("the expression is empty") }
            let n = try parseSum()
            if let c = peek() { throw error(c == ")" ? "unmatched ')'" : "unexpected '\(c)'") }
            return n
        }

        mutating func parseSum() throws -> Node {
            var lhs = try parseProduct()
            while let c = peek(), c == "+" || c == "-" {
                pos += 1
                lhs = .binary(c, lhs, try parseProduct())
            }
            return lhs
        }

        mutating func parseProduct() throws -> Node {
            var lhs = try parseUnary()
            while let c = peek(), c == "*" || c == "/" {
                if c == "*", pos + 1 < chars.count, chars[pos + 1] == "*" { break }
                pos += 1
                lhs = .binary(c, lhs, try parseUnary())
            }
            return lhs
        }

        mutating func parseUnary() throws -> Node {
            if let c = peek(), c == "-" || c == "+" {
                pos += 1
                return .unary(c, try parseUnary())
            }
            return try parsePower()
        }

        mutating func parsePower() throws -> Node {
            let base = try parsePrimary()
            if let c = peek() {
                if c == "^" { pos += 1; return .binary("^", base, try parseUnary()) }
                if c == "*", pos + 1 < chars.count, chars[pos + 1] == "*" { pos += 2; return .binary("^", base, try parseUnary()) }
            }
            return base
        }

        mutating func parsePrimary() throws -> Node {
            guard let c = peek() else { throw error("the expression ends where a number, variable or '(' was expected") }
            let start = pos
            if c == "(" {
                pos += 1
                let inner = try parseSum()
                guard peek() == ")" else { throw error("missing ')' to close the '(' at position \(start + 1)") }
                pos += 1
                return inner
            }
            if c.isNumber || c == "." {
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
                return .number(v)
            }
            if c.isLetter || c == "_" {
                while pos < chars.count, chars[pos].isLetter || chars[pos].isNumber || chars[pos] == "_" { pos += 1 }
                let name = String(chars[start..<pos])
                if Expression.functions.contains(name) {
                    guard peek() == "(" else { throw error("function '\(name)' needs an argument in parentheses", at: pos) }
                    pos += 1
                    let arg = try parseSum()
                    guard peek() == ")" else { throw error("missing ')' after the argument of '\(name)'") }
                    pos += 1
                    return .call(name, arg)
                }
                if let v = Expression.constants[name] { return .number(v) }
                if peek() == "(" { throw error("unknown function '\(name)' (known: \(Expression.functions.joined(separator: ", ")))", at: start) }
                return .variable(name, position: start)
            }
            throw error("unexpected '\(c)'")
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
