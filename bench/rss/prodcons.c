/*
 * prodcons -- scenario 7 of bench/rss: producer and consumer threads, then
 * all of them exit.
 *
 *   prodcons [-s scale] [-n pairs] [-w window_ms] [-k tick_ms]
 *
 * Each of `pairs` (3) producer threads allocates scale x 256 MiB of small
 * objects (16..512 bytes) and hands them, 256 at a time, to its consumer
 * thread through a bounded queue.  The consumer checks each object and
 * holds it in a FIFO of scale x 32 MiB worth of objects (~400k at scale 1),
 * freeing the oldest as new ones arrive, so every free is done by a thread
 * that did not allocate the object, and each pair keeps a large live set
 * until the end, when the consumer frees its FIFO.  All threads then exit
 * and are joined; the main thread computes lightly and samples RSS.
 *
 * The threads are created before base is measured and wait for a start
 * signal, so their stacks are part of base.  Phase: "joined" (samples for
 * window_ms after the last join).
 */
#include "rss.h"

#include <pthread.h>

#define BATCH 256u
#define SLOTS 16u

struct batch {
    uint32_t n;
    struct obj *o[BATCH];
};

struct pair {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    struct batch *slot; /* SLOTS batches, bookkeeping */
    size_t head, tail;  /* batches put / taken */
    struct obj **fifo;  /* the consumer's live objects, bookkeeping */
    size_t fifo_cap;
    uint64_t seed, produced, consumed;
    pthread_t prod, cons;
};

static uint64_t per_pair_bytes;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static int started;

static void wait_start(void)
{
    pthread_mutex_lock(&start_lock);
    while (!started)
        pthread_cond_wait(&start_cv, &start_lock);
    pthread_mutex_unlock(&start_lock);
}

static void put(struct pair *p, const struct batch *b)
{
    pthread_mutex_lock(&p->lock);
    while (p->head - p->tail == SLOTS)
        pthread_cond_wait(&p->cv, &p->lock);
    p->slot[p->head % SLOTS] = *b;
    p->head++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

static void take(struct pair *p, struct batch *b)
{
    pthread_mutex_lock(&p->lock);
    while (p->head == p->tail)
        pthread_cond_wait(&p->cv, &p->lock);
    *b = p->slot[p->tail % SLOTS];
    p->tail++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

static void *producer(void *arg)
{
    struct pair *p = arg;
    rng_t r = rng_make_splitmix(p->seed);
    struct batch b;
    uint64_t bytes = 0;
    wait_start();
    while (bytes < per_pair_bytes) {
        b.n = BATCH;
        for (uint32_t i = 0; i < BATCH; i++) {
            size_t n = obj_size(&r);
            b.o[i] = obj_new(n, (uint32_t)rng_next(&r));
            bytes += n;
        }
        p->produced += BATCH;
        put(p, &b);
    }
    b.n = 0; /* end of stream */
    put(p, &b);
    return NULL;
}

static void *consumer(void *arg)
{
    struct pair *p = arg;
    struct batch b;
    size_t head = 0, n = 0;
    wait_start();
    for (;;) {
        take(p, &b);
        if (b.n == 0)
            break;
        for (uint32_t i = 0; i < b.n; i++) {
            obj_check(b.o[i], "prodcons consumer");
            if (n == p->fifo_cap) {
                obj_free(p->fifo[head], "prodcons consumer");
                p->fifo[head] = b.o[i];
                head = (head + 1) % p->fifo_cap;
            } else {
                p->fifo[(head + n) % p->fifo_cap] = b.o[i];
                n++;
            }
            p->consumed++;
        }
    }
    for (size_t i = 0; i < n; i++)
        obj_free(p->fifo[(head + i) % p->fifo_cap], "prodcons consumer");
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = opts_parse(argc, argv,
        "scenario 7: producer/consumer thread pairs (-n, default 3), all joined at the end");
    rss_init(&o);
    int pairs = o.threads > 0 ? o.threads : 3;
    if (pairs > 64)
        DIE("at most 64 pairs");
    per_pair_bytes = (uint64_t)(o.scale * 256.0 * (double)MIB);
    struct pair *pp = book_alloc((size_t)pairs * sizeof *pp);
    for (int i = 0; i < pairs; i++) {
        struct pair *p = &pp[i];
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cv, NULL);
        p->slot = book_alloc(SLOTS * sizeof *p->slot);
        p->fifo_cap = (size_t)(o.scale * 32.0 * (double)MIB / 80.0) + 1;
        p->fifo = book_alloc(p->fifo_cap * sizeof *p->fifo);
        p->seed = 700 + (uint64_t)i;
        if (pthread_create(&p->prod, NULL, producer, p) != 0 ||
            pthread_create(&p->cons, NULL, consumer, p) != 0)
            DIE("pthread_create failed");
    }
    rss_set_base();
    double t0 = now_ms();
    pthread_mutex_lock(&start_lock);
    started = 1;
    pthread_cond_broadcast(&start_cv);
    pthread_mutex_unlock(&start_lock);
    uint64_t objects = 0;
    for (int i = 0; i < pairs; i++) {
        pthread_join(pp[i].prod, NULL);
        pthread_join(pp[i].cons, NULL);
        if (pp[i].produced != pp[i].consumed)
            DIE("prodcons: pair %d produced %" PRIu64 " but consumed %" PRIu64, i,
                pp[i].produced, pp[i].consumed);
        objects += pp[i].produced;
    }
    double run_ms = now_ms() - t0;
    long hwm = status_kib("VmHWM");
    int pts[16];
    int n = free_points(pts);
    observe(o.window_ms);
    rss_report("joined", pts, n, 0, 0);
    printf("INFO pairs=%d per_pair_kib=%" PRIu64 " fifo_objects=%zu objects=%" PRIu64
           " run_ms=%.0f\n", pairs, per_pair_bytes / 1024, pp[0].fifo_cap, objects, run_ms);
    printf("RESULT peak_kib=%ld\n", hwm);
    rss_done();
    return 0;
}
