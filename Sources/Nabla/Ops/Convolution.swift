import CNablaKernels

// Convolution and pooling. Ungrouped convolution and max pooling are primitives with their
// forward and backward passes together (im2col and a matrix product per image; col2im for the
// input's gradient; max pooling remembers each window's winner). Grouped convolution, average
// pooling, and the recorded backward passes of the primitives (higher-order derivatives) are
// built from `take` (gathering windows, with -1 for padding) and matrix products, whose
// derivatives follow from those primitives.

extension Tensor {
    /// Flat positions of the [N, C, OH, OW, KH, KW] windows of an [N, C, H, W] input.
    @inlinable static func windowPositions(_ shape: [Int], kernel: [Int], stride: [Int], padding: [Int], dilation: [Int]) -> (positions: [Int], oh: Int, ow: Int) {
        let g = windowGeometry(shape, kernel: kernel, stride: stride, padding: padding, dilation: dilation)
        let (n, c, h, w, oh, ow) = (shape[0], shape[1], shape[2], shape[3], g.oh, g.ow)
        var positions = [Int](repeating: -1, count: n * c * oh * ow * kernel[0] * kernel[1])
        var p = 0
        for b in 0..<n {
            for ch in 0..<c {
                let base = (b * c + ch) * h * w
                for y in 0..<oh {
                    for x in 0..<ow {
                        for ky in 0..<kernel[0] {
                            let iy = y * stride[0] - padding[0] + ky * dilation[0]
                            for kx in 0..<kernel[1] {
                                let ix = x * stride[1] - padding[1] + kx * dilation[1]
                                if iy >= 0 && iy < h && ix >= 0 && ix < w { positions[p] = base + iy * w + ix }
                                p += 1
                            }
                        }
                    }
                }
            }
        }
        return (positions, oh, ow)
    }

    /// The geometry of windows over an [N, C, H, W] input, checked: every value in range and a
    /// window that fits the padded input (compared before dividing: integer division truncates
    /// towards zero, which would turn a window larger than the input into one output).
    @inlinable static func windowGeometry(_ shape: [Int], kernel: [Int], stride: [Int], padding: [Int], dilation: [Int]) -> nb_window {
        require(kernel.count == 2 && stride.count == 2 && padding.count == 2 && dilation.count == 2,
                "convolution/pooling: kernel \(kernel), stride \(stride), padding \(padding) and dilation \(dilation) must each have 2 values")
        require(kernel.allSatisfy { $0 > 0 } && stride.allSatisfy { $0 > 0 } && dilation.allSatisfy { $0 > 0 } && padding.allSatisfy { $0 >= 0 },
                "convolution/pooling: kernel \(kernel), stride \(stride) and dilation \(dilation) must be positive and padding \(padding) non-negative")
        let spanH = shape[2] + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1
        let spanW = shape[3] + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1
        require(spanH >= 0 && spanW >= 0,
                "convolution/pooling: kernel \(kernel) with padding \(padding) and dilation \(dilation) is larger than the input \(shape)")
        return nb_window(c: shape[1], h: shape[2], w: shape[3], kh: kernel[0], kw: kernel[1], sh: stride[0], sw: stride[1],
                         ph: padding[0], pw: padding[1], dh: dilation[0], dw: dilation[1], oh: spanH / stride[0] + 1, ow: spanW / stride[1] + 1)
    }

