/*
 * stress.c -- deterministic multi-threaded stress test for ebb.
 *
 * T threads (default 4) run for R rounds; every round starts fresh threads
 * (thread churn) that inherit the blocks the previous round left behind.
 * Each thread keeps a working set of blocks and, with its own PRNG:
 *   - allocates random sizes (mostly small, some up to 1 MiB) through malloc,
 *     calloc (checked zero), aligned_alloc, posix_memalign and memalign
 *     (alignment checked),
 *   - writes into every block a header and pattern derived from a random
 *     64-bit id, and verifies it before every free and realloc,
 *   - reallocs (the common prefix must survive),
 *   - hands blocks to other threads by swapping them into shared slots, and
 *     frees what it gets back, so many frees are cross-thread and many blocks
 *     outlive the thread that made them.
 * At the end everything is freed and checked, ebb_check() must return 0,
 * and no large block or small byte may remain in use.
 *
 * Under random OS faults (-DSTRESS_FAULTS, linked with the debug library,
 * run with EBB__FAULT_ONE_IN=N EBB__FAULT_SEED=S): about one in N of ebb's
 * requests to the OS for memory or a thread fails.  Then every failed call
 * must be NULL (posix_memalign: ENOMEM) with errno ENOMEM, a failed realloc
 * must leave its block as it was, ebb_check() must pass between rounds, and
 * once the faults are switched off every kind of allocation must succeed
 * and, everything freed, ebb_stats must show exactly what it showed at the
 * start: nothing leaked by a failure half-way through.
 *
 * Usage: stress [threads] [scale] [seed]
 *   scale also comes from EBB_STRESS_SCALE (default 1: some seconds on two
 *   cores); it multiplies the operations per thread and round.
 * Exit status 0 on success, 1 on any failure.
 *
 * Built two ways:
 *   cc -std=c11 -Iinclude tests/stress/stress.c build/libebb.a -lpthread
 *       uses the ebb_* functions;
 *   cc -std=c11 -DSTRESS_USE_LIBC tests/stress/stress.c -lpthread
 *       uses malloc/free & co., to be run under LD_PRELOAD=build/libebb.so;
 *       it then finds ebb_check/ebb_owns with dlsym (and fails if LD_PRELOAD
 *       names libebb but ebb is not there).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef STRESS_USE_LIBC
#include <dlfcn.h>
#include <malloc.h>
#define A_malloc malloc
#define A_calloc calloc
#define A_realloc realloc
#define A_free free
#define A_aligned_alloc aligned_alloc
#define A_posix_memalign posix_memalign
#define A_memalign memalign
#define A_usable_size(p) malloc_usable_size(p)
#define MODE "libc malloc"
#else
#include "ebb.h"
#define A_malloc ebb_malloc
#define A_calloc ebb_calloc
#define A_realloc ebb_realloc
#define A_free ebb_free
#define A_aligned_alloc ebb_aligned_alloc
#define A_posix_memalign ebb_posix_memalign
#define A_memalign ebb_memalign
#define A_usable_size(p) ebb_usable_size(p)
#define MODE "ebb_* API"
#endif

#define MAX_THREADS 64
#define WSET 512          /* blocks a thread keeps */
#define SLOTS_PER_THREAD 256 /* shared hand-off slots */
#define BASE_OPS 50000    /* per thread and round at scale 1 */
#define ROUNDS 20
#define KiB ((size_t)1024)
#define ARRAY_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */

static atomic_long failures;
static atomic_long stat_ops, stat_xfree, stat_bytes;
static atomic_long stat_enomem; /* allocations refused, under faults */

#ifdef STRESS_FAULTS
/* The debug library's fault injection (src/os/os.h). */
void ebb__os_faults_random(uint64_t seed, unsigned one_in);
unsigned long ebb__os_faults_injected(void);
#define FAULTS 1
#else
#define FAULTS 0
#endif

/* A refused allocation: a failure, but under injected faults a clean
 * ENOMEM is what must happen (and anything else still fails). */
static int refusal_ok(const char *what, size_t n, int err)
{
    if (FAULTS && err == ENOMEM) {
        atomic_fetch_add_explicit(&stat_enomem, 1, memory_order_relaxed);
        return 1;
    }
    (void)what;
    (void)n;
    return 0;
}

static void failf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* report the first few in full, then only count */
    if (atomic_fetch_add(&failures, 1) < 20)
        fprintf(stderr, "stress: FAIL: %s\n", buf);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    return mix64(*s);
}

