/*
 * test_rss.c -- the extended statistics: ebb_rss takes the process's RSS
 * apart into parts that add up to what smaps says, the peak of committed
 * carries the time it was reached, the per-class detail adds up to the
 * totals, and the sized structs keep old callers' memory intact.
 *
 * The workload holds EBB_TEST_MB MiB (default 64) of written small blocks
 * of many classes, frees a third of them (free space in pools, this
 * thread's cache full), keeps a second thread alive with blocks in its own
 * cache, holds written large blocks, one of them written only in its first
 * half (committed, half not resident), and a freed large block (cached on
 * 64-bit).
 */
#define _GNU_SOURCE
#include "conformance.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static size_t test_mb(void)
{
    const char *e = getenv("EBB_TEST_MB");
    long v = e ? atol(e) : 0;
    return v > 0 ? (size_t)v : 64;
}

/* ------------------------------------------------------------ workload */

typedef struct {
    void **small;
    size_t nsmall;
    void *large[6];
    void *half;               /* 8 MiB, only its first half written */
    size_t half_size;
    pthread_t other;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int other_ready, other_go;
} workload_t;

/* Another thread with blocks in its cache: it frees what it allocated and
 * waits, its cache as it left it. */
static void *other_thread(void *arg)
{
    workload_t *w = arg;
    enum { N = 200 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        size_t n = 48 + (size_t)(i % 4) * 16;
        v[i] = ebb_malloc(n);
        memset(v[i], 1, n);
    }
    for (int i = 0; i < N; i++)
        ebb_free(v[i]);
    ebb_free(ebb_malloc(1)); /* a slow path publishes the stacks' depths */
    pthread_mutex_lock(&w->lock);
    w->other_ready = 1;
    pthread_cond_broadcast(&w->cond);
    while (!w->other_go)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void workload_start(workload_t *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    size_t budget = test_mb() * MiB, used = 0;
    w->nsmall = budget / 256;
    w->small = ebb_malloc(w->nsmall * sizeof *w->small);
    assert_non_null(w->small);
    size_t i = 0;
    for (; i < w->nsmall && used < budget / 2; i++) {
        size_t n = 16 + (i * 7919 % 97) * 16 + (i % 13 == 0 ? 3000 : 0);
        w->small[i] = ebb_malloc(n);
        assert_non_null(w->small[i]);
        memset(w->small[i], (int)i, n);
        used += n;
    }
    w->nsmall = i;
    for (i = 0; i < w->nsmall; i += 3) {
        ebb_free(w->small[i]);
        w->small[i] = NULL;
    }
    size_t large = budget / 2 / 6;
    for (i = 0; i < 6; i++) {
        w->large[i] = ebb_malloc(large + i * 4096);
        assert_non_null(w->large[i]);
        memset(w->large[i], 2, large + i * 4096);
    }
    w->half_size = 8 * MiB;
    w->half = ebb_malloc(w->half_size);
    assert_non_null(w->half);
    memset(w->half, 3, w->half_size / 2);
    void *gone = ebb_malloc(2 * MiB);
    assert_non_null(gone);
    memset(gone, 4, 2 * MiB);
    ebb_free(gone); /* cached where the large cache is on */
    assert_int_equal(pthread_create(&w->other, NULL, other_thread, w), 0);
    pthread_mutex_lock(&w->lock);
    while (!w->other_ready)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

static void workload_end(workload_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->other_go = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->other, NULL);
    for (size_t i = 0; i < w->nsmall; i++)
        ebb_free(w->small[i]);
    ebb_free(w->small);
    for (int i = 0; i < 6; i++)
        ebb_free(w->large[i]);
    ebb_free(w->half);
    ebb_collect(1);
}

static ebb_rss_t read_rss(void)
{
    ebb_rss_t r;
    assert_int_equal(ebb_rss(&r, sizeof r), 0);
    return r;
}

static ebb_stats_ex_t stats_ex(void)
{
    ebb_stats_ex_t x;
    assert_int_equal(ebb_stats_ex(&x, sizeof x), sizeof x);
    return x;
}

static double percent(int64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void print_rss(const ebb_rss_t *r)
{
    print_message("rss %llu = ebb %llu + other %llu + unaccounted %lld (%.3f%%)\n"
                  "  ebb: live small %llu, live large %llu, thread caches %llu, pool free %llu, "
                  "empty pools %llu, free slots %llu, large cached %llu, metadata %llu\n"
                  "  committed %llu, committed not resident %llu, resident not committed %llu\n"
                  "  other: files %llu, stacks %llu, brk heap %llu, anonymous %llu, kernel %llu\n",
                  (unsigned long long)r->rss, (unsigned long long)r->ebb,
                  (unsigned long long)r->other, (long long)r->unaccounted,
                  percent(r->unaccounted, r->rss), (unsigned long long)r->live_small,
                  (unsigned long long)r->live_large, (unsigned long long)r->thread_caches,
                  (unsigned long long)r->pool_free, (unsigned long long)r->pools_empty,
                  (unsigned long long)r->free_slots, (unsigned long long)r->large_cached,
                  (unsigned long long)r->metadata, (unsigned long long)r->committed,
                  (unsigned long long)r->committed_not_resident,
                  (unsigned long long)r->resident_not_committed, (unsigned long long)r->files,
                  (unsigned long long)r->stacks, (unsigned long long)r->brk_heap,
                  (unsigned long long)r->anonymous, (unsigned long long)r->kernel);
}

/* ------------------------------------------------------------------ rss */

static void test_rss_adds_up(void **state)
{
    (void)state;
    workload_t w;
    workload_start(&w);
    ebb_stats_ex_t x = stats_ex();
    ebb_rss_t r = read_rss();
    workload_end(&w); /* before any check can leave the test */
    print_rss(&r);

    uint64_t ebb = r.live_small + r.live_large + r.thread_caches + r.pool_free + r.pools_empty +
                   r.free_slots + r.large_cached + r.metadata;
    EXPECT(r.ebb == ebb, "ebb %llu, its parts sum to %llu", (unsigned long long)r.ebb,
           (unsigned long long)ebb);
    uint64_t other = r.files + r.stacks + r.brk_heap + r.anonymous + r.kernel;
    EXPECT(r.other == other, "other %llu, its parts sum to %llu", (unsigned long long)r.other,
           (unsigned long long)other);
    EXPECT((int64_t)(r.rss - r.ebb - r.other) == r.unaccounted, "unaccounted is not the rest");
    /* The goal: the parts come within 2% of what smaps says. */
    EXPECT(r.unaccounted * 50 <= (int64_t)r.rss && -r.unaccounted * 50 <= (int64_t)r.rss,
           "parts miss smaps' RSS by %lld of %llu bytes", (long long)r.unaccounted,
           (unsigned long long)r.rss);
    /* The walk held every lock: ebb's resident bytes are its committed
     * ones, corrected page by page, exactly. */
    EXPECT(r.ebb == r.committed - r.committed_not_resident + r.resident_not_committed,
           "ebb %llu != committed %llu - %llu + %llu", (unsigned long long)r.ebb,
           (unsigned long long)r.committed, (unsigned long long)r.committed_not_resident,
           (unsigned long long)r.resident_not_committed);

    /* The workload's blocks were written whole, so the blocks out are
     * resident but for what the C library and cmocka (ebb is their malloc
     * here) got and never wrote, such as calloc's fresh zero pages: 290 KiB
     * of 6.7 MiB once in the EBB_DEBUG=2 build (EBB_TEST_MB=16), so half a
     * MiB and a thirty-second of what is out. */
    uint64_t out = r.live_small + r.thread_caches, slack = 512 * KiB + x.base.small_used / 32;
    EXPECT(out <= x.base.small_used && out + slack >= x.base.small_used,
           "live %llu + cached %llu resident, %zu out of pools", (unsigned long long)r.live_small,
           (unsigned long long)r.thread_caches, x.base.small_used);
    EXPECT(r.live_small <= x.small_live && r.live_small + slack >= x.small_live,
           "live small %llu resident, %zu live", (unsigned long long)r.live_small, x.small_live);
    EXPECT(r.thread_caches > 0, "no bytes in thread caches");
    EXPECT(r.pool_free > 0, "no free space in pools after freeing a third");
    EXPECT(r.metadata > 0 && r.files > 0 && r.stacks > 0, "metadata, files or stacks empty");
    /* The half-written block: half of it committed but not resident. */
    EXPECT(r.committed_not_resident >= w.half_size / 2,
           "committed not resident %llu, the half-written block alone has %zu",
           (unsigned long long)r.committed_not_resident, w.half_size / 2);
    EXPECT(r.live_large + w.half_size / 2 <= x.base.large_used && r.live_large > 0,
           "live large resident %llu, %zu live of which %zu never written",
           (unsigned long long)r.live_large, x.base.large_used, w.half_size / 2);
    EXPECT(r.ebb >= test_mb() * MiB / 2, "ebb holds %llu resident, the workload wrote %zu MiB",
           (unsigned long long)r.ebb, test_mb() / 2);
}

/* After a purge the freed memory leaves ebb's part at once. */
static void test_rss_follows_a_purge(void **state)
{
    (void)state;
    ebb_collect(1);
    ebb_rss_t r0 = read_rss();
    size_t n = 16 * MiB;
    char *p = ebb_malloc(n);
    assert_non_null(p);
    memset(p, 5, n);
    ebb_rss_t r1 = read_rss();
    EXPECT(r1.live_large >= r0.live_large + n, "live large %llu -> %llu after %zu written",
           (unsigned long long)r0.live_large, (unsigned long long)r1.live_large, n);
    EXPECT(r1.rss >= r0.rss + n - MiB, "rss %llu -> %llu", (unsigned long long)r0.rss,
           (unsigned long long)r1.rss);
    ebb_free(p);
    ebb_collect(1);
    ebb_rss_t r2 = read_rss();
    EXPECT(r2.live_large + r2.large_cached <= r0.live_large + r0.large_cached,
           "large bytes resident %llu after the purge, %llu before the block",
           (unsigned long long)(r2.live_large + r2.large_cached),
           (unsigned long long)(r0.live_large + r0.large_cached));
}

/* ------------------------------------------------------------ the peak */

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_peak_has_its_time(void **state)
{
    (void)state;
    ebb_stats_ex_t x0 = stats_ex();
    EXPECT(x0.peak_committed_wall_ns > 0 && x0.peak_committed_uptime_ns <= x0.uptime_ns,
           "peak at %llu ns (uptime %llu of %llu)", (unsigned long long)x0.peak_committed_wall_ns,
           (unsigned long long)x0.peak_committed_uptime_ns, (unsigned long long)x0.uptime_ns);
    /* Grow past the peak: it moves, and its time is now. */
    size_t n = x0.base.peak_committed - x0.base.committed + 32 * MiB;
    uint64_t before = wall_ns();
    char *p = ebb_malloc(n);
    assert_non_null(p);
    memset(p, 6, n);
    uint64_t after = wall_ns();
    ebb_stats_ex_t x1 = stats_ex();
    EXPECT(x1.base.peak_committed >= x0.base.committed + n &&
               x1.base.peak_committed > x0.base.peak_committed,
           "peak %zu -> %zu after %zu more on %zu", x0.base.peak_committed,
           x1.base.peak_committed, n, x0.base.committed);
    /* The wall time is derived from the monotonic clock: allow 5 ms. */
    uint64_t slack = 5000000;
    EXPECT(x1.peak_committed_wall_ns + slack >= before && x1.peak_committed_wall_ns <= after + slack,
           "peak at %llu, the growth between %llu and %llu",
           (unsigned long long)x1.peak_committed_wall_ns, (unsigned long long)before,
           (unsigned long long)after);
    EXPECT(x1.peak_committed_uptime_ns > x0.peak_committed_uptime_ns,
           "peak uptime %llu -> %llu", (unsigned long long)x0.peak_committed_uptime_ns,
           (unsigned long long)x1.peak_committed_uptime_ns);
    /* Shrink: the peak and its time stay. */
    ebb_free(p);
    ebb_collect(1);
    ebb_stats_ex_t x2 = stats_ex();
    EXPECT(x2.base.committed < x1.base.committed, "committed %zu -> %zu after the free",
           x1.base.committed, x2.base.committed);
    EXPECT(x2.base.peak_committed == x1.base.peak_committed &&
               x2.peak_committed_uptime_ns == x1.peak_committed_uptime_ns,
           "the peak moved when memory shrank: %zu at %llu -> %zu at %llu",
           x1.base.peak_committed, (unsigned long long)x1.peak_committed_uptime_ns,
           x2.base.peak_committed, (unsigned long long)x2.peak_committed_uptime_ns);
    uint64_t d = x2.peak_committed_wall_ns > x1.peak_committed_wall_ns
                     ? x2.peak_committed_wall_ns - x1.peak_committed_wall_ns
                     : x1.peak_committed_wall_ns - x2.peak_committed_wall_ns;
    EXPECT(d < slack, "the peak's wall time moved by %llu ns", (unsigned long long)d);
}

/* ----------------------------------------------------- per-class detail */

static void test_classes_add_up(void **state)
{
    (void)state;
    workload_t w;
    workload_start(&w);
    size_t n = ebb_class_stats_ex(NULL, 0, 0);
    ebb_class_ex_t c[256];
    ebb_class_stats_t old[256];
    size_t got = n <= 256 ? ebb_class_stats_ex(c, n, sizeof c[0]) : 0;
    size_t got_old = n <= 256 ? ebb_class_stats(old, n) : 0;
    ebb_stats_ex_t x = stats_ex();
    size_t large_bytes = x.base.large_used;
    workload_end(&w); /* before any check can leave the test */
    assert_true(n > 0 && n <= 256);
    assert_int_equal(got, n);
    assert_int_equal(got_old, n);
    size_t live = 0, cached = 0, pools = 0, empty = 0, pool_bytes = 0, free_bytes = 0;
    size_t committed = 0, empty_committed = 0, used = 0;
    for (size_t i = 0; i < n; i++) {
        EXPECT(c[i].used == c[i].live + c[i].cached + c[i].sampled,
               "class %zu: used %zu != live %zu + cached %zu + sampled %zu", c[i].size, c[i].used,
               c[i].live, c[i].cached, c[i].sampled);
        EXPECT(c[i].live_bytes == c[i].live * c[i].size, "class %zu: live bytes", c[i].size);
        EXPECT(c[i].size == old[i].size && c[i].used == old[i].used &&
                   c[i].pools == old[i].pools && c[i].pool_bytes == old[i].pool_bytes,
               "class %zu: the extended entry disagrees with ebb_class_stats", c[i].size);
        EXPECT(c[i].empty_committed <= c[i].committed && c[i].committed <= c[i].pool_bytes,
               "class %zu: committed %zu, of it empty %zu, pools span %zu", c[i].size,
               c[i].committed, c[i].empty_committed, c[i].pool_bytes);
        live += c[i].live_bytes;
        cached += c[i].cached * c[i].size;
        used += (c[i].used - c[i].sampled) * c[i].size;
        pools += c[i].pools;
        empty += c[i].pools_empty;
        pool_bytes += c[i].pool_bytes;
        free_bytes += c[i].free_bytes;
        committed += c[i].committed;
        empty_committed += c[i].empty_committed;
    }
    EXPECT(live == x.small_live, "classes' live bytes %zu, small live %zu", live, x.small_live);
    EXPECT(cached == x.base.small_cached, "classes' cached bytes %zu, small_cached %zu", cached,
           x.base.small_cached);
    EXPECT(used == x.base.small_used, "classes' bytes out %zu, small_used %zu", used,
           x.base.small_used);
    EXPECT(pools == x.base.pools && pools == x.pools_in_use + x.pools_empty,
           "classes' pools %zu, pools %zu (%zu in use + %zu empty)", pools, x.base.pools,
           x.pools_in_use, x.pools_empty);
    EXPECT(empty == x.pools_empty, "classes' empty pools %zu, %zu", empty, x.pools_empty);
    EXPECT(pool_bytes == x.base.mapped_pools, "classes' pool bytes %zu, mapped_pools %zu",
           pool_bytes, x.base.mapped_pools);
    EXPECT(free_bytes == x.pool_free && free_bytes > 0, "classes' free bytes %zu, pool_free %zu",
           free_bytes, x.pool_free);
    EXPECT(committed == x.pools_committed && empty_committed == x.pools_empty_committed,
           "classes' committed %zu (empty %zu), totals %zu (%zu)", committed, empty_committed,
           x.pools_committed, x.pools_empty_committed);
    EXPECT(x.small_live + x.base.small_cached == x.base.small_used, "small live + cached != used");
    /* Large: the live blocks and, where the cache is on, the freed one. */
    EXPECT(x.base.large_blocks >= 7 && x.base.large_used >= 8 * MiB, "large %zu blocks, %zu bytes",
           x.base.large_blocks, x.base.large_used);
    EXPECT((x.large_cached_blocks > 0) == (x.base.mapped_large_cached > 0),
           "%zu cached large blocks of %zu bytes", x.large_cached_blocks,
           x.base.mapped_large_cached);
    EXPECT(x.large_sampled == 0, "%zu sampled large blocks with sampling off", x.large_sampled);
    (void)large_bytes;
}

/* ------------------------------------------- sized structs and the ABI */

static void test_sizes_are_kept(void **state)
{
    (void)state;
    /* An older caller's struct: only its bytes are written. */
    unsigned char buf[sizeof(ebb_stats_ex_t) + 64];
    memset(buf, 0xab, sizeof buf);
    size_t small = sizeof(ebb_stats_t) + sizeof(uint64_t);
    assert_int_equal(ebb_stats_ex((ebb_stats_ex_t *)(void *)buf, small), small);
    for (size_t i = small; i < sizeof buf; i++)
        EXPECT(buf[i] == 0xab, "ebb_stats_ex wrote byte %zu of a %zu-byte struct", i, small);
    /* A newer caller's: what this library does not know reads 0. */
    memset(buf, 0xab, sizeof buf);
    assert_int_equal(ebb_stats_ex((ebb_stats_ex_t *)(void *)buf, sizeof buf), sizeof(ebb_stats_ex_t));
    for (size_t i = sizeof(ebb_stats_ex_t); i < sizeof buf; i++)
        EXPECT(buf[i] == 0, "byte %zu past this library's struct is %u", i, buf[i]);
    assert_int_equal(ebb_stats_ex((ebb_stats_ex_t *)(void *)buf, sizeof(ebb_stats_t) - 1), 0);
    assert_int_equal(ebb_stats_ex(NULL, sizeof(ebb_stats_ex_t)), 0);

    /* Classes at the caller's stride: an older entry of four fields. */
    size_t n = ebb_class_stats_ex(NULL, 0, 0);
    size_t stride = sizeof(ebb_class_stats_t) + 8;
    unsigned char cls[256 * (sizeof(ebb_class_stats_t) + 8)];
    memset(cls, 0xab, sizeof cls);
    assert_int_equal(ebb_class_stats_ex((ebb_class_ex_t *)(void *)cls, n, stride), n);
    for (size_t i = 0; i < n; i++) {
        ebb_class_stats_t e;
        memcpy(&e, cls + i * stride, sizeof e);
        EXPECT(e.size > 0 && e.size >= (i ? ((ebb_class_stats_t *)(void *)(cls + (i - 1) * stride))->size : 0),
               "class %zu at stride %zu: size %zu", i, stride, e.size);
    }
    for (size_t i = n * stride; i < sizeof cls; i++)
        EXPECT(cls[i] == 0xab, "ebb_class_stats_ex wrote past entry %zu", n);

    unsigned char rb[sizeof(ebb_rss_t) + 16];
    memset(rb, 0xab, sizeof rb);
    assert_int_equal(ebb_rss((ebb_rss_t *)(void *)rb, 16), 0);
    for (size_t i = 16; i < sizeof rb; i++)
        EXPECT(rb[i] == 0xab, "ebb_rss wrote byte %zu of a 16-byte struct", i);
    errno = 0;
    assert_int_equal(ebb_rss(NULL, sizeof(ebb_rss_t)), -1);
    assert_int_equal(errno, EINVAL);
}

API_TEST_MAIN("RSS reconciliation, peak time, class detail",
              T(test_rss_adds_up), T(test_rss_follows_a_purge), T(test_peak_has_its_time),
              T(test_classes_add_up), T(test_sizes_are_kept))
