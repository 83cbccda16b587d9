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

/// The curvature pairs (s, y) of a limited-memory quasi-Newton method: a ring of slots of n
/// values each (the oldest in slot `start`), with ρ = 1 / yᵀs per slot.
struct CurvaturePairs {
    var s: [Double] = [], y: [Double] = [], rho: [Double] = []
    var count = 0, start = 0

    mutating func removeAll() { self = CurvaturePairs() }

    /// Makes room for the newest pair (dropping the oldest when `capacity` pairs are kept) and
    /// returns its slot.
    private mutating func newSlot(n: Int, capacity: Int) -> Int {
        if count < capacity {
            s.append(contentsOf: repeatElement(0, count: n))
            y.append(contentsOf: repeatElement(0, count: n))
            rho.append(0)
            count += 1
            return count - 1
        }
        let slot = start
        start = (start + 1) % count
        return slot
    }

    /// Stores the pair (s, y) = (sk, yk) with ρ = 1 / ys as the newest.
    mutating func append(s sk: [Double], y yk: [Double], ys: Double, capacity: Int) {
        let n = sk.count
        let slot = newSlot(n: n, capacity: capacity)
        s.withUnsafeMutableBufferPointer { sp in sk.withUnsafeBufferPointer { sp.baseAddress!.advanced(by: slot * n).update(from: $0.baseAddress!, count: n) } }
        y.withUnsafeMutableBufferPointer { yp in yk.withUnsafeBufferPointer { yp.baseAddress!.advanced(by: slot * n).update(from: $0.baseAddress!, count: n) } }
        rho[slot] = 1 / ys
    }

    /// The two-loop recursion: H·(−g) with H₀ = hDiag·I, written into `q`.
    func direction(gradient g: [Double], hDiag: Double, into q: inout [Double]) {
        let n = g.count
        if q.count != n { q = [Double](repeating: 0, count: n) }
        var alpha = [Double](repeating: 0, count: count)
        s.withUnsafeBufferPointer { sp in y.withUnsafeBufferPointer { yp in rho.withUnsafeBufferPointer { rp in
            g.withUnsafeBufferPointer { gp in q.withUnsafeMutableBufferPointer { qp in alpha.withUnsafeMutableBufferPointer { ap in
                nb_lbfgs_direction_f64(n, count, start, sp.baseAddress, yp.baseAddress, rp.baseAddress, hDiag,
                                       gp.baseAddress!, qp.baseAddress!, ap.baseAddress)
            } } }
        } } }
    }
}

