#include "nabla_kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define NB_X86 1
#define NB_ATTR_AVX2 __attribute__((target("avx2,fma")))
#define NB_ATTR_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"), unused))
#else
#define NB_X86 0
#define NB_ATTR_AVX2
#endif

#pragma clang fp contract(fast)


// ---- Branch-free float exp, log and tanh that vectorize (the double kernels use libm) ----
// exp: x = k ln2 + r with |r| <= ln2/2; exp(r) by its degree-7 Taylor polynomial (relative
// error below 1e-8 on that interval); 2^k assembled in the exponent bits.
static inline float nb_vexpf(float x) {
    float xc = x < -87.33654f ? -87.33654f : (x > 88.72283f ? 88.72283f : x);
    float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = xc - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f; p = p * r + 1.0f / 120.0f; p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f; p = p * r + 0.5f; p = p * r + 1.0f; p = p * r + 1.0f;
    int ki = (int)k + 127;
    int bits = ki << 23;
    float scale; memcpy(&scale, &bits, 4);
    float y = p * scale;
    y = x < -87.33654f ? 0.0f : y;
    y = x > 88.72283f ? __builtin_inff() : y;
    return x != x ? x : y;
}

// log: x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.172,
// by its series to s^9 (error below 4e-9).
static inline float nb_vlogf(float x) {
    int tiny = x < 1.17549435e-38f;
    float xs = tiny ? x * 8388608.0f : x;  // lift subnormals by 2^23
    int bits; memcpy(&bits, &xs, 4);
    int e = ((bits >> 23) & 0xff) - 127;
    int mbits = (bits & 0x007fffff) | 0x3f800000;
    float m; memcpy(&m, &mbits, 4);  // [1, 2)
    int big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    float ef = (float)(e + big) - (tiny ? 23.0f : 0.0f);
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f; p = p * s2 + 1.0f / 5.0f; p = p * s2 + 1.0f / 3.0f; p = p * s2 + 1.0f;
    float y = 2.0f * s * p + ef * 0.693147180559945309f;
    y = x == 0.0f ? -__builtin_inff() : y;
    y = x < 0.0f ? __builtin_nanf("") : y;
    y = x == __builtin_inff() ? x : y;
    return x != x ? x : y;
}

// tanh: odd Taylor series for |x| < 0.25 (error below 1e-10), 1 - 2/(exp(2|x|) + 1) above, 1 past 9.
static inline float nb_vtanhf(float x) {
    float a = x < 0 ? -x : x;
    float x2 = x * x;
    float p = -21844.0f / 6081075.0f;
    p = p * x2 + 1382.0f / 155925.0f; p = p * x2 - 62.0f / 2835.0f; p = p * x2 + 17.0f / 315.0f;
    p = p * x2 - 2.0f / 15.0f; p = p * x2 + 1.0f / 3.0f;
    float small = x - x * x2 * p;
    float e = nb_vexpf(2.0f * (a > 9.0f ? 9.0f : a));
    float large = 1.0f - 2.0f / (e + 1.0f);
    large = a > 9.0f ? 1.0f : large;
    large = x < 0 ? -large : large;
    float y = a < 0.25f ? small : large;
    return x != x ? x : y;
}

// erf: a rational function of x on [-4, 4] (Eigen's float erf; within a few ulp), ±1 beyond
// (erf(4) rounds to 1 in float). Branch-free, so the loops that call it vectorize.
static inline float nb_verff(float x) {
    float c = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    float x2 = c * c;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f; p = p * x2 - 2.10102402082508e-06f; p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f; p = p * x2 - 2.95459980854025e-03f; p = p * x2 - 1.60960333262415e-02f;
    p = p * c;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f; q = q * x2 - 1.68282697438203e-03f; q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    float y = p / q;
    return x != x ? x : y;
}

// y[j] = alpha · (a · B[j, :]) + beta · y[j] for the N rows of B: one vector times a matrix's
// rows, four rows at a time so that their dot products overlap (decoding one token).
typedef float nb_v8f __attribute__((vector_size(32)));
#if NB_X86
NB_ATTR_AVX2 static void nb_gemv_rows_f32_avx2(long N, long K, float alpha, const float *a, const float *B, long ldb, float beta, float *y) {
    long j = 0;
    for (; j + 4 <= N; j += 4) {
        const float *b0 = B + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        nb_v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, va, v;
        long k = 0;
        for (; k + 8 <= K; k += 8) {
            memcpy(&va, a + k, 32);
            memcpy(&v, b0 + k, 32); s0 += va * v;
            memcpy(&v, b1 + k, 32); s1 += va * v;
            memcpy(&v, b2 + k, 32); s2 += va * v;
            memcpy(&v, b3 + k, 32); s3 += va * v;
        }
        float r[4] = {0, 0, 0, 0};
        for (int i = 0; i < 8; i++) { r[0] += s0[i]; r[1] += s1[i]; r[2] += s2[i]; r[3] += s3[i]; }
        for (; k < K; k++) { r[0] += a[k] * b0[k]; r[1] += a[k] * b1[k]; r[2] += a[k] * b2[k]; r[3] += a[k] * b3[k]; }
        for (int i = 0; i < 4; i++) y[j + i] = beta == 0 ? alpha * r[i] : alpha * r[i] + beta * y[j + i];
    }
    for (; j < N; j++) {
        float r = 0;
        for (long k = 0; k < K; k++) r += a[k] * B[j * ldb + k];
        y[j] = beta == 0 ? alpha * r : alpha * r + beta * y[j];
    }
}
#endif