/* ------------------------------------------------------------------------ */
/* Block contents.  Word 0: the block's id; word 1: size ^ f(id); then one  */
/* 64-bit pattern word per 8 bytes (f(id, index)), tail bytes from the same */
/* word.  Blocks above 8 KiB get the first 4 KiB, one word per 4 KiB page  */
/* and the last 64 bytes, which is enough to catch overlap or reuse.        */

static uint64_t pword(uint64_t id, size_t k)
{
    return id ^ (k * 0x9e3779b97f4a7c15ull) ^ (k << 17);
}

static uint64_t size_word(uint64_t id, size_t n)
{
    return (uint64_t)n ^ mix64(id);
}

/* Next word index to touch after k, for a block of n bytes; SIZE_MAX when done. */
static size_t next_word(size_t k, size_t n)
{
    size_t nw = n / 8;
    k++;
    if (n > 8 * KiB) {
        if (k * 8 >= 4 * KiB && k * 8 < n - 64) {
            size_t page_k = ((k * 8 + 4 * KiB - 1) / (4 * KiB)) * (4 * KiB) / 8;
            size_t tail_k = (n - 64) / 8;
            k = page_k < tail_k ? page_k : tail_k;
        }
    }
    return k < nw ? k : SIZE_MAX;
}

static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Write header and pattern; n is the requested size, at least 16. */
static void block_write(unsigned char *p, size_t n, uint64_t id)
{
    put64(p, id);
    put64(p + 8, size_word(id, n));
    for (size_t k = 2; k != SIZE_MAX && k < n / 8; k = next_word(k, n))
        put64(p + 8 * k, pword(id, k));
    for (size_t i = (n / 8) * 8; i < n; i++)
        if (i >= 16)
            p[i] = (unsigned char)(pword(id, i / 8) >> (8 * (i % 8)));
}

/* Check the pattern of the first `upto` bytes of a block written for size n. */
static int pattern_ok(const unsigned char *p, size_t n, size_t upto, uint64_t id)
{
    for (size_t k = 2; k != SIZE_MAX && (k + 1) * 8 <= upto; k = next_word(k, n))
        if (get64(p + 8 * k) != pword(id, k))
            return 0;
    for (size_t i = (n / 8) * 8; i < upto; i++)
        if (i >= 16 && p[i] != (unsigned char)(pword(id, i / 8) >> (8 * (i % 8))))
            return 0;
    return 1;
}

/* Verify a whole block; returns its size, or SIZE_MAX (and reports) if bad. */
static size_t block_verify(const unsigned char *p, const char *where)
{
    uint64_t id = get64(p);
    uint64_t sw = get64(p + 8);
    size_t n = (size_t)(sw ^ mix64(id));
    if (n > 2 * 1024 * KiB) {
        failf("%s: block %p has a corrupted header (id %#" PRIx64 ")", where, (void *)p, id);
        return SIZE_MAX;
    }
    if (!pattern_ok(p, n, n, id)) {
        failf("%s: block %p (%zu bytes, id %#" PRIx64 ") pattern corrupted", where, (void *)p,
              n, id);
        return SIZE_MAX;
    }
    size_t u = A_usable_size((void *)p);
    if (u < n || u < 16) {
        failf("%s: block %p: usable size %zu < %zu", where, (void *)p, u, n);
        return SIZE_MAX;
    }
    return n;
}

static void block_free(unsigned char *p, const char *where)
{
    if (!p)
        return;
    if (block_verify(p, where) == SIZE_MAX)
        return; /* leak it rather than free a corrupted block */
    A_free(p);
}

/* ------------------------------------------------------------------------ */

static size_t rand_size(uint64_t *s)
{
    uint64_t r = rnd(s);
    unsigned pick = (unsigned)(r % 1000);
    r >>= 10;
    /* at least 16: the header must lie within the requested size, the only
     * part realloc has to preserve */
    if (pick < 700)
        return 16 + (size_t)(r % 241);       /* 16..256 */
    if (pick < 900)
        return 257 + (size_t)(r % 3840);     /* ..4 KiB */
    if (pick < 985)
        return 4097 + (size_t)(r % (124 * KiB)); /* ..128 KiB */
    return 128 * KiB + (size_t)(r % (896 * KiB)); /* ..1 MiB: large */
}

