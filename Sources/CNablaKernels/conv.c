// Windows of images for convolution and pooling: im2col (an image's C×KH×KW windows as the rows
// of a [C·KH·KW, OH·OW] block of a matrix whose rows are `ld` apart — a batch's images side by
// side in one [C·KH·KW, N·OH·OW] matrix — zeros where a window reaches into the padding), its
// adjoint col2im (adding the rows back onto the image), and max pooling with the position of
// each window's winner. One image (or one plane) at a time; the caller loops over the batch.
#include "nabla_kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// 2×2, stride-2 max pooling of one output row, eight windows at a time: rows r0 and r1 of the
// input, the winners' values to y and flat indices (base + offset in the plane) to arg. The
// candidates are compared in the scalar loop's order with the same strict `>`, so ties and NaN
// give the same winners. Returns how many outputs it wrote (a multiple of 8); the caller does the rest.
#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static long nb_pool2x2_row_f32_avx2(const float *r0, const float *r1, long ow, long w, long base, float *y, long *arg) {
    long ox = 0;
    const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    for (; ox + 8 <= ow; ox += 8) {
        long j = 2 * ox;
        __m256 a0 = _mm256_loadu_ps(r0 + j), a1 = _mm256_loadu_ps(r0 + j + 8);
        __m256 b0 = _mm256_loadu_ps(r1 + j), b1 = _mm256_loadu_ps(r1 + j + 8);
        // Even and odd columns, back in order (the shuffle interleaves the two 128-bit halves).
        __m256 tl = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), order);
        __m256 tr = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), order);
        __m256 bl = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), order);
        __m256 br = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), order);
        __m256 v = tl;
        __m256i code = _mm256_setzero_si256();                    // 0 tl, 1 tr, 2 bl, 3 br
        __m256 m = _mm256_cmp_ps(tr, v, _CMP_GT_OQ);
        v = _mm256_blendv_ps(v, tr, m); code = _mm256_blendv_epi8(code, _mm256_set1_epi32(1), _mm256_castps_si256(m));
        m = _mm256_cmp_ps(bl, v, _CMP_GT_OQ);
        v = _mm256_blendv_ps(v, bl, m); code = _mm256_blendv_epi8(code, _mm256_set1_epi32(2), _mm256_castps_si256(m));
        m = _mm256_cmp_ps(br, v, _CMP_GT_OQ);
        v = _mm256_blendv_ps(v, br, m); code = _mm256_blendv_epi8(code, _mm256_set1_epi32(3), _mm256_castps_si256(m));
        _mm256_storeu_ps(y + ox, v);
        // offset = 2·(ox + k) + (code & 1) + (code >> 1)·w
        __m256i k = _mm256_add_epi32(_mm256_set1_epi32((int)(2 * ox)), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
        __m256i off32 = _mm256_add_epi32(k, _mm256_and_si256(code, _mm256_set1_epi32(1)));
        __m256i row = _mm256_srli_epi32(code, 1);
        __m256i lo = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(off32)),
                                      _mm256_mul_epi32(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(row)), _mm256_set1_epi64x(w)));
        __m256i hi = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(off32, 1)),
                                      _mm256_mul_epi32(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(row, 1)), _mm256_set1_epi64x(w)));
        __m256i b = _mm256_set1_epi64x(base);
        _mm256_storeu_si256((__m256i *)(arg + ox), _mm256_add_epi64(lo, b));
        _mm256_storeu_si256((__m256i *)(arg + ox + 4), _mm256_add_epi64(hi, b));
    }
    return ox;
}
#endif

static long nb_pool2x2_row_f32(const float *r0, const float *r1, long ow, long w, long base, float *y, long *arg) {
#if defined(__x86_64__)
    if (w < (1L << 30) && nb_cpu_has_avx2_fma()) return nb_pool2x2_row_f32_avx2(r0, r1, ow, w, base, y, arg);
#endif
    (void)r0; (void)r1; (void)ow; (void)w; (void)base; (void)y; (void)arg;
    return 0;
}

static long nb_pool2x2_row_f64(const double *r0, const double *r1, long ow, long w, long base, double *y, long *arg) {
    (void)r0; (void)r1; (void)ow; (void)w; (void)base; (void)y; (void)arg;
    return 0;
}

