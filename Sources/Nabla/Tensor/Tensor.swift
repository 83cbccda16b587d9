import CNablaKernels

/// The memory behind one or more tensors: a count and the elements. Tensors share it until one
/// of them is written to (copy-on-write). The elements live in a 64-byte aligned buffer that
/// goes back to a per-thread cache when the storage is freed, so the intermediate tensors of a
/// loop reuse memory that is still in cache.
public final class TensorStorage<Scalar: TensorScalar> {
    /// Number of elements.
    public let count: Int
    /// The first element; valid while the storage is alive.
    public let base: UnsafeMutablePointer<Scalar>

    @inlinable init(count: Int) {
        self.count = count
        let bytes = Swift.max(count, 1) * MemoryLayout<Scalar>.stride
        guard let p = nb_buffer_alloc(bytes) else { fatalError("Tensor: cannot allocate \(bytes) bytes") }
        base = p.bindMemory(to: Scalar.self, capacity: Swift.max(count, 1))
    }

    deinit { nb_buffer_free(base, Swift.max(count, 1) * MemoryLayout<Scalar>.stride) }

    @inlinable static func make(count: Int) -> TensorStorage { TensorStorage(count: count) }

    @inlinable static func make(repeating value: Scalar, count: Int) -> TensorStorage {
        let s = make(count: count)
        Scalar._fill(count, value, s.base)
        return s
    }

    @inlinable func copy() -> TensorStorage {
        let s = TensorStorage.make(count: count)
        s.base.update(from: base, count: count)
        return s
    }
}

/// An n-dimensional array of `Float` or `Double` with value semantics, NumPy broadcasting and
/// automatic differentiation.
///
/// Elements are stored contiguously in row-major order. A tensor produced by an operation on
/// tensors that are being differentiated remembers how it was made (see ``gradient(at:of:)``),
/// so gradients of any order can be taken of code that simply computes with tensors.
///
/// ```swift
/// let x: Tensor<Double> = [1, 3]
/// let g = gradient(at: x) { v in (v * v).sum() + v[0] * v[1] }   // [5, 7]
/// ```
public struct Tensor<Scalar: TensorScalar>: @unchecked Sendable {
    @usableFromInline internal var storage: TensorStorage<Scalar>
    /// The size of each dimension; `[]` for a scalar (0-d) tensor.
    public var shape: [Int] { _shape }
    @usableFromInline internal var _shape: [Int]
    @usableFromInline internal var node: GradNode<Scalar>?

    @inlinable internal init(storage: TensorStorage<Scalar>, shape: [Int], node: GradNode<Scalar>? = nil) {
        self.storage = storage
        self._shape = shape
        self.node = node
    }

    /// A tensor of the given shape holding `scalars` in row-major order.
    @inlinable public init(shape: [Int], scalars: [Scalar]) {
        let n = shapeCount(shape)
        require(shape.allSatisfy { $0 >= 0 }, "Tensor(shape:scalars:): negative dimension in shape \(shape)")
        require(scalars.count == n, "Tensor(shape:scalars:): shape \(shape) holds \(n) elements but \(scalars.count) were given")
        let s = TensorStorage<Scalar>.make(count: n)
        scalars.withUnsafeBufferPointer { if n > 0 { s.base.update(from: $0.baseAddress!, count: n) } }
        self.init(storage: s, shape: shape)
    }

    /// A tensor of the given shape whose elements are produced from a Swift sequence.
    @inlinable public init<S: Sequence>(shape: [Int], _ elements: S) where S.Element == Scalar {
        self.init(shape: shape, scalars: Array(elements))
    }

    /// A 1-D tensor.
    @inlinable public init(_ scalars: [Scalar]) { self.init(shape: [scalars.count], scalars: scalars) }

    /// A 0-d (scalar) tensor.
    @inlinable public init(_ value: Scalar) {
        let s = TensorStorage<Scalar>.make(count: 1)
        s.base.pointee = value
        self.init(storage: s, shape: [])
    }

