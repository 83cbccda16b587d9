// Fused optimizer updates: one pass over a parameter instead of a tensor op per term. Adam takes
// its step size and epsilon with the bias corrections folded in (one division per element). Each
// product and sum is rounded on its own (no contraction into FMAs), exactly as the op-by-op
// formula, so both paths give the same bits; the AVX variant does the same IEEE operations
// eight (four) lanes at a time.
#include <math.h>
#include "nabla_kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#pragma clang fp contract(off)

#define NB_ADAM_SCALAR(T, SQRT) \
    for (; i < n; i++) { \
        T gi = g[i] + x[i] * coupledDecay, xi = x[i] * xScale; \
        T mi = m[i] * b1 + gi * omb1; \
        T vi = v[i] * b2 + (gi * gi) * omb2; \
        T denom = SQRT(vi) + eps; \
        x[i] = xi - (mi * stepScale) / denom; \
        m[i] = mi; v[i] = vi; \
    }

#if defined(__x86_64__)
// LANES values of T in a VEC at a time; P is the intrinsics' suffix (ps or pd).
#define NB_ADAM_AVX(T, SUFFIX, VEC, LANES, P, SQRT) \
__attribute__((target("avx"))) \
static void nb_adam_##SUFFIX##_avx(long n, T *x, const T *g, T *m, T *v, T b1, T omb1, T b2, T omb2, \
                                   T coupledDecay, T xScale, T stepScale, T eps) { \
    VEC B1 = _mm256_set1_##P(b1), OB1 = _mm256_set1_##P(omb1), B2 = _mm256_set1_##P(b2), OB2 = _mm256_set1_##P(omb2); \
    VEC CD = _mm256_set1_##P(coupledDecay), XS = _mm256_set1_##P(xScale), SS = _mm256_set1_##P(stepScale); \
    VEC EPS = _mm256_set1_##P(eps); \
    long i = 0; \
    for (; i + LANES <= n; i += LANES) { \
        VEC xi = _mm256_loadu_##P(x + i), gi = _mm256_loadu_##P(g + i); \
        gi = _mm256_add_##P(gi, _mm256_mul_##P(xi, CD)); \
        xi = _mm256_mul_##P(xi, XS); \
        VEC mi = _mm256_add_##P(_mm256_mul_##P(_mm256_loadu_##P(m + i), B1), _mm256_mul_##P(gi, OB1)); \
        VEC vi = _mm256_add_##P(_mm256_mul_##P(_mm256_loadu_##P(v + i), B2), _mm256_mul_##P(_mm256_mul_##P(gi, gi), OB2)); \
        VEC denom = _mm256_add_##P(_mm256_sqrt_##P(vi), EPS); \
        _mm256_storeu_##P(x + i, _mm256_sub_##P(xi, _mm256_div_##P(_mm256_mul_##P(mi, SS), denom))); \
        _mm256_storeu_##P(m + i, mi); \
        _mm256_storeu_##P(v + i, vi); \
    } \
    NB_ADAM_SCALAR(T, SQRT) \
}
NB_ADAM_AVX(float, f32, __m256, 8, ps, sqrtf)
NB_ADAM_AVX(double, f64, __m256d, 4, pd, sqrt)
#endif

#if defined(__x86_64__)
// Subnormal operands. Without flush-to-zero, an x86 multiply, divide or square root that reads or
// produces a subnormal takes a microcode assist of about 150 cycles (additions and conversions
// do not). Adam meets them all the time: the first moment of a weight whose input is almost
// always zero (a border pixel) decays by β₁ per step into the subnormal range and stays there,
// since k·2⁻¹⁴⁹·0.9 rounds back to k·2⁻¹⁴⁹ for k ≤ 4. With a fifth of the vectors of a batch-1
// MLP step holding such a lane, Adam ran at half speed. Flushing them to zero would change the
// results, so the AVX-512 kernel instead checks each vector's inputs by their bit patterns, and
// where a lane is small enough for a product to meet a subnormal it computes that vector's
// products in double: a product of two floats is exact in double and rounds once on the way
// back, so the bits are those of the float product. (The quotient and square root too, where
// their operands could be subnormal: through a 53-bit format, double rounding of a float
// quotient or square root is innocuous.) Vectors without small lanes take the plain float path;
// rarer subnormals (sums that cancel) are left to the hardware, which is exact, only slow.

// Lanes with 0 < |a| < t, where t2m1 = 2·bits(t) − 1 (integer compares only: no floating-point
// op touches a subnormal).
#define NB_TINY16(a, t2m1) _mm512_cmplt_epu32_mask(_mm512_sub_epi32(_mm512_slli_epi32(_mm512_castps_si512(a), 1), _mm512_set1_epi32(1)), t2m1)

// a ∘ b rounded to float, computed in double (8 lanes at a time).
#define NB_VIA_DOUBLE16(OP, a, b) _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps( \
        OP(_mm512_cvtps_pd(_mm512_castps512_ps256(a)), _mm512_cvtps_pd(_mm512_castps512_ps256(b))))), \
    _mm512_cvtpd_ps(OP(_mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)), _mm512_cvtps_pd(_mm512_extractf32x8_ps(b, 1)))), 1)
#define NB_SQRT_VIA_DOUBLE16(a) _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps( \
        _mm512_sqrt_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(a))))), \
    _mm512_cvtpd_ps(_mm512_sqrt_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)))), 1)

// 2·bits(t) − 1 for the smallest magnitude t whose product with c (and with each of `also`) is
// normal, with a factor 2 to spare.
static unsigned nb_small_below(double c, double also) {
    double f = fabs(c) * (also < 1 ? also : 1);
    double t = 0x1p-125 / (f < 1 ? (f == 0 ? 1 : f) : 1);
    union { float f; unsigned u; } b = { .f = t > 0x1p120 ? 0x1p120f : (float)t };
    return 2 * b.u - 1;
}