#define NB_WINDOWS(T, S)                                                                                   \
void nb_im2col_##S(const nb_window *g, long ld, const T *x, T *cols) {                                    \
    const long L = ld;                                                                                    \
    for (long c = 0; c < g->c; c++)                                                                       \
        for (long ky = 0; ky < g->kh; ky++)                                                               \
            for (long kx = 0; kx < g->kw; kx++) {                                                         \
                T *row = cols + ((c * g->kh + ky) * g->kw + kx) * L;                                      \
                for (long oy = 0; oy < g->oh; oy++) {                                                     \
                    long iy = oy * g->sh - g->ph + ky * g->dh;                                            \
                    T *r = row + oy * g->ow;                                                              \
                    if (iy < 0 || iy >= g->h) { for (long ox = 0; ox < g->ow; ox++) r[ox] = 0; continue; }\
                    const T *xr = x + (c * g->h + iy) * g->w;                                             \
                    long x0 = kx * g->dw - g->pw;                                                         \
                    if (g->sw == 1) {  /* zeros left of the image, a copy, zeros right of it */          \
                        long lo = x0 < 0 ? -x0 : 0, hi = g->w - x0 < g->ow ? g->w - x0 : g->ow;            \
                        if (hi < lo) hi = lo;                                                             \
                        for (long ox = 0; ox < lo; ox++) r[ox] = 0;                                       \
                        for (long ox = lo; ox < hi; ox++) r[ox] = xr[x0 + ox];                            \
                        for (long ox = hi; ox < g->ow; ox++) r[ox] = 0;                                   \
                    } else {                                                                              \
                        for (long ox = 0; ox < g->ow; ox++) {                                             \
                            long ix = ox * g->sw + x0;                                                    \
                            r[ox] = ix >= 0 && ix < g->w ? xr[ix] : (T)0;                                 \
                        }                                                                                 \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
}                                                                                                         \
void nb_col2im_##S(const nb_window *g, long ld, const T *cols, T *dx) {                                   \
    const long L = ld;                                                                                    \
    for (long c = 0; c < g->c; c++)                                                                       \
        for (long ky = 0; ky < g->kh; ky++)                                                               \
            for (long kx = 0; kx < g->kw; kx++) {                                                         \
                const T *row = cols + ((c * g->kh + ky) * g->kw + kx) * L;                                \
                for (long oy = 0; oy < g->oh; oy++) {                                                     \
                    long iy = oy * g->sh - g->ph + ky * g->dh;                                            \
                    if (iy < 0 || iy >= g->h) continue;                                                   \
                    const T *r = row + oy * g->ow;                                                        \
                    T *dr = dx + (c * g->h + iy) * g->w;                                                  \
                    long x0 = kx * g->dw - g->pw;                                                         \
                    if (g->sw == 1) {                                                                     \
                        long lo = x0 < 0 ? -x0 : 0, hi = g->w - x0 < g->ow ? g->w - x0 : g->ow;            \
                        for (long ox = lo; ox < hi; ox++) dr[x0 + ox] += r[ox];                           \
                    } else {                                                                              \
                        for (long ox = 0; ox < g->ow; ox++) {                                             \
                            long ix = ox * g->sw + x0;                                                    \
                            if (ix >= 0 && ix < g->w) dr[ix] += r[ox];                                    \
                        }                                                                                 \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
}                                                                                                         \
/* Max over each window of `planes` planes (g->c is ignored); arg[i] = the winner's flat index */          \
/* in the whole input, or -1 when the window lies in the padding. The first of equal values wins, */      \
/* and a NaN wins only where it comes first. */                                                           \
void nb_maxpool2d_##S(const nb_window *g, long planes, const T *x, T *y, long *arg) {                      \
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0                  \
        && g->dh == 1 && g->dw == 1) {                                                                    \
        /* 2×2, stride 2: the four candidates of each window in the order of the general loop */          \
        for (long p = 0; p < planes; p++) {                                                               \
            const T *xp = x + p * g->h * g->w;                                                            \
            for (long oy = 0; oy < g->oh; oy++) {                                                         \
                const T *r0 = xp + 2 * oy * g->w, *r1 = r0 + g->w;                                        \
                long o = (p * g->oh + oy) * g->ow, base = p * g->h * g->w + 2 * oy * g->w;                \
                /* selects, not branches: the winners of trained activations are unpredictable */     \
                long ox0 = nb_pool2x2_row_##S(r0, r1, g->ow, g->w, base, y + o, arg + o);                 \
                for (long ox = ox0; ox < g->ow; ox++) {                                                   \
                    long j = 2 * ox;                                                                      \
                    T a = r0[j], b = r0[j + 1], c = r1[j], d = r1[j + 1];                                 \
                    int tb = b > a; T v = tb ? b : a; long best = tb ? j + 1 : j;                         \
                    int tc = c > v; v = tc ? c : v; best = tc ? g->w + j : best;                          \
                    int td = d > v; v = td ? d : v; best = td ? g->w + j + 1 : best;                      \
                    y[o + ox] = v; arg[o + ox] = base + best;                                             \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        return;                                                                                           \
    }                                                                                                     \
    for (long p = 0; p < planes; p++) {                                                                   \
        const T *xp = x + p * g->h * g->w;                                                                \
        for (long oy = 0; oy < g->oh; oy++)                                                               \
            for (long ox = 0; ox < g->ow; ox++) {                                                         \
                long best = -1;                                                                           \
                for (long ky = 0; ky < g->kh; ky++) {                                                     \
                    long iy = oy * g->sh - g->ph + ky * g->dh;                                            \
                    if (iy < 0 || iy >= g->h) continue;                                                   \
                    for (long kx = 0; kx < g->kw; kx++) {                                                 \
                        long ix = ox * g->sw - g->pw + kx * g->dw;                                        \
                        if (ix < 0 || ix >= g->w) continue;                                               \
                        long j = iy * g->w + ix;                                                          \
                        if (best < 0 || xp[j] > xp[best]) best = j;                                       \
                    }                                                                                     \
                }                                                                                         \
                long o = (p * g->oh + oy) * g->ow + ox;                                                   \
                y[o] = best < 0 ? (T)0 : xp[best];                                                        \
                arg[o] = best < 0 ? -1 : p * g->h * g->w + best;                                          \
            }                                                                                             \
    }                                                                                                     \
}

NB_WINDOWS(float, f32)
NB_WINDOWS(double, f64)
