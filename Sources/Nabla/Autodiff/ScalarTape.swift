import Foundation

/// Reverse-mode differentiation of functions of a few scalars, without tensors: every operation
/// appends one entry (its value, up to two parents and the local partial derivatives) to a flat
/// tape, and the gradient is one sweep back over it. No allocation per operation once the tape
/// has grown, so a gradient of a small expression takes tens of nanoseconds.
///
/// ```swift
/// let (value, gradient) = ScalarTape.valueWithGradient(at: [1, 3]) { v in
///     v[0] * v[0] + v[1] * v[1] + v[0] * v[1]
/// }
/// // value 13, gradient [5, 7]
/// ```
///
/// First derivatives only; for higher orders use the tensor transforms (`hessian`, `gradient` of
/// a `gradient`).
public final class ScalarTape {
    /// One operation: up to two parents (−1: none) and the partial derivatives towards them.
    @usableFromInline struct Entry {
        @usableFromInline var a: Int32, b: Int32
        @usableFromInline var da: Double, db: Double
        @inlinable init(_ a: Int32, _ da: Double, _ b: Int32, _ db: Double) { (self.a, self.da, self.b, self.db) = (a, da, b, db) }
    }
    @usableFromInline var entries: [Entry] = []
    @usableFromInline var adjoint: [Double] = []
    @usableFromInline var inputs: [Variable] = []

    public init() {
        entries.reserveCapacity(64); adjoint.reserveCapacity(64); inputs.reserveCapacity(8)
    }

    /// A differentiable scalar recorded on a tape.
    public struct Variable {
        @usableFromInline unowned(unsafe) let tape: ScalarTape
        @usableFromInline let index: Int32
        public let value: Double

        @inlinable init(_ tape: ScalarTape, _ index: Int32, _ value: Double) {
            self.tape = tape; self.index = index; self.value = value
        }
    }

    @inlinable func push(_ value: Double, _ a: Int32, _ da: Double, _ b: Int32 = -1, _ db: Double = 0) -> Variable {
        let i = Int32(entries.count)
        entries.append(Entry(a, da, b, db))
        return Variable(self, i, value)
    }

    /// A new input.
    @inlinable public func variable(_ value: Double) -> Variable { push(value, -1, 0) }

    /// Clears the tape (keeping its storage) for the next evaluation.
    @inlinable public func reset() { entries.removeAll(keepingCapacity: true) }

    /// ∂output/∂v for each of `inputs`, by one reverse sweep.
    @inlinable public func gradient(of output: Variable, wrt inputs: [Variable]) -> [Double] {
        let top = Int(output.index)
        adjoint.removeAll(keepingCapacity: true)
        adjoint.append(contentsOf: repeatElement(0, count: top + 1))
        adjoint.withUnsafeMutableBufferPointer { adj in
            entries.withUnsafeBufferPointer { e in
                adj[top] = 1
                for i in stride(from: top, through: 0, by: -1) {
                    let g = adj[i]
                    if g == 0 { continue }
                    let entry = e[i]
                    if entry.a >= 0 { adj[Int(entry.a)] += g * entry.da }
                    if entry.b >= 0 { adj[Int(entry.b)] += g * entry.db }
                }
            }
        }
        return inputs.map { Int($0.index) <= top ? adjoint[Int($0.index)] : 0 }
    }

    /// The value and gradient of `f` at `point`, on this tape (reset first).
    @inlinable public func valueWithGradient(at point: [Double], of f: ([Variable]) -> Variable) -> (value: Double, gradient: [Double]) {
        reset()
        inputs.removeAll(keepingCapacity: true)
        for p in point { inputs.append(variable(p)) }
        let y = f(inputs)
        return (y.value, gradient(of: y, wrt: inputs))
    }

    /// The value and gradient of `f` at `point` on a tape kept per thread.
    public static func valueWithGradient(at point: [Double], of f: ([Variable]) -> Variable) -> (value: Double, gradient: [Double]) {
        current.valueWithGradient(at: point, of: f)
    }

    static var current: ScalarTape {
        let key = "nabla.scalar-tape"
        if let t = Thread.current.threadDictionary[key] as? ScalarTape { return t }
        let t = ScalarTape()
        Thread.current.threadDictionary[key] = t
        return t
    }
}

// Each operation: the value, and its partial derivatives beside it.
extension ScalarTape.Variable {
    @inlinable public static func + (a: Self, b: Self) -> Self { a.tape.push(a.value + b.value, a.index, 1, b.index, 1) }
    @inlinable public static func - (a: Self, b: Self) -> Self { a.tape.push(a.value - b.value, a.index, 1, b.index, -1) }
    @inlinable public static func * (a: Self, b: Self) -> Self { a.tape.push(a.value * b.value, a.index, b.value, b.index, a.value) }
    @inlinable public static func / (a: Self, b: Self) -> Self {
        let q = a.value / b.value
        return a.tape.push(q, a.index, 1 / b.value, b.index, -q / b.value)
    }
    @inlinable public static prefix func - (a: Self) -> Self { a.tape.push(-a.value, a.index, -1) }
    @inlinable public static func + (a: Self, c: Double) -> Self { a.tape.push(a.value + c, a.index, 1) }
    @inlinable public static func + (c: Double, a: Self) -> Self { a.tape.push(c + a.value, a.index, 1) }
    @inlinable public static func - (a: Self, c: Double) -> Self { a.tape.push(a.value - c, a.index, 1) }
    @inlinable public static func - (c: Double, a: Self) -> Self { a.tape.push(c - a.value, a.index, -1) }
    @inlinable public static func * (a: Self, c: Double) -> Self { a.tape.push(a.value * c, a.index, c) }
    @inlinable public static func * (c: Double, a: Self) -> Self { a.tape.push(c * a.value, a.index, c) }
    @inlinable public static func / (a: Self, c: Double) -> Self { a.tape.push(a.value / c, a.index, 1 / c) }
    @inlinable public static func / (c: Double, a: Self) -> Self {
        let q = c / a.value
        return a.tape.push(q, a.index, -q / a.value)
    }

    public func exp() -> Self { let e = Foundation.exp(value); return tape.push(e, index, e) }
    public func log() -> Self { tape.push(Foundation.log(value), index, 1 / value) }
    public func squareRoot() -> Self { let r = value.squareRoot(); return tape.push(r, index, 0.5 / r) }
    public func sin() -> Self { tape.push(Foundation.sin(value), index, Foundation.cos(value)) }
    public func cos() -> Self { tape.push(Foundation.cos(value), index, -Foundation.sin(value)) }
    public func tan() -> Self { let t = Foundation.tan(value); return tape.push(t, index, 1 + t * t) }
    public func tanh() -> Self { let t = Foundation.tanh(value); return tape.push(t, index, 1 - t * t) }
    public func sigmoid() -> Self { let s = 1 / (1 + Foundation.exp(-value)); return tape.push(s, index, s * (1 - s)) }
    public func abs() -> Self { tape.push(Swift.abs(value), index, value > 0 ? 1 : value < 0 ? -1 : 0) }
    /// xᵖ for a constant p.
    public func pow(_ p: Double) -> Self { tape.push(Foundation.pow(value, p), index, p * Foundation.pow(value, p - 1)) }
    /// aᵇ for two variables (a > 0 where b is not an integer).
    public static func pow(_ a: Self, _ b: Self) -> Self {
        let v = Foundation.pow(a.value, b.value)
        return a.tape.push(v, a.index, b.value * Foundation.pow(a.value, b.value - 1), b.index, a.value > 0 ? v * Foundation.log(a.value) : 0)
    }
}
