import CNablaKernels

// Reduction primitives (sum, max, min) and the reductions composed from them.

extension Tensor {
    @inlinable func normalizedAxes(_ axes: [Int]?, _ op: String) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        let a = Set(axes.map { normalizeAxis($0, rank: rank, op: op) })
        require(a.count == axes.count, "\(op): repeated axis in \(axes)")
        return a.sorted()
    }

    /// Shape with the reduced axes kept as size 1.
    @inlinable func keptShape(_ axes: [Int]) -> [Int] {
        var s = shape
        for a in axes { s[a] = 1 }
        return s
    }

    @inlinable func reduceKernel(_ op: Int32, _ axes: [Int], _ name: String) -> Tensor {
        require(op == Int32(NB_REDUCE_SUM) || axes.allSatisfy { shape[$0] > 0 },
                     "\(name): cannot reduce an empty axis of shape \(shape)")
        var current = self
        var curShape = shape
        for a in axes.sorted(by: >) {
            let outer = shapeCount(Array(curShape[..<a])), n = curShape[a], inner = shapeCount(Array(curShape[(a + 1)...]))
            var newShape = curShape
            newShape[a] = 1
            let out = TensorStorage<Scalar>.make(count: outer * inner)
            if n == 0 { Scalar._fill(out.count, 0, out.base) } else {
                Scalar._reduce(op, outer, n, inner, current.storage.base, out.base)
            }
            current = Tensor(storage: out, shape: newShape)
            curShape = newShape
        }
        return current
    }

    /// Sum over `axes` (all axes when nil). Reduced axes are removed unless
    /// `keepingDimensions` is true.
    @inlinable public func sum(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, "sum")
        let kept = keptShape(ax)
        var out = reduceKernel(Int32(NB_REDUCE_SUM), ax, "sum")
        out._shape = keepingDimensions ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let inputShape = shape
        return Tensor.record1("sum", self, output: out) { g, _ in g.reshaped(to: kept).broadcast(to: inputShape) }
    }

    /// Sum over one axis.
    @inlinable public func sum(axis: Int, keepingDimensions: Bool = false) -> Tensor { sum(axes: [axis], keepingDimensions: keepingDimensions) }

    /// Mean over `axes` (all axes when nil).
    @inlinable public func mean(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepingDimensions: keepingDimensions) / Scalar(n)
    }

    @inlinable public func mean(axis: Int, keepingDimensions: Bool = false) -> Tensor { mean(axes: [axis], keepingDimensions: keepingDimensions) }

    @inlinable func extremum(_ op: Int32, _ name: String, _ axes: [Int]?, _ keep: Bool) -> Tensor {
        let ax = normalizedAxes(axes, name)
        let kept = keptShape(ax)
        let reduced = reduceKernel(op, ax, name)
        var out = reduced
        out._shape = keep ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let inputShape = shape
        return Tensor.record1(name, self, output: out) { g, _ in
            // The gradient of each group is split evenly among the elements equal to the extremum.
            let mask = self .== reduced
            let count = mask.reduceKernel(Int32(NB_REDUCE_SUM), ax, name)
            return (g.reshaped(to: kept) / count).broadcast(to: inputShape) * mask
        }
    }

    /// Largest element over `axes` (all when nil). Tied maxima share the gradient equally.
    @inlinable public func max(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        extremum(Int32(NB_REDUCE_MAX), "max", axes, keepingDimensions)
    }

    /// Smallest element over `axes` (all when nil). Tied minima share the gradient equally.
    @inlinable public func min(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        extremum(Int32(NB_REDUCE_MIN), "min", axes, keepingDimensions)
    }

    /// log(sum(exp(x))) over `axes`, computed stably.
    @inlinable public func logSumExp(axes: [Int]? = nil, keepingDimensions: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, "logsumexp")
        let m = max(axes: ax, keepingDimensions: true).detached()
        let safeM = Tensor.where(m.unaryKernel(Int32(NB_ABS)) .< Scalar.infinity, m, Tensor(0))
        let lse = (self - safeM).exp().sum(axes: ax, keepingDimensions: true).log() + safeM
        return keepingDimensions ? lse : lse.reshaped(to: shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element))
    }

    /// Variance over `axes` with `correction` subtracted from the count (1: unbiased, 0: biased).
    @inlinable public func variance(axes: [Int]? = nil, correction: Int = 1, keepingDimensions: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes, "var")
        let n = ax.reduce(1) { $0 * shape[$1] }
        let centered = self - mean(axes: ax, keepingDimensions: true)
        return (centered * centered).sum(axes: ax, keepingDimensions: keepingDimensions) / Scalar(n - correction)
    }

    /// Standard deviation (square root of ``variance(axes:correction:keepingDimensions:)``).
    @inlinable public func standardDeviation(axes: [Int]? = nil, correction: Int = 1, keepingDimensions: Bool = false) -> Tensor {
        variance(axes: axes, correction: correction, keepingDimensions: keepingDimensions).squareRoot()
    }

    /// log(softmax(x)) along `axis`, computed stably.
    @inlinable public func logSoftmax(axis: Int = -1) -> Tensor {
        self - logSumExp(axes: [axis], keepingDimensions: true)
    }

    /// The mean over rows of −log softmax(self)[i, targets[i]] for logits [n, k]: one fused pass
    /// (row maximum, exponentials, log-sum-exp, probabilities) forward, (P − onehot)/n backward.
    /// When the backward pass is itself recorded (higher order), the derivative is built from
    /// differentiable ops instead, so derivatives of every order stay exact.
    @inlinable public func softmaxCrossEntropy(targets: [Int]) -> Tensor {
        require(rank == 2 && targets.count == shape[0] && targets.allSatisfy { $0 >= 0 && $0 < shape[1] },
                     "softmaxCrossEntropy: logits \(shape) need [n, k] with one target in 0..<k per row, got \(targets.count) targets")
        let (n, k) = (shape[0], shape[1])
        let probs = TensorStorage<Scalar>.make(count: n * k), rowLoss = TensorStorage<Scalar>.make(count: n)
        targets.withUnsafeBufferPointer { t in Scalar._softmaxCrossEntropy(n, k, storage.base, t.baseAddress!, probs.base, rowLoss.base) }
        var total = 0.0
        for i in 0..<n { total += Double(rowLoss.base[i]) }
        let output = Tensor(Scalar(total / Double(n)))
        let logits = self
        return Tensor.record("softmax_cross_entropy", inputs: [self], output: output, savingOutput: false) { g, _ in
            if isRecordingGradients {
                var onehot = [Scalar](repeating: 0, count: n * k)
                for (i, t) in targets.enumerated() { onehot[i * k + t] = 1 }
                return [(logits.softmax(axis: 1) - Tensor(shape: [n, k], scalars: onehot)) * (g / Scalar(n))]
            }
            let out = TensorStorage<Scalar>.make(count: n * k)
            let scale = g.scalar / Scalar(n)
            for i in 0..<(n * k) { out.base[i] = probs.base[i] * scale }
            for (i, t) in targets.enumerated() { out.base[i * k + t] -= scale }
            return [Tensor(storage: out, shape: [n, k])]
        }
    }

    /// exp(x) / sum(exp(x)) along `axis`.
    @inlinable public func softmax(axis: Int = -1) -> Tensor { logSoftmax(axis: axis).exp() }

    /// Euclidean (L2) norm of all elements: the magnitude of a gradient.
    @inlinable public func norm() -> Tensor { (self * self).sum().squareRoot() }

    /// Index of the largest element along `axis` (constant, ties go to the first).
    @inlinable public func argmax(axis: Int = -1) -> [Int] {
        let a = normalizeAxis(axis, rank: rank, op: "argmax")
        let outer = shapeCount(Array(shape[..<a])), n = shape[a], inner = shapeCount(Array(shape[(a + 1)...]))
        var result = [Int](repeating: 0, count: outer * inner)
        let p = storage.base
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0
                var bestValue = p[o * n * inner + i]
                // NaN counts as the largest (the first NaN wins), as in the established frameworks.
                if !bestValue.isNaN {
                    for k in 1..<Swift.max(n, 1) {
                        let v = p[(o * n + k) * inner + i]
                        if v.isNaN { best = k; break }
                        if v > bestValue { best = k; bestValue = v }
                    }
                }
                result[o * inner + i] = best
            }
        }
        return result
    }
}
