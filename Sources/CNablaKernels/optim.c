// Fused optimizer updates: one pass over a parameter instead of a tensor op per term. Each
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
        T denom = SQRT(vi) / sqrtBc2 + eps; \
        x[i] = xi - (mi * stepScale) / denom; \
        m[i] = mi; v[i] = vi; \
    }

#if defined(__x86_64__)
__attribute__((target("avx")))
static void nb_adam_f32_avx(long n, float *x, const float *g, float *m, float *v, float b1, float omb1, float b2, float omb2,
                            float coupledDecay, float xScale, float stepScale, float sqrtBc2, float eps) {
    __m256 B1 = _mm256_set1_ps(b1), OB1 = _mm256_set1_ps(omb1), B2 = _mm256_set1_ps(b2), OB2 = _mm256_set1_ps(omb2);
    __m256 CD = _mm256_set1_ps(coupledDecay), XS = _mm256_set1_ps(xScale), SS = _mm256_set1_ps(stepScale);
    __m256 SB = _mm256_set1_ps(sqrtBc2), EPS = _mm256_set1_ps(eps);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xi = _mm256_loadu_ps(x + i), gi = _mm256_loadu_ps(g + i);
        gi = _mm256_add_ps(gi, _mm256_mul_ps(xi, CD));
        xi = _mm256_mul_ps(xi, XS);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), B1), _mm256_mul_ps(gi, OB1));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), B2), _mm256_mul_ps(_mm256_mul_ps(gi, gi), OB2));
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), SB), EPS);
        _mm256_storeu_ps(x + i, _mm256_sub_ps(xi, _mm256_div_ps(_mm256_mul_ps(mi, SS), denom)));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
    }
    NB_ADAM_SCALAR(float, sqrtf)
}

__attribute__((target("avx")))
static void nb_adam_f64_avx(long n, double *x, const double *g, double *m, double *v, double b1, double omb1, double b2, double omb2,
                            double coupledDecay, double xScale, double stepScale, double sqrtBc2, double eps) {
    __m256d B1 = _mm256_set1_pd(b1), OB1 = _mm256_set1_pd(omb1), B2 = _mm256_set1_pd(b2), OB2 = _mm256_set1_pd(omb2);
    __m256d CD = _mm256_set1_pd(coupledDecay), XS = _mm256_set1_pd(xScale), SS = _mm256_set1_pd(stepScale);
    __m256d SB = _mm256_set1_pd(sqrtBc2), EPS = _mm256_set1_pd(eps);
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d xi = _mm256_loadu_pd(x + i), gi = _mm256_loadu_pd(g + i);
        gi = _mm256_add_pd(gi, _mm256_mul_pd(xi, CD));
        xi = _mm256_mul_pd(xi, XS);
        __m256d mi = _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(m + i), B1), _mm256_mul_pd(gi, OB1));
        __m256d vi = _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(v + i), B2), _mm256_mul_pd(_mm256_mul_pd(gi, gi), OB2));
        __m256d denom = _mm256_add_pd(_mm256_div_pd(_mm256_sqrt_pd(vi), SB), EPS);
        _mm256_storeu_pd(x + i, _mm256_sub_pd(xi, _mm256_div_pd(_mm256_mul_pd(mi, SS), denom)));
        _mm256_storeu_pd(m + i, mi);
        _mm256_storeu_pd(v + i, vi);
    }
    NB_ADAM_SCALAR(double, sqrt)
}
#endif

void nb_adam_f32(long n, float *x, const float *g, float *m, float *v, float b1, float omb1, float b2, float omb2,
                 float coupledDecay, float xScale, float stepScale, float sqrtBc2, float eps) {
#if defined(__x86_64__)
    if (nb_cpu_has_avx2_fma()) { nb_adam_f32_avx(n, x, g, m, v, b1, omb1, b2, omb2, coupledDecay, xScale, stepScale, sqrtBc2, eps); return; }
#endif
    long i = 0;
    NB_ADAM_SCALAR(float, sqrtf)
}

void nb_adam_f64(long n, double *x, const double *g, double *m, double *v, double b1, double omb1, double b2, double omb2,
                 double coupledDecay, double xScale, double stepScale, double sqrtBc2, double eps) {
#if defined(__x86_64__)
    if (nb_cpu_has_avx2_fma()) { nb_adam_f64_avx(n, x, g, m, v, b1, omb1, b2, omb2, coupledDecay, xScale, stepScale, sqrtBc2, eps); return; }
#endif
    long i = 0;
    NB_ADAM_SCALAR(double, sqrt)
}
