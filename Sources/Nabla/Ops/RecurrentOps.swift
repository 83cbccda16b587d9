import CNablaKernels

extension Tensor {
    /// A whole LSTM layer over a sequence as one primitive (as cuDNN and oneDNN run it): from the
    /// projected inputs `a` = x W_ihᵀ + b_ih [B, T, 4H] (gates i, f, g, o), the recurrent weight
    /// W_hh [4H, H], its bias [4H] and the initial state h₀, c₀ [B, H], the hidden states of
    /// every step followed by the final cell state: [B, T + 1, H].
    ///
    /// The forward pass keeps each step's gates and cell state; the backward pass runs
    /// backpropagation through time with one product per step for the hidden state's gradient
    /// and a single product over all steps for W_hh's. When the backward pass is itself recorded
    /// (higher-order derivatives), it is computed again with differentiable operations.
    public static func lstmSequence(projectedInput a: Tensor, weightHH w: Tensor, biasHH b: Tensor?, h0: Tensor, c0: Tensor) -> Tensor {
        require(a.rank == 3 && w.rank == 2 && w.shape[0] == 4 * w.shape[1] && a.shape[2] == w.shape[0] && a.shape[1] >= 1
                && h0.shape == [a.shape[0], w.shape[1]] && c0.shape == h0.shape && (b?.shape ?? [w.shape[0]]) == [w.shape[0]],
                "lstmSequence: projected input \(a.shape), weight_hh \(w.shape), bias \(b?.shape.description ?? "none"), h0 \(h0.shape), c0 \(c0.shape) do not fit [B, T, 4H], [4H, H], [4H], [B, H]")
        let (batch, steps, g4) = (a.shape[0], a.shape[1], a.shape[2])
        let h = g4 / 4
        let gates = TensorStorage<Scalar>.make(count: steps * batch * g4)
        let cells = TensorStorage<Scalar>.make(count: (steps + 1) * batch * h)     // c₋₁ = c₀ first
        let tanhCells = TensorStorage<Scalar>.make(count: steps * batch * h)
        let hidden = TensorStorage<Scalar>.make(count: (steps + 1) * batch * h)    // h₋₁ = h₀ first
        let z = TensorStorage<Scalar>.make(count: batch * g4)
        let out = TensorStorage<Scalar>.make(count: batch * (steps + 1) * h)
        withExtendedLifetime((a, w, b, h0, c0)) {
            hidden.base.update(from: h0.storage.base, count: batch * h)
            cells.base.update(from: c0.storage.base, count: batch * h)
            for t in 0..<steps {
                for r in 0..<batch {
                    (z.base + r * g4).update(from: a.storage.base + (r * steps + t) * g4, count: g4)
                    if let b { Scalar._axpy(g4, 1, b.storage.base, z.base + r * g4) }
                }
                let hPrev = hidden.base + t * batch * h
                Scalar._gemm(false, true, batch, g4, h, 1, hPrev, h, w.storage.base, h, 1, z.base, g4)
                Scalar._lstmForward(batch, h, z.base, cells.base + t * batch * h, gates.base + t * batch * g4,
                                    cells.base + (t + 1) * batch * h, tanhCells.base + t * batch * h, hidden.base + (t + 1) * batch * h)
                for r in 0..<batch { (out.base + (r * (steps + 1) + t) * h).update(from: hidden.base + (t + 1) * batch * h + r * h, count: h) }
            }
            for r in 0..<batch { (out.base + (r * (steps + 1) + steps) * h).update(from: cells.base + steps * batch * h + r * h, count: h) }
        }
        let output = Tensor(storage: out, shape: [batch, steps + 1, h])
        var inputs = [a, w]
        if let b { inputs.append(b) }
        inputs += [h0, c0]
        guard nb_grad_enabled() != 0, inputs.contains(where: { $0.node != nil }) else { return output }
        return record("lstm_sequence", inputs: inputs, output: output, savingOutput: false) { g, _ in
            if nb_grad_enabled() != 0 {
                // Recorded: the same layer unrolled with differentiable operations, and its pullback.
                return lstmSequenceComposite(a: a, w: w, b: b, h0: h0, c0: c0, cotangent: g)
            }
            // Backpropagation through time, in place.
            let dA = TensorStorage<Scalar>.make(count: batch * steps * g4)
            let dh = TensorStorage<Scalar>.make(repeating: 0, count: batch * h), dc = TensorStorage<Scalar>.make(count: batch * h)
            let dcPrev = TensorStorage<Scalar>.make(count: batch * h), dz = TensorStorage<Scalar>.make(count: batch * g4)
            let dzAll = TensorStorage<Scalar>.make(count: steps * batch * g4)   // step-major, for W_hh's gradient
            withExtendedLifetime((g, w)) {
                for r in 0..<batch { (dc.base + r * h).update(from: g.storage.base + (r * (steps + 1) + steps) * h, count: h) }
                for t in stride(from: steps - 1, through: 0, by: -1) {
                    // dh += the loss's gradient of this step's output.
                    for r in 0..<batch { Scalar._axpy(h, 1, g.storage.base + (r * (steps + 1) + t) * h, dh.base + r * h) }
                    Scalar._lstmBackward(batch, h, dh.base, dc.base, gates.base + t * batch * g4, cells.base + t * batch * h,
                                         tanhCells.base + t * batch * h, dz.base, dcPrev.base)
                    (dzAll.base + t * batch * g4).update(from: dz.base, count: batch * g4)
                    for r in 0..<batch { (dA.base + (r * steps + t) * g4).update(from: dz.base + r * g4, count: g4) }
                    // dh for the previous step: dz W_hh.
                    Scalar._gemm(false, false, batch, h, g4, 1, dz.base, g4, w.storage.base, h, 0, dh.base, h)
                    dc.base.update(from: dcPrev.base, count: batch * h)
                }
            }
            // W_hh's gradient over all steps in one product: Σₜ dzₜᵀ hₜ₋₁.
            let dW = TensorStorage<Scalar>.make(count: g4 * h)
            Scalar._gemm(true, false, g4, h, steps * batch, 1, dzAll.base, g4, hidden.base, h, 0, dW.base, h)
            var grads: [Tensor?] = [a.node == nil ? nil : Tensor(storage: dA, shape: [batch, steps, g4]),
                                    w.node == nil ? nil : Tensor(storage: dW, shape: [g4, h])]
            if let b {
                grads.append(b.node == nil ? nil : Tensor(storage: dzAll, shape: [steps * batch, g4]).sum(axes: [0]))
            }
            grads.append(h0.node == nil ? nil : Tensor(storage: dh, shape: [batch, h]))
            grads.append(c0.node == nil ? nil : Tensor(storage: dc, shape: [batch, h]))
            return grads
        }
    }