// sin and cos: x = k (pi/2) + r with |r| <= pi/4 (three-part Cody-Waite reduction, accurate
// for |x| up to about 8192; the fused kernels hand larger arguments to libm), then Cephes'
// polynomials of sin and cos on [-pi/4, pi/4]; k mod 4 picks the polynomial and the sign.
static inline float nb_sincos_quadrant(float x, int shift) {
    float k = (x * 0.636619772367581343f + 12582912.0f) - 12582912.0f;
    float r = x - k * 1.5703125f;
    r = r - k * 4.837512969970703125e-4f;
    r = r - k * 7.54978995489188216e-8f;
    int q = (int)k + shift;
    float r2 = r * r;
    float s = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
    float c = 1.0f - 0.5f * r2 + r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
    float y = (q & 1) ? c : s;
    y = (q & 2) ? -y : y;
    return x != x ? x : y;
}
static inline float nb_vsinf(float x) { return nb_sincos_quadrant(x, 0); }
static inline float nb_vcosf(float x) { return nb_sincos_quadrant(x, 1); }

// ---- Instantiate the kernels: {float, double} x {baseline, AVX2+FMA} ----
#define T float
#define M_EXP nb_vexpf
#define M_LOG nb_vlogf
#define M_SQRT sqrtf
#define M_FABS fabsf
#define M_TANH nb_vtanhf
#define M_EXPM1 expm1f
#define M_LOG1P log1pf
#define M_ERF nb_verff
#define M_SIN sinf
#define M_COS cosf
#define M_TAN tanf
#define M_POW powf
#define M_VSIN nb_vsinf
#define M_VCOS nb_vcosf
#define NB_VBYTES 32
#define ATTR
#define FN(name) name##_f32_base
#include "kernels_template.inc"
#include "fused_template.inc"
#undef ATTR
#undef FN
#if NB_X86
#define ATTR NB_ATTR_AVX2
#define FN(name) name##_f32_avx2
#include "kernels_template.inc"
#include "fused_template.inc"
#undef ATTR
#undef FN
#undef NB_VBYTES
#define NB_VBYTES 64
#define ATTR NB_ATTR_AVX512
#define FN(name) name##_f32_avx512
#include "kernels_template.inc"
#include "fused_template.inc"
#undef ATTR
#undef FN
#endif
#undef NB_VBYTES
#undef T
#undef M_EXP
#undef M_LOG
#undef M_SQRT
#undef M_FABS
#undef M_TANH
#undef M_EXPM1
#undef M_LOG1P
#undef M_ERF
#undef M_SIN
#undef M_COS
#undef M_TAN
#undef M_POW
#undef M_VSIN
#undef M_VCOS

#define T double
#define M_EXP exp
#define M_LOG log
#define M_SQRT sqrt
#define M_FABS fabs
#define M_TANH tanh
#define M_EXPM1 expm1
#define M_LOG1P log1p
#define M_ERF erf
#define M_SIN sin
#define M_COS cos
#define M_TAN tan
#define M_POW pow
#define M_VSIN sin
#define M_VCOS cos
#define NB_VBYTES 32
#define ATTR
#define FN(name) name##_f64_base
#include "kernels_template.inc"
#include "fused_template.inc"
#undef ATTR
#undef FN
#if NB_X86
#define ATTR NB_ATTR_AVX2
#define FN(name) name##_f64_avx2
#include "kernels_template.inc"
#include "fused_template.inc"
#undef ATTR
#undef FN
#undef NB_VBYTES
#define NB_VBYTES 64
#define ATTR NB_ATTR_AVX512
#define FN(name) name##_f64_avx512
#include "kernels_template.inc"
#include "fused_template.inc"
#undef ATTR
#undef FN
#endif
#undef NB_VBYTES
#undef T

// ---- CPU detection ----
static int nb_avx2_state = -1;
static int nb_avx512_state = 0;

// 1 when the AVX-512 GEMM micro-kernel is in use (implies AVX2+FMA).
int nb_cpu_has_avx512(void) { nb_cpu_has_avx2_fma(); return nb_avx512_state; }

// Lowers (or restores) the instruction set of the built-in kernels: 0 portable, 1 AVX2+FMA,
// 2 AVX-512 GEMM; never above what the CPU has. Returns the level now in use.
static int nb_avx2_cpu = -1, nb_avx512_cpu = -1;
int nb_set_instruction_level(int level) {
    nb_cpu_has_avx2_fma();
    if (nb_avx2_cpu < 0) { nb_avx2_cpu = nb_avx2_state; nb_avx512_cpu = nb_avx512_state; }
    nb_avx2_state = level >= 1 && nb_avx2_cpu;
    nb_avx512_state = level >= 2 && nb_avx512_cpu;
    return nb_avx2_state + nb_avx512_state;
}
int nb_cpu_has_avx2_fma(void) {
    if (nb_avx2_state < 0) {
#if NB_X86
        __builtin_cpu_init();
        nb_avx2_state = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        const char *env = getenv("NABLA_NO_AVX2");
        if (env && env[0] == '1') nb_avx2_state = 0;
        nb_avx512_state = nb_avx2_state && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                       && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
        const char *env512 = getenv("NABLA_NO_AVX512");
        if (env512 && env512[0] == '1') nb_avx512_state = 0;
#else
        nb_avx2_state = 0;
#endif
    }
    return nb_avx2_state;
}

#if NB_X86
#define NB_PICK(name, S) (nb_cpu_has_avx2_fma() ? name##_##S##_avx2 : name##_##S##_base)
#define NB_PICK_GEMM(S) (nb_cpu_has_avx512() ? gemm_builtin_##S##_avx512 : NB_PICK(gemm_builtin, S))
#else
#define NB_PICK(name, S) name##_##S##_base
#define NB_PICK_GEMM(S) gemm_builtin_##S##_base
#endif

