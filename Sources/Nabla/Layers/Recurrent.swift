// Recurrent cells and the sequence layers over them. Parameter names follow the common
// convention (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`), so checkpoints line up with other
// frameworks'. Every weight and bias defaults to U(−1/√hidden, 1/√hidden).

/// What the recurrent cells share: input-to-hidden and hidden-to-hidden weights for `gates`
/// blocks of `hiddenSize` rows.
public class RecurrentCell<Scalar: TensorScalar>: Module<Scalar> {
    public let weightIH: Parameter<Scalar>
    public let weightHH: Parameter<Scalar>
    public let biasIH: Parameter<Scalar>?
    public let biasHH: Parameter<Scalar>?
    public let inputSize: Int
    public let hiddenSize: Int

    init(inputSize: Int, hiddenSize: Int, gates: Int, bias: Bool) {
        require(inputSize > 0 && hiddenSize > 0, "\(Self.self): sizes must be positive, got input \(inputSize), hidden \(hiddenSize)")
        let b = 1 / Double(hiddenSize).squareRoot()
        let u = Initializer.uniform(low: -b, high: b)
        weightIH = Parameter(shape: [gates * hiddenSize, inputSize], initializer: u)
        weightHH = Parameter(shape: [gates * hiddenSize, hiddenSize], initializer: u)
        biasIH = bias ? Parameter(shape: [gates * hiddenSize], initializer: u) : nil
        biasHH = bias ? Parameter(shape: [gates * hiddenSize], initializer: u) : nil
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        super.init()
    }

    public override func namedChildren() -> [(String, Any)] {
        [("weight_ih", weightIH), ("weight_hh", weightHH), ("bias_ih", biasIH as Any), ("bias_hh", biasHH as Any)]
    }

    /// x W_ihᵀ + b_ih for a batch [B, I] or a whole sequence [B, T, I] at once.
    public func inputProjection(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        require(x.shape.last == inputSize, "\(type(of: self)): input of shape \(x.shape) does not end in \(inputSize) features")
        let flat = x.rank == 2 ? x : x.reshaped(to: [x.count / inputSize, inputSize])
        var a = Tensor.matmul(flat, weightIH.value, transposeB: true)
        if let b = biasIH { a = a + b.value }
        return x.rank == 2 ? a : a.reshaped(to: Array(x.shape.dropLast()) + [a.shape[1]])
    }

    func hiddenProjection(_ h: Tensor<Scalar>) -> Tensor<Scalar> {
        require(h.rank == 2 && h.shape[1] == hiddenSize, "\(type(of: self)): hidden state of shape \(h.shape) is not [B, \(hiddenSize)]")
        let u = Tensor.matmul(h, weightHH.value, transposeB: true)
        return biasHH.map { u + $0.value } ?? u
    }

    func block(_ t: Tensor<Scalar>, _ i: Int) -> Tensor<Scalar> { t.slice(axis: 1, start: i * hiddenSize, end: (i + 1) * hiddenSize) }
}

/// h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (or ReLU).
public final class RNNCell<Scalar: TensorScalar>: RecurrentCell<Scalar> {
    public let useReLU: Bool
    public init(inputSize: Int, hiddenSize: Int, bias: Bool = true, relu: Bool = false) {
        useReLU = relu
        super.init(inputSize: inputSize, hiddenSize: hiddenSize, gates: 1, bias: bias)
    }
    /// One step from the projected input `a` = x W_ihᵀ + b_ih.
    public func step(projectedInput a: Tensor<Scalar>, state h: Tensor<Scalar>) -> Tensor<Scalar> {
        let z = a + hiddenProjection(h)
        return useReLU ? z.relu() : z.tanh()
    }
    public func callAsFunction(_ x: Tensor<Scalar>, state h: Tensor<Scalar>) -> Tensor<Scalar> {
        step(projectedInput: inputProjection(x), state: h)
    }
}

