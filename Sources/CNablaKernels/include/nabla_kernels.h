// Nabla's hot loops. Every kernel exists for float (_f32) and double (_f64);
// on x86-64 an AVX2/FMA variant is chosen at run time when the CPU has it.
#ifndef NABLA_KERNELS_H
#define NABLA_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Binary element-wise op codes (broadcasting done through strides; a stride of 0 repeats).
enum {
    NB_ADD = 0, NB_SUB, NB_MUL, NB_DIV, NB_POW, NB_MAXIMUM, NB_MINIMUM,
    NB_EQ, NB_NE, NB_LT, NB_LE, NB_GT, NB_GE,
    NB_MAX_WEIGHT, // 1 where a > b, 0.5 where a == b, 0 elsewhere (derivative of maximum, ties split)
    NB_PASS_POSITIVE  // a where b > 0, else 0 (ReLU's pullback: a zero even where a is NaN or infinite)
};

// Unary element-wise op codes; p0 and p1 are op parameters.
enum {
    NB_NEG = 0, NB_EXP, NB_LOG, NB_SQRT, NB_ABS, NB_TANH, NB_SIGMOID, NB_RELU,
    NB_LEAKY_RELU,      // p0 = negative slope
    NB_ELU,             // p0 = alpha
    NB_GELU, NB_GELU_TANH,
    NB_SOFTPLUS,        // p0 = beta, p1 = threshold
    NB_SIN, NB_COS, NB_TAN, NB_ERF, NB_SIGN,
    NB_LEAKY_MASK,      // 1 where x > 0, else p0
    NB_SOFTPLUS_MASK,   // 1 where beta x <= threshold
    NB_POW_SCALAR,      // x^p0
    NB_SQUARE, NB_RECIPROCAL,
    NB_AFFINE,          // x * p0 + p1
    NB_CLAMP,           // min(max(x, p0), p1)
    NB_INSIDE_MASK,     // 1 where p0 < x < p1
    NB_IS_NONZERO,      // 1 where x != 0
    NB_LOG1P, NB_EXPM1,
    NB_GELU_GRAD        // d/dx x Φ(x) = Φ(x) + x φ(x)
};

enum { NB_REDUCE_SUM = 0, NB_REDUCE_MAX, NB_REDUCE_MIN };

#define NB_DECLARE(T, S) \
void nb_binary_##S(int op, int ndim, const long *shape, T *out, const T *a, const long *sa, const T *b, const long *sb); \
void nb_unary_##S(int op, long n, const T *x, T *out, double p0, double p1); \
void nb_reduce_##S(int op, long outer, long n, long inner, const T *x, T *out); \
void nb_copy_strided_##S(int ndim, const long *shape, const T *src, const long *strides, T *dst); \
void nb_store_strided_##S(int ndim, const long *shape, const T *src, T *dst, const long *strides); \
void nb_take_##S(long n, const T *src, const long *index, T *dst); \
void nb_scatter_add_##S(long n, const T *src, const long *index, T *dst); \
void nb_select_##S(long n, const T *cond, const T *a, const T *b, T *out); \
void nb_fill_##S(long n, T value, T *out); \
void nb_axpy_##S(long n, T alpha, const T *x, T *y); \
T nb_dot_##S(long n, const T *x, const T *y); \
void nb_gemm_##S(int transA, int transB, long M, long N, long K, T alpha, const T *A, long lda, \
                 const T *B, long ldb, T beta, T *C, long ldc); \
void nb_gemm_builtin_##S(int transA, int transB, long M, long N, long K, T alpha, const T *A, long lda, \
                 const T *B, long ldb, T beta, T *C, long ldc); \
void nb_convert_to_##S(long n, const void *src, int srcIsDouble, T *dst);

NB_DECLARE(float, f32)
NB_DECLARE(double, f64)

// Largest absolute value of a double vector; NaN when an element is NaN.
double nb_maxabs_f64(long n, const double *x);
/* DEFLATE decompression: 0 on success (*out to be released with nb_free), negative on corrupt or
   truncated input; *consumed is the number of input bytes the stream used. */
