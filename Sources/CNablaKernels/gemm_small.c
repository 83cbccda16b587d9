// Float32 matrix products for the shapes of a training step, where a BLAS spends much of its time
// packing operands or runs below the machine's peak: one dimension the batch (or a sum over the
// batch), the other two up to a few thousand. AVX-512.
//
// Three micro-kernels cover the row-major layouts that backpropagation through a dense layer uses:
// - "broadcast" for op(B) = B (NN and TN): a tile of MR rows x 32 columns of C is kept in 2·MR
//   registers; each step k loads row k of B (32 contiguous floats) and multiplies it by MR
//   broadcast elements of op(A). A's elements are read through two strides, so A and Aᵀ are the
//   same code. K is blocked so that a 32-column panel of B stays in L1. Both operands in place.
// - "dot" for op(B) = Bᵀ with A not transposed (NT, the forward pass of a dense layer): both
//   operands run along k, so a tile of MR x NR dot products is accumulated 16 k at a time and
//   reduced at the end. Both operands in place.
// - "panel" for the larger products (all three layouts): op(B) is packed into 64-column panels of
//   up to 128 k that stay in L1 while every 6-row block of op(A) passes over them, and a tile of
//   6 x 64 of C is kept in 24 registers (four loads of B and six broadcasts of A per k). op(A) is
//   read in place when A is not transposed (six row streams) and copied into k-major strips when
//   it is. The packing costs N·K (and M·K) copies against M·N·K multiply-adds. As a dense layer it
//   also adds the bias and applies a ReLU as it stores each tile.
// Each element of C is one sum over k in a fixed order per (tile, block) layout; results agree
// with a BLAS to float rounding, not bit for bit.
#include <string.h>
#include "nabla_kernels.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define NB_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define NB_INLINE static inline __attribute__((always_inline))
#define NB_UNROLL _Pragma("GCC unroll 16")

// The first w of 16 lanes (none for w <= 0, all for w >= 16).
NB_INLINE __mmask16 nb_lanes(long w) { return w >= 16 ? (__mmask16)0xFFFF : w > 0 ? (__mmask16)((1u << w) - 1) : 0; }

// Tile sizes; DOT_MC_FLOATS: the floats of A (rows × K) the dot kernel keeps in L2 at a time.
enum { BC_MR = 12, BC_KC = 256, DOT_MR = 4, DOT_NR = 6, DOT_MC_FLOATS = 1 << 17,
       PN_MR = 6, PN_NV = 4, PN_NR = 64, PN_KC = 128,
       PN_NC = 2048, PN_MC = 1536, PN_B_BYTES = 1 << 20, PN_C_BYTES = 1 << 19 };

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
            __mmask16 m0 = nb_lanes(w), m1 = nb_lanes(w - 16);
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
        __mmask16 mk = nb_lanes(K - k);
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

// ---- panel kernel ----

// bp[k·64 + j] = op(B)[k, j] for k < kc, j < nr, and 0 for nr <= j < 64.
NB_AVX512 static void pn_pack_b(int transB, long kc, long nr, const float *B, long ldb, float *bp) {
    if (!transB) {
        for (long k = 0; k < kc; k++) {
            const float *s = B + k * ldb;
            NB_UNROLL
            for (int v = 0; v < PN_NV; v++) {
                _mm512_store_ps(bp + k * PN_NR + 16 * v, _mm512_maskz_loadu_ps(nb_lanes(nr - 16 * v), s + 16 * v));
            }
        }
        return;
    }
    // op(B)[k, j] = B[j·ldb + k]: gather sixteen rows of B at a time, one k after another.
    for (int v = 0; v < PN_NV; v++) {
        long w = nr - 16 * v;
        if (w <= 0) { for (long k = 0; k < kc; k++) _mm512_store_ps(bp + k * PN_NR + 16 * v, _mm512_setzero_ps()); continue; }
        __mmask16 m = nb_lanes(w);
        const float *s = B + 16 * v * ldb;
        if (16 * ldb <= 0x7FFFFFFF) {
            __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32((int)ldb));
            for (long k = 0; k < kc; k++)
                _mm512_store_ps(bp + k * PN_NR + 16 * v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, s + k, 4));
        } else {
            for (long k = 0; k < kc; k++)
                for (int j = 0; j < 16; j++) bp[k * PN_NR + 16 * v + j] = j < w ? s[j * ldb + k] : 0.0f;
        }
    }
}

