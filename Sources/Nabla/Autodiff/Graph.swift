import CNablaKernels

/// One recorded operation: how the cotangent of its output becomes cotangents of its inputs.
///
/// Pullbacks are written with differentiable tensor operations, so when gradients are taken
/// with the graph kept (higher order), the backward pass is itself recorded and can be
/// differentiated again.
@usableFromInline final class GradNode<Scalar: TensorScalar> {
    let op: String
    let inputs: [GradNode<Scalar>?]
    /// Maps (cotangent of the output, the output itself) to one cotangent per input (nil: zero).
    let pullback: ((Tensor<Scalar>, Tensor<Scalar>) -> [Tensor<Scalar>?])?
    let shape: [Int]
    /// Kept only for operations whose derivative is cheapest in terms of their output.
    let savedOutput: TensorStorage<Scalar>?

    init(op: String, inputs: [GradNode<Scalar>?], shape: [Int], savedOutput: TensorStorage<Scalar>?,
         pullback: ((Tensor<Scalar>, Tensor<Scalar>) -> [Tensor<Scalar>?])?) {
        self.op = op
        self.inputs = inputs
        self.shape = shape
        self.savedOutput = savedOutput
        self.pullback = pullback
    }

    var isLeaf: Bool { pullback == nil }
}

/// Whether operations on this thread are being recorded for differentiation.
public var isRecordingGradients: Bool { nb_grad_enabled() != 0 }

/// Runs `body` without recording operations: nothing computed inside can be differentiated.
/// Use it for parameter updates and evaluation.
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    let previous = nb_grad_enabled()
    nb_set_grad_enabled(0)
    defer { nb_set_grad_enabled(previous) }
    return try body()
}

func withGradientRecording<R>(_ enabled: Bool, _ body: () throws -> R) rethrows -> R {
    let previous = nb_grad_enabled()
    nb_set_grad_enabled(enabled ? 1 : 0)
    defer { nb_set_grad_enabled(previous) }
    return try body()
}

extension Tensor {
    /// Whether this tensor is part of a differentiation graph.
    public var isDifferentiable: Bool { node != nil }

    /// The same values, cut off from the graph: gradients do not flow through it (stop-gradient).
    public func detached() -> Tensor { Tensor(storage: storage, shape: shape) }

    /// The same values as a new leaf of a differentiation graph: operations on it are recorded,
    /// and ``gradients(of:with:wrt:keepingGraph:)`` can differentiate with respect to it.
    public func requiringGradient() -> Tensor {
        Tensor(storage: storage, shape: shape,
               node: GradNode(op: "leaf", inputs: [], shape: shape, savedOutput: nil, pullback: nil))
    }

    /// Records `output` as computed from `inputs`; `pullback(cotangent)` returns one cotangent per
    /// input. This is how every primitive is registered, and how users add their own operations
    /// with a hand-written derivative. The pullback must be built from tensor operations for
    /// higher-order derivatives to be exact.
    public static func recording(_ op: String, inputs: [Tensor], output: Tensor,
                                 pullback: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        record(op, inputs: inputs, output: output, savingOutput: false) { g, _ in pullback(g) }
    }

    /// Like ``recording(_:inputs:output:pullback:)``, for derivatives expressed through the output
    /// (as for `exp`, `tanh` and `sigmoid`).
    public static func recording(_ op: String, inputs: [Tensor], output: Tensor,
                                 pullbackUsingOutput: @escaping (_ cotangent: Tensor, _ output: Tensor) -> [Tensor?]) -> Tensor {
        record(op, inputs: inputs, output: output, savingOutput: true, pullbackUsingOutput)
    }

    @inline(__always)
    static func record(_ op: String, inputs: [Tensor], output: Tensor, savingOutput: Bool,
                       _ pullback: @escaping (Tensor, Tensor) -> [Tensor?]) -> Tensor {
        guard nb_grad_enabled() != 0, inputs.contains(where: { $0.node != nil }) else { return output }
        var out = output
        out.node = GradNode(op: op, inputs: inputs.map { $0.node }, shape: output.shape,
                            savedOutput: savingOutput ? output.storage : nil, pullback: pullback)
        return out
    }

    @inline(__always)
    static func record1(_ op: String, _ input: Tensor, output: Tensor, savingOutput: Bool = false,
                        _ pullback: @escaping (Tensor, Tensor) -> Tensor?) -> Tensor {
        guard nb_grad_enabled() != 0, let n = input.node else { return output }
        var out = output
        out.node = GradNode(op: op, inputs: [n], shape: output.shape,
                            savedOutput: savingOutput ? output.storage : nil,
                            pullback: { g, y in [pullback(g, y)] })
        return out
    }
}