long nb_inflate(const unsigned char *in, size_t inlen, unsigned char **out, size_t *outlen, size_t *consumed);
void nb_free(void *p);
/* CRC-32 (the zip and gzip checksum), continuing from `crc` (0 to start). */
unsigned int nb_crc32(unsigned int crc, const unsigned char *p, size_t n);
/* One Adam step in place: x, first moment m and second moment v (coupled weight decay adds
   coupledDecay·x to g; decoupled decay scales x by xScale first), then x -= m·stepScale / (√v + eps)
   with the bias corrections already folded into stepScale and eps. */
void nb_adam_f32(long n, float *x, const float *g, float *m, float *v, float b1, float omb1, float b2, float omb2,
                 float coupledDecay, float xScale, float stepScale, float eps);
void nb_adam_f64(long n, double *x, const double *g, double *m, double *v, double b1, double omb1, double b2, double omb2,
                 double coupledDecay, double xScale, double stepScale, double eps);
/* L-BFGS two-loop recursion: q = H·(−g) from `count` pairs (s, y) in slots of n doubles, pair i
   (0 = oldest) in slot (start + i) % count, rho per slot; alpha: scratch of count doubles. */
void nb_lbfgs_direction_f64(long n, long count, long start, const double *S, const double *Y, const double *rho,
                            double hdiag, const double *g, double *q, double *alpha);
/* exp(x) in place for x <= 0 (vectorized; within about one ulp; 0 below -708). */
void nb_exp_nonpositive_f64(long n, double *x);
double nb_bce_logits_f32(long n, const float *x, const float *y, float *d);
double nb_bce_logits_f64(long n, const double *x, const double *y, double *d);
/* Row-wise softmax cross-entropy of logits z [n, k] against class indices: probabilities and per-row losses. */
void nb_softmax_xent_f64(long n, long k, const double *z, const long *targets, double *probs, double *loss);
void nb_softmax_xent_f32(long n, long k, const float *z, const long *targets, float *probs, float *loss);

/* Float32 GEMM with both operands read in place (AVX-512; see gemm_small.c), row-major like
   nb_gemm_f32. Covers op(B) = B with A or Aᵀ, and A·Bᵀ; returns 0 (and does nothing) for Aᵀ·Bᵀ,
   empty shapes, or a CPU without AVX-512. nb_gemm_f32 calls it where it measured faster. With
   parts > 1 the rows (or columns) are split across that many threads of nb_parallel_run; the bits
   do not depend on the split. */
int nb_sgemm_direct_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                           const float *B, long ldb, float beta, float *C, long ldc, int parts);
/* The same for the larger products, with op(B) packed into 64-column panels (and Aᵀ into strips);
   NN, TN and NT. Returns 0 where nb_sgemm_direct_avx512 does, or when its buffers cannot be had.
   With parts > 1 the columns are split (whole panels) across threads, as above. */
int nb_sgemm_panel_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc, int parts);
/* out = x · wᵀ + bias (then max(·, 0) when relu) by the panel kernel, the bias and the ReLU applied
   as each tile of out is stored; returns 0 (and does nothing) where the panel kernel declines. */
int nb_linear_panel_avx512(long M, long N, long K, const float *x, long ldx, const float *w, long ldw, const float *bias,
                           float *out, long ldo, int relu, int parts);
/* A dense layer: out[M, N] = x[M, K] · w[N, K]ᵀ + bias[N], then ReLU when relu is nonzero
   (v > 0 ? v : 0). The same bits as the bias copied into out, nb_gemm with beta = 1 and
   nb_unary(NB_RELU). */