// ap[k·6 + r] = op(A)[r, k] for r < mr: A[k·lda + r] when transposed, else A[r·lda + k] (gathered).
NB_AVX512 static void pn_pack_a(int transA, long mr, long kc, const float *A, long lda, float *ap) {
    __mmask16 m = nb_lanes(mr);
    if (transA) {
        for (long k = 0; k < kc; k++) _mm512_mask_storeu_ps(ap + k * PN_MR, m, _mm512_maskz_loadu_ps(m, A + k * lda));
        return;
    }
    __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32((int)lda));
    for (long k = 0; k < kc; k++)
        _mm512_mask_storeu_ps(ap + k * PN_MR, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, A + k, 4));
}

// C[0:mr, 0:nr] = alpha · Σ_k op(A)[r, k] bp[k, :] + beta · C, with op(A)[r, k] = a[k·6 + r] when
// packed, else a[r·lda + k].
// With `bias` (the first k block of a dense layer), bias[j] is added in place of beta · C; with
// `relu` (its last block), max(x, 0) is stored: x where x > 0, else 0.
NB_AVX512 NB_INLINE void pn_tile(const int mr, const int nv, const int packed, long kc, const float *a, long lda, const float *bp,
                                 int nr, float alpha, float beta, float *c, long ldc, const float *bias, int relu) {
    __m512 acc[PN_MR][PN_NV];
    const float *row[PN_MR];
    NB_UNROLL
    for (int r = 0; r < mr; r++) {
        row[r] = packed ? a + r : a + r * lda;
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    }
    for (long k = 0; k < kc; k++) {
        __m512 b[PN_NV];
        NB_UNROLL
        for (int v = 0; v < nv; v++) b[v] = _mm512_load_ps(bp + k * PN_NR + 16 * v);
        NB_UNROLL
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(packed ? a[k * PN_MR + r] : row[r][k]);
            NB_UNROLL
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(av, b[v], acc[r][v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    NB_UNROLL
    for (int v = 0; v < nv; v++) {
        __mmask16 m = nb_lanes(nr - 16 * v);
        if (!m) break;
        NB_UNROLL
        for (int r = 0; r < mr; r++) {
            float *cr = c + r * ldc + 16 * v;
            __m512 x = _mm512_mul_ps(acc[r][v], va);
            if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, bias + 16 * v));
            else if (beta != 0) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cr), x);
            /* max(x, 0), with NaN kept (vmaxps alone would return 0 for it) */
            if (relu) x = _mm512_mask_mov_ps(_mm512_max_ps(x, _mm512_setzero_ps()), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
            _mm512_mask_storeu_ps(cr, m, x);
        }
    }
}

// A panel narrower than 64 columns (the last one) computes only its 16-column vectors: 784
// columns are 12 panels of 64 and one of 16, not 13 of 64.
#define PN_CASE(R, V) case (R) * 8 + (V): \
    if (packed) pn_tile(R, V, 1, kc, a, lda, bp, nr, alpha, beta, c, ldc, bias, relu); \
    else pn_tile(R, V, 0, kc, a, lda, bp, nr, alpha, beta, c, ldc, bias, relu); \
    break;
