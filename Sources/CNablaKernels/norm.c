// Layer normalization over the last axis: the forward pass keeps the normalized rows and the
// reciprocal standard deviations, from which the backward pass makes every gradient in one
// sweep over the rows.
#include "nabla_kernels.h"
#include <math.h>

#define NB_LAYERNORM(T, S)                                                                                    \
void nb_layernorm_forward_##S(long rows, long n, const T *x, const T *w, const T *b, double eps,             \
                              T *y, T *xhat, T *rstd) {                                                       \
    for (long r = 0; r < rows; r++) {                                                                         \
        const T *xr = x + r * n;                                                                              \
        double mean = 0;                                                                                      \
        for (long j = 0; j < n; j++) mean += xr[j];                                                           \
        mean /= (double)n;                                                                                    \
        double var = 0;                                                                                       \
        for (long j = 0; j < n; j++) { double d = xr[j] - mean; var += d * d; }                               \
        var /= (double)n;                                                                                     \
        T rs = (T)(1.0 / sqrt(var + eps));                                                                    \
        T m = (T)mean;                                                                                        \
        rstd[r] = rs;                                                                                         \
        T *hr = xhat + r * n, *yr = y + r * n;                                                                \
        for (long j = 0; j < n; j++) hr[j] = (xr[j] - m) * rs;                                                \
        if (w && b) { for (long j = 0; j < n; j++) yr[j] = hr[j] * w[j] + b[j]; }                             \
        else if (w) { for (long j = 0; j < n; j++) yr[j] = hr[j] * w[j]; }                                    \
        else if (b) { for (long j = 0; j < n; j++) yr[j] = hr[j] + b[j]; }                                    \
        else { for (long j = 0; j < n; j++) yr[j] = hr[j]; }                                                  \
    }                                                                                                         \
}                                                                                                             \
/* dx = rstd (gw − mean(gw) − x̂ mean(gw x̂)), gw = g w; dw += Σ g x̂; db += Σ g (dw, db zeroed by the caller). */ \
void nb_layernorm_backward_##S(long rows, long n, const T *g, const T *xhat, const T *rstd, const T *w,     \
                               T *dx, T *dw, T *db) {                                                         \
    for (long r = 0; r < rows; r++) {                                                                         \
        const T *gr = g + r * n, *hr = xhat + r * n;                                                          \
        T sum1 = 0, sum2 = 0;                                                                                 \
        for (long j = 0; j < n; j++) { T gw = w ? gr[j] * w[j] : gr[j]; sum1 += gw; sum2 += gw * hr[j]; }    \
        T m1 = sum1 / (T)n, m2 = sum2 / (T)n, rs = rstd[r];                                                   \
        if (dx) { T *dr = dx + r * n;                                                                         \
            for (long j = 0; j < n; j++) { T gw = w ? gr[j] * w[j] : gr[j]; dr[j] = rs * (gw - m1 - hr[j] * m2); } } \
        if (dw) for (long j = 0; j < n; j++) dw[j] += gr[j] * hr[j];                                          \
        if (db) for (long j = 0; j < n; j++) db[j] += gr[j];                                                  \
    }                                                                                                         \
}

NB_LAYERNORM(float, f32)
NB_LAYERNORM(double, f64)

// Batch normalization over axis 1 of [N, C, HW] (training: the batch's statistics): per channel,
// the mean and biased variance in double precision, x̂ = (x − mean)/√(var + ε), y = x̂ w + b; the
// backward pass dx = rstd · w · (g − mean(g) − x̂ mean(g x̂)), dw = Σ g x̂, db = Σ g.
#define NB_BATCHNORM(T, S)                                                                                    \
void nb_batchnorm_forward_##S(long N, long C, long HW, const T *x, const T *w, const T *b, double eps,      \
                              T *y, T *xhat, T *mean, T *var, T *rstd) {                                      \
    double m = (double)(N * HW);                                                                              \
    for (long c = 0; c < C; c++) {                                                                            \
        double s = 0;                                                                                         \
        for (long n = 0; n < N; n++) { const T *xr = x + (n * C + c) * HW; for (long j = 0; j < HW; j++) s += xr[j]; } \
        double mu = s / m, v = 0;                                                                             \
        for (long n = 0; n < N; n++) { const T *xr = x + (n * C + c) * HW; for (long j = 0; j < HW; j++) { double d = xr[j] - mu; v += d * d; } } \
        v /= m;                                                                                               \
        T rs = (T)(1.0 / sqrt(v + eps)), mt = (T)mu, wc = w ? w[c] : (T)1, bc = b ? b[c] : (T)0;              \
        mean[c] = mt; var[c] = (T)v; rstd[c] = rs;                                                            \
        for (long n = 0; n < N; n++) {                                                                        \
            const T *xr = x + (n * C + c) * HW; T *hr = xhat + (n * C + c) * HW, *yr = y + (n * C + c) * HW; \
            for (long j = 0; j < HW; j++) { T h = (xr[j] - mt) * rs; hr[j] = h; yr[j] = h * wc + bc; }       \
        }                                                                                                     \
    }                                                                                                         \
}                                                                                                             \
void nb_batchnorm_backward_##S(long N, long C, long HW, const T *g, const T *xhat, const T *rstd, const T *w, \
                               T *dx, T *dw, T *db) {                                                         \
    double m = (double)(N * HW);                                                                              \
    for (long c = 0; c < C; c++) {                                                                            \
        double s1 = 0, s2 = 0;                                                                                \
        for (long n = 0; n < N; n++) {                                                                        \
            const T *gr = g + (n * C + c) * HW, *hr = xhat + (n * C + c) * HW;                               \
            for (long j = 0; j < HW; j++) { s1 += gr[j]; s2 += (double)gr[j] * hr[j]; }                       \
        }                                                                                                     \
        if (dw) dw[c] = (T)s2;                                                                                \
        if (db) db[c] = (T)s1;                                                                                \
        if (!dx) continue;                                                                                    \
        T k = rstd[c] * (w ? w[c] : (T)1), m1 = (T)(s1 / m), m2 = (T)(s2 / m);                               \
        for (long n = 0; n < N; n++) {                                                                        \
            const T *gr = g + (n * C + c) * HW, *hr = xhat + (n * C + c) * HW; T *dr = dx + (n * C + c) * HW; \
            for (long j = 0; j < HW; j++) dr[j] = k * (gr[j] - m1 - hr[j] * m2);                              \
        }                                                                                                     \
    }                                                                                                         \
}

NB_BATCHNORM(float, f32)
NB_BATCHNORM(double, f64)