    /// A tensor of `shape` filled with `value`.
    @inlinable public init(repeating value: Scalar, shape: [Int]) {
        self.init(storage: TensorStorage<Scalar>.make(repeating: value, count: shapeCount(shape)), shape: shape)
    }

    /// Converts a tensor of another precision (not differentiable: the result is a constant).
    @inlinable public init<Other: TensorScalar>(converting other: Tensor<Other>) {
        let s = TensorStorage<Scalar>.make(count: other.count)
        if let d = other.storage.base as? UnsafeMutablePointer<Scalar> {
            s.base.update(from: d, count: other.count)
        } else {
            for i in 0..<other.count { s.base[i] = Scalar(other.storage.base[i]) }
        }
        self.init(storage: s, shape: other.shape)
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Number of elements.
    public var count: Int { storage.count }
    /// The elements in row-major order.
    public var scalars: [Scalar] { Array(UnsafeBufferPointer(start: storage.base, count: count)) }
    /// The single element of a tensor with one element.
    public var scalar: Scalar {
        require(count == 1, "Tensor.scalar: tensor of shape \(shape) has \(count) elements, not 1")
        return storage.base[0]
    }

    /// Reads the elements without copying.
    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafeBufferPointer(start: storage.base, count: count)) }
    }

    /// Writes the elements in place (copying first if the storage is shared). A tensor written to
    /// this way is no longer part of a differentiation graph.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        node = nil
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    /// Element access by full index, e.g. `t[element: 1, 2]`.
    public subscript(element index: Int...) -> Scalar {
        get { storage.base[flatIndex(index)] }
        set {
            let i = flatIndex(index)
            withUnsafeMutableBufferPointer { $0[i] = newValue }
        }
    }

    @inlinable func flatIndex(_ index: [Int]) -> Int {
        require(index.count == rank, "Tensor element index \(index) does not match rank \(rank) of shape \(shape)")
        var flat = 0
        for (d, i) in index.enumerated() {
            let j = i < 0 ? i + shape[d] : i
            require(j >= 0 && j < shape[d], "Tensor element index \(index) is out of bounds for shape \(shape)")
            flat = flat * shape[d] + j
        }
        return flat
    }

    /// The elements as nested Swift arrays is rarely what you want; `scalars` with `shape` is.
    /// For a 2-D tensor, its rows.
    public var rows: [[Scalar]] {
        require(rank == 2, "Tensor.rows needs a 2-D tensor, got shape \(shape)")
        let s = scalars
        return (0..<shape[0]).map { Array(s[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
    }
}

@inlinable func shapeCount(_ shape: [Int]) -> Int {
    var n = 1
    for d in shape { n *= d }
    return n
}

@inlinable func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[d] = s
        s *= shape[d]
    }
    return strides
}

/// Broadcast shape of two shapes under NumPy rules, or nil when they are incompatible.
@inlinable public func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    if a == b { return a }
    let n = Swift.max(a.count, b.count)
    var out = [Int](repeating: 1, count: n)
    for i in 0..<n {
        let da = i < n - a.count ? 1 : a[i - (n - a.count)]
        let db = i < n - b.count ? 1 : b[i - (n - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Strides that read a tensor of `shape` as if it had `target` shape (0 where broadcast).
@inlinable func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    let own = contiguousStrides(shape)
    let offset = target.count - shape.count
    var out = [Int](repeating: 0, count: target.count)
    for i in 0..<shape.count where shape[i] != 1 || target[i + offset] == 1 {
        out[i + offset] = shape[i] == 1 ? 0 : own[i]
    }
    return out
}

@inlinable func normalizeAxis(_ axis: Int, rank: Int, op: String) -> Int {
    let a = axis < 0 ? axis + rank : axis
    require(a >= 0 && a < Swift.max(rank, 1), "\(op): axis \(axis) is out of range for rank \(rank)")
    return a
}
