/*
 * threadchurn -- many short-lived threads, each leaving a few blocks behind.
 *
 * Programs that start a thread per task (a request handler, a parallel
 * loop of a runtime without a pool, a helper spawned by a library) create
 * and end threads by the thousand.  Each thread does a little allocation
 * work of its own and dies, but some of what it allocated lives on: a
 * result, a cache entry, a log record, owned from then on by whoever
 * outlives it.  For an allocator this is the hard part of per-thread
 * state: every new thread needs a heap (or cache) quickly, every dying
 * thread's heap must be handed back or reused, and the pages it leaves
 * behind are pinned by a few live blocks whose eventual frees come from
 * another thread, long after their owner is gone.  An allocator that
 * abandons such pages for good, or makes each new thread start from
 * scratch, shows it here in time and in peak RSS.
 *
 * The main thread runs waves of K (4) worker threads, never more alive at
 * once.  A worker fills a private working set of 1024 blocks of 16-512
 * bytes (sizes shaped like an interpreter's small objects, about 80 KiB),
 * replaces random blocks of it 10000 times, then hands 8 of them to a
 * global FIFO of survivors (under a mutex) and frees the rest before it
 * exits.  While a
 * wave runs, the main thread frees the oldest survivors until about 2000
 * are left, so a survivor outlives some 250 threads; the rest are freed at
 * the end.  Every block is fully written when allocated and checked when
 * freed.
 *
 * The result depends only on the data: each worker draws from its own
 * generator, seeded by its index, and stores its hash in its own slot,
 * which the main thread mixes in index order.  Which survivors the main
 * thread frees early depends on how the workers of a wave interleave, so
 * the survivors enter the checksum through a sum, which does not depend on
 * the order.  The work is a number of waves, 1000 at scale 1 (4000
 * threads, 44 million blocks); each worker does the same fixed amount
 * whatever the scale, so a small scale means fewer threads.
 *
 * usage: threadchurn [scale]
 */
#include "common.h"

#include <pthread.h>

#define K 4u              /* workers in a wave, the most alive at a time  */
#define WORKING_SET 1024u /* blocks a worker keeps live                   */
#define OPS 10000u        /* replacements a worker makes in its set       */
#define HANDOFF 8u        /* blocks a worker leaves behind                */
#define KEEP 2000u        /* survivors the main thread keeps live         */
#define MAXBLK 512u
#define SURV_CAP 4096u    /* a power of two above KEEP + K * HANDOFF      */

struct worker {
    uint64_t index; /* the seed of its generator */
    uint64_t h;     /* its hash, read by main after the join */
};

/* The survivors: a FIFO ring, oldest at `tail`. */
static pthread_mutex_t surv_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *surv[SURV_CAP];
static size_t surv_head, surv_tail;

/* Sizes of 16-512 bytes, mostly small: the shape of py_size() without its
 * rare buffers of several KiB. */
static size_t small_size(rng_t *r)
{
    return banded_size(r, 70, 64, 93, 160, MAXBLK);
}

static unsigned char *make(rng_t *r)
{
    size_t n = small_size(r);
    return new_block(n, rng_next(r), n);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    rng_t r = rng_make(1000 + w->index);
    uint64_t h = mix64(0, w->index);
    unsigned char *set[WORKING_SET];

    for (unsigned i = 0; i < WORKING_SET; i++)
        set[i] = make(&r);
    for (unsigned i = 0; i < OPS; i++) {
        unsigned char **s = &set[rng_below(&r, WORKING_SET)];
        h = free_block(*s, MAXBLK, "threadchurn", h);
        *s = make(&r);
    }

    /* One survivor from each eighth of the set, so they are spread over
     * whatever pages the set occupies; then the rest dies with the thread. */
    unsigned pick[HANDOFF];
    for (unsigned k = 0; k < HANDOFF; k++)
        pick[k] = k * (WORKING_SET / HANDOFF) +
                  (unsigned)rng_below(&r, WORKING_SET / HANDOFF);
    pthread_mutex_lock(&surv_lock);
    for (unsigned k = 0; k < HANDOFF; k++) {
        surv[surv_head++ & (SURV_CAP - 1)] = set[pick[k]];
        set[pick[k]] = NULL;
    }
    pthread_mutex_unlock(&surv_lock);
    for (unsigned i = 0; i < WORKING_SET; i++)
        if (set[i])
            h = free_block(set[i], MAXBLK, "threadchurn", h);

    w->h = h;
    return NULL;
}

/* Check and free one survivor; its share of the order-free checksum. */
static uint64_t free_survivor(unsigned char *p)
{
    uint64_t v = check_block(p, MAXBLK, "threadchurn survivor");
    free(p);
    return mix64(0x5eed, v);
}

/* Free the oldest survivors until at most `keep` are left; how many it
 * freed.  The lock is not held across free(). */
static uint64_t trim_survivors(size_t keep, uint64_t *sum)
{
    uint64_t freed = 0;
    for (;;) {
        unsigned char *p = NULL;
        pthread_mutex_lock(&surv_lock);
        if (surv_head - surv_tail > keep)
            p = surv[surv_tail++ & (SURV_CAP - 1)];
        pthread_mutex_unlock(&surv_lock);
        if (!p)
            return freed;
        *sum += free_survivor(p);
        freed++;
    }
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t waves = scaled(scale, 1000, 2);
    uint64_t nthreads = waves * K;

    struct worker *w = xmalloc(nthreads * sizeof *w);
    uint64_t surv_sum = 0, surv_freed = 0;

    for (uint64_t wave = 0; wave < waves; wave++) {
        pthread_t t[K];
        for (unsigned k = 0; k < K; k++) {
            struct worker *me = &w[wave * K + k];
            me->index = wave * K + k;
            me->h = 0;
            if (pthread_create(&t[k], NULL, work, me))
                DIE("threadchurn: cannot create a thread");
        }
        /* while the wave runs, free what the threads before it left */
        surv_freed += trim_survivors(KEEP, &surv_sum);
        for (unsigned k = 0; k < K; k++)
            if (pthread_join(t[k], NULL))
                DIE("threadchurn: cannot join a thread");
    }
    metric_mib("rss_peak_mib", status_kib("VmHWM"));
    surv_freed += trim_survivors(0, &surv_sum);
    if (surv_freed != nthreads * HANDOFF)
        DIE("threadchurn: %" PRIu64 " survivors freed, expected %" PRIu64,
            surv_freed, nthreads * HANDOFF);

    uint64_t h = 0;
    for (uint64_t i = 0; i < nthreads; i++)
        h = mix64(h, w[i].h);
    h = mix64(h, surv_sum);
    free(w);

    printf("threadchurn threads=%" PRIu64 " waves=%" PRIu64 " blocks=%" PRIu64
           " survivors=%" PRIu64 " checksum=%016" PRIx64 "\n",
           nthreads, waves, nthreads * (WORKING_SET + OPS),
           nthreads * HANDOFF, h);
    return 0;
}
