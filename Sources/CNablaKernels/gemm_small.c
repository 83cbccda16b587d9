// Float32 matrix products for the shapes of a training step, where a BLAS spends much of its time
// packing operands: one small dimension (a batch of rows, or a batch reduced over), the other two
// up to a few thousand. AVX-512, reading both operands in place.
//
// Two micro-kernels cover the row-major layouts that backpropagation through a dense layer uses:
// - "broadcast" for op(B) = B (NN and TN): a tile of MR rows x 32 columns of C is kept in 2·MR
//   registers; each step k loads row k of B (32 contiguous floats) and multiplies it by MR
//   broadcast elements of op(A). A's elements are read through two strides, so A and Aᵀ are the
//   same code. K is blocked so that a 32-column panel of B stays in L1.
// - "dot" for op(B) = Bᵀ with A not transposed (NT, the forward pass of a dense layer): both
//   operands run along k, so a tile of MR x NR dot products is accumulated 16 k at a time and
//   reduced at the end.
// Each element of C is one sum over k in a fixed order per (tile, block) layout; results agree
// with a BLAS to float rounding, not bit for bit.
#include "nabla_kernels.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define NB_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define NB_INLINE static inline __attribute__((always_inline))
#define NB_UNROLL _Pragma("GCC unroll 16")

// Tile sizes; DOT_MC_FLOATS: the floats of A (rows × K) the dot kernel keeps in L2 at a time.
enum { BC_MR = 12, BC_KC = 256, DOT_MR = 4, DOT_NR = 6, DOT_MC_FLOATS = 1 << 17 };

// C[0:mr, 0:32 masked] = alpha · Σ_k op(A)[i, k] B[k, :] + beta · C, with op(A)[i, k] = a[i·ars + k·aks].
NB_AVX512 NB_INLINE void bc_tile(const int mr, long kc, const float *a, long ars, long aks, const float *b, long ldb,
                                 __mmask16 m0, __mmask16 m1, float alpha, float beta, float *c, long ldc) {
    __m512 acc0[BC_MR], acc1[BC_MR];
    NB_UNROLL
    for (int r = 0; r < mr; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
    for (long k = 0; k < kc; k++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b + k * ldb), b1 = _mm512_maskz_loadu_ps(m1, b + k * ldb + 16);
        const float *ak = a + k * aks;
        NB_UNROLL
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(ak[r * ars]);
            acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    NB_UNROLL
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        __m512 c0 = _mm512_mul_ps(acc0[r], va), c1 = _mm512_mul_ps(acc1[r], va);
        if (beta != 0) {
            c0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), c0);
            c1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), c1);
        }
        _mm512_mask_storeu_ps(cr, m0, c0);
        _mm512_mask_storeu_ps(cr + 16, m1, c1);
    }
}

#define BC_CASE(R) case R: bc_tile(R, kc, a, ars, aks, b, ldb, m0, m1, alpha, beta, c, ldc); break;
NB_AVX512 static void bc_tile_any(int mr, long kc, const float *a, long ars, long aks, const float *b, long ldb,
                                  __mmask16 m0, __mmask16 m1, float alpha, float beta, float *c, long ldc) {
    switch (mr) {
    BC_CASE(1) BC_CASE(2) BC_CASE(3) BC_CASE(4) BC_CASE(5) BC_CASE(6)
    BC_CASE(7) BC_CASE(8) BC_CASE(9) BC_CASE(10) BC_CASE(11) BC_CASE(12)
    default: break;
    }
}

NB_AVX512 static void gemm_broadcast(int transA, long M, long N, long K, float alpha, const float *A, long lda,
                                     const float *B, long ldb, float beta, float *C, long ldc) {
    long ars = transA ? 1 : lda, aks = transA ? lda : 1;
    long blocks = (M + BC_MR - 1) / BC_MR;
    for (long pc = 0; pc < K; pc += BC_KC) {
        long kc = K - pc < BC_KC ? K - pc : BC_KC;
        float bet = pc == 0 ? beta : 1.0f;
        for (long jc = 0; jc < N; jc += 32) {
            long w = N - jc < 32 ? N - jc : 32;
            __mmask16 m0 = w >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << w) - 1);
            __mmask16 m1 = w >= 32 ? (__mmask16)0xFFFF : (w > 16 ? (__mmask16)((1u << (w - 16)) - 1) : 0);
            // Rows in equal blocks of at most BC_MR (32 rows: 11, 11, 10).
            for (long blk = 0, i0 = 0; blk < blocks; blk++) {
                long i1 = (blk + 1) * M / blocks;
                bc_tile_any((int)(i1 - i0), kc, A + i0 * ars + pc * aks, ars, aks, B + pc * ldb + jc, ldb, m0, m1,
                            alpha, bet, C + i0 * ldc + jc, ldc);
                i0 = i1;
            }
        }
    }
}

