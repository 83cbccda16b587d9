// Tensor buffers. Freed buffers are kept in a per-thread cache by size class (four classes per
// power of two, from 512 bytes to 64 MiB) and handed out again last-in first-out, so a loop's
// intermediate tensors reuse memory that is still in cache and still mapped instead of going
// through malloc (and, for large buffers, mmap and page faults) on every step. A thread keeps at
// most NB_POOL_PER_CLASS buffers per class and NB_POOL_MAX_BYTES in all; the rest are freed.
// Buffers are 64-byte aligned.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "nabla_kernels.h"
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdlib.h>
#include <time.h>

#define NB_POOL_MIN_SHIFT 9
#define NB_POOL_MAX_SHIFT 26
#define NB_POOL_CLASSES ((NB_POOL_MAX_SHIFT - NB_POOL_MIN_SHIFT + 1) * 4)
#define NB_POOL_PER_CLASS 8
#define NB_POOL_MAX_BYTES ((size_t)256 << 20)

typedef struct {
    void *slots[NB_POOL_CLASSES][NB_POOL_PER_CLASS];
    int counts[NB_POOL_CLASSES];
    size_t bytes;
} nb_pool;

static pthread_key_t nb_pool_key;
static pthread_once_t nb_pool_once = PTHREAD_ONCE_INIT;
static __thread nb_pool *nb_thread_pool;
static __thread int nb_thread_exiting;  // set once the cache is gone: no new one is made

static void nb_pool_destroy(void *p) {
    nb_pool *pool = p;
    nb_thread_exiting = 1;
    nb_thread_pool = NULL;
    for (int c = 0; c < NB_POOL_CLASSES; c++)
        for (int i = 0; i < pool->counts[c]; i++) free(pool->slots[c][i]);
    free(pool);
}

static void nb_pool_make_key(void) { pthread_key_create(&nb_pool_key, nb_pool_destroy); }

static nb_pool *nb_pool_get(void) {
    if (nb_thread_pool) return nb_thread_pool;
    if (nb_thread_exiting) return NULL;
    pthread_once(&nb_pool_once, nb_pool_make_key);
    nb_pool *pool = calloc(1, sizeof(nb_pool));
    if (!pool) return NULL;
    pthread_setspecific(nb_pool_key, pool);  // frees the cache when the thread ends
    nb_thread_pool = pool;
    return pool;
}

// The class of a request of `bytes` and the size of that class; -1 when it is not pooled.
static int nb_pool_class(size_t bytes, size_t *size) {
    if (bytes <= ((size_t)1 << NB_POOL_MIN_SHIFT) / 2 || bytes > ((size_t)1 << NB_POOL_MAX_SHIFT)) return -1;
    if (bytes <= ((size_t)1 << NB_POOL_MIN_SHIFT)) { *size = (size_t)1 << NB_POOL_MIN_SHIFT; return 0; }
    int p = 63 - __builtin_clzll((unsigned long long)(bytes - 1));  // 2^p < bytes <= 2^(p+1)
    size_t quarter = (size_t)1 << (p - 2);                           // classes 2^p + k 2^(p-2), k = 1...4
    size_t k = (bytes - ((size_t)1 << p) + quarter - 1) / quarter;
    *size = ((size_t)1 << p) + k * quarter;
    int c = (p - NB_POOL_MIN_SHIFT) * 4 + (int)k;
    return c < NB_POOL_CLASSES ? c : -1;
}

void *nb_buffer_alloc(size_t bytes) {
    size_t size = bytes;
    int c = nb_pool_class(bytes, &size);
    if (c >= 0) {
        nb_pool *pool = nb_pool_get();
        if (pool && pool->counts[c] > 0) {
            pool->bytes -= size;
            return pool->slots[c][--pool->counts[c]];
        }
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, size < 64 ? 64 : size) != 0) return NULL;
    return p;
}

void nb_buffer_free(void *p, size_t bytes) {
    if (!p) return;
    size_t size = bytes;
    int c = nb_pool_class(bytes, &size);
    if (c >= 0) {
        nb_pool *pool = nb_pool_get();
        if (pool && pool->counts[c] < NB_POOL_PER_CLASS && pool->bytes + size <= NB_POOL_MAX_BYTES) {
            pool->slots[c][pool->counts[c]++] = p;
            pool->bytes += size;
            return;
        }
    }
    free(p);
}