/// The LSTM cell: gates i, f, g, o in that order; c' = f c + i g, h' = o tanh(c').
public final class LSTMCell<Scalar: TensorScalar>: RecurrentCell<Scalar> {
    public init(inputSize: Int, hiddenSize: Int, bias: Bool = true) {
        super.init(inputSize: inputSize, hiddenSize: hiddenSize, gates: 4, bias: bias)
    }
    public func step(projectedInput a: Tensor<Scalar>, state: (h: Tensor<Scalar>, c: Tensor<Scalar>)) -> (h: Tensor<Scalar>, c: Tensor<Scalar>) {
        let z = a + hiddenProjection(state.h)
        let i = block(z, 0).sigmoid(), f = block(z, 1).sigmoid(), g = block(z, 2).tanh(), o = block(z, 3).sigmoid()
        let c = f * state.c + i * g
        return (o * c.tanh(), c)
    }
    public func callAsFunction(_ x: Tensor<Scalar>, state: (h: Tensor<Scalar>, c: Tensor<Scalar>)) -> (h: Tensor<Scalar>, c: Tensor<Scalar>) {
        step(projectedInput: inputProjection(x), state: state)
    }
}

/// The GRU cell: gates r, z, n; n = tanh(a_n + r (W_hn h + b_hn)), h' = (1 − z) n + z h.
public final class GRUCell<Scalar: TensorScalar>: RecurrentCell<Scalar> {
    public init(inputSize: Int, hiddenSize: Int, bias: Bool = true) {
        super.init(inputSize: inputSize, hiddenSize: hiddenSize, gates: 3, bias: bias)
    }
    public func step(projectedInput a: Tensor<Scalar>, state h: Tensor<Scalar>) -> Tensor<Scalar> {
        let u = hiddenProjection(h)
        let r = (block(a, 0) + block(u, 0)).sigmoid()
        let z = (block(a, 1) + block(u, 1)).sigmoid()
        let n = (block(a, 2) + r * block(u, 2)).tanh()
        return (1 - z) * n + z * h
    }
    public func callAsFunction(_ x: Tensor<Scalar>, state h: Tensor<Scalar>) -> Tensor<Scalar> {
        step(projectedInput: inputProjection(x), state: h)
    }
}

/// Runs `cells` (one per stacked layer) over a batch-first sequence [B, T, I]: each layer's
/// input projection for every step in one matrix product, then the recurrence.
func unroll<Scalar, Cell: RecurrentCell<Scalar>, State>(
    _ x: Tensor<Scalar>, cells: [Cell], initial: [State]?, zero: (Cell) -> State,
    step: (Cell, Tensor<Scalar>, State) -> State, hidden: (State) -> Tensor<Scalar>
) -> (output: Tensor<Scalar>, state: [State]) {
    require(initial == nil || initial!.count == cells.count, "\(Cell.self): \(initial!.count) initial states for \(cells.count) layers")
    var input = x, finals: [State] = []
    for (l, cell) in cells.enumerated() {
        require(input.rank == 3 && input.shape[2] == cell.inputSize && input.shape[1] > 0,
                     "\(Cell.self): sequence of shape \(input.shape) is not batch-first [B, T, \(cell.inputSize)] with T > 0")
        let a = cell.inputProjection(input)
        let (b, steps, width) = (a.shape[0], a.shape[1], a.shape[2])
        var s = initial?[l] ?? zero(cell)
        var outs: [Tensor<Scalar>] = []
        for t in 0..<steps {
            s = step(cell, a.slice(axis: 1, start: t, end: t + 1).reshaped(to: [b, width]), s)
            outs.append(hidden(s))
        }
        input = Tensor.stack(outs, axis: 1)
        finals.append(s)
    }
    return (input, finals)
}

/// An Elman RNN over a batch-first sequence [B, T, I], `layers` deep. Returns every step's
/// hidden state of the last layer [B, T, H] and each layer's final state.
public final class RNN<Scalar: TensorScalar>: Module<Scalar> {
    public let cells: [RNNCell<Scalar>]
    public init(inputSize: Int, hiddenSize: Int, layers: Int = 1, relu: Bool = false) {
        cells = (0..<layers).map { RNNCell(inputSize: $0 == 0 ? inputSize : hiddenSize, hiddenSize: hiddenSize, relu: relu) }
        super.init()
    }
    public func callAsFunction(_ x: Tensor<Scalar>, state: [Tensor<Scalar>]? = nil) -> (output: Tensor<Scalar>, state: [Tensor<Scalar>]) {
        unroll(x, cells: cells, initial: state, zero: { Tensor.zeros(shape: [x.shape[0], $0.hiddenSize]) },
               step: { $0.step(projectedInput: $1, state: $2) }, hidden: { $0 })
    }
}

