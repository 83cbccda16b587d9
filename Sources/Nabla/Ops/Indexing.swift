import CNablaKernels

/// Integer indices with a shape, as used by ``Tensor/gather(axis:index:)`` and embeddings.
public struct IndexTensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Int]
    @inlinable public init(shape: [Int], values: [Int]) {
        require(shapeCount(shape) == values.count, "IndexTensor: shape \(shape) needs \(shapeCount(shape)) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }
    @inlinable public init(_ values: [Int]) { self.init(shape: [values.count], values: values) }
}

// Two primitives carry all indexing: `take` (read elements at flat positions) and its adjoint
// `scatterAdd` (add elements into flat positions). A position of -1 reads zero and is skipped
// when scattering, which is how padding is expressed. Slicing, gather, index-select, embedding,
// im2col and pooling are built on them.

extension Tensor {
    /// Elements at the given flat positions (-1 reads 0), shaped `shape`.
    @inlinable public func take(flatIndices index: [Int], shape outShape: [Int]) -> Tensor {
        require(index.count == shapeCount(outShape), "take: \(index.count) indices for shape \(outShape)")
        let out = TensorStorage<Scalar>.make(count: index.count)
        let n = count
        index.withUnsafeBufferPointer { ip in
            for i in 0..<ip.count {
                let j = ip[i]
                require(j >= -1 && j < n, "take: index \(j) out of range for \(n) elements")
                out.base[i] = j < 0 ? 0 : storage.base[j]
            }
        }
        let inputShape = shape
        return Tensor.record1("take", self, output: Tensor(storage: out, shape: outShape)) { g, _ in
            g.scatterAdding(flatIndices: index, shape: inputShape)
        }
    }

    /// A tensor of `shape` that is zero except that element i of `self` is added at flat
    /// position `index[i]` (skipped when -1). The adjoint of ``take(flatIndices:shape:)``.
    @inlinable public func scatterAdding(flatIndices index: [Int], shape outShape: [Int]) -> Tensor {
        require(index.count == count, "scatterAdd: \(index.count) indices for \(count) elements")
        let out = TensorStorage<Scalar>.make(repeating: 0, count: shapeCount(outShape))
        let n = out.count
        index.withUnsafeBufferPointer { ip in
            for i in 0..<ip.count {
                let j = ip[i]
                require(j >= -1 && j < n, "scatterAdd: index \(j) out of range for \(n) elements")
                if j >= 0 { out.base[j] += storage.base[i] }
            }
        }
        let inputShape = shape
        return Tensor.record1("scatter_add", self, output: Tensor(storage: out, shape: outShape)) { g, _ in
            g.take(flatIndices: index, shape: inputShape)
        }
    }

    /// Flat positions of every element of an index grid given, per output position, the source
    /// coordinates. `coordinate(outIndex, axis)` returns the source index along `axis`.
    @inlinable func flatPositions(outShape: [Int], _ source: ([Int]) -> [Int]?) -> [Int] {
        let strides = contiguousStrides(shape)
        var positions = [Int](repeating: 0, count: shapeCount(outShape))
        var idx = [Int](repeating: 0, count: outShape.count)
        for i in 0..<positions.count {
            if let src = source(idx) {
                var p = 0
                for d in 0..<src.count { p += src[d] * strides[d] }
                positions[i] = p
            } else { positions[i] = -1 }
            var d = outShape.count - 1
            while d >= 0 {
                idx[d] += 1
                if idx[d] < outShape[d] { break }
                idx[d] = 0
                d -= 1
            }
        }
        return positions
    }

    /// Elements `start, start + step, ...` below `end` along `axis`.
    @inlinable public func slice(axis: Int, start: Int, end: Int, step: Int = 1) -> Tensor {
        let a = normalizeAxis(axis, rank: rank, op: "slice")
        var ranges = shape.map { (0, $0, 1) }
        ranges[a] = (start, end, step)
        return slice(ranges)
    }

    /// One `(start, end, step)` per dimension; negative start/end count from the end.
    @inlinable public func slice(_ ranges: [(start: Int, end: Int, step: Int)]) -> Tensor {
        require(ranges.count == rank, "slice: \(ranges.count) ranges for shape \(shape)")
        var offset = 0, strides: [Int] = [], outShape: [Int] = []
        let own = contiguousStrides(shape)
        for (d, r) in ranges.enumerated() {
            require(r.step >= 1, "slice: step \(r.step) must be at least 1")
            let s = Swift.min(Swift.max(r.start < 0 ? r.start + shape[d] : r.start, 0), shape[d])
            let e = Swift.min(Swift.max(r.end < 0 ? r.end + shape[d] : r.end, 0), shape[d])
            outShape.append(e > s ? (e - s + r.step - 1) / r.step : 0)
            offset += s * own[d]
            strides.append(r.step * own[d])
        }
        return stridedRead(offset: offset, strides: strides, shape: outShape)
    }

    /// The elements at `offset + Σ iₖ stridesₖ` for every index of `outShape` (a view-like copy;
    /// the positions must not repeat). Its adjoint is ``stridedWrite(offset:strides:shape:)``.
    @inlinable func stridedRead(offset: Int, strides: [Int], shape outShape: [Int]) -> Tensor {
        let out = TensorStorage<Scalar>.make(count: shapeCount(outShape))
        if out.count > 0 { Scalar._copyStrided(Int32(outShape.count), outShape, storage.base + offset, strides, out.base) }
        let output = withExtendedLifetime(self) { Tensor(storage: out, shape: outShape) }
        guard nb_grad_enabled() != 0, let n = node else { return output }
        if nb_anomaly_detection() != 0 { AnomalyDetection.check(output, op: "slice", phase: .forward) }
        // The adjoint (zero padding) is applied by the backward pass itself, into the input's
        // cotangent in place: see Pullback.slice.
        var result = output
        result.node = GradNode(op: "slice", input0: n, input1: nil, inputCount: 1, shape: outShape, savedOutput: nil,
                               pullback: .slice(offset: offset, strides: strides))
        return result
    }

    /// A zero tensor of `shape` with `self` written at `offset + Σ iₖ stridesₖ`: the adjoint of
    /// ``stridedRead(offset:strides:shape:)``.
    @inlinable func stridedWrite(offset: Int, strides: [Int], shape outShape: [Int]) -> Tensor {
        let out = TensorStorage<Scalar>.make(repeating: 0, count: shapeCount(outShape))
        if count > 0 { Scalar._storeStrided(Int32(rank), shape, storage.base, out.base + offset, strides) }
        let sliceShape = shape
        return Tensor.record1("pad", self, output: withExtendedLifetime(self) { Tensor(storage: out, shape: outShape) }) { g, _ in
            g.stridedRead(offset: offset, strides: strides, shape: sliceShape)
        }
    }

    /// Sub-tensor at position `i` along the first axis (the axis is removed).
    public subscript(_ i: Int) -> Tensor {
        require(rank >= 1, "subscript: a 0-d tensor cannot be indexed")
        let j = i < 0 ? i + shape[0] : i
        require(j >= 0 && j < shape[0], "subscript: index \(i) out of range for shape \(shape)")
        return slice(axis: 0, start: j, end: j + 1).reshaped(to: Array(shape.dropFirst()))
    }

    /// The rows (entries along axis 0) in `range`: `x[1..<3]`, `x[2...]`, `x[..<2]`. Negative
    /// bounds count from the end, as in NumPy (`x[(-2)...]` is the last two rows).
    public subscript<R: RangeExpression>(_ range: R) -> Tensor where R.Bound == Int {
        slice(along: 0, range, op: "subscript")
    }

    /// Index `i` along the last axis, whatever comes before it: `x[..., -1]` is the last column
    /// of a matrix (NumPy's `x[..., -1]`).
    public subscript(_: UnboundedRange, _ i: Int) -> Tensor {
        require(rank >= 1, "subscript: a 0-d tensor cannot be indexed")
        let axis = rank - 1, j = i < 0 ? i + shape[axis] : i
        require(j >= 0 && j < shape[axis], "subscript: index \(i) out of range for the last axis of shape \(shape)")
        return slice(axis: axis, start: j, end: j + 1).reshaped(to: Array(shape.dropLast()))
    }

    /// A range along the last axis: `x[..., 1..<3]`.
    public subscript<R: RangeExpression>(_: UnboundedRange, _ range: R) -> Tensor where R.Bound == Int {
        slice(along: rank - 1, range, op: "subscript")
    }

    func slice<R: RangeExpression>(along axis: Int, _ range: R, op: String) -> Tensor where R.Bound == Int {
        require(rank >= 1 && axis >= 0, "\(op): a 0-d tensor cannot be sliced")
        let n = shape[axis]
        func resolved(_ b: Int) -> Int { b < 0 ? b + n : b }
        let lower: Int, upper: Int
        switch range {
        case let r as Range<Int>: (lower, upper) = (resolved(r.lowerBound), resolved(r.upperBound))
        case let r as ClosedRange<Int>: (lower, upper) = (resolved(r.lowerBound), resolved(r.upperBound) + 1)
        case let r as PartialRangeFrom<Int>: (lower, upper) = (resolved(r.lowerBound), n)
        case let r as PartialRangeUpTo<Int>: (lower, upper) = (0, resolved(r.upperBound))
        case let r as PartialRangeThrough<Int>: (lower, upper) = (0, resolved(r.upperBound) + 1)
        default: let r = range.relative(to: 0..<n); (lower, upper) = (r.lowerBound, r.upperBound)
        }
        require(lower >= 0 && lower <= upper && upper <= n,
                "\(op): range \(range) does not fit axis \(axis) of shape \(shape)")
        return slice(axis: axis, start: lower, end: upper)
    }

    /// `out[i] = x[i with its axis-th coordinate replaced by index[i]]`; `index` has the rank of
    /// `self`. Repeated indices accumulate gradient.
    @inlinable public func gather(axis: Int, index: IndexTensor) -> Tensor {
        let a = normalizeAxis(axis, rank: rank, op: "gather")
        require(index.shape.count == rank, "gather: index of shape \(index.shape) must have the rank of \(shape)")
        let idxStrides = contiguousStrides(index.shape)
        let positions = flatPositions(outShape: index.shape) { i in
            var flat = 0
            for d in 0..<i.count { flat += i[d] * idxStrides[d] }
            var src = i
            let v = index.values[flat]
            require(v >= -shape[a] && v < shape[a], "gather: index \(v) out of range for axis \(a) of the input \(shape)")
            src[a] = v < 0 ? v + shape[a] : v
            return src
        }
        return take(flatIndices: positions, shape: index.shape)
    }

    /// The entries `indices[0], indices[1], ...` along `axis`.
    @inlinable public func indexSelect(axis: Int, indices: [Int]) -> Tensor {
        let a = normalizeAxis(axis, rank: rank, op: "index_select")
        var outShape = shape
        outShape[a] = indices.count
        for v in indices { require(v >= -shape[a] && v < shape[a], "index_select: index \(v) out of range for axis \(a) of the input \(shape)") }
        if a == 0 {
            // Whole rows (mini-batches, subsets): a copy per row, not per element.
            let width = shape.dropFirst().reduce(1, *)
            return reshaped(to: [shape[0], width]).takeRows(indices.map { $0 < 0 ? $0 + shape[0] : $0 }).reshaped(to: outShape)
        }
        let positions = flatPositions(outShape: outShape) { i in
            var src = i
            let v = indices[i[a]]
            src[a] = v < 0 ? v + shape[a] : v
            return src
        }
        return take(flatIndices: positions, shape: outShape)
    }

    /// Rows of a [num, dim] table: output shape `indices.shape + [dim]`. Rows looked up at
    /// `paddingIndex` are returned as stored but receive no gradient.
    @inlinable public func embeddingLookup(_ indices: IndexTensor, paddingIndex: Int? = nil) -> Tensor {
        require(rank == 2, "embedding: weight must be [num, dim], got \(shape)")
        let dim = shape[1]
        let pad = paddingIndex.map { $0 < 0 ? $0 + shape[0] : $0 }
        if pad == nil { return takeRows(indices.values).reshaped(to: indices.shape + [dim]) }
        var positions = [Int](), padded = [Int]()
        positions.reserveCapacity(indices.values.count * dim)
        for v in indices.values {
            require(v >= 0 && v < shape[0], "embedding: index \(v) out of range for \(shape[0]) rows")
            for j in 0..<dim {
                let isPad = v == pad
                positions.append(isPad ? -1 : v * dim + j)
                if pad != nil { padded.append(isPad ? v * dim + j : -1) }
            }
        }
        let out = take(flatIndices: positions, shape: indices.shape + [dim])
        guard pad != nil else { return out }
        return out + detached().take(flatIndices: padded, shape: indices.shape + [dim])
    }

    /// Rows `rows[0], rows[1], …` of a matrix [n, d]: [rows.count, d]. Repeated rows accumulate
    /// gradient. The row-wise form of ``take(flatIndices:shape:)`` (a copy per row, not per element).
    @inlinable public func takeRows(_ rows: [Int]) -> Tensor {
        require(rank == 2, "take_rows: the table must be [n, d], got \(shape)")
        let (n, d) = (shape[0], shape[1])
        if let bad = rows.first(where: { $0 < 0 || $0 >= n }) { usageFailure("take_rows: row \(bad) out of range for \(n) rows") }
        let out = TensorStorage<Scalar>.make(count: rows.count * d)
        withExtendedLifetime(self) {
            for (i, r) in rows.enumerated() { (out.base + i * d).update(from: storage.base + r * d, count: d) }
        }
        return Tensor.record1("take_rows", self, output: Tensor(storage: out, shape: [rows.count, d])) { g, _ in
            g.scatterAddingRows(rows, count: n)
        }
    }

    /// A matrix [count, d] that is zero except that row i of `self` [rows.count, d] is added to
    /// row `rows[i]`. The adjoint of ``takeRows(_:)``.
    @inlinable public func scatterAddingRows(_ rows: [Int], count n: Int) -> Tensor {
        require(rank == 2 && shape[0] == rows.count, "scatter_add_rows: \(rows.count) rows for a tensor of shape \(shape)")
        let d = shape[1]
        if let bad = rows.first(where: { $0 < 0 || $0 >= n }) { usageFailure("scatter_add_rows: row \(bad) out of range for \(n) rows") }
        let out = TensorStorage<Scalar>.make(repeating: 0, count: n * d)
        withExtendedLifetime(self) {
            for (i, r) in rows.enumerated() { Scalar._axpy(d, 1, storage.base + i * d, out.base + r * d) }
        }
        return Tensor.record1("scatter_add_rows", self, output: Tensor(storage: out, shape: [n, d])) { g, _ in
            g.takeRows(rows)
        }
    }
}