// Sum of each of four vectors, in lanes 0..3 of the result.
NB_AVX512 NB_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    // Halve twice (512 -> 256 -> 128 per vector), then a 4x4 transpose-add.
    __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    __m256 ab = _mm256_hadd_ps(a8, b8), cd = _mm256_hadd_ps(c8, d8);   // a01 a23 b01 b23 | a45 a67 b45 b67
    __m256 abcd = _mm256_hadd_ps(ab, cd);                              // a b c d | a b c d (partial)
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// C[0:mr, 0:nr] = alpha · A[0:mr, :] · B[0:nr, :]ᵀ + beta · C over K.
NB_AVX512 NB_INLINE void dot_tile(const int mr, const int nr, long K, const float *a, long lda, const float *b, long ldb,
                                  float alpha, float beta, float *c, long ldc) {
    __m512 acc[DOT_MR][DOT_NR];
    NB_UNROLL
    for (int r = 0; r < mr; r++) for (int j = 0; j < nr; j++) acc[r][j] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 av[DOT_MR];
        NB_UNROLL
        for (int r = 0; r < mr; r++) av[r] = _mm512_loadu_ps(a + r * lda + k);
        NB_UNROLL
        for (int j = 0; j < nr; j++) {
            __m512 bv = _mm512_loadu_ps(b + j * ldb + k);
            NB_UNROLL
            for (int r = 0; r < mr; r++) acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);
        }
    }
    if (k < K) {
        __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
        __m512 av[DOT_MR];
        NB_UNROLL
        for (int r = 0; r < mr; r++) av[r] = _mm512_maskz_loadu_ps(mk, a + r * lda + k);
        NB_UNROLL
        for (int j = 0; j < nr; j++) {
            __m512 bv = _mm512_maskz_loadu_ps(mk, b + j * ldb + k);
            NB_UNROLL
            for (int r = 0; r < mr; r++) acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);
        }
    }
    NB_UNROLL
    for (int r = 0; r < mr; r++) {
        float s[8];
        _mm_storeu_ps(s, hsum4(acc[r][0], nr > 1 ? acc[r][1] : acc[r][0], nr > 2 ? acc[r][2] : acc[r][0], nr > 3 ? acc[r][3] : acc[r][0]));
        if (nr > 4) _mm_storeu_ps(s + 4, hsum4(acc[r][4], nr > 5 ? acc[r][5] : acc[r][4], acc[r][4], acc[r][4]));
        float *cr = c + r * ldc;
        NB_UNROLL
        for (int j = 0; j < nr; j++) cr[j] = beta == 0 ? alpha * s[j] : alpha * s[j] + beta * cr[j];
    }
}

#define DOT_CASE(R, Nn) case (R) * 8 + (Nn): dot_tile(R, Nn, K, a, lda, b, ldb, alpha, beta, c, ldc); break;
#define DOT_ROW(R) DOT_CASE(R, 1) DOT_CASE(R, 2) DOT_CASE(R, 3) DOT_CASE(R, 4) DOT_CASE(R, 5) DOT_CASE(R, 6)
NB_AVX512 static void dot_tile_any(int mr, int nr, long K, const float *a, long lda, const float *b, long ldb,
                                   float alpha, float beta, float *c, long ldc) {
    switch (mr * 8 + nr) {
    DOT_ROW(1) DOT_ROW(2) DOT_ROW(3) DOT_ROW(4)
    default: break;
    }
}

NB_AVX512 static void gemm_dot(long M, long N, long K, float alpha, const float *A, long lda,
                               const float *B, long ldb, float beta, float *C, long ldc) {
    // Rows of A in chunks that stay in L2 while every panel of NR rows of B passes over them.
    long mc = (DOT_MC_FLOATS / K) / DOT_MR * DOT_MR;
    if (mc < DOT_MR) mc = DOT_MR;
    for (long ic = 0; ic < M; ic += mc) {
        long i1 = M - ic < mc ? M : ic + mc;
        for (long j = 0; j < N; j += DOT_NR) {
            int nr = N - j < DOT_NR ? (int)(N - j) : DOT_NR;
            for (long i = ic; i < i1; i += DOT_MR) {
                int mr = i1 - i < DOT_MR ? (int)(i1 - i) : DOT_MR;
                dot_tile_any(mr, nr, K, A + i * lda, lda, B + j * ldb, ldb, alpha, beta, C + i * ldc + j, ldc);
            }
        }
    }
}

int nb_sgemm_direct_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                           const float *B, long ldb, float beta, float *C, long ldc) {
    if (M <= 0 || N <= 0 || K <= 0 || !nb_cpu_has_avx512()) return 0;
    if (!transB) { gemm_broadcast(transA, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); return 1; }
    if (!transA) { gemm_dot(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); return 1; }
    return 0;
}

#else
int nb_sgemm_direct_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                           const float *B, long ldb, float beta, float *C, long ldc) {
    (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb;
    (void)beta; (void)C; (void)ldc;
    return 0;
}
#endif
