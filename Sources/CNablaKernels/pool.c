// Tensor buffers. Freed buffers are kept in a per-thread cache by size class (four classes per
// power of two, from 512 bytes to 64 MiB) and handed out again last-in first-out, so a loop's
// intermediate tensors reuse memory that is still in cache and still mapped instead of going
// through malloc (and, for large buffers, mmap and page faults) on every step. A thread keeps at
// most NB_POOL_PER_CLASS buffers per class and NB_POOL_MAX_BYTES in all; the rest are freed.
// Buffers are 64-byte aligned.
#include "nabla_kernels.h"
#include <pthread.h>
#include <stdlib.h>

#define NB_POOL_MIN_SHIFT 9
#define NB_POOL_MAX_SHIFT 26
#define NB_POOL_CLASSES ((NB_POOL_MAX_SHIFT - NB_POOL_MIN_SHIFT + 1) * 4)
#define NB_POOL_PER_CLASS 8
#define NB_POOL_MAX_BYTES ((size_t)64 << 20)

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
