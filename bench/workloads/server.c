/*
 * server -- a server's mix for a fixed time, with thread churn and frees
 * from threads that did not allocate.
 *
 * T lineages (default 2, argv[2] for more) each own an array of 4096 slots
 * holding blocks of 16-512 bytes: the live state of a server, its sessions,
 * buffers and parsed requests.  One thread at a time serves a lineage.  It
 * makes 20000 replacements -- pick a slot at random, check and free its
 * block, allocate one of a random size, write its head, store it -- then
 * starts a fresh thread, passes it the array and exits, as a short-lived
 * connection handler does.  Nearly every block is therefore freed by a
 * thread other than the one that allocated it, usually one that has already
 * exited, and the allocator sees a steady stream of thread starts and exits,
 * each of which may build and tear down per-thread caches and orphan what
 * they held.  Each thread reaps its predecessor with pthread_join after its
 * round (by then that thread is long gone, so nothing waits), and main
 * reaps the last ones: no thread is still exiting when the process ends.
 *
 * This is the shape of bench/workloads/larson.c, but where larson.c runs a
 * fixed number of rounds, this one runs, as the classic larson benchmark
 * does, for a fixed time: scale * 2 seconds, at least 50 ms, by
 * CLOCK_MONOTONIC; a lineage starts no round after the deadline.  The wall
 * time is thus about the same under every allocator and means nothing: the
 * harness must compare the throughput, METRIC ops_per_s (replacements per
 * second over all lineages, from the first thread's start until the last
 * lineage stops), and may look at METRIC threads_started, not the time.  A
 * faster allocator also starts more threads, so the mix of thread churn and
 * steady-state replacement is the same for all of them.
 *
 * Since how much work is done depends on speed, stdout carries only the
 * configuration and "ok", never counts or checksums.  Every block is still
 * checked before it is freed, and a corrupted one ends the run with
 * status 3.
 *
 * usage: server [scale] [threads]
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define SLOTS 4096u
#define ROUND 20000u     /* replacements per thread */
#define MAX_BLOCK 512u
#define WRITTEN 128u     /* bytes of a block written beyond its stamp */

struct lineage {
    rng_t r;
    unsigned char **slot;
    uint64_t h;          /* what was freed, read back; keeps the reads live */
    uint64_t ops;
    pthread_t last;      /* the thread that served the latest round */
    bool has_last;
};

static uint64_t deadline_ns;
static _Atomic uint64_t threads_started;

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static unsigned stopped;

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts))
        DIE("server: no monotonic clock");
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A request-sized block: all of it written if small, else its head. */
static unsigned char *request_block(rng_t *r)
{
    size_t n = (size_t)rng_range(r, 16, MAX_BLOCK);
    return new_block(n, rng_next(r), n < WRITTEN ? n : WRITTEN);
}

static void *serve(void *arg);

static void start_thread(struct lineage *L)
{
    pthread_t t;
    atomic_fetch_add(&threads_started, 1);
    if (pthread_create(&t, NULL, serve, L))
        DIE("server: cannot create a thread");
}

static void *serve(void *arg)
{
    struct lineage *L = arg;
    rng_t r = L->r;
    uint64_t h = L->h;
    for (unsigned i = 0; i < ROUND; i++) {
        unsigned char **s = &L->slot[rng_below(&r, SLOTS)];
        h = free_block(*s, MAX_BLOCK, "server", h);
        *s = request_block(&r);
    }
    L->r = r;
    L->h = h;
    L->ops += ROUND;

    /* L->last was set before this thread was created, so it is ours to read */
    if (L->has_last && pthread_join(L->last, NULL))
        DIE("server: cannot join a thread");
    L->last = pthread_self();
    L->has_last = true;

    if (now_ns() < deadline_ns) {
        start_thread(L); /* hand the array on and exit */
    } else {
        pthread_mutex_lock(&stop_lock);
        stopped++;
        pthread_cond_signal(&stop_cond);
        pthread_mutex_unlock(&stop_lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    unsigned nthreads = parse_threads(argc, argv, 256);
    uint64_t run_ms = scaled(scale, 2000, 50);

    struct lineage *lin = xmalloc(nthreads * sizeof *lin);
    for (unsigned t = 0; t < nthreads; t++) {
        struct lineage *L = &lin[t];
        L->r = rng_make(200 + t);
        L->h = 0;
        L->ops = 0;
        L->has_last = false;
        L->slot = xmalloc(SLOTS * sizeof *L->slot);
        for (unsigned i = 0; i < SLOTS; i++)
            L->slot[i] = request_block(&L->r);
    }

    uint64_t start = now_ns();
    deadline_ns = start + run_ms * 1000000ull;
    for (unsigned t = 0; t < nthreads; t++)
        start_thread(&lin[t]);

    pthread_mutex_lock(&stop_lock);
    while (stopped < nthreads)
        pthread_cond_wait(&stop_cond, &stop_lock);
    pthread_mutex_unlock(&stop_lock);
    uint64_t elapsed = now_ns() - start;

    uint64_t ops = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        struct lineage *L = &lin[t];
        if (pthread_join(L->last, NULL))
            DIE("server: cannot join a thread");
        for (unsigned i = 0; i < SLOTS; i++)
            L->h = free_block(L->slot[i], MAX_BLOCK, "server", L->h);
        free(L->slot);
        ops += L->ops;
    }
    free(lin);

    double secs = (double)elapsed / 1e9;
    fprintf(stderr, "METRIC ops_per_s=%.0f\n", (double)ops / secs);
    fprintf(stderr, "METRIC threads_started=%" PRIu64 "\n",
            atomic_load(&threads_started));
    fprintf(stderr, "METRIC run_s=%.3f\n", secs);
    printf("server threads=%u slots=%u round=%u ms=%" PRIu64 " ok\n",
           nthreads, SLOTS, ROUND, run_ms);
    return 0;
}