/// Reverse-mode accumulation over the recorded graph.
enum Backpropagation {
    /// Cotangents of `targets` given the cotangent `seed` of `output`. A target that `output`
    /// does not depend on gets nil. With `keepingGraph`, the backward pass is recorded so the
    /// result can be differentiated again.
    static func run<Scalar>(output: Tensor<Scalar>, seed: Tensor<Scalar>, targets: [GradNode<Scalar>],
                            keepingGraph: Bool) -> [Tensor<Scalar>?] {
        guard let root = output.node else { return targets.map { _ in nil } }
        let targetIDs = Set(targets.map { ObjectIdentifier($0) })

        // Post-order DFS; a node matters if a target can be reached from it.
        var order: [GradNode<Scalar>] = []
        var reaches: [ObjectIdentifier: Bool] = [:]
        var stack: [(GradNode<Scalar>, Int)] = [(root, 0)]
        reaches.reserveCapacity(64)
        while let (node, initialNext) = stack.popLast() {
            var next = initialNext
            let id = ObjectIdentifier(node)
            if next == 0 {
                if reaches[id] != nil { continue }
                reaches[id] = false  // in progress
            }
            var pushed = false
            while next < node.inputs.count {
                let child = node.inputs[next]
                next += 1
                if let c = child, reaches[ObjectIdentifier(c)] == nil {
                    stack.append((node, next))
                    stack.append((c, 0))
                    pushed = true
                    break
                }
            }
            if pushed { continue }
            var r = targetIDs.contains(id)
            if !r {
                for c in node.inputs where c != nil && reaches[ObjectIdentifier(c!)] == true { r = true; break }
            }
            reaches[id] = r
            if r { order.append(node) }
        }

        var cotangents: [ObjectIdentifier: Tensor<Scalar>] = [ObjectIdentifier(root): seed]
        withGradientRecording(keepingGraph) {
            for node in order.reversed() {
                let id = ObjectIdentifier(node)
                guard let pullback = node.pullback, let g = cotangents[id] else { continue }
                if !targetIDs.contains(id) { cotangents[id] = nil }
                let y = Tensor<Scalar>(storage: node.savedOutput ?? TensorStorage(count: 0), shape: node.shape,
                                       node: node.savedOutput == nil ? nil : node)
                let inputGrads = pullback(g, y)
                for (i, input) in node.inputs.enumerated() {
                    guard let input, reaches[ObjectIdentifier(input)] == true, let gi = inputGrads[i] else { continue }
                    precondition(gi.shape == input.shape,
                                 "backward of \(node.op): cotangent for input \(i) has shape \(gi.shape), expected \(input.shape)")
                    let key = ObjectIdentifier(input)
                    if let existing = cotangents[key] { cotangents[key] = existing + gi } else { cotangents[key] = gi }
                }
            }
        }
        return targets.map { cotangents[ObjectIdentifier($0)] }
    }
}

/// Gradients of the scalar (or, with a `seed` cotangent, any) tensor `output` with respect to
/// each of `inputs`, which must have been made with ``Tensor/requiringGradient()`` or computed
/// from such tensors. Inputs that `output` does not depend on get zeros.
///
/// - Parameter keepingGraph: record the backward pass so the gradients can be differentiated
///   again (higher-order derivatives).
public func gradients<Scalar>(of output: Tensor<Scalar>, with seed: Tensor<Scalar>? = nil,
                              wrt inputs: [Tensor<Scalar>], keepingGraph: Bool = false) -> [Tensor<Scalar>] {
    let seed = seed ?? Tensor(repeating: 1, shape: output.shape)
    precondition(seed.shape == output.shape,
                 "gradients(of:with:wrt:): seed shape \(seed.shape) does not match output shape \(output.shape)")
    let targets = inputs.map { t -> GradNode<Scalar> in
        precondition(t.node != nil, "gradients(of:with:wrt:): an input of shape \(t.shape) is not differentiable; make it with requiringGradient()")
        return t.node!
    }
    let result = Backpropagation.run(output: output, seed: seed, targets: targets, keepingGraph: keepingGraph)
    return zip(result, inputs).map { $0 ?? Tensor(repeating: 0, shape: $1.shape) }
}
