// Vectorized special functions where libm's scalar calls dominate a kernel.
#include <math.h>
#include <stdint.h>
#include "nabla_kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// exp(x) for x ≤ 0 in place, to within about one unit in the last place: x = n ln2 + r with
// |r| ≤ ln2/2 (ln2 split in two so r is exact), exp(r) by its degree-13 Taylor polynomial in
// Horner form with fused multiply-adds, times 2ⁿ built in the exponent bits. Below −708 the
// result is 0 (a softmax term that small cannot change a sum holding exp(0) = 1).
#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static void nb_exp_nonpositive_f64_avx2(long n, double *x) {
    const __m256d log2e = _mm256_set1_pd(1.4426950408889634), ln2hi = _mm256_set1_pd(0.6931471803691238),
                  ln2lo = _mm256_set1_pd(1.9082149292705877e-10), lo = _mm256_set1_pd(-708.0), zero = _mm256_setzero_pd();
    static const double c[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
                                 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(x + i);
        __m256d under = _mm256_cmp_pd(v, lo, _CMP_LT_OQ);
        v = _mm256_max_pd(v, lo);
        __m256d k = _mm256_round_pd(_mm256_mul_pd(v, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256d r = _mm256_fnmadd_pd(k, ln2hi, v);
        r = _mm256_fnmadd_pd(k, ln2lo, r);
        __m256d p = _mm256_set1_pd(c[13]);
        for (int j = 12; j >= 0; j--) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c[j]));
        __m128i ki = _mm256_cvtpd_epi32(k);
        __m256i e = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(ki), _mm256_set1_epi64x(1023)), 52);
        __m256d result = _mm256_mul_pd(p, _mm256_castsi256_pd(e));
        _mm256_storeu_pd(x + i, _mm256_blendv_pd(result, zero, under));
    }
    for (; i < n; i++) x[i] = exp(x[i]);
}
#endif

void nb_exp_nonpositive_f64(long n, double *x) {
#if defined(__x86_64__)
    if (nb_cpu_has_avx2_fma()) { nb_exp_nonpositive_f64_avx2(n, x); return; }
#endif
    for (long i = 0; i < n; i++) x[i] = exp(x[i]);
}

// Binary cross-entropy from logits x against targets y, summed over n elements (in double):
// Σ max(x, 0) − x y + log1p(exp(−|x|)), which is −(y log σ(x) + (1 − y) log(1 − σ(x))) without
// overflow; d = σ(x) − y, the derivative, is written in the same pass (one exp per element serves
// both). NaN in x or y gives a NaN sum and NaN derivatives.
#define NB_BCE_LOGITS(T, EXP, LOG1P, FABS)                                                  \
    double total = 0;                                                                       \
    for (long i0 = 0; i0 < n; i0 += 256) {                                                  \
        long i1 = i0 + 256 < n ? i0 + 256 : n;                                              \
        T block = 0;                                                                        \
        for (long i = i0; i < i1; i++) {                                                    \
            T v = x[i], t = y[i], e = EXP(-FABS(v));                                        \
            block += (v > 0 ? v : (T)0) - v * t + LOG1P(e);                                 \
            d[i] = (v >= 0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e)) - t;                       \
        }                                                                                   \
        total += (double)block;                                                             \
    }                                                                                       \
    return total;

static double nb_bce_logits_f32_scalar(long n, const float *x, const float *y, float *d) { NB_BCE_LOGITS(float, expf, log1pf, fabsf) }

