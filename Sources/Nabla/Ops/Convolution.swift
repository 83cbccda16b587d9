// Convolution and pooling, built from `take` (im2col: gathering windows, with -1 for padding)
// and a batched matrix product. Their derivatives follow from those primitives.

extension Tensor {
    /// Flat positions of the [N, C, OH, OW, KH, KW] windows of an [N, C, H, W] input.
    @inlinable static func windowPositions(_ shape: [Int], kernel: [Int], stride: [Int], padding: [Int], dilation: [Int]) -> (positions: [Int], oh: Int, ow: Int) {
        require(kernel.count == 2 && stride.count == 2 && padding.count == 2 && dilation.count == 2,
                "convolution/pooling: kernel \(kernel), stride \(stride), padding \(padding) and dilation \(dilation) must each have 2 values")
        require(kernel.allSatisfy { $0 > 0 } && stride.allSatisfy { $0 > 0 } && dilation.allSatisfy { $0 > 0 } && padding.allSatisfy { $0 >= 0 },
                "convolution/pooling: kernel \(kernel), stride \(stride) and dilation \(dilation) must be positive and padding \(padding) non-negative")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        // The extent the window needs; compared before dividing (integer division truncates
        // towards zero, which would turn a window larger than the input into one output).
        let spanH = h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1
        let spanW = w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1
        require(spanH >= 0 && spanW >= 0,
                "convolution/pooling: kernel \(kernel) with padding \(padding) and dilation \(dilation) is larger than the input \(shape)")
        let oh = spanH / stride[0] + 1, ow = spanW / stride[1] + 1
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

    /// 2-D cross-correlation. `self` is [N, C_in, H, W], `weight` [C_out, C_in/groups, KH, KW],
    /// `bias` [C_out]; zero padding on both sides.
    @inlinable public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: [Int] = [1, 1], padding: [Int] = [0, 0],
                       dilation: [Int] = [1, 1], groups: Int = 1) -> Tensor {
        require(rank == 4 && weight.rank == 4, "conv2d: input \(shape) and weight \(weight.shape) must be 4-D")
        let (n, cin) = (shape[0], shape[1])
        let (cout, cg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        require(groups >= 1 && cin % groups == 0 && cout % groups == 0 && cg == cin / groups,
                     "conv2d: input \(shape), weight \(weight.shape) and groups \(groups) do not agree")
        let (positions, oh, ow) = Tensor.windowPositions(shape, kernel: [kh, kw], stride: stride, padding: padding, dilation: dilation)
        let l = oh * ow
        // [N, G, Cg, L, KH*KW] -> [N, G, Cg*KH*KW, L] via take with reordered positions.
        var reordered = [Int](repeating: -1, count: positions.count)
        let kk = kh * kw
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

    /// Max pooling over [N, C, H, W]; padded positions never win.
    @inlinable public func maxPool2d(kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0]) -> Tensor {
        require(rank == 4, "max_pool2d: input must be [N, C, H, W], got \(shape)")
        let s = stride ?? kernelSize
        let (positions, oh, ow) = Tensor.windowPositions(shape, kernel: kernelSize, stride: s, padding: padding, dilation: [1, 1])
        let kk = kernelSize[0] * kernelSize[1]
        let windows = positions.count / kk
        var winners = [Int](repeating: 0, count: windows)
        let p = storage.base
        for wdx in 0..<windows {
            var best = -1
            for k in 0..<kk {
                let j = positions[wdx * kk + k]
                if j >= 0 && (best < 0 || p[j] > p[best]) { best = j }
            }
            require(best >= 0, "max_pool2d: a window lies entirely in the padding")
            winners[wdx] = best
        }
        return take(flatIndices: winners, shape: [shape[0], shape[1], oh, ow])
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