void nb_linear_f32(long M, long N, long K, const float *x, const float *w, const float *bias, float *out, int relu);
void nb_lstm_forward_f32(long B, long H, const float *z, const float *cp, float *gates, float *c, float *tc, float *h);
void nb_lstm_backward_f32(long B, long H, const float *dh, const float *dcn, const float *gates, const float *cp, const float *tc, float *dz, float *dcp);
void nb_lstm_forward_f64(long B, long H, const double *z, const double *cp, double *gates, double *c, double *tc, double *h);
void nb_lstm_backward_f64(long B, long H, const double *dh, const double *dcn, const double *gates, const double *cp, const double *tc, double *dz, double *dcp);
void nb_causal_softmax_f32(long mats, long t, long s, float scale, const float *x, float *y);
void nb_causal_softmax_f64(long mats, long t, long s, double scale, const double *x, double *y);
void nb_softmax_backward_f32(long rows, long n, float scale, const float *y, const float *g, float *dx);
void nb_softmax_backward_f64(long rows, long n, double scale, const double *y, const double *g, double *dx);
void nb_layernorm_forward_f32(long rows, long n, const float *x, const float *w, const float *b, double eps, float *y, float *xhat, float *rstd);
void nb_layernorm_backward_f32(long rows, long n, const float *g, const float *xhat, const float *rstd, const float *w, float *dx, float *dw, float *db);
void nb_layernorm_forward_f64(long rows, long n, const double *x, const double *w, const double *b, double eps, double *y, double *xhat, double *rstd);
void nb_layernorm_backward_f64(long rows, long n, const double *g, const double *xhat, const double *rstd, const double *w, double *dx, double *dw, double *db);
void nb_linear_f64(long M, long N, long K, const double *x, const double *w, const double *bias, double *out, int relu);

// BLAS found at run time (OpenBLAS on Linux, Accelerate on macOS). Returns 1 when one was loaded.
int nb_blas_available(void);
// A short name of the library in use ("OpenBLAS 0.3.21 (libopenblas.so.0)", or "built-in").
const char *nb_blas_name(void);
// Forces the built-in kernels even when a BLAS is loaded (1) or lets BLAS be used again (0).
void nb_blas_set_disabled(int disabled);
// Number of threads BLAS and Nabla's own kernels may use.
void nb_set_num_threads(int n);
int nb_get_num_threads(void);
// 1 when the AVX2+FMA variants are in use.
int nb_cpu_has_avx2_fma(void);
// 1 when the AVX-512 variant of the built-in GEMM is in use.
int nb_cpu_has_avx512(void);
// Sets the built-in kernels' instruction set: 0 portable, 1 AVX2+FMA, 2 with the AVX-512 GEMM
// (capped by the CPU). Returns the level in use.
int nb_set_instruction_level(int level);

// The BLAS GEMM called directly (row-major, no transposes); 0 when no BLAS is loaded.
int nb_raw_sgemm(long M, long N, long K, const float *A, const float *B, float *C);
int nb_raw_dgemm(long M, long N, long K, const double *A, const double *B, double *C);

/* Batch normalization over axis 1 of [N, C, HW] with the batch's statistics (norm.c). */
void nb_batchnorm_forward_f32(long N, long C, long HW, const float *x, const float *w, const float *b, double eps, float *y, float *xhat, float *mean, float *var, float *rstd);
void nb_batchnorm_forward_f64(long N, long C, long HW, const double *x, const double *w, const double *b, double eps, double *y, double *xhat, double *mean, double *var, double *rstd);
void nb_batchnorm_backward_f32(long N, long C, long HW, const float *g, const float *xhat, const float *rstd, const float *w, float *dx, float *dw, float *db);
void nb_batchnorm_backward_f64(long N, long C, long HW, const double *g, const double *xhat, const double *rstd, const double *w, double *dx, double *dw, double *db);

/* The geometry of sliding windows over [C, H, W] images: kernel, stride, padding, dilation and
   the output size. */
typedef struct { long c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow; } nb_window;
void nb_im2col_f32(const nb_window *g, long ld, const float *x, float *cols);
void nb_im2col_f64(const nb_window *g, long ld, const double *x, double *cols);
void nb_col2im_f32(const nb_window *g, long ld, const float *cols, float *dx);
void nb_col2im_f64(const nb_window *g, long ld, const double *cols, double *dx);
void nb_maxpool2d_f32(const nb_window *g, long planes, const float *x, float *y, long *arg);
void nb_maxpool2d_f64(const nb_window *g, long planes, const double *x, double *y, long *arg);