// ---- BLAS, loaded at run time ----
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double *, int, const double *, int, double, double *, int);
typedef void (*set_threads_fn)(int);
typedef char *(*get_config_fn)(void);

static pthread_once_t nb_blas_once = PTHREAD_ONCE_INIT;
static sgemm_fn nb_sgemm = NULL;
static dgemm_fn nb_dgemm = NULL;
static set_threads_fn nb_blas_threads = NULL;
static char nb_blas_label[256] = "built-in";
static int nb_blas_disabled = 0;
static int nb_threads = 0;

typedef char *(*get_corename_fn)(void);

// 1 when the loaded GEMMs agree with the built-in kernel on an awkward shape.
static int nb_blas_self_test(sgemm_fn s, dgemm_fn d) {
    enum { M = 37, N = 29, K = 45 };
    static float af[M * K], bf[K * N], cf[M * N], rf[M * N];
    static double ad[M * K], bd[K * N], cd[M * N], rd[M * N];
    for (int i = 0; i < M * K; i++) { af[i] = (float)((i * 7 % 13) - 6) / 7.0f; ad[i] = af[i]; }
    for (int i = 0; i < K * N; i++) { bf[i] = (float)((i * 5 % 11) - 5) / 3.0f; bd[i] = bf[i]; }
    s(101, 111, 112, M, N, K, 1.0f, af, K, bf, K, 0.0f, cf, N);  // B read transposed as N x K
    d(101, 111, 112, M, N, K, 1.0, ad, K, bd, K, 0.0, cd, N);
    gemm_builtin_f32_base(0, 1, M, N, K, 1.0f, af, K, bf, K, 0.0f, rf, N);
    gemm_builtin_f64_base(0, 1, M, N, K, 1.0, ad, K, bd, K, 0.0, rd, N);
    for (int i = 0; i < M * N; i++) {
        if (fabs((double)cf[i] - rf[i]) > 1e-4 * (1 + fabs((double)rf[i]))) return 0;
        if (fabs(cd[i] - rd[i]) > 1e-12 * (1 + fabs(rd[i]))) return 0;
    }
    return 1;
}

static int nb_is_generic_core(const char *name) {
    const char *generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine",
                             "Northwood", "Banias", "Opteron", "Barcelona", "Bobcat", "generic", NULL};
    for (int i = 0; generic[i]; i++) if (strcmp(name, generic[i]) == 0) return 1;
    return 0;
}

static void *nb_open_blas(const char *path, sgemm_fn *s, dgemm_fn *d) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return NULL;
    *s = (sgemm_fn)dlsym(h, "cblas_sgemm");
    *d = (dgemm_fn)dlsym(h, "cblas_dgemm");
    if (!*s || !*d) { dlclose(h); return NULL; }
    return h;
}

static void nb_blas_load(void) {
    const char *env = getenv("NABLA_BLAS");
    if (env && strcmp(env, "none") == 0) return;
    const char *candidates[] = {
        env,
#if defined(__APPLE__)
        "/System/Library/Frameworks/Accelerate.framework/Accelerate",
#endif
        "libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.so", "libblis.so.4", "libcblas.so.3", "libblas.so.3",
        NULL};
    for (int i = 0; i < (int)(sizeof(candidates) / sizeof(candidates[0])); i++) {
        if (!candidates[i]) continue;
        sgemm_fn s; dgemm_fn d;
        void *h = nb_open_blas(candidates[i], &s, &d);
        if (!h) continue;
#if NB_X86
        // A DYNAMIC_ARCH OpenBLAS that does not know this CPU falls back to its SSE3 kernels,
        // several times slower. When the CPU has AVX2+FMA, load it again with the kernels it
        // can use (unless the user chose with OPENBLAS_CORETYPE), and keep them only if they
        // pass a self-test.
        get_corename_fn corename = (get_corename_fn)dlsym(h, "openblas_get_corename");
        if (corename && nb_is_generic_core(corename()) && !getenv("OPENBLAS_CORETYPE") && nb_cpu_has_avx2_fma()) {
            __builtin_cpu_init();
            int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                      && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
            const char *cores[] = {avx512 ? "SkylakeX" : "Haswell", "Haswell", NULL};
            for (int c = avx512 ? 0 : 1; cores[c]; c++) {
                dlclose(h);
                setenv("OPENBLAS_CORETYPE", cores[c], 1);
                h = nb_open_blas(candidates[i], &s, &d);
                if (h && nb_blas_self_test(s, d)) break;
                if (h) { dlclose(h); h = NULL; }
            }
            if (!h) {
                unsetenv("OPENBLAS_CORETYPE");
                h = nb_open_blas(candidates[i], &s, &d);
                if (!h) continue;
            }
        }
#endif
        if (!nb_blas_self_test(s, d)) { dlclose(h); continue; }
        nb_sgemm = s; nb_dgemm = d;
        nb_blas_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
        if (!nb_blas_threads) nb_blas_threads = (set_threads_fn)dlsym(h, "bli_thread_set_num_threads");
        get_config_fn cfg = (get_config_fn)dlsym(h, "openblas_get_config");
        get_corename_fn core = (get_corename_fn)dlsym(h, "openblas_get_corename");
        if (cfg && core) snprintf(nb_blas_label, sizeof nb_blas_label, "OpenBLAS, %s kernels (%s)", core(), candidates[i]);
        else if (cfg) snprintf(nb_blas_label, sizeof nb_blas_label, "%s (%s)", cfg(), candidates[i]);
        else snprintf(nb_blas_label, sizeof nb_blas_label, "%s", candidates[i]);
        if (nb_threads > 0 && nb_blas_threads) nb_blas_threads(nb_threads);
        return;
    }
}