#if defined(__x86_64__)
// Eight at a time: e = exp(−|x|) by range reduction (−|x| = k ln2 + r, |r| ≤ ln2/2, ln2 in two
// parts) and a degree-7 Taylor polynomial times 2^k (0 below −87: then log1p(e) and e/(1+e)
// round to what they are anyway, e and 0); log(1 + e) for 1 + e ∈ [1, 2] as 2 atanh(t),
// t = e/(2 + e) ∈ [0, 1/3], by its odd series to t¹⁵ (error below 2e-9, under float's rounding).
// Lanes sum in float over blocks of 256 elements, blocks in double. NaN propagates through
// every step (the comparisons only choose between finite branches).
__attribute__((target("avx2,fma")))
static double nb_bce_logits_f32_avx2(long n, const float *x, const float *y, float *d) {
    const __m256 log2e = _mm256_set1_ps(1.44269504f), ln2hi = _mm256_set1_ps(0.693359375f), ln2lo = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 lo = _mm256_set1_ps(-87.0f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f), zero = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.0f);
    double total = 0;
    long i = 0;
    while (i + 8 <= n) {
        long end = i + 256 <= n ? i + 256 : n - (n - i) % 8;
        __m256 acc = _mm256_setzero_ps();
        for (; i < end; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i), t = _mm256_loadu_ps(y + i);
            __m256 a = _mm256_or_ps(v, sign);                       // −|x|
            __m256 under = _mm256_cmp_ps(a, lo, _CMP_LT_OQ);
            a = _mm256_max_ps(lo, a);                              // (a NaN stays NaN)
            __m256 k = _mm256_round_ps(_mm256_mul_ps(a, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m256 r = _mm256_fnmadd_ps(k, ln2hi, a);
            r = _mm256_fnmadd_ps(k, ln2lo, r);
            __m256 p = _mm256_set1_ps(1.0f / 5040);
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
            p = _mm256_fmadd_ps(p, r, one);
            p = _mm256_fmadd_ps(p, r, one);
            __m256i e2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
            __m256 e = _mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e2)), zero, under);
            __m256 ope = _mm256_add_ps(one, e);
            __m256 q = _mm256_div_ps(e, _mm256_add_ps(two, e)), q2 = _mm256_mul_ps(q, q);
            __m256 s = _mm256_set1_ps(1.0f / 15);
            s = _mm256_fmadd_ps(s, q2, _mm256_set1_ps(1.0f / 13));
            s = _mm256_fmadd_ps(s, q2, _mm256_set1_ps(1.0f / 11));
            s = _mm256_fmadd_ps(s, q2, _mm256_set1_ps(1.0f / 9));
            s = _mm256_fmadd_ps(s, q2, _mm256_set1_ps(1.0f / 7));
            s = _mm256_fmadd_ps(s, q2, _mm256_set1_ps(1.0f / 5));
            s = _mm256_fmadd_ps(s, q2, _mm256_set1_ps(1.0f / 3));
            s = _mm256_fmadd_ps(s, q2, one);
            __m256 log1p = _mm256_mul_ps(_mm256_mul_ps(two, q), s);
            __m256 loss = _mm256_add_ps(_mm256_fnmadd_ps(v, t, _mm256_max_ps(v, zero)), log1p);
            // max(v, 0) drops a NaN v; put it back (in the loss and the derivative).
            __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
            acc = _mm256_add_ps(acc, _mm256_blendv_ps(loss, v, nan));
            __m256 sig = _mm256_div_ps(_mm256_blendv_ps(e, one, _mm256_cmp_ps(v, zero, _CMP_GE_OQ)), ope);
            _mm256_storeu_ps(d + i, _mm256_blendv_ps(_mm256_sub_ps(sig, t), v, nan));
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, acc);
        double block = 0;
        for (int j = 0; j < 8; j++) block += lanes[j];
        total += block;
    }
    if (i < n) total += nb_bce_logits_f32_scalar(n - i, x + i, y + i, d + i);
    return total;
}
#endif

double nb_bce_logits_f32(long n, const float *x, const float *y, float *d) {
#if defined(__x86_64__)
    if (nb_cpu_has_avx2_fma()) return nb_bce_logits_f32_avx2(n, x, y, d);
#endif
    return nb_bce_logits_f32_scalar(n, x, y, d);
}
double nb_bce_logits_f64(long n, const double *x, const double *y, double *d) { NB_BCE_LOGITS(double, exp, log1p, fabs) }
