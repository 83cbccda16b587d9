import CNablaKernels

/// How a recorded operation's output cotangent becomes cotangents of its inputs. Operations of
/// one and two inputs (almost all) return their cotangents directly, so the backward pass
/// allocates no array per node.
@usableFromInline enum Pullback<Scalar: TensorScalar> {
    /// (cotangent of the output, the output) ↦ cotangent of the one input (nil: zero).
    case unary((Tensor<Scalar>, Tensor<Scalar>) -> Tensor<Scalar>?)
    /// (cotangent of the output, the output) ↦ cotangents of the two inputs.
    case binary((Tensor<Scalar>, Tensor<Scalar>) -> (Tensor<Scalar>?, Tensor<Scalar>?))
    /// (cotangent of the output, the output) ↦ one cotangent per input.
    case general((Tensor<Scalar>, Tensor<Scalar>) -> [Tensor<Scalar>?])
    /// A slice: the output is the input's elements at `offset + Σ iₖ stridesₖ`. Its cotangent is
    /// added into just those elements of the input's cotangent, so T slices of one tensor (the
    /// time steps of a sequence, the gates of an LSTM) cost O(T · slice) in the backward pass
    /// rather than O(T · whole). (When the backward pass is recorded, the differentiable
    /// zero-padding adjoint is used instead.)
    case slice(offset: Int, strides: [Int])
}

/// One recorded operation: how the cotangent of its output becomes cotangents of its inputs.
///
/// Pullbacks are written with differentiable tensor operations, so when gradients are taken
/// with the graph kept (higher order), the backward pass is itself recorded and can be
/// differentiated again.
@usableFromInline final class GradNode<Scalar: TensorScalar> {
    @usableFromInline let op: String
    /// The inputs' nodes (nil for an input that is not differentiated): the first two inline,
    /// the rest (operations of three or more inputs) in `moreInputs`.
    /// (Variables only so that `deinit` can take them apart without recursion.)
    @exclusivity(unchecked) @usableFromInline var input0: GradNode<Scalar>?
    @exclusivity(unchecked) @usableFromInline var input1: GradNode<Scalar>?
    @exclusivity(unchecked) @usableFromInline var moreInputs: [GradNode<Scalar>?]
    @usableFromInline let inputCount: Int
    @exclusivity(unchecked) @usableFromInline var pullback: Pullback<Scalar>?
    @usableFromInline let shape: [Int]
    /// Kept only for operations whose derivative is cheapest in terms of their output.
    @usableFromInline let savedOutput: TensorStorage<Scalar>?

    @inlinable init(op: String, inputs: [GradNode<Scalar>?], shape: [Int], savedOutput: TensorStorage<Scalar>?,
         pullback: Pullback<Scalar>?) {
        self.op = op
        inputCount = inputs.count
        input0 = inputs.count > 0 ? inputs[0] : nil
        input1 = inputs.count > 1 ? inputs[1] : nil
        moreInputs = inputs.count > 2 ? Array(inputs[2...]) : []
        self.shape = shape
        self.savedOutput = savedOutput
        self.pullback = pullback
    }

    @inlinable init(op: String, input0: GradNode<Scalar>?, input1: GradNode<Scalar>?, inputCount: Int, shape: [Int],
                    savedOutput: TensorStorage<Scalar>?, pullback: Pullback<Scalar>?) {
        self.op = op
        self.input0 = input0
        self.input1 = input1
        self.moreInputs = []
        self.inputCount = inputCount
        self.shape = shape
        self.savedOutput = savedOutput
        self.pullback = pullback
    }

    /// The node of input `i`.
    @inlinable @inline(__always) func input(_ i: Int) -> GradNode<Scalar>? {
        i == 0 ? input0 : i == 1 ? input1 : moreInputs[i - 2]
    }

    // Scratch space of the backward pass that last visited this node (see Backpropagation).
    // One graph is differentiated by one thread at a time and these are never accessed in
    // overlapping ways, so they skip the run-time exclusivity check (a quarter of the cost of a
    // backward pass over small tensors).
    @exclusivity(unchecked) @usableFromInline var visitedInPass: UInt64 = 0
    @exclusivity(unchecked) @usableFromInline var targetOfPass: UInt64 = 0
    @exclusivity(unchecked) @usableFromInline var reachesTarget = false
    @exclusivity(unchecked) @usableFromInline var cotangent: Tensor<Scalar>?