/// An LSTM over a batch-first sequence [B, T, I]; see ``RNN``.
public final class LSTM<Scalar: TensorScalar>: Module<Scalar> {
    public typealias State = (h: Tensor<Scalar>, c: Tensor<Scalar>)
    public let cells: [LSTMCell<Scalar>]
    public init(inputSize: Int, hiddenSize: Int, layers: Int = 1) {
        cells = (0..<layers).map { LSTMCell(inputSize: $0 == 0 ? inputSize : hiddenSize, hiddenSize: hiddenSize) }
        super.init()
    }
    /// Each layer runs as one fused primitive (``Tensor/lstmSequence(projectedInput:weightHH:biasHH:h0:c0:)``):
    /// the input projection of every step in one product, then the recurrence.
    public func callAsFunction(_ x: Tensor<Scalar>, state: [State]? = nil) -> (output: Tensor<Scalar>, state: [State]) {
        require(x.rank == 3 && x.shape[2] == cells[0].inputSize && x.shape[1] > 0,
                "LSTM: sequence of shape \(x.shape) is not batch-first [B, T, \(cells[0].inputSize)] with T > 0")
        return self(projectedInput: cells[0].inputProjection(x), state: state)
    }

    /// The same, from the first layer's input projection x W_ihᵀ + b_ih [B, T, 4H] computed by
    /// the caller (an embedding can project its table once, ``LSTMLanguageModel``).
    public func callAsFunction(projectedInput a: Tensor<Scalar>, state: [State]? = nil) -> (output: Tensor<Scalar>, state: [State]) {
        require(state == nil || state!.count == cells.count, "LSTM: \(state!.count) initial states for \(cells.count) layers")
        require(a.rank == 3 && a.shape[2] == 4 * cells[0].hiddenSize && a.shape[1] > 0,
                "LSTM: projected input of shape \(a.shape) is not batch-first [B, T, \(4 * cells[0].hiddenSize)] with T > 0")
        var input = a, finals: [State] = []
        for (l, cell) in cells.enumerated() {
            let (b, t, h) = (input.shape[0], input.shape[1], cell.hiddenSize)
            let zero = Tensor<Scalar>.zeros(shape: [b, h])
            let s: State = state?[l] ?? (zero, zero)
            let y = Tensor.lstmSequence(projectedInput: l == 0 ? input : cell.inputProjection(input), weightHH: cell.weightHH.value,
                                        biasHH: cell.biasHH?.value, h0: s.h, c0: s.c)
            input = y.slice(axis: 1, start: 0, end: t)
            finals.append((h: y.slice(axis: 1, start: t - 1, end: t).reshaped(to: [b, h]), c: y.slice(axis: 1, start: t, end: t + 1).reshaped(to: [b, h])))
        }
        return (input, finals)
    }
}

/// A GRU over a batch-first sequence [B, T, I]; see ``RNN``.
public final class GRU<Scalar: TensorScalar>: Module<Scalar> {
    public let cells: [GRUCell<Scalar>]
    public init(inputSize: Int, hiddenSize: Int, layers: Int = 1) {
        cells = (0..<layers).map { GRUCell(inputSize: $0 == 0 ? inputSize : hiddenSize, hiddenSize: hiddenSize) }
        super.init()
    }
    public func callAsFunction(_ x: Tensor<Scalar>, state: [Tensor<Scalar>]? = nil) -> (output: Tensor<Scalar>, state: [Tensor<Scalar>]) {
        unroll(x, cells: cells, initial: state, zero: { Tensor.zeros(shape: [x.shape[0], $0.hiddenSize]) },
               step: { $0.step(projectedInput: $1, state: $2) }, hidden: { $0 })
    }
}
