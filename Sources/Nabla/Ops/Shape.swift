import CNablaKernels

// Shape primitives: reshape, broadcast and its adjoint (sum to shape), permute, concatenate.

extension Tensor {
    /// The same elements in row-major order with a new shape; one dimension may be -1 (inferred).
    /// Shares storage with `self`.
    @inlinable public func reshaped(to newShape: [Int]) -> Tensor {
        var target = newShape
        if let i = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            require(known > 0 && count % known == 0, "reshape: cannot reshape \(shape) to \(newShape)")
            target[i] = count / known
        }
        require(shapeCount(target) == count && target.allSatisfy { $0 >= 0 },
                     "reshape: cannot reshape \(shape) (\(count) elements) to \(newShape)")
        if target == shape { return self }
        let inputShape = shape
        return Tensor.record1("reshape", self, output: Tensor(storage: storage, shape: target)) { g, _ in g.reshaped(to: inputShape) }
    }

    /// All elements as a 1-D tensor.
    @inlinable public func flattened() -> Tensor { reshaped(to: [count]) }

    /// Inserts an axis of size 1 at `axis`.
    @inlinable public func expandingDimension(at axis: Int) -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        require(a >= 0 && a <= rank, "expandingDimension: axis \(axis) out of range for rank \(rank)")
        var s = shape
        s.insert(1, at: a)
        return reshaped(to: s)
    }

    /// Removes axes of size 1 (all of them when `axes` is nil).
    @inlinable public func squeezed(axes: [Int]? = nil) -> Tensor {
        let ax = normalizedAxes(axes ?? shape.indices.filter { shape[$0] == 1 }, "squeeze")
        require(ax.allSatisfy { shape[$0] == 1 }, "squeeze: axes \(ax) of shape \(shape) are not all of size 1")
        return reshaped(to: shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element))
    }

    @inlinable func broadcastKernel(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let out = TensorStorage<Scalar>.make(count: shapeCount(target))
        if out.count > 0 {
            let strides = broadcastStrides(shape, to: target)
            Scalar._copyStrided(Int32(target.count), target, storage.base, strides, out.base)
        }
        return Tensor(storage: out, shape: target)
    }

    /// Repeats the tensor along dimensions of size 1 (and new leading dimensions) to `target`.
    @inlinable public func broadcast(to target: [Int]) -> Tensor {
        if target == shape { return self }
        require(broadcastShapes(shape, target) == target, "broadcast: shape \(shape) cannot be broadcast to \(target)")
        let inputShape = shape
        return Tensor.record1("broadcast", self, output: broadcastKernel(to: target)) { g, _ in g.summed(toShape: inputShape) }
    }

    /// Sums over the dimensions that broadcasting to `self.shape` from `target` stretched: the
    /// adjoint of ``broadcast(to:)``.
    @inlinable public func summed(toShape target: [Int]) -> Tensor {
        if target == shape { return self }
        let lead = rank - target.count
        require(lead >= 0, "summed(toShape:): \(target) has more dimensions than \(shape)")
        var axes = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        let reduced = reduceKernel(Int32(NB_REDUCE_SUM), axes, "sum_to_shape")
        let out = Tensor(storage: reduced.storage, shape: target)
        let inputShape = shape
        return Tensor.record1("sum_to_shape", self, output: out) { g, _ in g.broadcast(to: inputShape) }
    }

    /// Output axis i is input axis `dims[i]`.
    @inlinable public func permuted(_ dims: [Int]) -> Tensor {
        let d = dims.map { normalizeAxis($0, rank: rank, op: "permute") }
        require(d.count == rank && Set(d).count == rank, "permute: \(dims) is not a permutation of the \(rank) axes of \(shape)")
        if d == Array(0..<rank) { return self }
        let own = contiguousStrides(shape)
        let outShape = d.map { shape[$0] }
        let out = TensorStorage<Scalar>.make(count: count)
        if count > 0 { Scalar._copyStrided(Int32(rank), outShape, storage.base, d.map { own[$0] }, out.base) }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, a) in d.enumerated() { inverse[a] = i }
        return Tensor.record1("permute", self, output: Tensor(storage: out, shape: outShape)) { g, _ in g.permuted(inverse) }
    }

    /// Swaps two axes.
    @inlinable public func transposed(_ axis0: Int, _ axis1: Int) -> Tensor {
        var d = Array(0..<rank)
        d.swapAt(normalizeAxis(axis0, rank: rank, op: "transpose"), normalizeAxis(axis1, rank: rank, op: "transpose"))
        return permuted(d)
    }

    /// The transpose of a matrix (the last two axes swapped).
    public var T: Tensor {
        require(rank >= 2, "T: needs at least 2 dimensions, got shape \(shape)")
        return transposed(-1, -2)
    }

    /// Joins tensors along an existing axis.
    @inlinable public static func concatenate(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        require(!tensors.isEmpty, "concatenate: no tensors")
        let first = tensors[0]
        let a = normalizeAxis(axis, rank: first.rank, op: "concatenate")
        for t in tensors {
            require(t.rank == first.rank && t.shape.enumerated().allSatisfy { $0.offset == a || $0.element == first.shape[$0.offset] },
                         "concatenate: shapes \(tensors.map(\.shape)) differ outside axis \(axis)")
        }
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let outer = shapeCount(Array(first.shape[..<a])), inner = shapeCount(Array(first.shape[(a + 1)...]))
        let rowOut = outShape[a] * inner
        let out = TensorStorage<Scalar>.make(count: shapeCount(outShape))
        var offset = 0
        var starts: [Int] = []
        for t in tensors {
            starts.append(offset)
            let row = t.shape[a] * inner
            for o in 0..<outer where row > 0 {
                (out.base + o * rowOut + offset * inner).update(from: t.storage.base + o * row, count: row)
            }
            offset += t.shape[a]
        }
        return record("concatenate", inputs: tensors, output: Tensor(storage: out, shape: outShape), savingOutput: false) { g, _ in
            zip(tensors, starts).map { t, s in t.node == nil ? nil : g.slice(axis: a, start: s, end: s + t.shape[a]) }
        }
    }

    /// Stacks tensors of equal shape along a new axis.
    @inlinable public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        require(!tensors.isEmpty, "stack: no tensors")
        require(tensors.allSatisfy { $0.shape == tensors[0].shape }, "stack: shapes differ: \(tensors.map(\.shape))")
        let a = axis < 0 ? axis + tensors[0].rank + 1 : axis
        return concatenate(tensors.map { $0.expandingDimension(at: a) }, axis: a)
    }
}