static unsigned char *alloc_block(uint64_t *s, size_t n, uint64_t id)
{
    uint64_t r = rnd(s);
    unsigned kind = (unsigned)(r % 100);
    size_t align = (size_t)16 << ((r >> 8) % 13); /* 16 .. 64 KiB */
    unsigned char *p = NULL;
    const char *what = "malloc";
    if (kind < 80) {
        p = A_malloc(n);
    } else if (kind < 88) {
        what = "calloc";
        p = A_calloc(1, n);
        if (p) {
            size_t z = n < 8 * KiB ? n : 8 * KiB;
            for (size_t i = 0; i < z; i++)
                if (p[i]) {
                    failf("calloc(%zu) = %p: byte %zu is %#x", n, (void *)p, i, p[i]);
                    break;
                }
        }
    } else if (kind < 93) {
        what = "aligned_alloc";
        p = A_aligned_alloc(align, n);
    } else if (kind < 97) {
        void *q = NULL;
        what = "posix_memalign";
        int rc = A_posix_memalign(&q, align, n);
        p = rc == 0 ? q : NULL;
        if (rc != 0)
            errno = rc; /* it returns the error, errno is not its channel */
    } else {
        what = "memalign";
        p = A_memalign(align, n);
    }
    if (!p) {
        int err = errno;
        if (!refusal_ok(what, n, err))
            failf("%s(%zu) failed (errno %d)", what, n, err);
        return NULL;
    }
    if (kind >= 88 && ((uintptr_t)p & (align - 1))) {
        failf("%s(%zu, align %zu) = %p misaligned", what, n, align, (void *)p);
    }
    if ((uintptr_t)p & 15)
        failf("%s(%zu) = %p not 16-aligned", what, n, (void *)p);
    block_write(p, n, id);
    atomic_fetch_add_explicit(&stat_bytes, (long)n, memory_order_relaxed);
    return p;
}

/* ------------------------------------------------------------------------ */

struct config {
    int threads;
    long scale;
    uint64_t seed;
};
static struct config cfg;

/* Hand-off slots shared by all threads; they survive the threads. */
static _Atomic(unsigned char *) shared[MAX_THREADS * SLOTS_PER_THREAD];
static size_t nshared;

/* What a thread leaves for its successor of the next round. */
static unsigned char *orphans[MAX_THREADS][WSET];

struct targ {
    int index;
    int round;
};

static void *thread_main(void *argp)
{
    struct targ *a = argp;
    uint64_t s = mix64(cfg.seed ^ mix64((uint64_t)a->round * 1000003u + (uint64_t)a->index));
    unsigned char **ws = orphans[a->index]; /* adopt the predecessor's blocks */
    long ops = BASE_OPS * cfg.scale;
    long xfree = 0;

    for (long op = 0; op < ops; op++) {
        uint64_t r = rnd(&s);
        size_t j = (size_t)(r % WSET);
        unsigned action = (unsigned)((r >> 16) % 16);
        unsigned char *p = ws[j];
        if (!p) {
            size_t n = rand_size(&s);
            ws[j] = alloc_block(&s, n, rnd(&s) | 1);
            continue;
        }
        if (action < 3) {
            /* hand it over: swap into a random shared slot */
            size_t k = (size_t)(rnd(&s) % nshared);
            unsigned char *got = atomic_exchange(&shared[k], p);
            ws[j] = NULL;
            if (got) {
                if (action == 0) {
                    ws[j] = got; /* adopt it */
                    if (block_verify(got, "adopted") == SIZE_MAX)
                        ws[j] = NULL;
                } else {
                    block_free(got, "cross-thread free");
                    xfree++;
                }
            }
        } else if (action < 5) {
            /* realloc: the prefix survives */
            size_t n = block_verify(p, "before realloc");
            if (n == SIZE_MAX) {
                ws[j] = NULL;
                continue;
            }
            uint64_t id = get64(p);
            size_t m = (r >> 24) % 4 == 0 ? rand_size(&s) : n + (size_t)((r >> 28) % 200) - 100;
            if (m > 2 * 1024 * KiB || m < 16)
                m = 16 + (size_t)(r >> 40) % 100;
            uintptr_t old = (uintptr_t)p; /* for messages only */
            unsigned char *q = A_realloc(p, m);
            if (!q) {
                int err = errno;
                if (!refusal_ok("realloc", m, err))
                    failf("realloc(%p, %zu -> %zu) failed (errno %d)", (void *)p, n, m, err);
                else if (block_verify(p, "after a refused realloc") == SIZE_MAX)
                    ws[j] = NULL;
                continue; /* p is still valid */
            }
            size_t keep = n < m ? n : m;
            if (get64(q) != id || !pattern_ok(q, n, keep, id))
                failf("realloc(%#" PRIxPTR " -> %p, %zu -> %zu) lost the contents", old,
                      (void *)q, n, m);
            block_write(q, m, id);
            ws[j] = q;
        } else {
            block_free(p, "free");
            ws[j] = NULL;
        }
    }
    /* Leave half of the working set to the next round's thread, free the rest. */
    for (size_t j = 0; j < WSET; j++)
        if (ws[j] && (rnd(&s) & 1)) {
            block_free(ws[j], "thread exit");
            ws[j] = NULL;
        }
    atomic_fetch_add(&stat_ops, ops);
    atomic_fetch_add(&stat_xfree, xfree);
    return NULL;
}

