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
#define NB_ADAM_DISPATCH(SUFFIX) if (nb_cpu_has_avx2_fma()) { nb_adam_##SUFFIX##_avx(n, x, g, m, v, b1, omb1, b2, omb2, coupledDecay, xScale, stepScale, eps); return; }
#else
#define NB_ADAM_DISPATCH(SUFFIX)
#endif

#define NB_ADAM(T, SUFFIX, SQRT) \
void nb_adam_##SUFFIX(long n, T *x, const T *g, T *m, T *v, T b1, T omb1, T b2, T omb2, \
                      T coupledDecay, T xScale, T stepScale, T eps) { \
    NB_ADAM_DISPATCH(SUFFIX) \
    long i = 0; \
    NB_ADAM_SCALAR(T, SQRT) \
}
NB_ADAM(float, f32, sqrtf)
NB_ADAM(double, f64, sqrt)