    @usableFromInline var isLeaf: Bool { inputCount == 0 }

    /// Releases the graph behind this node with a loop rather than a chain of nested `deinit`s:
    /// a graph of 50,000 chained operations (a long RNN, a simulation) would otherwise overflow
    /// the stack when its last tensor goes away, even without a backward pass.
    deinit {
        // The pullback's closure may hold the input tensors too; drop it first so that the
        // inputs this node alone holds are recognisably unique.
        pullback = nil
        guard input0 != nil || input1 != nil || !moreInputs.isEmpty else { return }
        var pending: [GradNode<Scalar>] = []
        GradNode.detachInputs(of: self, into: &pending)
        while var node = pending.popLast() {
            // Only a node that nothing else holds would be freed now; take its inputs first so
            // that its own deinit has nothing left to release.
            guard isKnownUniquelyReferenced(&node) else { continue }
            node.pullback = nil
            GradNode.detachInputs(of: node, into: &pending)
        }
    }

    @usableFromInline static func detachInputs(of node: GradNode, into pending: inout [GradNode]) {
        if let a = node.input0 { node.input0 = nil; pending.append(a) }
        if let b = node.input1 { node.input1 = nil; pending.append(b) }
        if !node.moreInputs.isEmpty {
            for case let c? in node.moreInputs { pending.append(c) }
            node.moreInputs = []
        }
    }
}

/// Whether operations on this thread are being recorded for differentiation.
public var isRecordingGradients: Bool { nb_grad_enabled() != 0 }

/// Runs `body` without recording operations: nothing computed inside can be differentiated.
/// Use it for parameter updates and evaluation.
@inlinable public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
    let previous = nb_grad_enabled()
    nb_set_grad_enabled(0)
    defer { nb_set_grad_enabled(previous) }
    return try body()
}

@inlinable func withGradientRecording<R>(_ enabled: Bool, _ body: () throws -> R) rethrows -> R {
    let previous = nb_grad_enabled()
    nb_set_grad_enabled(enabled ? 1 : 0)
    defer { nb_set_grad_enabled(previous) }
    return try body()
}

extension Tensor {
    /// Whether this tensor is part of a differentiation graph.
    public var isDifferentiable: Bool { node != nil }

    /// The same values, cut off from the graph: gradients do not flow through it (stop-gradient).
    @inlinable public func detached() -> Tensor { Tensor(storage: storage, shape: shape) }

    /// The same values as a new leaf of a differentiation graph: operations on it are recorded,
    /// and ``gradients(of:with:wrt:keepingGraph:)`` can differentiate with respect to it.
    @inlinable public func requiringGradient() -> Tensor {
        Tensor(storage: storage, shape: shape,
               node: GradNode(op: "leaf", input0: nil, input1: nil, inputCount: 0, shape: shape, savedOutput: nil, pullback: nil))
    }

    /// Records `output` as computed from `inputs`; `pullback(cotangent)` returns one cotangent per
    /// input. This is how every primitive is registered, and how users add their own operations
    /// with a hand-written derivative. The pullback must be built from tensor operations for
    /// higher-order derivatives to be exact.
    @inlinable public static func recording(_ op: String, inputs: [Tensor], output: Tensor,
                                 pullback: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        record(op, inputs: inputs, output: output, savingOutput: false) { g, _ in pullback(g) }
    }

    /// Like ``recording(_:inputs:output:pullback:)``, for derivatives expressed through the output
    /// (as for `exp`, `tanh` and `sigmoid`).
    @inlinable public static func recording(_ op: String, inputs: [Tensor], output: Tensor,
                                 pullbackUsingOutput: @escaping (_ cotangent: Tensor, _ output: Tensor) -> [Tensor?]) -> Tensor {
        record(op, inputs: inputs, output: output, savingOutput: true, pullbackUsingOutput)
    }