    /// 2-D cross-correlation. `self` is [N, C_in, H, W], `weight` [C_out, C_in/groups, KH, KW],
    /// `bias` [C_out]; zero padding on both sides.
    ///
    /// Ungrouped, it is one primitive: per image, the windows as a [C_in·KH·KW, OH·OW] matrix
    /// (im2col) multiplied by the weight [C_out, C_in·KH·KW]; backward, the weight's gradient is
    /// Σ over images of g · colsᵀ, the input's is col2im(wᵀ · g), the bias's the sum of g.
    @inlinable public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1, 1], padding: [Int] = [0, 0],
                       dilation: [Int] = [1, 1], groups: Int = 1) -> Tensor {
        require(rank == 4 && weight.rank == 4, "conv2d: input \(shape) and weight \(weight.shape) must be 4-D")
        let cin = shape[1]
        let (cout, cg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        require(groups >= 1 && cin % groups == 0 && cout % groups == 0 && cg == cin / groups,
                     "conv2d: input \(shape), weight \(weight.shape) and groups \(groups) do not agree")
        require(bias == nil || bias!.shape == [cout], "conv2d: bias of shape \(bias!.shape) for \(cout) output channels")
        if groups == 1 {
            return Tensor.convolution(self, weight: weight, bias: bias, geometry: Tensor.windowGeometry(shape, kernel: [kh, kw], stride: stride, padding: padding, dilation: dilation))
        }
        return convolutionComposite(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    /// The ungrouped convolution primitive (see ``conv2d(weight:bias:stride:padding:dilation:groups:)``).
    /// The batch's windows sit side by side in one [C·KH·KW, N·L] matrix (L = OH·OW), so that
    /// each pass is one large product: Y' = W · cols [C_out, N·L], dW = g' · colsᵀ, dcols = Wᵀ · g',
    /// with g' the cotangent as [C_out, N·L].
    @inlinable static func convolution(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: nb_window) -> Tensor {
        let (n, cout) = (x.shape[0], weight.shape[0])
        let ckk = g.c * g.kh * g.kw, l = g.oh * g.ow, plane = g.c * g.h * g.w, nl = n * l
        var geometry = g
        let cols = TensorStorage<Scalar>.make(count: ckk * nl)
        let wide = TensorStorage<Scalar>.make(count: cout * nl)     // [C_out, N·L]
        let out = TensorStorage<Scalar>.make(count: n * cout * l)
        withExtendedLifetime((x, weight, bias)) {
            for b in 0..<n { Scalar._im2col(&geometry, nl, x.storage.base + b * plane, cols.base + b * l) }
            Scalar._gemm(false, false, cout, nl, ckk, 1, weight.storage.base, ckk, cols.base, nl, 0, wide.base, nl)
            // [C_out, N·L] → [N, C_out, L], the bias added on the way (no fill, no second pass).
            for b in 0..<n {
                for o in 0..<cout {
                    let source = wide.base + o * nl + b * l, target = out.base + (b * cout + o) * l
                    if let bias {
                        Scalar._unary(Int32(NB_AFFINE), l, source, target, 1, Double(bias.storage.base[o]))
                    } else {
                        target.update(from: source, count: l)
                    }
                }
            }
        }
        let y = Tensor(storage: out, shape: [n, cout, g.oh, g.ow])
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        guard nb_grad_enabled() != 0, inputs.contains(where: { $0.node != nil }) else { return y }
        let xShape = x.shape
        return record("conv2d", inputs: inputs, output: y, savingOutput: false) { grad, _ in
            if nb_grad_enabled() != 0 {
                // Recorded: the composite convolution's pullback, by differentiable operations.
                return Tensor.convolutionCotangents(x, weight: weight, hasBias: bias != nil, stride: [g.sh, g.sw], padding: [g.ph, g.pw],
                                                    dilation: [g.dh, g.dw], cotangent: grad)
            }
            var geometry = g
            let gWide = TensorStorage<Scalar>.make(count: cout * nl)
            var dW: TensorStorage<Scalar>? = nil, dX: TensorStorage<Scalar>? = nil
            withExtendedLifetime((grad, weight)) {
                for b in 0..<n {
                    for o in 0..<cout { (gWide.base + o * nl + b * l).update(from: grad.storage.base + (b * cout + o) * l, count: l) }
                }
                if weight.node != nil {
                    dW = TensorStorage<Scalar>.make(count: cout * ckk)
                    Scalar._gemm(false, true, cout, ckk, nl, 1, gWide.base, nl, cols.base, nl, 0, dW!.base, ckk)
                }
                if x.node != nil {
                    let dCols = TensorStorage<Scalar>.make(count: ckk * nl)
                    Scalar._gemm(true, false, ckk, nl, cout, 1, weight.storage.base, ckk, gWide.base, nl, 0, dCols.base, nl)
                    dX = TensorStorage<Scalar>.make(repeating: 0, count: n * plane)
                    for b in 0..<n { Scalar._col2im(&geometry, nl, dCols.base + b * l, dX!.base + b * plane) }
                }
            }
            var grads: [Tensor?] = [dX.map { Tensor(storage: $0, shape: xShape) }, dW.map { Tensor(storage: $0, shape: weight.shape) }]
            if let bias { grads.append(bias.node == nil ? nil : grad.sum(axes: [0, 2, 3])) }
            return grads
        }
    }

    /// The cotangents of the convolution's inputs by differentiable operations (for recorded
    /// backward passes): the adjoints of the composite's take and product.
    @inlinable static func convolutionCotangents(_ x: Tensor, weight: Tensor, hasBias: Bool, stride: [Int], padding: [Int], dilation: [Int],
                                                 cotangent grad: Tensor) -> [Tensor?] {
        let (n, cin) = (x.shape[0], x.shape[1])
        let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (positions, oh, ow) = Tensor.windowPositions(x.shape, kernel: [kh, kw], stride: stride, padding: padding, dilation: dilation)
        let reordered = Tensor.columnPositions(positions, n: n, channels: cin, windows: oh * ow, kernel: kh * kw)
        let cols = x.take(flatIndices: reordered, shape: [n, cin * kh * kw, oh * ow])
        let g = grad.reshaped(to: [n, cout, oh * ow])
        let w = weight.reshaped(to: [cout, cin * kh * kw])
        let dCols = Tensor.matmul(w, g, transposeA: true)                              // [n, ckk, l]
        let dX = dCols.scatterAdding(flatIndices: reordered, shape: x.shape)
        let dW = Tensor.matmul(g, cols, transposeB: true).sum(axes: [0]).reshaped(to: weight.shape)
        var grads: [Tensor?] = [dX, dW]
        if hasBias { grads.append(grad.sum(axes: [0, 2, 3])) }
        return grads
    }

    /// Window positions [N, C, L, KH·KW] reordered to the im2col layout [N, C·KH·KW, L].
    @inlinable static func columnPositions(_ positions: [Int], n: Int, channels cin: Int, windows l: Int, kernel kk: Int) -> [Int] {
        var reordered = [Int](repeating: -1, count: positions.count)
        var q = 0
        for b in 0..<n {
            for ch in 0..<cin {
                for k in 0..<kk {
                    for pos in 0..<l {
                        reordered[q] = positions[((b * cin + ch) * l + pos) * kk + k]
                        q += 1
                    }
                }
            }
        }
        return reordered
    }

    /// Convolution built from `take` and a batched matrix product (grouped convolutions).
    @inlinable func convolutionComposite(weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int], dilation: [Int], groups: Int) -> Tensor {
        let (n, cin) = (shape[0], shape[1])
        let (cout, cg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        let (positions, oh, ow) = Tensor.windowPositions(shape, kernel: [kh, kw], stride: stride, padding: padding, dilation: dilation)
        let l = oh * ow
        let kk = kh * kw
        // [N, G, Cg, L, KH*KW] -> [N, G, Cg*KH*KW, L] via take with reordered positions.
        let reordered = Tensor.columnPositions(positions, n: n, channels: cin, windows: l, kernel: kk)
        let cols = take(flatIndices: reordered, shape: [n, groups, cg * kk, l])
        let w = weight.reshaped(to: [groups, cout / groups, cg * kk])
        var out = Tensor.matmul(w, cols).reshaped(to: [n, cout, oh, ow])
        if let bias { out = out + bias.reshaped(to: [1, cout, 1, 1]) }
        return out
    }

    /// 1-D cross-correlation. `self` is [N, C_in, L], `weight` [C_out, C_in/groups, K].
    @inlinable public func conv1d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) -> Tensor {
        require(rank == 3 && weight.rank == 3, "conv1d: input \(shape) and weight \(weight.shape) must be 3-D")
        let out = expandingDimension(at: 2).conv2d(weight: weight.expandingDimension(at: 2), bias: bias,
                                                   stride: [1, stride], padding: [0, padding], dilation: [1, dilation], groups: groups)
        return out.squeezed(axes: [2])
    }

    /// Max pooling over [N, C, H, W]; padded positions never win (the first of equal values
    /// does). A primitive: the forward pass remembers each window's winner, the backward pass
    /// adds the cotangent there (recorded, as the adjoint of `take` at the winners).
    @inlinable public func maxPool2d(kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0]) -> Tensor {
        require(rank == 4, "max_pool2d: input must be [N, C, H, W], got \(shape)")
        let s = stride ?? kernelSize
        var g = Tensor.windowGeometry(shape, kernel: kernelSize, stride: s, padding: padding, dilation: [1, 1])
        require(padding[0] < kernelSize[0] && padding[1] < kernelSize[1],
                "max_pool2d: padding \(padding) must be smaller than the kernel \(kernelSize) (a window would lie entirely in the padding)")
        let planes = shape[0] * shape[1], outCount = planes * g.oh * g.ow
        let out = TensorStorage<Scalar>.make(count: outCount)
        var winners = [Int](repeating: -1, count: outCount)
        withExtendedLifetime(self) {
            winners.withUnsafeMutableBufferPointer { Scalar._maxPool2d(&g, planes, storage.base, out.base, $0.baseAddress!) }
        }
        let inputShape = shape
        return Tensor.record1("max_pool2d", self, output: Tensor(storage: out, shape: [shape[0], shape[1], g.oh, g.ow])) { grad, _ in
            if nb_grad_enabled() != 0 { return grad.scatterAdding(flatIndices: winners, shape: inputShape) }
            let dx = TensorStorage<Scalar>.make(repeating: 0, count: shapeCount(inputShape))
            withExtendedLifetime(grad) {
                winners.withUnsafeBufferPointer { Scalar._scatterAdd(outCount, grad.storage.base, $0.baseAddress!, dx.base) }
            }
            return Tensor(storage: dx, shape: inputShape)
        }
    }

    /// Average pooling over [N, C, H, W] with zero padding. With `countIncludingPadding` false the
    /// divisor is the number of window positions inside the input.
    @inlinable public func avgPool2d(kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0], countIncludingPadding: Bool = true) -> Tensor {
        require(rank == 4, "avg_pool2d: input must be [N, C, H, W], got \(shape)")
        let s = stride ?? kernelSize
        let (positions, oh, ow) = Tensor.windowPositions(shape, kernel: kernelSize, stride: s, padding: padding, dilation: [1, 1])
        let kk = kernelSize[0] * kernelSize[1]
        let sums = take(flatIndices: positions, shape: [shape[0], shape[1], oh, ow, kk]).sum(axes: [4])
        if countIncludingPadding { return sums / Scalar(kk) }
        var divisor = [Scalar](repeating: 0, count: oh * ow)
        for y in 0..<oh {
            for x in 0..<ow {
                let y0 = y * s[0] - padding[0], x0 = x * s[1] - padding[1]
                let hy = Swift.min(y0 + kernelSize[0], shape[2]) - Swift.max(y0, 0)
                let wx = Swift.min(x0 + kernelSize[1], shape[3]) - Swift.max(x0, 0)
                divisor[y * ow + x] = Scalar(Swift.max(hy, 0) * Swift.max(wx, 0))
            }
        }
        return sums / Tensor(shape: [oh, ow], scalars: divisor)
    }
}
