import CNablaKernels

// Small dense-vector helpers for the optimizers that work on a flat parameter vector in Double.
// Dot products and axpy go to the C kernels: Swift keeps floating-point sums in order, so its own
// reduction loops do not vectorize.

func dot(_ a: [Double], _ b: [Double]) -> Double {
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in nb_dot_f64(pa.count, pa.baseAddress!, pb.baseAddress!) } }
}

func dot(_ a: [Double], _ b: UnsafeMutableBufferPointer<Double>) -> Double {
    a.withUnsafeBufferPointer { pa in nb_dot_f64(pa.count, pa.baseAddress!, b.baseAddress!) }
}

/// y += alpha x, in place.
func axpyInPlace(_ alpha: Double, _ x: [Double], _ y: UnsafeMutableBufferPointer<Double>) {
    x.withUnsafeBufferPointer { px in nb_axpy_f64(px.count, alpha, px.baseAddress!, y.baseAddress!) }
}

/// y + alpha x
func axpy(_ alpha: Double, _ x: [Double], _ y: [Double]) -> [Double] {
    var out = y
    out.withUnsafeMutableBufferPointer { axpyInPlace(alpha, x, $0) }
    return out
}

func scaled(_ alpha: Double, _ x: [Double]) -> [Double] { x.map { alpha * $0 } }
func maxAbs(_ x: [Double]) -> Double {
    x.withUnsafeBufferPointer { nb_maxabs_f64($0.count, $0.baseAddress!) }
}
func norm2(_ x: [Double]) -> Double { dot(x, x).squareRoot() }
func subtract(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 - $1 } }
