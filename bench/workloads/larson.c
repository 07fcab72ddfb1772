/*
 * larson -- a server-like simulation with thread churn.
 *
 * Each of N lineages (default 2) owns an array of slots holding blocks of
 * 16-512 bytes.  A lineage is served by one thread at a time: for a round
 * the thread repeatedly frees a random slot's block and puts a new block of
 * random size there, then starts a fresh thread, hands it the array and
 * exits, as short-lived connection handlers do.  Blocks are thus freed by
 * threads other than the ones that allocated them, often after the
 * allocating thread is gone.  The main thread allocates the initial blocks
 * and frees the final ones.  The work is a fixed number of rounds, so the
 * result does not depend on timing.
 *
 * usage: larson [scale] [threads]
 */
#include "common.h"

#include <pthread.h>

#define SLOTS 4096u
#define OPS_PER_ROUND 20000u

struct lineage {
    unsigned id;
    rng_t r;
    unsigned char **slot;
    uint64_t h;
    uint64_t rounds_left;
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned done_count;
static uint64_t threads_started;

static unsigned char *make_blk(rng_t *r)
{
    size_t n = (size_t)rng_range(r, 16, 512);
    uint64_t tag = rng_next(r);
    /* write the first cache line or so and the last byte */
    return new_block(n, tag, n < 96 ? n : 64);
}

static uint64_t kill_blk(unsigned char *p, uint64_t h)
{
    return free_block(p, 512, "larson", h);
}

static void *worker(void *arg);

static void spawn(struct lineage *L)
{
    pthread_t t;
    pthread_attr_t attr;
    /* counted before the thread exists, so main never reads a stale count */
    pthread_mutex_lock(&done_lock);
    threads_started++;
    pthread_mutex_unlock(&done_lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, worker, L))
        DIE("larson: cannot create a thread");
    pthread_attr_destroy(&attr);
}

static void *worker(void *arg)
{
    struct lineage *L = arg;
    rng_t r = L->r;
    uint64_t h = L->h;
    for (unsigned i = 0; i < OPS_PER_ROUND; i++) {
        unsigned char **s = &L->slot[rng_below(&r, SLOTS)];
        h = kill_blk(*s, h);
        *s = make_blk(&r);
    }
    L->r = r;
    L->h = h;

    if (--L->rounds_left > 0) {
        spawn(L); /* hand the array to a new thread and exit */
    } else {
        pthread_mutex_lock(&done_lock);
        done_count++;
        pthread_cond_signal(&done_cond);
        pthread_mutex_unlock(&done_lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    unsigned nthreads = parse_threads(argc, argv, 256);
    uint64_t rounds = scaled(scale, 300, 2);

    struct lineage *lin = xmalloc(nthreads * sizeof *lin);
    for (unsigned t = 0; t < nthreads; t++) {
        struct lineage *L = &lin[t];
        L->id = t;
        L->r = rng_make(100 + t);
        L->h = 0;
        L->rounds_left = rounds;
        L->slot = xmalloc(SLOTS * sizeof *L->slot);
        for (unsigned i = 0; i < SLOTS; i++)
            L->slot[i] = make_blk(&L->r);
    }

    for (unsigned t = 0; t < nthreads; t++)
        spawn(&lin[t]);

    pthread_mutex_lock(&done_lock);
    while (done_count < nthreads)
        pthread_cond_wait(&done_cond, &done_lock);
    uint64_t started = threads_started;
    pthread_mutex_unlock(&done_lock);

    uint64_t h = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        uint64_t lh = lin[t].h;
        for (unsigned i = 0; i < SLOTS; i++)
            lh = kill_blk(lin[t].slot[i], lh);
        free(lin[t].slot);
        h = mix64(h, lh);
    }
    free(lin);

    printf("larson threads=%u rounds=%" PRIu64 " ops=%" PRIu64
           " thread_starts=%" PRIu64 " checksum=%016" PRIx64 "\n",
           nthreads, rounds, (uint64_t)nthreads * rounds * OPS_PER_ROUND,
           started, h);
    return 0;
}