__attribute__((target("avx512f,avx512dq")))
static void nb_adam_f32_avx512(long n, float *x, const float *g, float *m, float *v, float b1, float omb1, float b2, float omb2,
                               float coupledDecay, float xScale, float stepScale, float eps) {
    const __m512 B1 = _mm512_set1_ps(b1), OB1 = _mm512_set1_ps(omb1), B2 = _mm512_set1_ps(b2), OB2 = _mm512_set1_ps(omb2);
    const __m512 CD = _mm512_set1_ps(coupledDecay), XS = _mm512_set1_ps(xScale), SS = _mm512_set1_ps(stepScale);
    const __m512 EPS = _mm512_set1_ps(eps);
    // Below these a lane's products might meet a subnormal: x·decay and x·scale; m·β₁ and then
    // its product with the step size; v·β₂; and g, which meets 1 − β₁, itself (normal from
    // 2⁻⁶²), and g² meets 1 − β₂.
    unsigned tx = nb_small_below(coupledDecay, 1), txs = nb_small_below(xScale, 1);
    union { float f; unsigned u; } gsq = { .f = sqrtf(2 * 0x1p-125f / (fabsf(omb2) < 1 && omb2 != 0 ? fabsf(omb2) : 1)) };
    unsigned tg = nb_small_below(omb1, 1), tg2 = 2 * gsq.u - 1, tg62 = 2 * 0x20800000u - 1;   // 2⁻⁶²
    tg = tg > tg2 ? tg : tg2;
    tg = tg > tg62 ? tg : tg62;
    const __m512i TX = _mm512_set1_epi32((int)(tx > txs ? tx : txs)), TM = _mm512_set1_epi32((int)nb_small_below(b1, fabs(stepScale))),
                  TV = _mm512_set1_epi32((int)nb_small_below(b2, 1)), TG = _mm512_set1_epi32((int)tg),
                  SUBNORMAL = _mm512_set1_epi32(2 * 0x00800000 - 1);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x0 = _mm512_loadu_ps(x + i), g0 = _mm512_loadu_ps(g + i), m0 = _mm512_loadu_ps(m + i), v0 = _mm512_loadu_ps(v + i);
        __m512 xi, mi, vi, q;
        if (!(NB_TINY16(x0, TX) | NB_TINY16(g0, TG) | NB_TINY16(m0, TM) | NB_TINY16(v0, TV))) {
            __m512 gi = _mm512_add_ps(g0, _mm512_mul_ps(x0, CD));
            xi = _mm512_mul_ps(x0, XS);
            mi = _mm512_add_ps(_mm512_mul_ps(m0, B1), _mm512_mul_ps(gi, OB1));
            vi = _mm512_add_ps(_mm512_mul_ps(v0, B2), _mm512_mul_ps(_mm512_mul_ps(gi, gi), OB2));
            q = _mm512_div_ps(_mm512_mul_ps(mi, SS), _mm512_add_ps(_mm512_sqrt_ps(vi), EPS));
        } else {
            __m512 gi = _mm512_add_ps(g0, NB_VIA_DOUBLE16(_mm512_mul_pd, x0, CD));
            xi = NB_VIA_DOUBLE16(_mm512_mul_pd, x0, XS);
            mi = _mm512_add_ps(NB_VIA_DOUBLE16(_mm512_mul_pd, m0, B1), NB_VIA_DOUBLE16(_mm512_mul_pd, gi, OB1));
            vi = _mm512_add_ps(NB_VIA_DOUBLE16(_mm512_mul_pd, v0, B2),
                               NB_VIA_DOUBLE16(_mm512_mul_pd, NB_VIA_DOUBLE16(_mm512_mul_pd, gi, gi), OB2));
            __m512 num = NB_VIA_DOUBLE16(_mm512_mul_pd, mi, SS);
            __m512 denom = _mm512_add_ps(NB_TINY16(vi, SUBNORMAL) ? NB_SQRT_VIA_DOUBLE16(vi) : _mm512_sqrt_ps(vi), EPS);
            q = NB_VIA_DOUBLE16(_mm512_div_pd, num, denom);
        }
        _mm512_storeu_ps(x + i, _mm512_sub_ps(xi, q));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
    }
    NB_ADAM_SCALAR(float, sqrtf)
}
#endif

void nb_adam_f32(long n, float *x, const float *g, float *m, float *v, float b1, float omb1, float b2, float omb2,
                 float coupledDecay, float xScale, float stepScale, float eps) {
#if defined(__x86_64__)
    if (nb_cpu_has_avx512()) { nb_adam_f32_avx512(n, x, g, m, v, b1, omb1, b2, omb2, coupledDecay, xScale, stepScale, eps); return; }
    if (nb_cpu_has_avx2_fma()) { nb_adam_f32_avx(n, x, g, m, v, b1, omb1, b2, omb2, coupledDecay, xScale, stepScale, eps); return; }
#endif
    long i = 0;
    NB_ADAM_SCALAR(float, sqrtf)
}

void nb_adam_f64(long n, double *x, const double *g, double *m, double *v, double b1, double omb1, double b2, double omb2,
                 double coupledDecay, double xScale, double stepScale, double eps) {
#if defined(__x86_64__)
    if (nb_cpu_has_avx2_fma()) { nb_adam_f64_avx(n, x, g, m, v, b1, omb1, b2, omb2, coupledDecay, xScale, stepScale, eps); return; }
#endif
    long i = 0;
    NB_ADAM_SCALAR(double, sqrt)
}