#define PN_ROW(R) PN_CASE(R, 1) PN_CASE(R, 2) PN_CASE(R, 3) PN_CASE(R, 4)
NB_AVX512 static void pn_tile_any(int mr, int packed, long kc, const float *a, long lda, const float *bp,
                                  int nr, float alpha, float beta, float *c, long ldc, const float *bias, int relu) {
    switch (mr * 8 + (nr + 15) / 16) {
    PN_ROW(1) PN_ROW(2) PN_ROW(3) PN_ROW(4) PN_ROW(5) PN_ROW(6)
    default: break;
    }
}

// One k block [pc, pc + kc) of rows [ic, ic + mc) and columns [jc, jc + nc) of C, with op(B)
// packed at bp (panel q at bp + q·kc): each 64-column panel stays in L1 while the 6-row blocks of
// op(A) pass over it. op(A) is packed into ap first when `packA`, else read in place. The first
// k block scales C by beta (or adds the bias in its place), later ones add to C; the ReLU goes
// with the last.
NB_AVX512 static void pn_block(int transA, int packA, long ic, long mc, long jc, long nc, long pc, long kc,
                               float alpha, float beta, const float *A, long lda, const float *bp, float *ap,
                               float *C, long ldc, const float *bias, int relu, int first, int last) {
    if (!first) { beta = 1.0f; bias = NULL; }
    if (!last) relu = 0;
    if (packA)
        for (long i = 0; i < mc; i += PN_MR)
            pn_pack_a(transA, mc - i < PN_MR ? mc - i : PN_MR, kc,
                      transA ? A + pc * lda + ic + i : A + (ic + i) * lda + pc, lda, ap + i * kc);
    for (long q = 0; q < nc; q += PN_NR) {
        int nr = nc - q < PN_NR ? (int)(nc - q) : PN_NR;
        for (long i = 0; i < mc; i += PN_MR) {
            int mr = mc - i < PN_MR ? (int)(mc - i) : PN_MR;
            const float *a = packA ? ap + i * kc : A + (ic + i) * lda + pc;
            // On the first panel the rows of A come from memory, a few cache lines each: fetch the
            // next block's while this one computes (short rows are too short for the prefetcher).
            if (!packA && q == 0)
                for (long r = i + PN_MR; r < i + 2 * PN_MR && r < mc; r++)
                    for (long k = 0; k < kc; k += 16) _mm_prefetch((const char *)(A + (ic + r) * lda + pc + k), _MM_HINT_T0);
            pn_tile_any(mr, packA, kc, a, lda, bp + q * kc, nr, alpha, beta, C + (ic + i) * ldc + jc + q, ldc,
                        bias ? bias + jc + q : NULL, relu);
        }
    }
}

NB_AVX512 static void pn_pack_b_block(int transB, long pc, long kc, long jc, long nc, const float *B, long ldb, float *bp) {
    for (long q = 0; q < nc; q += PN_NR)
        pn_pack_b(transB, kc, nc - q < PN_NR ? nc - q : PN_NR,
                  transB ? B + (jc + q) * ldb + pc : B + pc * ldb + jc + q, ldb, bp + q * kc);
}