int nb_blas_available(void) { pthread_once(&nb_blas_once, nb_blas_load); return nb_sgemm != NULL; }
const char *nb_blas_name(void) { pthread_once(&nb_blas_once, nb_blas_load); return nb_sgemm && !nb_blas_disabled ? nb_blas_label : "built-in"; }
void nb_blas_set_disabled(int disabled) { nb_blas_disabled = disabled; }
void nb_set_num_threads(int n) {
    pthread_once(&nb_blas_once, nb_blas_load);
    nb_threads = n;
    if (nb_blas_threads && n > 0) nb_blas_threads(n);
}
int nb_get_num_threads(void) { return nb_threads; }
static long nb_processors(void) {
    static long count = 0;
    if (count == 0) { long c = sysconf(_SC_NPROCESSORS_ONLN); count = c > 0 ? c : 1; }
    return count;
}

// ---- Gradient recording switch ----
static _Thread_local int nb_grad_off = 0;
int nb_grad_enabled(void) { return !nb_grad_off; }
void nb_set_grad_enabled(int enabled) { nb_grad_off = !enabled; }
static _Thread_local int nb_anomaly_on = 0;
int nb_anomaly_detection(void) { return nb_anomaly_on; }
void nb_set_anomaly_detection(int enabled) { nb_anomaly_on = enabled; }

// ---- Public entry points ----
enum { NB_ROW_MAJOR = 101, NB_NO_TRANS = 111, NB_TRANS = 112 };

#define NB_DEFINE(T, S, BLASFN, DIRECT) \
void nb_binary_##S(int op, int ndim, const long *shape, T *out, const T *a, const long *sa, const T *b, const long *sb) { \
    NB_PICK(binary, S)(op, ndim, shape, out, a, sa, b, sb); } \
void nb_unary_##S(int op, long n, const T *x, T *out, double p0, double p1) { NB_PICK(unary, S)(op, n, x, out, p0, p1); } \
void nb_reduce_##S(int op, long outer, long n, long inner, const T *x, T *out) { NB_PICK(reduce, S)(op, outer, n, inner, x, out); } \
void nb_copy_strided_##S(int ndim, const long *shape, const T *src, const long *strides, T *dst) { \
    NB_PICK(copy_strided, S)(ndim, shape, src, strides, dst); } \
void nb_store_strided_##S(int ndim, const long *shape, const T *src, T *dst, const long *strides) { \
    NB_PICK(store_strided, S)(ndim, shape, src, dst, strides); } \
void nb_take_##S(long n, const T *src, const long *index, T *dst) { for (long i = 0; i < n; i++) dst[i] = src[index[i]]; } \
void nb_scatter_add_##S(long n, const T *src, const long *index, T *dst) { for (long i = 0; i < n; i++) dst[index[i]] += src[i]; } \
void nb_select_##S(long n, const T *cond, const T *a, const T *b, T *out) { for (long i = 0; i < n; i++) out[i] = cond[i] != 0 ? a[i] : b[i]; } \
void nb_fill_##S(long n, T value, T *out) { for (long i = 0; i < n; i++) out[i] = value; } \
void nb_axpy_##S(long n, T alpha, const T *x, T *y) { NB_PICK(axpy, S)(n, alpha, x, y); } \
T nb_dot_##S(long n, const T *x, const T *y) { return NB_PICK(dot, S)(n, x, y); } \
void nb_gemm_builtin_##S(int transA, int transB, long M, long N, long K, T alpha, const T *A, long lda, \
                         const T *B, long ldb, T beta, T *C, long ldc) { \
    NB_PICK_GEMM(S)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); } \
void nb_gemm_##S(int transA, int transB, long M, long N, long K, T alpha, const T *A, long lda, \
                 const T *B, long ldb, T beta, T *C, long ldc) { \
    if (M == 0 || N == 0) return; \
    if (M == 1 && !transA && transB && K > 0 && N * K <= (1L << 20)) { \
        /* a row times a matrix's rows (decoding one token): N dot products, no packing */ \
        if (NB_GEMV_ROWS(S, N, K, alpha, A, B, ldb, beta, C)) return; \
        for (long j = 0; j < N; j++) { T s = nb_dot_##S(K, A, B + j * ldb); C[j] = beta == 0 ? alpha * s : alpha * s + beta * C[j]; } \
        return; } \
    if (DIRECT) return; \
    if (nb_blas_available() && !nb_blas_disabled && K > 0 && M * N * K >= 512) { \
        BLASFN(NB_ROW_MAJOR, transA ? NB_TRANS : NB_NO_TRANS, transB ? NB_TRANS : NB_NO_TRANS, \
               (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc); \
        return; \
    } \
    NB_PICK_GEMM(S)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); } \
void nb_convert_to_##S(long n, const void *src, int srcIsDouble, T *dst) { \
    if (srcIsDouble) { const double *s = (const double *)src; for (long i = 0; i < n; i++) dst[i] = (T)s[i]; } \
    else { const float *s = (const float *)src; for (long i = 0; i < n; i++) dst[i] = (T)s[i]; } }

