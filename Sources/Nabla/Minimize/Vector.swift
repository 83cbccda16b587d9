// Small dense-vector helpers for the optimizers that work on a flat parameter vector in Double.

func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
        for i in 0..<pa.count { s += pa[i] * pb[i] }
    } }
    return s
}

/// y + alpha x
func axpy(_ alpha: Double, _ x: [Double], _ y: [Double]) -> [Double] {
    var out = y
    out.withUnsafeMutableBufferPointer { po in x.withUnsafeBufferPointer { px in
        for i in 0..<po.count { po[i] += alpha * px[i] }
    } }
    return out
}

func scaled(_ alpha: Double, _ x: [Double]) -> [Double] { x.map { alpha * $0 } }
func maxAbs(_ x: [Double]) -> Double { x.reduce(0) { Swift.max($0, Swift.abs($1)) } }
func norm2(_ x: [Double]) -> Double { dot(x, x).squareRoot() }
func subtract(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 - $1 } }