/* ------------------------------------------------------------------------ */

#ifdef STRESS_USE_LIBC
static int (*p_ebb_check)(void);
static int (*p_ebb_owns)(const void *);

static int find_ebb(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "ebb_check");
    memcpy(&p_ebb_check, &sym, sizeof sym);
    sym = dlsym(RTLD_DEFAULT, "ebb_owns");
    memcpy(&p_ebb_owns, &sym, sizeof sym);
    const char *pre = getenv("LD_PRELOAD");
    if (!p_ebb_check || !p_ebb_owns) {
        if (pre && strstr(pre, "libebb")) {
            fprintf(stderr, "stress: LD_PRELOAD=%s but ebb_check/ebb_owns not found\n", pre);
            return -1;
        }
        printf("stress: ebb not loaded; running on the C library's malloc\n");
        return 0;
    }
    void *p = malloc(100);
    int owned = p_ebb_owns(p);
    free(p);
    if (!owned) {
        fprintf(stderr, "stress: ebb is loaded but malloc'd memory is not ebb's\n");
        return -1;
    }
    printf("stress: running on ebb through malloc (LD_PRELOAD)\n");
    return 0;
}
#endif

static int heap_check(const char *when);

#ifdef STRESS_FAULTS
/* The faults stop: every kind of request succeeds again, at once. */
static void after_the_faults(void)
{
    unsigned long injected = ebb__os_faults_injected();
    ebb__os_faults_random(0, 0);
    printf("stress: %lu OS requests failed on purpose, %ld allocations refused with ENOMEM\n",
           injected, (long)atomic_load(&stat_enomem));
    if (injected == 0 || atomic_load(&stat_enomem) == 0)
        failf("no fault was injected or none reached the program: set EBB__FAULT_ONE_IN");
    heap_check("after the faults");
    static const size_t sizes[] = { 16, 100, 1000, 5000, 30000, 100000, 300000, 2000000 };
    void *p[ARRAY_COUNT(sizes) * 3];
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_COUNT(sizes); i++) {
        p[k++] = A_malloc(sizes[i]);
        p[k++] = A_calloc(1, sizes[i]);
        p[k++] = A_aligned_alloc(4096, sizes[i]);
    }
    for (size_t i = 0; i < k; i++) {
        if (p[i] == NULL)
            failf("allocation %zu failed once the faults stopped (errno %d)", i, errno);
        A_free(p[i]);
    }
}
#endif