// Float32 products of the shapes of a training step skip the BLAS (and its packing) on AVX-512
// machines, where the kernels of gemm_small.c measured faster (nabla bench mlp, and the products
// of its steps one by one): the panel kernel for the larger ones, the direct kernels for those
// with one small dimension. Only on one thread, or for work too small to share; the kernels
// themselves decline (and the BLAS runs) without AVX-512 or for an empty k.
static int nb_gemv_rows_f32(long N, long K, float alpha, const float *a, const float *B, long ldb, float beta, float *y) {
#if NB_X86
    if (nb_cpu_has_avx2_fma()) { nb_gemv_rows_f32_avx2(N, K, alpha, a, B, ldb, beta, y); return 1; }
#endif
    return 0;
}
static int nb_gemv_rows_f64(long N, long K, double alpha, const double *a, const double *B, long ldb, double beta, double *y) { return 0; }
#define NB_GEMV_ROWS(S, N, K, alpha, A, B, ldb, beta, C) nb_gemv_rows_##S(N, K, alpha, A, B, ldb, beta, C)
enum { NB_SGEMM_BLAS, NB_SGEMM_DIRECT_KERNEL, NB_SGEMM_PANEL_KERNEL };
static long nb_gemm_threads(void) { return nb_threads > 0 ? nb_threads : nb_processors(); }
static int nb_sgemm_kernel(int transA, int transB, long M, long N, long K) {
    // Aᵀ·B (weight gradients), A·Bᵀ with enough rows to repay packing Bᵀ (forward passes), and
    // A·B with one side at most 256 (input gradients); square A·B stays with the BLAS. The same
    // choice for any number of threads: Nabla's kernels split their larger products themselves.
    if (M * N * K >= (1L << 21) && transA && !transB && K >= 128) return NB_SGEMM_PANEL_KERNEL;
    if (M * N * K >= (1L << 21) && !transA && transB && (M >= 256 || (M >= 128 && K <= 256))) return NB_SGEMM_PANEL_KERNEL;
    if (M * N * K >= (1L << 20) && !transA && !transB && (N <= 256 || K <= 256)) return NB_SGEMM_PANEL_KERNEL;
    if (!transB)  // NN, TN: rows of B in place; a long k only for a small C, many rows only for a small product
        return M >= 4 && N >= 16 && K >= 8 && (K <= 512 || M * N <= 4096) && (M <= 64 || M * N * K < (1L << 24))
            ? NB_SGEMM_DIRECT_KERNEL : NB_SGEMM_BLAS;
    if (!transA && M >= 2 && (M * K <= (1L << 17) || N <= 16 || (K >= 768 && K <= 2048)))
        return NB_SGEMM_DIRECT_KERNEL;  // NT: A in L2, or long dot products
    return NB_SGEMM_BLAS;
}
// Threads for one of Nabla's products: one below 2²² multiply-adds, where waking a worker costs
// more than it saves.
static int nb_gemm_parts(long M, long N, long K) {
    long t = nb_gemm_threads();
    return M * N * K >= (1L << 22) && t > 1 ? (int)(t < 64 ? t : 64) : 1;
}
static int nb_sgemm_own(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C, long ldc) {
    switch (nb_sgemm_kernel(transA, transB, M, N, K)) {
    case NB_SGEMM_PANEL_KERNEL:
        return nb_sgemm_panel_avx512(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nb_gemm_parts(M, N, K));
    case NB_SGEMM_DIRECT_KERNEL:
        return nb_sgemm_direct_avx512(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nb_gemm_parts(M, N, K));
    default: return 0;
    }
}
#define NB_SGEMM_DIRECT nb_sgemm_own(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)

NB_DEFINE(float, f32, nb_sgemm, NB_SGEMM_DIRECT)
NB_DEFINE(double, f64, nb_dgemm, 0)

void nb_linear_f32(long M, long N, long K, const float *x, const float *w, const float *bias, float *out, int relu) {
    if (nb_sgemm_kernel(0, 1, M, N, K) == NB_SGEMM_PANEL_KERNEL
        && nb_linear_panel_avx512(M, N, K, x, K, w, K, bias, out, N, relu, nb_gemm_parts(M, N, K)))
        return;
    for (long i = 0; i < M; i++) memcpy(out + i * N, bias, sizeof(float) * (size_t)N);
    nb_gemm_f32(0, 1, M, N, K, 1.0f, x, K, w, K, 1.0f, out, N);
    if (relu) nb_unary_f32(NB_RELU, M * N, out, out, 0, 0);
}
void nb_linear_f64(long M, long N, long K, const double *x, const double *w, const double *bias, double *out, int relu) {
    for (long i = 0; i < M; i++) memcpy(out + i * N, bias, sizeof(double) * (size_t)N);
    nb_gemm_f64(0, 1, M, N, K, 1.0, x, K, w, K, 1.0, out, N);
    if (relu) nb_unary_f64(NB_RELU, M * N, out, out, 0, 0);
}

// The BLAS routine itself, with nothing of Nabla's around it (for benchmarks). Returns 0 when
// no BLAS is loaded.
int nb_raw_sgemm(long M, long N, long K, const float *A, const float *B, float *C) {
    if (!nb_blas_available()) return 0;
    nb_sgemm(NB_ROW_MAJOR, NB_NO_TRANS, NB_NO_TRANS, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, (int)N, 0.0f, C, (int)N);
    return 1;
}
int nb_raw_dgemm(long M, long N, long K, const double *A, const double *B, double *C) {
    if (!nb_blas_available()) return 0;
    nb_dgemm(NB_ROW_MAJOR, NB_NO_TRANS, NB_NO_TRANS, (int)M, (int)N, (int)K, 1.0, A, (int)K, B, (int)N, 0.0, C, (int)N);
    return 1;
}

// A number no other backward pass has used.
static unsigned long long nb_pass_counter = 0;
unsigned long long nb_next_pass_id(void) { return __atomic_add_fetch(&nb_pass_counter, 1, __ATOMIC_RELAXED); }