    @inline(__always)
    @inlinable static func record(_ op: String, inputs: [Tensor], output: Tensor, savingOutput: Bool,
                       _ pullback: @escaping (Tensor, Tensor) -> [Tensor?]) -> Tensor {
        guard nb_grad_enabled() != 0, inputs.contains(where: { $0.node != nil }) else { return output }
        if nb_anomaly_detection() != 0 { AnomalyDetection.check(output, op: op, phase: .forward) }
        var out = output
        out.node = GradNode(op: op, inputs: inputs.map { $0.node }, shape: output.shape,
                            savedOutput: savingOutput ? output.storage : nil, pullback: .general(pullback))
        return out
    }

    /// Whether an operation on `a` and `b` is to be recorded now (checked before a pullback closure is built).
    @inline(__always)
    @inlinable static func isRecorded(_ a: Tensor, _ b: Tensor) -> Bool {
        nb_grad_enabled() != 0 && (a.node != nil || b.node != nil)
    }

    @inline(__always)
    @inlinable static func record1(_ op: String, _ input: Tensor, output: Tensor, savingOutput: Bool = false,
                        _ pullback: @escaping (Tensor, Tensor) -> Tensor?) -> Tensor {
        guard nb_grad_enabled() != 0, let n = input.node else { return output }
        if nb_anomaly_detection() != 0 { AnomalyDetection.check(output, op: op, phase: .forward) }
        var out = output
        out.node = GradNode(op: op, input0: n, input1: nil, inputCount: 1, shape: output.shape,
                            savedOutput: savingOutput ? output.storage : nil, pullback: .unary(pullback))
        return out
    }

    /// Records a two-input operation; `pullback` returns the two inputs' cotangents.
    @inline(__always)
    @inlinable static func record2(_ op: String, _ a: Tensor, _ b: Tensor, output: Tensor, savingOutput: Bool = false,
                        _ pullback: @escaping (Tensor, Tensor) -> (Tensor?, Tensor?)) -> Tensor {
        guard nb_grad_enabled() != 0, a.node != nil || b.node != nil else { return output }
        if nb_anomaly_detection() != 0 { AnomalyDetection.check(output, op: op, phase: .forward) }
        var out = output
        out.node = GradNode(op: op, input0: a.node, input1: b.node, inputCount: 2, shape: output.shape,
                            savedOutput: savingOutput ? output.storage : nil, pullback: .binary(pullback))
        return out
    }
}

