import CNablaKernels

/// The element types a ``Tensor`` can hold: `Float` and `Double`.
///
/// Each conforming type routes Nabla's kernels to its C implementation, so element loops run
/// as compiled, vectorized code whatever the caller's specialization.
public protocol TensorScalar: BinaryFloatingPoint, Sendable, LosslessStringConvertible
where Self.RawSignificand: FixedWidthInteger {
    /// The name used in files and messages (`"float32"`, `"float64"`).
    static var dtypeName: String { get }
    static func _binary(_ op: Int32, _ ndim: Int32, _ shape: UnsafePointer<Int>, _ out: UnsafeMutablePointer<Self>,
                        _ a: UnsafePointer<Self>, _ sa: UnsafePointer<Int>, _ b: UnsafePointer<Self>, _ sb: UnsafePointer<Int>)
    static func _unary(_ op: Int32, _ n: Int, _ x: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Self>, _ p0: Double, _ p1: Double)
    static func _reduce(_ op: Int32, _ outer: Int, _ n: Int, _ inner: Int, _ x: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Self>)
    static func _copyStrided(_ ndim: Int32, _ shape: UnsafePointer<Int>, _ src: UnsafePointer<Self>, _ strides: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Self>)
    static func _storeStrided(_ ndim: Int32, _ shape: UnsafePointer<Int>, _ src: UnsafePointer<Self>, _ dst: UnsafeMutablePointer<Self>, _ strides: UnsafePointer<Int>)
    static func _take(_ n: Int, _ src: UnsafePointer<Self>, _ index: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Self>)
    static func _scatterAdd(_ n: Int, _ src: UnsafePointer<Self>, _ index: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Self>)
    static func _select(_ n: Int, _ cond: UnsafePointer<Self>, _ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Self>)
    static func _fill(_ n: Int, _ value: Self, _ out: UnsafeMutablePointer<Self>)
    static func _axpy(_ n: Int, _ alpha: Self, _ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>)
    static func _dot(_ n: Int, _ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>) -> Self
    static func _gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Self,
                      _ a: UnsafePointer<Self>, _ lda: Int, _ b: UnsafePointer<Self>, _ ldb: Int,
                      _ beta: Self, _ c: UnsafeMutablePointer<Self>, _ ldc: Int)
    static func _gemmBuiltin(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Self,
                             _ a: UnsafePointer<Self>, _ lda: Int, _ b: UnsafePointer<Self>, _ ldb: Int,
                             _ beta: Self, _ c: UnsafeMutablePointer<Self>, _ ldc: Int)
    static func _softmaxCrossEntropy(_ n: Int, _ k: Int, _ z: UnsafePointer<Self>, _ targets: UnsafePointer<Int>,
                                     _ probs: UnsafeMutablePointer<Self>, _ loss: UnsafeMutablePointer<Self>)
    static func _lstmForward(_ b: Int, _ h: Int, _ z: UnsafePointer<Self>, _ cp: UnsafePointer<Self>, _ gates: UnsafeMutablePointer<Self>,
                             _ c: UnsafeMutablePointer<Self>, _ tc: UnsafeMutablePointer<Self>, _ hOut: UnsafeMutablePointer<Self>)
    static func _lstmBackward(_ b: Int, _ h: Int, _ dh: UnsafePointer<Self>, _ dcn: UnsafePointer<Self>, _ gates: UnsafePointer<Self>, _ cp: UnsafePointer<Self>,
                              _ tc: UnsafePointer<Self>, _ dz: UnsafeMutablePointer<Self>, _ dcp: UnsafeMutablePointer<Self>)
    static func _causalSoftmax(_ mats: Int, _ t: Int, _ s: Int, _ scale: Self, _ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>)
    static func _batchNormForward(_ n: Int, _ c: Int, _ hw: Int, _ x: UnsafePointer<Self>, _ w: UnsafePointer<Self>?, _ b: UnsafePointer<Self>?, _ eps: Double,
                                  _ y: UnsafeMutablePointer<Self>, _ xhat: UnsafeMutablePointer<Self>, _ mean: UnsafeMutablePointer<Self>, _ variance: UnsafeMutablePointer<Self>, _ rstd: UnsafeMutablePointer<Self>)
    static func _batchNormBackward(_ n: Int, _ c: Int, _ hw: Int, _ g: UnsafePointer<Self>, _ xhat: UnsafePointer<Self>, _ rstd: UnsafePointer<Self>, _ w: UnsafePointer<Self>?,
                                   _ dx: UnsafeMutablePointer<Self>?, _ dw: UnsafeMutablePointer<Self>?, _ db: UnsafeMutablePointer<Self>?)
    static func _im2col(_ g: UnsafePointer<nb_window>, _ ld: Int, _ x: UnsafePointer<Self>, _ cols: UnsafeMutablePointer<Self>)
    static func _col2im(_ g: UnsafePointer<nb_window>, _ ld: Int, _ cols: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>)
    static func _maxPool2d(_ g: UnsafePointer<nb_window>, _ planes: Int, _ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ arg: UnsafeMutablePointer<Int>)
    static func _softmaxBackward(_ rows: Int, _ n: Int, _ scale: Self, _ y: UnsafePointer<Self>, _ g: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>)
    static func _layerNormForward(_ rows: Int, _ n: Int, _ x: UnsafePointer<Self>, _ w: UnsafePointer<Self>?, _ b: UnsafePointer<Self>?, _ eps: Double,
                                  _ y: UnsafeMutablePointer<Self>, _ xhat: UnsafeMutablePointer<Self>, _ rstd: UnsafeMutablePointer<Self>)
    static func _layerNormBackward(_ rows: Int, _ n: Int, _ g: UnsafePointer<Self>, _ xhat: UnsafePointer<Self>, _ rstd: UnsafePointer<Self>, _ w: UnsafePointer<Self>?,
                                   _ dx: UnsafeMutablePointer<Self>?, _ dw: UnsafeMutablePointer<Self>?, _ db: UnsafeMutablePointer<Self>?)
    static func _linear(_ m: Int, _ n: Int, _ k: Int, _ x: UnsafePointer<Self>, _ w: UnsafePointer<Self>,
                        _ bias: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Self>, _ relu: Bool)
    static func _binaryCrossEntropyLogits(_ n: Int, _ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>, _ d: UnsafeMutablePointer<Self>) -> Double
    static func _adam(_ n: Int, _ x: UnsafeMutablePointer<Self>, _ g: UnsafePointer<Self>, _ m: UnsafeMutablePointer<Self>,
                      _ v: UnsafeMutablePointer<Self>, _ c: [Self])
}

