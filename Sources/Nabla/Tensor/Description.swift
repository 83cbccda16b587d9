extension Tensor: CustomStringConvertible, CustomDebugStringConvertible {
    /// Nested brackets in row-major order; long dimensions are elided with `...`.
    public var description: String {
        let values = scalars
        func format(_ v: Scalar) -> String {
            let d = Double(v)
            if d == d.rounded() && Swift.abs(d) < 1e15 { return "\(Int(d)).0" }
            return String(describing: v)
        }
        func render(_ dim: Int, _ offset: Int) -> String {
            if dim == rank { return format(values[offset]) }
            let n = shape[dim], inner = shapeCount(Array(shape[(dim + 1)...]))
            let shown: [Int] = n > 8 ? Array(0..<3) + [-1] + Array((n - 3)..<n) : Array(0..<n)
            let sep = dim == rank - 1 ? ", " : ",\n" + String(repeating: " ", count: dim + 1)
            return "[" + shown.map { $0 < 0 ? "..." : render(dim + 1, offset + $0 * inner) }.joined(separator: sep) + "]"
        }
        return count == 0 ? "[]" : render(0, 0)
    }

    public var debugDescription: String {
        "Tensor<\(Scalar.dtypeName)>(shape: \(shape)\(isDifferentiable ? ", differentiable" : ""))\n\(description)"
    }
}