// k is cut into equal blocks of at most PN_KC, so that a 64-column panel of one block fits in L1.
// When all of op(B) fits in PN_B_BYTES it is packed once and C is computed PN_C_BYTES of rows at
// a time, so that C stays in L2 while every k block adds to it (the forward products). Otherwise
// (a long k, as in weight gradients) each k block of op(B) is packed in turn for PN_NC columns and
// passes over PN_MC rows of C.
NB_AVX512 static int gemm_panel(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                                const float *B, long ldb, float beta, float *C, long ldc, const float *bias, int relu) {
    long kBlocks = (K + PN_KC - 1) / PN_KC, kcMax = (K + kBlocks - 1) / kBlocks;
    long np = (N + PN_NR - 1) / PN_NR * PN_NR;
    int wholeB = (size_t)np * (size_t)K * sizeof(float) < PN_B_BYTES;
    long ncMax = wholeB ? np : (N < PN_NC ? np : PN_NC);
    long mcMax = wholeB ? PN_C_BYTES / (long)sizeof(float) / np / PN_MR * PN_MR : PN_MC;
    if (mcMax < PN_MR) mcMax = PN_MR;
    if (mcMax > M) mcMax = (M + PN_MR - 1) / PN_MR * PN_MR;
    // op(A) is read in place unless it is transposed, or its rows are a multiple of 4 KiB apart
    // (six rows on one set of L1 would evict each other).
    int packA = transA || (lda % 1024 == 0 && lda <= 0x7FFFFFFF / PN_MR);
    size_t bBytes = sizeof(float) * (size_t)ncMax * (size_t)(wholeB ? K : kcMax);
    size_t aBytes = packA ? sizeof(float) * (size_t)mcMax * (size_t)kcMax : 0;
    float *bp = nb_buffer_alloc(bBytes), *ap = aBytes ? nb_buffer_alloc(aBytes) : NULL;
    if (!bp || (aBytes && !ap)) { nb_buffer_free(bp, bBytes); nb_buffer_free(ap, aBytes); return 0; }
    for (long jc = 0; jc < N; jc += ncMax) {
        long nc = N - jc < ncMax ? N - jc : ncMax, ncp = (nc + PN_NR - 1) / PN_NR * PN_NR;
        if (wholeB) {
            for (long p = 0; p < kBlocks; p++) {
                long pc = p * K / kBlocks, kc = (p + 1) * K / kBlocks - pc;
                pn_pack_b_block(transB, pc, kc, jc, nc, B, ldb, bp + pc * ncp);
            }
            for (long ic = 0; ic < M; ic += mcMax)
                for (long p = 0; p < kBlocks; p++) {
                    long pc = p * K / kBlocks, kc = (p + 1) * K / kBlocks - pc;
                    pn_block(transA, packA, ic, M - ic < mcMax ? M - ic : mcMax, jc, nc, pc, kc, alpha, beta, A, lda,
                             bp + pc * ncp, ap, C, ldc, bias, relu, p == 0, p == kBlocks - 1);
                }
        } else {
            for (long p = 0; p < kBlocks; p++) {
                long pc = p * K / kBlocks, kc = (p + 1) * K / kBlocks - pc;
                pn_pack_b_block(transB, pc, kc, jc, nc, B, ldb, bp);
                for (long ic = 0; ic < M; ic += mcMax)
                    pn_block(transA, packA, ic, M - ic < mcMax ? M - ic : mcMax, jc, nc, pc, kc, alpha, beta, A, lda,
                             bp, ap, C, ldc, bias, relu, p == 0, p == kBlocks - 1);
            }
        }
    }
    nb_buffer_free(bp, bBytes);
    nb_buffer_free(ap, aBytes);
    return 1;
}

// ---- splitting a product across threads ----
// The panel kernel splits the columns of C, whole 64-column panels to each part; the direct
// kernels split its rows (or, for fewer than 16 rows a part, columns in blocks of 32). Each
// element is computed by the same operations in the same order as in one part, so the bits do not
// depend on the split. A panel part whose buffers cannot be had computes its columns with the
// direct kernels (different bits, but only then).
typedef struct {
    int panel, transA, transB, parts, relu;
    long M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B, *bias;
    float *C;
} gemm_split;

