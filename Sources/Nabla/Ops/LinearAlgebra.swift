import CNablaKernels

// Matrix product: the one primitive that reaches BLAS. Transposed operands are passed to the
// GEMM as flags, never copied, in the forward pass and in both pullbacks.

extension Tensor {
    /// `op(a) · op(b)` where op transposes the last two axes when the flag is set. Leading
    /// (batch) axes broadcast. 1-D operands are treated as a row (left) or column (right) vector.
    @inlinable public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        if a.rank == 1 || b.rank == 1 {
            let a2 = a.rank == 1 ? a.reshaped(to: [1, a.count]) : a
            let b2 = b.rank == 1 ? b.reshaped(to: [b.count, 1]) : b
            var out = matmul(a2, b2, transposeA: a.rank == 1 ? false : transposeA, transposeB: b.rank == 1 ? false : transposeB)
            var s = out.shape
            if b.rank == 1 { s.removeLast() }
            if a.rank == 1 { s.remove(at: s.count - (b.rank == 1 ? 1 : 2)) }
            out = out.reshaped(to: s)
            return out
        }
        let (outShape, out) = matmulKernel(a, b, transposeA, transposeB, into: nil)
        return record2("matmul", a, b, output: Tensor(storage: out, shape: outShape)) { g, _ in
            let da: Tensor? = a.node == nil ? nil : (transposeA
                ? matmul(b, g, transposeA: transposeB, transposeB: true)
                : matmul(g, b, transposeA: false, transposeB: !transposeB)).summed(toShape: a.shape)
            let db: Tensor? = b.node == nil ? nil : (transposeB
                ? matmul(g, a, transposeA: true, transposeB: transposeA)
                : matmul(a, g, transposeA: !transposeA, transposeB: false)).summed(toShape: b.shape)
            return (da, db)
        }
    }

    @inlinable static func matmulKernel(_ a: Tensor, _ b: Tensor, _ transposeA: Bool, _ transposeB: Bool,
                             into destination: TensorStorage<Scalar>?) -> ([Int], TensorStorage<Scalar>) {
        require(a.rank >= 2 && b.rank >= 2, "matmul: operands must have at least 2 dimensions, got \(a.shape) and \(b.shape)")
        let (m, ka) = transposeA ? (a.shape[a.rank - 1], a.shape[a.rank - 2]) : (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (kb, n) = transposeB ? (b.shape[b.rank - 1], b.shape[b.rank - 2]) : (b.shape[b.rank - 2], b.shape[b.rank - 1])
        require(ka == kb, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") × \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        guard let batch = broadcastShapes(batchA, batchB) else {
            usageFailure("matmul: batch dimensions of \(a.shape) and \(b.shape) cannot be broadcast together")
        }
        let outShape = batch + [m, n]
        let out = destination ?? TensorStorage<Scalar>.make(count: shapeCount(outShape))
        require(out.count == shapeCount(outShape), "matmul(into:): destination has \(out.count) elements, the product \(outShape) needs \(shapeCount(outShape))")
        let batches = shapeCount(batch)
        let lda = a.shape[a.rank - 1], ldb = b.shape[b.rank - 1]
        if batches == 1 {
            Scalar._gemm(transposeA, transposeB, m, n, ka, 1, a.storage.base, lda, b.storage.base, ldb, 0, out.base, n)
        } else {
            let sa = broadcastStrides(batchA, to: batch), sb = broadcastStrides(batchB, to: batch)
            let sizeA = a.shape[a.rank - 2] * lda, sizeB = b.shape[b.rank - 2] * ldb
            var idx = [Int](repeating: 0, count: batch.count)
            for t in 0..<batches {
                var oa = 0, ob = 0
                for d in 0..<batch.count { oa += idx[d] * sa[d]; ob += idx[d] * sb[d] }
                Scalar._gemm(transposeA, transposeB, m, n, ka, 1, a.storage.base + oa * sizeA, lda,
                             b.storage.base + ob * sizeB, ldb, 0, out.base + t * m * n, n)
                var d = batch.count - 1
                while d >= 0 { idx[d] += 1; if idx[d] < batch[d] { break }; idx[d] = 0; d -= 1 }
            }
        }
        return (outShape, out)
    }

    /// A dense layer, `x · wᵀ + b` for x [M, K], weight [N, K] and bias [N], as one primitive: the
    /// bias is written into the output first and the matrix product accumulates onto it (a BLAS
    /// clears its output anyway), or the kernel adds it as it stores each tile, so there is no
    /// separate addition and no temporary. Pullback: `g · w`, `gᵀ · x` and the column sums of g.
    @inlinable public static func linear(_ x: Tensor, weight w: Tensor, bias b: Tensor) -> Tensor {
        dense(x, weight: w, bias: b, relu: false)
    }

    /// `relu(x · wᵀ + b)` as one primitive: the ReLU is applied as the product is stored, and the
    /// pullback masks g by the output (y > 0 exactly where x · wᵀ + b > 0) before the three
    /// products of ``linear(_:weight:bias:)``. The same values as `linear(x, ...).relu()`.
    @inlinable public static func linearReLU(_ x: Tensor, weight w: Tensor, bias b: Tensor) -> Tensor {
        dense(x, weight: w, bias: b, relu: true)
    }

    @inlinable static func dense(_ x: Tensor, weight w: Tensor, bias b: Tensor, relu: Bool) -> Tensor {
        require(x.rank == 2 && w.rank == 2 && b.rank == 1 && x.shape[1] == w.shape[1] && b.shape[0] == w.shape[0],
                     "linear: input \(x.shape), weight \(w.shape) and bias \(b.shape) do not fit x · wᵀ + b")
        let (m, n, k) = (x.shape[0], w.shape[0], x.shape[1])
        let out = TensorStorage<Scalar>.make(count: m * n)
        Scalar._linear(m, n, k, x.storage.base, w.storage.base, b.storage.base, out.base, relu)
        let y = Tensor(storage: out, shape: [m, n])
        guard nb_grad_enabled() != 0, x.node != nil || w.node != nil || b.node != nil else { return y }
        return record(relu ? "linear_relu" : "linear", inputs: [x, w, b], output: y, savingOutput: relu) { g, y in
            let g = relu ? passingPositive(g, where: y) : g
            return [x.node == nil ? nil : matmul(g, w), w.node == nil ? nil : matmul(g, x, transposeA: true),
                    b.node == nil ? nil : g.summed(toShape: [n])]
        }
    }

    /// Writes `op(a) · op(b)` into `result`, reusing its memory (not recorded for
    /// differentiation). `result` must already have the product's number of elements.
    @inlinable public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false, into result: inout Tensor) {
        if !isKnownUniquelyReferenced(&result.storage) { result.storage = TensorStorage<Scalar>.make(count: result.count) }
        result.node = nil
        let (shape, _) = matmulKernel(a, b, transposeA, transposeB, into: result.storage)
        result._shape = shape
    }

    /// Matrix product, `a · b`.
    @inlinable public func matmul(_ other: Tensor) -> Tensor { Tensor.matmul(self, other) }

    /// Dot product of all elements (a 0-d tensor).
    @inlinable public func dot(_ other: Tensor) -> Tensor {
        require(count == other.count, "dot: \(shape) and \(other.shape) have different sizes")
        return (flattened() * other.flattened()).sum()
    }
}

infix operator •: MultiplicationPrecedence
/// Matrix product.
@inlinable public func • <S>(a: Tensor<S>, b: Tensor<S>) -> Tensor<S> { Tensor.matmul(a, b) }