// Largest |x_i| (0 for n = 0; NaN if any element is NaN); eight running maxima so the loop vectorizes.
NB_ATTR_AVX2 static double nb_maxabs_f64_avx2(long n, const double *x) {
    double m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0, nan = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) { double a = fabs(x[i + j]); m[j] = a > m[j] ? a : m[j]; nan |= a != a; }
    double r = 0;
    for (int j = 0; j < 8; j++) r = m[j] > r ? m[j] : r;
    for (; i < n; i++) { double a = fabs(x[i]); r = a > r ? a : r; nan |= a != a; }
    return nan ? __builtin_nan("") : r;
}
static double nb_maxabs_f64_base(long n, const double *x) {
    double r = 0;
    for (long i = 0; i < n; i++) { double a = fabs(x[i]); if (a != a) return a; r = a > r ? a : r; }
    return r;
}
double nb_maxabs_f64(long n, const double *x) {
#if NB_X86
    if (nb_cpu_has_avx2_fma()) return nb_maxabs_f64_avx2(n, x);
#endif
    return nb_maxabs_f64_base(n, x);
}

// ---- Fused softmax cross-entropy ----
// For each row i of z [n, k]: lse_i = log Σ_j exp(z_ij) (shifted by the row maximum),
// loss_i = lse_i − z_i,t_i, and probs_i = exp(z_i − lse_i).
void nb_softmax_xent_f32(long n, long k, const float *z, const long *targets, float *probs, float *loss) {
    for (long i = 0; i < n; i++) {
        const float *row = z + i * k; float *p = probs + i * k;
        float m = row[0];
        for (long j = 1; j < k; j++) m = row[j] > m ? row[j] : m;
        float s = 0;
        for (long j = 0; j < k; j++) { p[j] = expf(row[j] - m); s += p[j]; }
        float lse = m + logf(s), inv = 1.0f / s;
        for (long j = 0; j < k; j++) p[j] *= inv;
        loss[i] = lse - row[targets[i]];
    }
}

// Double: the shifted logits of every row first, then one vectorized exp over all of them.
void nb_softmax_xent_f64(long n, long k, const double *z, const long *targets, double *probs, double *loss) {
    for (long i = 0; i < n; i++) {
        const double *row = z + i * k; double *p = probs + i * k;
        double m = row[0];
        for (long j = 1; j < k; j++) m = row[j] > m ? row[j] : m;
        for (long j = 0; j < k; j++) p[j] = row[j] - m;
        loss[i] = m;   // the row maximum, for now
    }
    nb_exp_nonpositive_f64(n * k, probs);
    for (long i = 0; i < n; i++) {
        const double *row = z + i * k; double *p = probs + i * k;
        double s = 0;
        for (long j = 0; j < k; j++) s += p[j];
        double lse = loss[i] + log(s), inv = 1.0 / s;
        for (long j = 0; j < k; j++) p[j] *= inv;
        loss[i] = lse - row[targets[i]];
    }
}

// L-BFGS two-loop recursion (see nabla_kernels.h): count + 1 fused passes over q per loop.
void nb_lbfgs_direction_f64(long n, long count, long start, const double *S, const double *Y, const double *rho,
                            double hdiag, const double *g, double *q, double *alpha) {
#if NB_X86
    // The history streams from L2 every iteration: 64-byte vectors where the CPU has them.
    double (*pass)(long, double, const double *, double *, double, const double *) =
        nb_cpu_has_avx512() ? lbfgs_pass_f64_avx512 : NB_PICK(lbfgs_pass, f64);
#else
    double (*pass)(long, double, const double *, double *, double, const double *) = NB_PICK(lbfgs_pass, f64);
#endif
#define SLOT(B, i) ((B) + ((start + (i)) % count) * n)
    for (long j = 0; j < n; j++) q[j] = -g[j];
    if (count == 0) { pass(n, 0, 0, q, hdiag, 0); return; }
    double acc = pass(n, 0, 0, q, 1, SLOT(S, count - 1));
    for (long k = count - 1; k >= 0; k--) {
        double a = rho[(start + k) % count] * acc;
        alpha[k] = a;
        // q -= a y_k, then the next dot product: s_(k-1).q, or (after scaling by hdiag) y_oldest.q.
        acc = k > 0 ? pass(n, -a, SLOT(Y, k), q, 1, SLOT(S, k - 1)) : pass(n, -a, SLOT(Y, 0), q, hdiag, SLOT(Y, 0));
    }
    for (long k = 0; k < count; k++) {
        double b = rho[(start + k) % count] * acc;
        acc = pass(n, alpha[k] - b, SLOT(S, k), q, 1, k + 1 < count ? SLOT(Y, k + 1) : 0);
    }
#undef SLOT
}

// ---- Causal softmax of attention scores ----
// y = softmax(scale · x) over the last axis of each [t, s] matrix, with key j hidden from query
// i when j > i; and its backward pass dx = scale · y ⊙ (g − Σ g ⊙ y).
#define NB_CAUSAL_SOFTMAX(T, S, SUF, ATTRS, EXPF)                                                         \
ATTRS static void nb_causal_softmax_##S##SUF(long mats, long t, long s, T scale, const T *x, T *y) {      \
    for (long m = 0; m < mats; m++) {                                                                    \
        for (long i = 0; i < t; i++) {                                                                   \
            const T *xr = x + (m * t + i) * s;                                                           \
            T *yr = y + (m * t + i) * s;                                                                 \
            long visible = i + 1 < s ? i + 1 : s;                                                        \
            T mx = xr[0] * scale;                                                                        \
            for (long j = 1; j < visible; j++) { T v = xr[j] * scale; mx = v > mx ? v : mx; }           \
            T sum = 0;                                                                                   \
            for (long j = 0; j < visible; j++) { T e = EXPF(xr[j] * scale - mx); yr[j] = e; sum += e; }  \
            T inv = (T)1 / sum;                                                                          \
            for (long j = 0; j < visible; j++) yr[j] *= inv;                                             \
            for (long j = visible; j < s; j++) yr[j] = 0;                                                \
        }                                                                                                \
    }                                                                                                    \
}                                                                                                        \
ATTRS static void nb_softmax_backward_##S##SUF(long rows, long n, T scale, const T *y, const T *g, T *dx) { \
    for (long r = 0; r < rows; r++) {                                                                    \
        const T *yr = y + r * n, *gr = g + r * n;                                                        \
        T *dr = dx + r * n;                                                                              \
        T dot = 0;                                                                                       \
        for (long j = 0; j < n; j++) dot += gr[j] * yr[j];                                               \
        for (long j = 0; j < n; j++) dr[j] = scale * yr[j] * (gr[j] - dot);                              \
    }                                                                                                    \
}