    /// The cotangents of `lstmSequence`'s inputs by differentiable operations (for recorded
    /// backward passes): the forward pass again, then backpropagation through time, both written
    /// with tensor operations of the inputs and the cotangent.
    static func lstmSequenceComposite(a: Tensor, w: Tensor, b: Tensor?, h0: Tensor, c0: Tensor, cotangent g: Tensor) -> [Tensor?] {
        let (batch, steps, g4) = (a.shape[0], a.shape[1], a.shape[2])
        let h = g4 / 4
        func part(_ t: Tensor, _ k: Int) -> Tensor { t.slice(axis: 1, start: k * h, end: (k + 1) * h) }
        var hs = [h0], cs = [c0], gatesAt: [(i: Tensor, f: Tensor, g: Tensor, o: Tensor)] = []
        for t in 0..<steps {
            var zt = a.slice(axis: 1, start: t, end: t + 1).reshaped(to: [batch, g4]) + Tensor.matmul(hs[t], w, transposeB: true)
            if let b { zt = zt + b }
            let gate = (i: part(zt, 0).sigmoid(), f: part(zt, 1).sigmoid(), g: part(zt, 2).tanh(), o: part(zt, 3).sigmoid())
            let c = gate.f * cs[t] + gate.i * gate.g
            gatesAt.append(gate)
            cs.append(c)
            hs.append(gate.o * c.tanh())
        }
        var dh = Tensor.zeros(shape: [batch, h]), dc = g.slice(axis: 1, start: steps, end: steps + 1).reshaped(to: [batch, h])
        var dzs = [Tensor](repeating: Tensor(0), count: steps)
        var dW: Tensor? = nil
        for t in stride(from: steps - 1, through: 0, by: -1) {
            let q = gatesAt[t]
            dh = dh + g.slice(axis: 1, start: t, end: t + 1).reshaped(to: [batch, h])
            let tc = cs[t + 1].tanh()
            dc = dc + dh * q.o * (1 - tc * tc)
            let dz = Tensor.concatenate([dc * q.g * q.i * (1 - q.i), dc * cs[t] * q.f * (1 - q.f), dc * q.i * (1 - q.g * q.g),
                                         dh * tc * q.o * (1 - q.o)], axis: 1)
            dzs[t] = dz
            let term = Tensor.matmul(dz, hs[t], transposeA: true)
            dW = dW.map { $0 + term } ?? term
            dh = Tensor.matmul(dz, w)
            dc = dc * q.f
        }
        let dA = Tensor.stack(dzs, axis: 1)
        var grads: [Tensor?] = [dA, dW]
        if b != nil { grads.append(dA.sum(axes: [0, 1])) }
        grads += [dh, dc]
        return grads
    }
}