/// Reverse-mode accumulation over the recorded graph.
@usableFromInline enum Backpropagation {
    /// Cotangents of `targets` given the cotangent `seed` of `output`. A target that `output`
    /// does not depend on gets nil. With `keepingGraph`, the backward pass is recorded so the
    /// result can be differentiated again.
    ///
    /// Bookkeeping lives on the nodes themselves, tagged with a pass number, so a pass allocates
    /// nothing but its topological order: one graph is differentiated by one thread at a time.
    ///
    /// `onTargetReady(i, cotangent)` is called as soon as target `i`'s cotangent is final (every
    /// operation that uses it has been visited), while the rest of the pass still runs: data
    /// parallelism starts sending a gradient then, overlapping communication with computation.
    @inlinable
    static func run<Scalar>(output: Tensor<Scalar>, seed: Tensor<Scalar>, targets: [GradNode<Scalar>],
                            keepingGraph: Bool, onTargetReady: ((Int, Tensor<Scalar>?) -> Void)? = nil) -> [Tensor<Scalar>?] {
        guard let root = output.node else { return targets.map { _ in nil } }
        let pass = nb_next_pass_id()
        for t in targets { t.targetOfPass = pass }

        // Post-order DFS keeping only the nodes from which a target can be reached. The graph is
        // alive through `output` for the whole pass, so the traversal holds its nodes unretained.
        var order: [Unmanaged<GradNode<Scalar>>] = []
        order.reserveCapacity(32)
        var stack: [(Unmanaged<GradNode<Scalar>>, Int)] = []
        stack.reserveCapacity(32)
        stack.append((Unmanaged.passUnretained(root), 0))
        root.visitedInPass = pass
        while let (entry, initialNext) = stack.popLast() {
            entry._withUnsafeGuaranteedRef { node in
                var next = initialNext
                while next < node.inputCount {
                    let i = next
                    next += 1
                    let descended: Bool = withUnsafeChild(node, i) { c in
                        guard c.visitedInPass != pass else { return false }
                        c.visitedInPass = pass
                        c.reachesTarget = false
                        stack.append((entry, next))
                        stack.append((Unmanaged.passUnretained(c), 0))
                        return true
                    } ?? false
                    if descended { return }
                }
                var reaches = node.targetOfPass == pass
                if !reaches {
                    for i in 0..<node.inputCount where withUnsafeChild(node, i, { $0.visitedInPass == pass && $0.reachesTarget }) ?? false {
                        reaches = true
                        break
                    }
                }
                node.reachesTarget = reaches
                if reaches { order.append(entry) }
            }
        }
        guard root.reachesTarget else { return targets.map { _ in nil } }

        root.cotangent = seed
        // In reverse topological order a node comes after every node that uses it, so its
        // cotangent is complete when it is reached.
        var targetIndex: [ObjectIdentifier: Int] = [:]
        if onTargetReady != nil { for (i, t) in targets.enumerated() { targetIndex[ObjectIdentifier(t)] = i } }
        withGradientRecording(keepingGraph) {
            for entry in order.reversed() { entry._withUnsafeGuaranteedRef { node in
                if let onTargetReady, node.targetOfPass == pass, let i = targetIndex[ObjectIdentifier(node)] { onTargetReady(i, node.cotangent) }
                guard let pullback = node.pullback, node.cotangent != nil else { return }
                // A node that is not a target hands its cotangent on (moved out, not copied).
                let g = node.targetOfPass != pass ? node.cotangent.take()! : node.cotangent!
                // Pullbacks that saved no output ignore their second argument: pass g again
                // rather than building a tensor.
                if let saved = node.savedOutput {
                    backward(node, pullback, g, Tensor<Scalar>(storage: saved, shape: node.shape, node: node), pass: pass, keepingGraph: keepingGraph)
                } else {
                    backward(node, pullback, g, g, pass: pass, keepingGraph: keepingGraph)
                }
            } }
        }
        let result = targets.map { $0.cotangent }
        for t in targets { t.cotangent = nil }
        return result
    }

    /// Runs `node`'s pullback on its output cotangent `g` and adds the results into its inputs.
    @inlinable @inline(__always)
    static func backward<Scalar>(_ node: GradNode<Scalar>, _ pullback: Pullback<Scalar>, _ g: Tensor<Scalar>, _ y: Tensor<Scalar>,
                                 pass: UInt64, keepingGraph: Bool) {
        switch pullback {
        case .unary(let pb):
            if let gi = pb(g, y) { accumulate(gi, into: node.input0, of: node, index: 0, pass: pass, keepingGraph: keepingGraph) }
        case .binary(let pb):
            let (g0, g1) = pb(g, y)
            if let g0 { accumulate(g0, into: node.input0, of: node, index: 0, pass: pass, keepingGraph: keepingGraph) }
            if let g1 { accumulate(g1, into: node.input1, of: node, index: 1, pass: pass, keepingGraph: keepingGraph) }
        case .general(let pb):
            let inputGrads = pb(g, y)
            for i in 0..<node.inputCount {
                if let gi = inputGrads[i] { accumulate(gi, into: node.input(i), of: node, index: i, pass: pass, keepingGraph: keepingGraph) }
            }
        case .slice(let offset, let strides):
            guard let input = node.input0 else { return }
            if keepingGraph {
                accumulate(g.stridedWrite(offset: offset, strides: strides, shape: input.shape), into: input, of: node, index: 0, pass: pass, keepingGraph: true)
            } else {
                accumulateSlice(g, offset: offset, strides: strides, into: input, of: node, pass: pass)
            }
        }
    }