/* Tensor buffers (64-byte aligned), reused through a per-thread cache by size class; free with
   the size they were allocated with. */
void *nb_buffer_alloc(size_t bytes);
void nb_buffer_free(void *p, size_t bytes);
/* Runs fn(ctx, i) for i in 0..<chunks on the calling thread and helper threads; returns when all
   are done. */
void nb_parallel_run(int chunks, void (*fn)(void *, int), void *ctx);
// A fresh number for each backward pass.
unsigned long long nb_next_pass_id(void);

// Gradient recording switch, per thread.
int nb_grad_enabled(void);
void nb_set_grad_enabled(int enabled);
/* Anomaly detection (checking every recorded op's output and cotangents for NaN/Inf), per thread. */
int nb_anomaly_detection(void);
void nb_set_anomaly_detection(int enabled);

#ifdef __cplusplus
}
#endif
#endif

/* ---- Fused element-wise kernels of compiled programs ----
   A kernel evaluates a small register program over every point of a domain (up to
   NB_FUSED_MAX_DIMS dimensions), the innermost dimension in blocks of NB_FUSED_BLOCK elements
   so that every intermediate stays in L1. Slots 0..<nloads hold the loads, the next nconsts slots
   the constants, the rest the instructions' results. */
#define NB_FUSED_MAX_DIMS 8
#define NB_FUSED_BLOCK 256
#define NB_FUSED_MAX_SLOTS 192
#define NB_FUSED_MAX_OUT 16
typedef struct {
    const void *base;                 /* the buffer read */
    long offset;                      /* element read at domain coordinate 0 (may lie outside) */
    long strides[NB_FUSED_MAX_DIMS];  /* per domain dimension; 0 broadcasts */
    long lo[NB_FUSED_MAX_DIMS];       /* coordinates outside [lo, hi) read 0 */
    long hi[NB_FUSED_MAX_DIMS];
} nb_fused_load;
enum {
    NB_F_NEG, NB_F_EXP, NB_F_LOG, NB_F_SIN, NB_F_COS, NB_F_TANH, NB_F_SQRT, NB_F_ABS, NB_F_SIGMOID,
    NB_F_RELU, NB_F_STEP, NB_F_SIGN, NB_F_POWS,
    NB_F_ADD = 32, NB_F_SUB, NB_F_MUL, NB_F_DIV, NB_F_MAX, NB_F_MIN, NB_F_POW, NB_F_GT, NB_F_MAXW,
    NB_F_SELECT = 64, NB_F_MASK,
    /* a·b + c, a·b − c, c − a·b: each rounded as the two operations apart */
    NB_F_MULADD, NB_F_MULSUB, NB_F_NMULADD,
    /* the same with b a constant held in imm: a·k, a·k + c, a·k − c, c − a·k */
    NB_F_MULK, NB_F_MULADDK, NB_F_MULSUBK, NB_F_NMULADDK
};
typedef struct {
    int op, dst, a, b, c;
    int dim;          /* NB_F_MASK: the domain dimension tested */
    long lo, hi;      /* NB_F_MASK: coordinates kept (the rest become 0) */
    double imm;       /* NB_F_POWS: the exponent; the …K forms: the constant factor */
    int out;          /* k + 1: the result is output k, written straight into it when contiguous */
} nb_fused_instr;
typedef struct {
    void *base;
    long strides[NB_FUSED_MAX_DIMS];  /* 0 along the dimensions summed over */
    int src;                          /* the slot stored */
    int accumulate;                   /* 1: sums into base (zeroed by the kernel first) */
    long count;                       /* elements of the output (for zeroing) */
} nb_fused_output;
typedef struct {
    int ndim;
    long shape[NB_FUSED_MAX_DIMS];
    int nloads; const nb_fused_load *loads;
    int nconsts; const double *consts;
    int ninstr; const nb_fused_instr *instr;
    int nslots;
    int nout; const nb_fused_output *out;
    int threads;      /* at most this many threads (1: the calling thread only) */
} nb_fused_kernel;
void nb_fused_run_f32(const nb_fused_kernel *k);
void nb_fused_run_f64(const nb_fused_kernel *k);