NB_AVX512 static void gemm_direct(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                                  const float *B, long ldb, float beta, float *C, long ldc) {
    if (!transB) gemm_broadcast(transA, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else gemm_dot(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

NB_AVX512 static void gemm_split_part(void *ctx, int part) {
    const gemm_split *s = ctx;
    int byRows = !s->panel && s->M >= 16L * s->parts;
    long unit = byRows ? 1 : s->panel ? PN_NR : 32, units = ((byRows ? s->M : s->N) + unit - 1) / unit;
    long lo = units * part / s->parts * unit, hi = units * (part + 1) / s->parts * unit;
    if (hi > (byRows ? s->M : s->N)) hi = byRows ? s->M : s->N;
    if (hi <= lo) return;
    if (byRows) {
        gemm_direct(s->transA, s->transB, hi - lo, s->N, s->K, s->alpha, s->transA ? s->A + lo : s->A + lo * s->lda, s->lda,
                    s->B, s->ldb, s->beta, s->C + lo * s->ldc, s->ldc);
        return;
    }
    const float *B = s->transB ? s->B + lo * s->ldb : s->B + lo;
    float *C = s->C + lo;
    if (s->panel && gemm_panel(s->transA, s->transB, s->M, hi - lo, s->K, s->alpha, s->A, s->lda, B, s->ldb, s->beta, C,
                               s->ldc, s->bias ? s->bias + lo : NULL, s->relu))
        return;
    if (s->bias)
        for (long i = 0; i < s->M; i++) memcpy(C + i * s->ldc, s->bias + lo, sizeof(float) * (size_t)(hi - lo));
    gemm_direct(s->transA, s->transB, s->M, hi - lo, s->K, s->alpha, s->A, s->lda, B, s->ldb, s->bias ? 1.0f : s->beta, C, s->ldc);
    if (s->relu)
        for (long i = 0; i < s->M; i++)
            for (long j = 0; j < hi - lo; j++) C[i * s->ldc + j] = !(C[i * s->ldc + j] <= 0) ? C[i * s->ldc + j] : 0.0f;
}

NB_AVX512 static int gemm_parts(int panel, int parts, int transA, int transB, long M, long N, long K, float alpha, const float *A,
                                long lda, const float *B, long ldb, float beta, float *C, long ldc, const float *bias, int relu) {
    if (panel && parts > (N + PN_NR - 1) / PN_NR) parts = (int)((N + PN_NR - 1) / PN_NR);
    if (parts <= 1) {
        if (panel) return gemm_panel(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, relu);
        gemm_direct(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return 1;
    }
    gemm_split s = {panel, transA, transB, parts, relu, M, N, K, lda, ldb, ldc, alpha, beta, A, B, bias, C};
    nb_parallel_run(parts, gemm_split_part, &s);
    return 1;
}

int nb_sgemm_panel_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc, int parts) {
    if (M <= 0 || N <= 0 || K <= 0 || (transA && transB) || !nb_cpu_has_avx512()) return 0;
    return gemm_parts(1, parts, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, 0);
}

int nb_linear_panel_avx512(long M, long N, long K, const float *x, long ldx, const float *w, long ldw, const float *bias,
                           float *out, long ldo, int relu, int parts) {
    if (M <= 0 || N <= 0 || K <= 0 || !nb_cpu_has_avx512()) return 0;
    return gemm_parts(1, parts, 0, 1, M, N, K, 1.0f, x, ldx, w, ldw, 0.0f, out, ldo, bias, relu);
}

int nb_sgemm_direct_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                           const float *B, long ldb, float beta, float *C, long ldc, int parts) {
    if (M <= 0 || N <= 0 || K <= 0 || (transA && transB) || !nb_cpu_has_avx512()) return 0;
    return gemm_parts(0, parts, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, 0);
}

#else
int nb_sgemm_panel_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc, int parts) {
    (void)parts; (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb;
    (void)beta; (void)C; (void)ldc;
    return 0;
}
int nb_linear_panel_avx512(long M, long N, long K, const float *x, long ldx, const float *w, long ldw, const float *bias,
                           float *out, long ldo, int relu, int parts) {
    (void)parts; (void)M; (void)N; (void)K; (void)x; (void)ldx; (void)w; (void)ldw; (void)bias; (void)out; (void)ldo; (void)relu;
    return 0;
}
int nb_sgemm_direct_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                           const float *B, long ldb, float beta, float *C, long ldc, int parts) {
    (void)parts; (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb;
    (void)beta; (void)C; (void)ldc;
    return 0;
}
#endif