extension Float: TensorScalar {
    public static var dtypeName: String { "float32" }
    @inline(__always) public static func _binary(_ op: Int32, _ ndim: Int32, _ shape: UnsafePointer<Int>, _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ sa: UnsafePointer<Int>, _ b: UnsafePointer<Float>, _ sb: UnsafePointer<Int>) { nb_binary_f32(op, ndim, shape, out, a, sa, b, sb) }
    @inline(__always) public static func _unary(_ op: Int32, _ n: Int, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ p0: Double, _ p1: Double) { nb_unary_f32(op, n, x, out, p0, p1) }
    @inline(__always) public static func _reduce(_ op: Int32, _ outer: Int, _ n: Int, _ inner: Int, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) { nb_reduce_f32(op, outer, n, inner, x, out) }
    @inline(__always) public static func _copyStrided(_ ndim: Int32, _ shape: UnsafePointer<Int>, _ src: UnsafePointer<Float>, _ strides: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Float>) { nb_copy_strided_f32(ndim, shape, src, strides, dst) }
    @inline(__always) public static func _storeStrided(_ ndim: Int32, _ shape: UnsafePointer<Int>, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ strides: UnsafePointer<Int>) { nb_store_strided_f32(ndim, shape, src, dst, strides) }
    @inline(__always) public static func _take(_ n: Int, _ src: UnsafePointer<Float>, _ index: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Float>) { nb_take_f32(n, src, index, dst) }
    @inline(__always) public static func _scatterAdd(_ n: Int, _ src: UnsafePointer<Float>, _ index: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Float>) { nb_scatter_add_f32(n, src, index, dst) }
    @inline(__always) public static func _select(_ n: Int, _ cond: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) { nb_select_f32(n, cond, a, b, out) }
    @inline(__always) public static func _fill(_ n: Int, _ value: Float, _ out: UnsafeMutablePointer<Float>) { nb_fill_f32(n, value, out) }
    @inline(__always) public static func _axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) { nb_axpy_f32(n, alpha, x, y) }
    @inline(__always) public static func _dot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float { nb_dot_f32(n, x, y) }
    @inline(__always) public static func _gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        nb_gemm_f32(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
    @inline(__always) public static func _gemmBuiltin(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        nb_gemm_builtin_f32(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
    @inline(__always) public static func _softmaxCrossEntropy(_ n: Int, _ k: Int, _ z: UnsafePointer<Float>, _ targets: UnsafePointer<Int>, _ probs: UnsafeMutablePointer<Float>, _ loss: UnsafeMutablePointer<Float>) {
        nb_softmax_xent_f32(n, k, z, targets, probs, loss)
    }
    @inline(__always) public static func _batchNormForward(_ n: Int, _ c: Int, _ hw: Int, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?, _ eps: Double,
                                                           _ y: UnsafeMutablePointer<Float>, _ xhat: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ variance: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>) {
        nb_batchnorm_forward_f32(n, c, hw, x, w, b, eps, y, xhat, mean, variance, rstd)
    }
    @inline(__always) public static func _batchNormBackward(_ n: Int, _ c: Int, _ hw: Int, _ g: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ w: UnsafePointer<Float>?,
                                                            _ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?) {
        nb_batchnorm_backward_f32(n, c, hw, g, xhat, rstd, w, dx, dw, db)
    }
    @inline(__always) public static func _im2col(_ g: UnsafePointer<nb_window>, _ ld: Int, _ x: UnsafePointer<Float>, _ cols: UnsafeMutablePointer<Float>) { nb_im2col_f32(g, ld, x, cols) }
    @inline(__always) public static func _col2im(_ g: UnsafePointer<nb_window>, _ ld: Int, _ cols: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) { nb_col2im_f32(g, ld, cols, dx) }
    @inline(__always) public static func _maxPool2d(_ g: UnsafePointer<nb_window>, _ planes: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ arg: UnsafeMutablePointer<Int>) { nb_maxpool2d_f32(g, planes, x, y, arg) }
    @inline(__always) public static func _lstmForward(_ b: Int, _ h: Int, _ z: UnsafePointer<Float>, _ cp: UnsafePointer<Float>, _ gates: UnsafeMutablePointer<Float>,
                                                      _ c: UnsafeMutablePointer<Float>, _ tc: UnsafeMutablePointer<Float>, _ hOut: UnsafeMutablePointer<Float>) {
        nb_lstm_forward_f32(b, h, z, cp, gates, c, tc, hOut)
    }
    @inline(__always) public static func _lstmBackward(_ b: Int, _ h: Int, _ dh: UnsafePointer<Float>, _ dcn: UnsafePointer<Float>, _ gates: UnsafePointer<Float>, _ cp: UnsafePointer<Float>,
                                                       _ tc: UnsafePointer<Float>, _ dz: UnsafeMutablePointer<Float>, _ dcp: UnsafeMutablePointer<Float>) {
        nb_lstm_backward_f32(b, h, dh, dcn, gates, cp, tc, dz, dcp)
    }
    @inline(__always) public static func _causalSoftmax(_ mats: Int, _ t: Int, _ s: Int, _ scale: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        nb_causal_softmax_f32(mats, t, s, scale, x, y)
    }
    @inline(__always) public static func _softmaxBackward(_ rows: Int, _ n: Int, _ scale: Float, _ y: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        nb_softmax_backward_f32(rows, n, scale, y, g, dx)
    }
    @inline(__always) public static func _layerNormForward(_ rows: Int, _ n: Int, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, _ b: UnsafePointer<Float>?, _ eps: Double,
                                                           _ y: UnsafeMutablePointer<Float>, _ xhat: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>) {
        nb_layernorm_forward_f32(rows, n, x, w, b, eps, y, xhat, rstd)
    }
    @inline(__always) public static func _layerNormBackward(_ rows: Int, _ n: Int, _ g: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ w: UnsafePointer<Float>?,
                                                            _ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?) {
        nb_layernorm_backward_f32(rows, n, g, xhat, rstd, w, dx, dw, db)
    }
    @inline(__always) public static func _linear(_ m: Int, _ n: Int, _ k: Int, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ relu: Bool) {
        nb_linear_f32(m, n, k, x, w, bias, out, relu ? 1 : 0)
    }
    @inline(__always) public static func _binaryCrossEntropyLogits(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>) -> Double { nb_bce_logits_f32(n, x, y, d) }
    @inline(__always) public static func _adam(_ n: Int, _ x: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ c: [Float]) {
        nb_adam_f32(n, x, g, m, v, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])
    }
}

extension Double: TensorScalar {
    public static var dtypeName: String { "float64" }
    @inline(__always) public static func _binary(_ op: Int32, _ ndim: Int32, _ shape: UnsafePointer<Int>, _ out: UnsafeMutablePointer<Double>, _ a: UnsafePointer<Double>, _ sa: UnsafePointer<Int>, _ b: UnsafePointer<Double>, _ sb: UnsafePointer<Int>) { nb_binary_f64(op, ndim, shape, out, a, sa, b, sb) }
    @inline(__always) public static func _unary(_ op: Int32, _ n: Int, _ x: UnsafePointer<Double>, _ out: UnsafeMutablePointer<Double>, _ p0: Double, _ p1: Double) { nb_unary_f64(op, n, x, out, p0, p1) }
    @inline(__always) public static func _reduce(_ op: Int32, _ outer: Int, _ n: Int, _ inner: Int, _ x: UnsafePointer<Double>, _ out: UnsafeMutablePointer<Double>) { nb_reduce_f64(op, outer, n, inner, x, out) }
    @inline(__always) public static func _copyStrided(_ ndim: Int32, _ shape: UnsafePointer<Int>, _ src: UnsafePointer<Double>, _ strides: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Double>) { nb_copy_strided_f64(ndim, shape, src, strides, dst) }
    @inline(__always) public static func _storeStrided(_ ndim: Int32, _ shape: UnsafePointer<Int>, _ src: UnsafePointer<Double>, _ dst: UnsafeMutablePointer<Double>, _ strides: UnsafePointer<Int>) { nb_store_strided_f64(ndim, shape, src, dst, strides) }
    @inline(__always) public static func _take(_ n: Int, _ src: UnsafePointer<Double>, _ index: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Double>) { nb_take_f64(n, src, index, dst) }
    @inline(__always) public static func _scatterAdd(_ n: Int, _ src: UnsafePointer<Double>, _ index: UnsafePointer<Int>, _ dst: UnsafeMutablePointer<Double>) { nb_scatter_add_f64(n, src, index, dst) }
    @inline(__always) public static func _select(_ n: Int, _ cond: UnsafePointer<Double>, _ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ out: UnsafeMutablePointer<Double>) { nb_select_f64(n, cond, a, b, out) }
    @inline(__always) public static func _fill(_ n: Int, _ value: Double, _ out: UnsafeMutablePointer<Double>) { nb_fill_f64(n, value, out) }
    @inline(__always) public static func _axpy(_ n: Int, _ alpha: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>) { nb_axpy_f64(n, alpha, x, y) }
    @inline(__always) public static func _dot(_ n: Int, _ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>) -> Double { nb_dot_f64(n, x, y) }
    @inline(__always) public static func _gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Double, _ a: UnsafePointer<Double>, _ lda: Int, _ b: UnsafePointer<Double>, _ ldb: Int, _ beta: Double, _ c: UnsafeMutablePointer<Double>, _ ldc: Int) {
        nb_gemm_f64(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
    @inline(__always) public static func _gemmBuiltin(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Double, _ a: UnsafePointer<Double>, _ lda: Int, _ b: UnsafePointer<Double>, _ ldb: Int, _ beta: Double, _ c: UnsafeMutablePointer<Double>, _ ldc: Int) {
        nb_gemm_builtin_f64(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
    @inline(__always) public static func _softmaxCrossEntropy(_ n: Int, _ k: Int, _ z: UnsafePointer<Double>, _ targets: UnsafePointer<Int>, _ probs: UnsafeMutablePointer<Double>, _ loss: UnsafeMutablePointer<Double>) {
        nb_softmax_xent_f64(n, k, z, targets, probs, loss)
    }
    @inline(__always) public static func _batchNormForward(_ n: Int, _ c: Int, _ hw: Int, _ x: UnsafePointer<Double>, _ w: UnsafePointer<Double>?, _ b: UnsafePointer<Double>?, _ eps: Double,
                                                           _ y: UnsafeMutablePointer<Double>, _ xhat: UnsafeMutablePointer<Double>, _ mean: UnsafeMutablePointer<Double>, _ variance: UnsafeMutablePointer<Double>, _ rstd: UnsafeMutablePointer<Double>) {
        nb_batchnorm_forward_f64(n, c, hw, x, w, b, eps, y, xhat, mean, variance, rstd)
    }
    @inline(__always) public static func _batchNormBackward(_ n: Int, _ c: Int, _ hw: Int, _ g: UnsafePointer<Double>, _ xhat: UnsafePointer<Double>, _ rstd: UnsafePointer<Double>, _ w: UnsafePointer<Double>?,
                                                            _ dx: UnsafeMutablePointer<Double>?, _ dw: UnsafeMutablePointer<Double>?, _ db: UnsafeMutablePointer<Double>?) {
        nb_batchnorm_backward_f64(n, c, hw, g, xhat, rstd, w, dx, dw, db)
    }
    @inline(__always) public static func _im2col(_ g: UnsafePointer<nb_window>, _ ld: Int, _ x: UnsafePointer<Double>, _ cols: UnsafeMutablePointer<Double>) { nb_im2col_f64(g, ld, x, cols) }
    @inline(__always) public static func _col2im(_ g: UnsafePointer<nb_window>, _ ld: Int, _ cols: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>) { nb_col2im_f64(g, ld, cols, dx) }
    @inline(__always) public static func _maxPool2d(_ g: UnsafePointer<nb_window>, _ planes: Int, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ arg: UnsafeMutablePointer<Int>) { nb_maxpool2d_f64(g, planes, x, y, arg) }
    @inline(__always) public static func _lstmForward(_ b: Int, _ h: Int, _ z: UnsafePointer<Double>, _ cp: UnsafePointer<Double>, _ gates: UnsafeMutablePointer<Double>,
                                                      _ c: UnsafeMutablePointer<Double>, _ tc: UnsafeMutablePointer<Double>, _ hOut: UnsafeMutablePointer<Double>) {
        nb_lstm_forward_f64(b, h, z, cp, gates, c, tc, hOut)
    }
    @inline(__always) public static func _lstmBackward(_ b: Int, _ h: Int, _ dh: UnsafePointer<Double>, _ dcn: UnsafePointer<Double>, _ gates: UnsafePointer<Double>, _ cp: UnsafePointer<Double>,
                                                       _ tc: UnsafePointer<Double>, _ dz: UnsafeMutablePointer<Double>, _ dcp: UnsafeMutablePointer<Double>) {
        nb_lstm_backward_f64(b, h, dh, dcn, gates, cp, tc, dz, dcp)
    }
    @inline(__always) public static func _causalSoftmax(_ mats: Int, _ t: Int, _ s: Int, _ scale: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>) {
        nb_causal_softmax_f64(mats, t, s, scale, x, y)
    }
    @inline(__always) public static func _softmaxBackward(_ rows: Int, _ n: Int, _ scale: Double, _ y: UnsafePointer<Double>, _ g: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>) {
        nb_softmax_backward_f64(rows, n, scale, y, g, dx)
    }
    @inline(__always) public static func _layerNormForward(_ rows: Int, _ n: Int, _ x: UnsafePointer<Double>, _ w: UnsafePointer<Double>?, _ b: UnsafePointer<Double>?, _ eps: Double,
                                                           _ y: UnsafeMutablePointer<Double>, _ xhat: UnsafeMutablePointer<Double>, _ rstd: UnsafeMutablePointer<Double>) {
        nb_layernorm_forward_f64(rows, n, x, w, b, eps, y, xhat, rstd)
    }
    @inline(__always) public static func _layerNormBackward(_ rows: Int, _ n: Int, _ g: UnsafePointer<Double>, _ xhat: UnsafePointer<Double>, _ rstd: UnsafePointer<Double>, _ w: UnsafePointer<Double>?,
                                                            _ dx: UnsafeMutablePointer<Double>?, _ dw: UnsafeMutablePointer<Double>?, _ db: UnsafeMutablePointer<Double>?) {
        nb_layernorm_backward_f64(rows, n, g, xhat, rstd, w, dx, dw, db)
    }
    @inline(__always) public static func _linear(_ m: Int, _ n: Int, _ k: Int, _ x: UnsafePointer<Double>, _ w: UnsafePointer<Double>, _ bias: UnsafePointer<Double>, _ out: UnsafeMutablePointer<Double>, _ relu: Bool) {
        nb_linear_f64(m, n, k, x, w, bias, out, relu ? 1 : 0)
    }
    @inline(__always) public static func _binaryCrossEntropyLogits(_ n: Int, _ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ d: UnsafeMutablePointer<Double>) -> Double { nb_bce_logits_f64(n, x, y, d) }
    @inline(__always) public static func _adam(_ n: Int, _ x: UnsafeMutablePointer<Double>, _ g: UnsafePointer<Double>, _ m: UnsafeMutablePointer<Double>, _ v: UnsafeMutablePointer<Double>, _ c: [Double]) {
        nb_adam_f64(n, x, g, m, v, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])
    }
}