    /// Adds the cotangent `g` of a slice into the elements it was read from in `input`'s
    /// cotangent (made zero first if there is none, copied first if another tensor shares it).
    @inlinable
    static func accumulateSlice<Scalar>(_ g: Tensor<Scalar>, offset: Int, strides: [Int], into input: GradNode<Scalar>, of node: GradNode<Scalar>, pass: UInt64) {
        if nb_anomaly_detection() != 0 { AnomalyDetection.check(g, op: node.op, phase: .backward) }
        guard input.visitedInPass == pass, input.reachesTarget, g.count > 0 else { return }
        if input.cotangent == nil {
            input.cotangent = Tensor(storage: TensorStorage<Scalar>.make(repeating: 0, count: shapeCount(input.shape)), shape: input.shape)
        } else if !isKnownUniquelyReferenced(&input.cotangent!.storage) {
            input.cotangent = Tensor(storage: input.cotangent!.storage.copy(), shape: input.shape)
        }
        let target = input.cotangent!.storage
        // region += g: read the region, add, write it back (slice-sized work).
        let region = TensorStorage<Scalar>.make(count: g.count)
        let shape = g.shape
        Scalar._copyStrided(Int32(shape.count), shape, target.base + offset, strides, region.base)
        Scalar._axpy(g.count, 1, g.storage.base, region.base)
        Scalar._storeStrided(Int32(shape.count), shape, region.base, target.base + offset, strides)
        withExtendedLifetime(g) {}
    }

    /// Calls `body` with input `i` of `node` (nil when that input is not differentiated),
    /// without retaining it: `node` keeps it alive.
    @inlinable @inline(__always)
    static func withUnsafeChild<Scalar, R>(_ node: GradNode<Scalar>, _ i: Int, _ body: (GradNode<Scalar>) -> R) -> R? {
        guard let c = node.input(i) else { return nil }
        return Unmanaged.passUnretained(c)._withUnsafeGuaranteedRef(body)
    }

    /// Adds the cotangent `gi` that `node` sends to its input `index` into that input's sum.
    @inlinable @inline(__always)
    static func accumulate<Scalar>(_ gi: Tensor<Scalar>, into input: GradNode<Scalar>?, of node: GradNode<Scalar>, index: Int,
                                   pass: UInt64, keepingGraph: Bool) {
        if nb_anomaly_detection() != 0 { AnomalyDetection.check(gi, op: node.op, phase: .backward) }
        guard let input, input.visitedInPass == pass, input.reachesTarget else { return }
        require(gi.shape == input.shape,
                     "backward of \(node.op): cotangent for input \(index) has shape \(gi.shape), expected \(input.shape)")
        if input.cotangent == nil {
            input.cotangent = gi
        } else if !keepingGraph && isKnownUniquelyReferenced(&input.cotangent!.storage) && gi.storage !== input.cotangent!.storage {
            // Nothing else holds this sum: add in place instead of allocating.
            let target = input.cotangent!.storage
            Scalar._axpy(gi.count, 1, gi.storage.base, target.base)
            withExtendedLifetime(gi) {}
        } else {
            input.cotangent = input.cotangent! + gi
        }
    }
}

/// Gradients of the scalar (or, with a `seed` cotangent, any) tensor `output` with respect to
/// each of `inputs`, which must have been made with ``Tensor/requiringGradient()`` or computed
/// from such tensors. Inputs that `output` does not depend on get zeros.
///
/// - Parameter keepingGraph: record the backward pass so the gradients can be differentiated
///   again (higher-order derivatives).
@inlinable public func gradients<Scalar>(of output: Tensor<Scalar>, with seed: Tensor<Scalar>? = nil,
                              wrt inputs: [Tensor<Scalar>], keepingGraph: Bool = false) -> [Tensor<Scalar>] {
    let seed = seed ?? Tensor(repeating: 1, shape: output.shape)
    require(seed.shape == output.shape,
                 "gradients(of:with:wrt:): seed shape \(seed.shape) does not match output shape \(output.shape)")
    let targets = inputs.map { t -> GradNode<Scalar> in
        require(t.node != nil, "gradients(of:with:wrt:): an input of shape \(t.shape) is not differentiable; make it with requiringGradient()")
        return t.node!
    }
    let result = Backpropagation.run(output: output, seed: seed, targets: targets, keepingGraph: keepingGraph)
    return zip(result, inputs).map { $0 ?? Tensor(repeating: 0, shape: $1.shape) }
}