// ---- Worker threads for element-wise chunks ----
// nb_parallel_run runs fn(ctx, 0..chunks-1): the caller takes chunks too, and up to
// NB_MAX_WORKERS helper threads (started on first use; between jobs they poll, then sleep) take
// the rest from the job's counter. A worker joins a job only while it is posted (under the lock,
// counting itself in), and the caller withdraws it only once no worker is in it, so a late waker
// never touches a finished job. One job at a time: a caller that finds the workers busy runs its
// chunks itself.
#define NB_MAX_WORKERS 7
typedef struct { void (*fn)(void *, int); void *ctx; int chunks, next, active; } nb_par_job;
static pthread_mutex_t nb_par_busy = PTHREAD_MUTEX_INITIALIZER, nb_par_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nb_par_wake = PTHREAD_COND_INITIALIZER, nb_par_idle = PTHREAD_COND_INITIALIZER;
static nb_par_job *nb_par_current;
static unsigned long nb_par_generation;
static int nb_par_workers;

static void nb_par_take(nb_par_job *job) {
    for (;;) {
        int i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (i >= job->chunks) return;
        job->fn(job->ctx, i);
    }
}

// How long a worker polls for the next job before it sleeps, and the caller for the workers to
// finish before it sleeps. Sleeping costs 17-47 µs a job on a 2-core virtual machine (a woken
// worker starts 7-25 µs after the post, and the caller must be woken too), about what a split
// product or element-wise chunk of a training step takes.
#define NB_PAR_SPIN_NS 200000L

static long nb_par_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static inline void nb_par_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// CPUs this process may run on (its affinity mask, where there is one).
static int nb_par_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

// Polling pays only while every thread has a CPU of its own; with more threads than CPUs a
// polling worker would take the CPU from the thread it waits for. Set when workers are started.
static int nb_par_polls;

// One step of a poll begun at `start`: pauses, and says whether to go on (NB_PAR_SPIN_NS not yet
// spent; the clock is read every 64 steps).
static int nb_par_poll_step(long start, int *step) {
    nb_par_pause();
    return ++*step % 64 != 0 || nb_par_now_ns() - start <= NB_PAR_SPIN_NS;
}

static void *nb_par_worker(void *unused) {
    (void)unused;
    unsigned long seen = 0;
    pthread_mutex_lock(&nb_par_lock);
    for (;;) {
        if (nb_par_generation == seen && __atomic_load_n(&nb_par_polls, __ATOMIC_RELAXED)) {
            pthread_mutex_unlock(&nb_par_lock);
            long start = nb_par_now_ns();
            int step = 0;
            while (__atomic_load_n(&nb_par_generation, __ATOMIC_ACQUIRE) == seen && nb_par_poll_step(start, &step)) {}
            pthread_mutex_lock(&nb_par_lock);
        }
        while (nb_par_generation == seen) pthread_cond_wait(&nb_par_wake, &nb_par_lock);
        seen = nb_par_generation;
        nb_par_job *job = nb_par_current;
        if (!job) continue;
        __atomic_add_fetch(&job->active, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&nb_par_lock);
        nb_par_take(job);
        pthread_mutex_lock(&nb_par_lock);
        if (__atomic_sub_fetch(&job->active, 1, __ATOMIC_RELEASE) == 0) pthread_cond_broadcast(&nb_par_idle);
    }
    return NULL;
}

void nb_parallel_run(int chunks, void (*fn)(void *, int), void *ctx) {
    if (chunks <= 1 || pthread_mutex_trylock(&nb_par_busy) != 0) {
        for (int i = 0; i < chunks; i++) fn(ctx, i);
        return;
    }
    nb_par_job job = {fn, ctx, chunks, 0, 0};
    pthread_mutex_lock(&nb_par_lock);
    while (nb_par_workers < chunks - 1 && nb_par_workers < NB_MAX_WORKERS) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &attr, nb_par_worker, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        nb_par_workers++;
        __atomic_store_n(&nb_par_polls, nb_par_workers + 1 <= nb_par_cpus(), __ATOMIC_RELAXED);
    }
    nb_par_current = &job;
    __atomic_store_n(&nb_par_generation, nb_par_generation + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&nb_par_wake);
    pthread_mutex_unlock(&nb_par_lock);
    nb_par_take(&job);
    // The chunks are all taken; wait for the workers still in one (polling first, as above).
    if (__atomic_load_n(&nb_par_polls, __ATOMIC_RELAXED)) {
        long start = nb_par_now_ns();
        int step = 0;
        while (__atomic_load_n(&job.active, __ATOMIC_ACQUIRE) > 0 && nb_par_poll_step(start, &step)) {}
    }
    pthread_mutex_lock(&nb_par_lock);
    while (job.active > 0) pthread_cond_wait(&nb_par_idle, &nb_par_lock);
    nb_par_current = NULL;
    pthread_mutex_unlock(&nb_par_lock);
    pthread_mutex_unlock(&nb_par_busy);
}
