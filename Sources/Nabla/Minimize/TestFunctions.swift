import Foundation

/// Standard test functions for optimization, written with tensor operations (so every method,
/// including Newton's, can differentiate them).
public struct TestFunction: Sendable {
    public let name: String
    /// Dimension, for the functions defined in any dimension.
    public let dimension: Int
    public let function: @Sendable (Tensor<Double>) -> Tensor<Double>
    /// The customary starting point.
    public let start: [Double]
    /// A global minimizer and its value.
    public let minimizer: [Double]
    public let minimum: Double
    /// A 2-D window that shows the function's interesting part (for plots).
    public let window: (x: ClosedRange<Double>, y: ClosedRange<Double>)
    /// The same function written for the compiler (nil: the compiled form runs `function` eagerly).
    public var traced: (@Sendable (Traced<Double>) -> Traced<Double>)? = nil

    /// The function compiled: traced on first use, fused, with its gradient, Hessian-vector
    /// products and Hessian as compiled programs.
    public var compiled: CompiledFunction<Double> {
        if let traced { return Nabla.compiled(traced) }
        let f = function, name = name
        return Nabla.compiled { (x: Traced<Double>) in Traced.eager(name, [x], shape: []) { f($0[0]) } }
    }

    public static let names = ["rosenbrock", "beale", "himmelblau", "booth", "rastrigin", "quadratic"]

    /// The function called `name`, in `dimension` dimensions where that applies (rosenbrock,
    /// rastrigin, quadratic); nil for an unknown name.
    public static func named(_ name: String, dimension: Int = 2) -> TestFunction? {
        let n = Swift.max(dimension, 1)
        switch name.lowercased() {
        case "rosenbrock":
            guard n >= 2 else { return nil }
            return TestFunction(name: "rosenbrock", dimension: n, function: { x in
                let k = x.count
                let head = x.slice(axis: 0, start: 0, end: k - 1), tail = x.slice(axis: 0, start: 1, end: k)
                let r = tail - head * head, s = 1 - head
                return (100 * r * r + s * s).sum()
            }, start: (0..<n).map { $0 % 2 == 0 ? -1.2 : 1 }, minimizer: Array(repeating: 1, count: n), minimum: 0,
               window: (-2...2, -1...3), traced: { x in
                let k = x.count
                let head = x.slice(axis: 0, start: 0, end: k - 1), tail = x.slice(axis: 0, start: 1, end: k)
                let r = tail - head * head, s = 1 - head
                return (100 * r * r + s * s).sum()
            })
        case "beale":
            return TestFunction(name: "beale", dimension: 2, function: { v in
                let x = v[0], y = v[1]
                let a = 1.5 - x + x * y, b = 2.25 - x + x * y * y, c = 2.625 - x + x * y * y * y
                return a * a + b * b + c * c
            }, start: [1, 1], minimizer: [3, 0.5], minimum: 0, window: (-4.5...4.5, -4.5...4.5))
        case "himmelblau":
            return TestFunction(name: "himmelblau", dimension: 2, function: { v in
                let x = v[0], y = v[1]
                let a = x * x + y - 11, b = x + y * y - 7
                return a * a + b * b
            }, start: [0, 0], minimizer: [3, 2], minimum: 0, window: (-5...5, -5...5))
        case "booth":
            return TestFunction(name: "booth", dimension: 2, function: { v in
                let x = v[0], y = v[1]
                let a = x + 2 * y - 7, b = 2 * x + y - 5
                return a * a + b * b
            }, start: [0, 0], minimizer: [1, 3], minimum: 0, window: (-10...10, -10...10))
        case "rastrigin":
            return TestFunction(name: "rastrigin", dimension: n, function: { x in
                (x * x - 10 * (x * (2 * Double.pi)).cos()).sum() + 10 * Double(x.count)
            }, start: Array(repeating: 2.5, count: n), minimizer: Array(repeating: 0, count: n), minimum: 0,
               window: (-5.12...5.12, -5.12...5.12), traced: { x in
                (x * x - 10 * (x * (2 * Double.pi)).cos()).sum() + 10 * Double(x.count)
            })
        case "quadratic":
            // f(x) = ½ Σ κ^(i/(n−1)) xᵢ² − Σ xᵢ with condition number κ = 10.
            let scales = (0..<n).map { n == 1 ? 1 : Foundation.pow(10, Double($0) / Double(n - 1)) }
            let s = Tensor<Double>(scales)
            return TestFunction(name: "quadratic", dimension: n, function: { x in (0.5 * s * x * x - x).sum() },
                                start: Array(repeating: 2, count: n), minimizer: scales.map { 1 / $0 },
                                minimum: -0.5 * scales.reduce(0) { $0 + 1 / $1 }, window: (-3...3, -3...3), traced: { x in
                (0.5 * Traced(constant: s, in: x.graph) * x * x - x).sum()
            })
        default: return nil
        }
    }
}