NB_CAUSAL_SOFTMAX(float, f32, _base, , nb_vexpf)
NB_CAUSAL_SOFTMAX(double, f64, _base, , exp)
#if NB_X86
NB_CAUSAL_SOFTMAX(float, f32, _avx2, NB_ATTR_AVX2, nb_vexpf)
#endif

void nb_causal_softmax_f32(long mats, long t, long s, float scale, const float *x, float *y) {
#if NB_X86
    if (nb_cpu_has_avx2_fma()) { nb_causal_softmax_f32_avx2(mats, t, s, scale, x, y); return; }
#endif
    nb_causal_softmax_f32_base(mats, t, s, scale, x, y);
}
void nb_causal_softmax_f64(long mats, long t, long s, double scale, const double *x, double *y) {
    nb_causal_softmax_f64_base(mats, t, s, scale, x, y);
}
void nb_softmax_backward_f32(long rows, long n, float scale, const float *y, const float *g, float *dx) {
#if NB_X86
    if (nb_cpu_has_avx2_fma()) { nb_softmax_backward_f32_avx2(rows, n, scale, y, g, dx); return; }
#endif
    nb_softmax_backward_f32_base(rows, n, scale, y, g, dx);
}
void nb_softmax_backward_f64(long rows, long n, double scale, const double *y, const double *g, double *dx) {
    nb_softmax_backward_f64_base(rows, n, scale, y, g, dx);
}

// ---- LSTM cell (gates i, f, g, o) for the fused sequence primitive ----
// Forward: z [B, 4H] pre-activations → gates (activated, in place of z's layout), c, tanh c, h.
// Backward: from dh (total) and dc (from the next step) → dz [B, 4H] and dc for the previous step.
#define NB_LSTM_CELL(T, S, SUF, ATTRS, EXPF, TANHF)                                                            \
ATTRS void nb_lstm_row_forward_##S##SUF(long H, const T *restrict zr, const T *restrict cpr, T *restrict gi, T *restrict gf, \
                                        T *restrict gg, T *restrict go, T *restrict cr, T *restrict tcr, T *restrict hr) { \
    for (long j = 0; j < H; j++) {                                                                            \
        T i = (T)1 / ((T)1 + EXPF(-zr[j]));                                                                   \
        T f = (T)1 / ((T)1 + EXPF(-zr[H + j]));                                                               \
        T g = TANHF(zr[2 * H + j]);                                                                           \
        T o = (T)1 / ((T)1 + EXPF(-zr[3 * H + j]));                                                           \
        gi[j] = i; gf[j] = f; gg[j] = g; go[j] = o;                                                           \
        T cv = f * cpr[j] + i * g;                                                                            \
        T t = TANHF(cv);                                                                                      \
        cr[j] = cv; tcr[j] = t; hr[j] = o * t;                                                                \
    }                                                                                                         \
}                                                                                                             \
ATTRS void nb_lstm_forward_##S##SUF(long B, long H, const T *z, const T *cp, T *gates, T *c, T *tc, T *h) {  \
    for (long b = 0; b < B; b++) {                                                                            \
        T *gr = gates + b * 4 * H;                                                                            \
        nb_lstm_row_forward_##S##SUF(H, z + b * 4 * H, cp + b * H, gr, gr + H, gr + 2 * H, gr + 3 * H,       \
                                     c + b * H, tc + b * H, h + b * H);                                       \
    }                                                                                                         \
}                                                                                                             \
ATTRS void nb_lstm_row_backward_##S##SUF(long H, const T *restrict dhr, const T *restrict dcnr, const T *restrict gr, \
                                         const T *restrict cpr, const T *restrict tcr, T *restrict dzi, T *restrict dzf, \
                                         T *restrict dzg, T *restrict dzo, T *restrict dcpr) {               \
    for (long j = 0; j < H; j++) {                                                                            \
        T i = gr[j], f = gr[H + j], g = gr[2 * H + j], o = gr[3 * H + j], t = tcr[j];                         \
        T dc = dcnr[j] + dhr[j] * o * ((T)1 - t * t);                                                         \
        dzi[j] = dc * g * i * ((T)1 - i);                                                                     \
        dzf[j] = dc * cpr[j] * f * ((T)1 - f);                                                                \
        dzg[j] = dc * i * ((T)1 - g * g);                                                                     \
        dzo[j] = dhr[j] * t * o * ((T)1 - o);                                                                 \
        dcpr[j] = dc * f;                                                                                     \
    }                                                                                                         \
}                                                                                                             \
ATTRS void nb_lstm_backward_##S##SUF(long B, long H, const T *dh, const T *dcn, const T *gates, const T *cp, \
                                     const T *tc, T *dz, T *dcp) {                                            \
    for (long b = 0; b < B; b++) {                                                                            \
        T *d = dz + b * 4 * H;                                                                                \
        nb_lstm_row_backward_##S##SUF(H, dh + b * H, dcn + b * H, gates + b * 4 * H, cp + b * H, tc + b * H, \
                                      d, d + H, d + 2 * H, d + 3 * H, dcp + b * H);                           \
    }                                                                                                         \
}