static int heap_check(const char *when)
{
#ifdef STRESS_USE_LIBC
    if (!p_ebb_check)
        return 0;
    int faults = p_ebb_check();
#else
    int faults = ebb_check();
#endif
    if (faults)
        failf("ebb_check() = %d %s", faults, when);
    return faults;
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "stress: bad %s '%s' (want %ld..%ld)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    cfg.threads = 4;
    cfg.scale = 1;
    cfg.seed = 0x5eed;
    const char *env = getenv("EBB_STRESS_SCALE");
    if (env && *env)
        cfg.scale = parse_long(env, "EBB_STRESS_SCALE", 1, 100000);
    if (argc > 1)
        cfg.threads = (int)parse_long(argv[1], "thread count", 1, MAX_THREADS);
    if (argc > 2)
        cfg.scale = parse_long(argv[2], "scale", 1, 100000);
    if (argc > 3)
        cfg.seed = (uint64_t)parse_long(argv[3], "seed", 0, LONG_MAX);
    nshared = (size_t)cfg.threads * SLOTS_PER_THREAD;

#ifdef STRESS_USE_LIBC
    if (find_ebb() != 0)
        return 1;
#endif
    printf("stress: %s, %d threads, %d rounds, %ld ops per thread and round, seed %" PRIu64
           "\n",
           MODE, cfg.threads, ROUNDS, (long)BASE_OPS * cfg.scale, cfg.seed);
    fflush(stdout);

#ifndef STRESS_USE_LIBC
    /* What the program holds before it starts (stdio's buffer is in it). */
    ebb_collect(1);
    ebb_stats_t st0;
    ebb_stats(&st0);
#endif
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t tid[MAX_THREADS];
    struct targ args[MAX_THREADS];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < cfg.threads; i++) {
            args[i].index = i;
            args[i].round = round;
            int rc = pthread_create(&tid[i], NULL, thread_main, &args[i]);
            if (rc) {
                fprintf(stderr, "stress: pthread_create: %s\n", strerror(rc));
                return 1;
            }
        }
        for (int i = 0; i < cfg.threads; i++)
            pthread_join(tid[i], NULL);
        /* no thread is running: the heap must be consistent */
        heap_check("between rounds");
    }

    /* Free everything that is left: orphans and shared slots. */
    long left = 0;
    for (int i = 0; i < cfg.threads; i++)
        for (size_t j = 0; j < WSET; j++)
            if (orphans[i][j]) {
                block_free(orphans[i][j], "final (orphan)");
                orphans[i][j] = NULL;
                left++;
            }
    for (size_t k = 0; k < nshared; k++) {
        unsigned char *p = atomic_exchange(&shared[k], NULL);
        if (p) {
            block_free(p, "final (shared)");
            left++;
        }
    }
    heap_check("after freeing everything");
    clock_gettime(CLOCK_MONOTONIC, &t1);

#ifndef STRESS_USE_LIBC
#ifdef STRESS_FAULTS
    after_the_faults();
#endif
    ebb_collect(1);
    heap_check("after ebb_collect(1)");
    ebb_stats_t st;
    ebb_stats(&st);
    size_t small_live = st.small_used - st.small_cached;
    size_t small_live0 = st0.small_used - st0.small_cached;
    printf("stress: end: mapped %zu, peak %zu, small_used %zu, small_cached %zu, "
           "large_blocks %zu, threads %zu, errors %zu, foreign_frees %zu\n",
           st.mapped, st.peak_mapped, st.small_used, st.small_cached, st.large_blocks,
           st.threads, st.errors, st.foreign_frees);
    /* The threads' TLS vectors that glibc keeps (below) are allocations
     * like any other, and the profiler may have sampled one or two: a
     * sampled block counts as a large one (seen once in a 32-bit run). */
    size_t sampled_slack = ebb_sample_rate() ? 4 : 0;
    if (st.large_blocks > st0.large_blocks + sampled_slack)
        failf("%zu large blocks still live after everything was freed (%zu at the start)",
              st.large_blocks, st0.large_blocks);
    /* glibc keeps a TLS vector (a few hundred bytes) per cached thread
     * stack, and this program's malloc is ebb */
    if (small_live > small_live0 + (FAULTS ? 4 : 64) * KiB)
        failf("%zu bytes of small blocks still in use after everything was freed "
              "(small_used %zu - small_cached %zu; %zu at the start)", small_live,
              st.small_used, st.small_cached, small_live0);
    printf("stress: small blocks in use: %zu bytes at the start, %zu at the end\n", small_live0,
           small_live);
    if (st.errors != 0)
        failf("ebb detected %zu errors (misuse) in a correct program", st.errors);
    size_t sum = st.mapped_meta + st.mapped_pools + st.mapped_free_slots + st.mapped_large +
                 st.mapped_large_cached;
    if (sum != st.mapped)
        failf("mapped %zu != sum of its categories %zu", st.mapped, sum);
#endif

    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("stress: %ld ops, %ld cross-thread frees, %.1f MiB allocated, %ld blocks left at "
           "the end, %.2f s\n",
           (long)atomic_load(&stat_ops), (long)atomic_load(&stat_xfree),
           (double)atomic_load(&stat_bytes) / (1024.0 * 1024.0), left, secs);
    long f = atomic_load(&failures);
    if (f) {
        fprintf(stderr, "stress: %ld failures\n", f);
        return 1;
    }
    printf("stress: OK\n");
    return 0;
}