NB_LSTM_CELL(float, f32, _base, , nb_vexpf, nb_vtanhf)
NB_LSTM_CELL(double, f64, _base, , exp, tanh)
#if NB_X86
NB_LSTM_CELL(float, f32, _avx2, NB_ATTR_AVX2, nb_vexpf, nb_vtanhf)
#endif

void nb_lstm_forward_f32(long B, long H, const float *z, const float *cp, float *gates, float *c, float *tc, float *h) {
#if NB_X86
    if (nb_cpu_has_avx2_fma()) { nb_lstm_forward_f32_avx2(B, H, z, cp, gates, c, tc, h); return; }
#endif
    nb_lstm_forward_f32_base(B, H, z, cp, gates, c, tc, h);
}
void nb_lstm_backward_f32(long B, long H, const float *dh, const float *dcn, const float *gates, const float *cp, const float *tc, float *dz, float *dcp) {
#if NB_X86
    if (nb_cpu_has_avx2_fma()) { nb_lstm_backward_f32_avx2(B, H, dh, dcn, gates, cp, tc, dz, dcp); return; }
#endif
    nb_lstm_backward_f32_base(B, H, dh, dcn, gates, cp, tc, dz, dcp);
}
void nb_lstm_forward_f64(long B, long H, const double *z, const double *cp, double *gates, double *c, double *tc, double *h) {
    nb_lstm_forward_f64_base(B, H, z, cp, gates, c, tc, h);
}
void nb_lstm_backward_f64(long B, long H, const double *dh, const double *dcn, const double *gates, const double *cp, const double *tc, double *dz, double *dcp) {
    nb_lstm_backward_f64_base(B, H, dh, dcn, gates, cp, tc, dz, dcp);
}

// ---- Fused kernels of compiled programs ----
typedef void (*nb_fused_part_fn)(const nb_fused_kernel *, long, long, long, long, void *, pthread_mutex_t *);
typedef struct {
    const nb_fused_kernel *k;
    nb_fused_part_fn fn;
    size_t scratchBytes;
    long rows, n;
    int chunks;
    pthread_mutex_t lock;
} nb_fused_job;

// Scratch blocks, one per thread, kept between calls (a compiled program allocates nothing
// after its first call).
static void *nb_fused_scratch(size_t bytes) {
    static __thread void *buffer = NULL;
    static __thread size_t capacity = 0;
    if (capacity < bytes) {
        free(buffer);
        size_t rounded = (bytes + 63) / 64 * 64;
        buffer = aligned_alloc(64, rounded);
        capacity = buffer ? rounded : 0;
    }
    return buffer;
}

static void nb_fused_chunk(void *ctx, int c) {
    nb_fused_job *job = (nb_fused_job *)ctx;
    void *scratch = nb_fused_scratch(job->scratchBytes);
    if (job->rows >= job->chunks) {
        long r0 = job->rows * c / job->chunks, r1 = job->rows * (c + 1) / job->chunks;
        if (r0 < r1) job->fn(job->k, r0, r1, 0, job->n, scratch, &job->lock);
    } else {
        // One row split along its inner dimension, in whole blocks.
        long blocks = (job->n + NB_FUSED_BLOCK - 1) / NB_FUSED_BLOCK;
        long b0 = blocks * c / job->chunks, b1 = blocks * (c + 1) / job->chunks;
        long j0 = b0 * NB_FUSED_BLOCK, j1 = b1 * NB_FUSED_BLOCK < job->n ? b1 * NB_FUSED_BLOCK : job->n;
        for (long r = 0; r < job->rows; r++)
            if (j0 < j1) job->fn(job->k, r, r + 1, j0, j1, scratch, &job->lock);
    }
}

static void nb_fused_run(const nb_fused_kernel *k, nb_fused_part_fn fn, size_t elem) {
    for (int o = 0; o < k->nout; o++)
        if (k->out[o].accumulate) memset(k->out[o].base, 0, (size_t)k->out[o].count * elem);
    long rows = 1;
    for (int d = 0; d + 1 < k->ndim; d++) rows *= k->shape[d];
    long n = k->ndim > 0 ? k->shape[k->ndim - 1] : 1;
    if (rows == 0 || n == 0) return;
    size_t scratchBytes = (size_t)(k->nslots + 1) * NB_FUSED_BLOCK * elem;
    int threads = k->threads;
    int splitsInner = 0;
    for (int o = 0; o < k->nout; o++)
        if (k->out[o].accumulate && k->ndim > 0 && k->out[o].strides[k->ndim - 1] != 0) splitsInner = 1;
    if (rows * n < 65536 || splitsInner) threads = 1;
    if (threads <= 1) { fn(k, 0, rows, 0, n, nb_fused_scratch(scratchBytes), NULL); return; }
    nb_fused_job job = {k, fn, scratchBytes, rows, n, threads};
    pthread_mutex_init(&job.lock, NULL);
    nb_parallel_run(threads, nb_fused_chunk, &job);
    pthread_mutex_destroy(&job.lock);
}

#if NB_X86
#define NB_PICK_FUSED(S) (nb_cpu_has_avx512() ? (nb_fused_part_fn)fused_part_##S##_avx512 : (nb_fused_part_fn)NB_PICK(fused_part, S))
#else
#define NB_PICK_FUSED(S) ((nb_fused_part_fn)fused_part_##S##_base)
#endif
void nb_fused_run_f32(const nb_fused_kernel *k) { nb_fused_run(k, NB_PICK_FUSED(f32), sizeof(float)); }
void nb_fused_run_f64(const nb_fused_kernel *k) { nb_fused_run(k, NB_PICK_FUSED(f64), sizeof(double)); }
