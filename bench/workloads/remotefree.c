/*
 * remotefree -- every free is remote, and arrives from more than one thread.
 *
 * Two allocator threads do nothing but allocate: blocks of 16-1024 bytes,
 * mostly under 64, each written in full and stamped.  They collect the
 * pointers in batches of 256 and pass the batches to two freer threads,
 * which do nothing but check and free.  Allocator a deals its batches to
 * the freers in turn (its batch j goes to freer (a + j) % 2), so each freer
 * frees the blocks of both allocators, interleaved, and each allocator gets
 * its memory back from both freers at once.  No thread ever frees a block
 * it allocated.
 *
 * Why it matters: prodcons pairs one allocating thread with one freeing
 * thread.  Here an owner's memory comes back from two threads concurrently
 * and a freer hands memory back to two owners, which is where remote-free
 * lists, per-thread caches and the atomics or locks between them are
 * contended hardest.  The freers never allocate, so an allocator that parks
 * freed blocks in the freeing thread's cache must send them home sooner or
 * later or watch the freers hoard memory, while the allocators, which never
 * free, can only reuse what comes back to them: the cost of that return
 * path is what this workload times.
 *
 * Each freer has its own queue of at most 8 batches (16 in all), a ring
 * guarded by a mutex and two condition variables; a batch's pointers are
 * copied in and out, so the queues hold no heap memory, and at most about
 * 20 batches of blocks (well under 1 MiB) are alive at a time.  The
 * allocators are thus throttled by the freers, and the time measured is
 * the speed of the remote path rather than how much memory it can tie up.
 *
 * The work is scaled(scale, 10000000, 2000) blocks per allocator, about 2 s
 * under glibc on the 2-core development VM at scale 1.  Each allocator's
 * generator is seeded with its index, and it hashes its own stream in
 * order.  The freers read each block's tag and size back and add a hash of
 * them to a sum, which does not depend on the order in which batches
 * arrive or on which freer gets there first; the run dies unless the blocks,
 * bytes and sums the freers consumed equal what the allocators produced.
 * stdout holds the counts and one checksum: the allocators' hashes mixed in
 * index order, then the consumed sum.  How often a side had to wait for
 * the other (a full or an empty queue) depends on scheduling, so it goes to
 * stderr as METRIC lines only.
 *
 * usage: remotefree [scale]
 */
#include "common.h"

#include <pthread.h>

#define ALLOCATORS 2u
#define FREERS 2u
#define BATCH 256u       /* pointers handed over at a time        */
#define DEPTH 8u         /* batches a freer's queue holds at most  */
#define MAX_BLOCK 1024u

struct batch {
    unsigned n;
    unsigned char *p[BATCH];
};

/* One freer's inbox: a ring of DEPTH batches that the allocators fill and
 * its freer empties; `senders` counts the allocators not yet finished. */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    unsigned first, count, senders;
    uint64_t full_waits, empty_waits;
    struct batch ring[DEPTH];
};

struct allocator {
    unsigned index;
    uint64_t blocks;   /* to make */
    uint64_t hash;     /* its stream, in order */
    uint64_t sum;      /* the same blocks, order-free */
    uint64_t bytes;
};

struct freer {
    unsigned index;
    uint64_t blocks, bytes, sum;
};

static struct queue inbox[FREERS];

static void copy_batch(struct batch *to, const struct batch *from)
{
    to->n = from->n;
    memcpy(to->p, from->p, from->n * sizeof from->p[0]);
}

static void send_batch(struct queue *q, const struct batch *b)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == DEPTH) {
        q->full_waits++;
        pthread_cond_wait(&q->not_full, &q->lock);
    }
    copy_batch(&q->ring[(q->first + q->count) % DEPTH], b);
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

/* The next batch into *b; 0 once the queue is empty and nobody sends. */
static int receive_batch(struct queue *q, struct batch *b)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && q->senders > 0) {
        q->empty_waits++;
        pthread_cond_wait(&q->not_empty, &q->lock);
    }
    if (q->count == 0) {
        pthread_mutex_unlock(&q->lock);
        return 0;
    }
    copy_batch(b, &q->ring[q->first]);
    q->first = (q->first + 1) % DEPTH;
    q->count--;
    /* two allocators may be waiting; one slot frees one of them */
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return 1;
}

static void stop_sending(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->senders--;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

/* Mostly small objects, a tail of medium ones, a few up to 1 KiB. */
static size_t block_size(rng_t *r)
{
    return banded_size(r, 70, 64, 92, 256, MAX_BLOCK);
}

static void *allocate_only(void *arg)
{
    struct allocator *A = arg;
    rng_t r = rng_make(A->index);
    uint64_t hash = 0, sum = 0, bytes = 0;
    unsigned next = A->index; /* the freer the next full batch goes to */
    struct batch b;
    b.n = 0;

    for (uint64_t i = 0; i < A->blocks; i++) {
        size_t n = block_size(&r);
        uint64_t tag = rng_next(&r);
        b.p[b.n++] = new_block(n, tag, n);
        hash = mix64(hash, tag ^ (uint64_t)n);
        sum += mix64(0, tag ^ (uint64_t)n); /* what free_block(.., 0) gives back */
        bytes += n;
        if (b.n == BATCH) {
            send_batch(&inbox[next], &b);
            next = (next + 1) % FREERS;
            b.n = 0;
        }
    }
    if (b.n > 0)
        send_batch(&inbox[next], &b);
    for (unsigned f = 0; f < FREERS; f++)
        stop_sending(&inbox[f]);

    A->hash = hash;
    A->sum = sum;
    A->bytes = bytes;
    return NULL;
}

static void *free_only(void *arg)
{
    struct freer *F = arg;
    struct queue *q = &inbox[F->index];
    uint64_t blocks = 0, bytes = 0, sum = 0;
    struct batch b;

    while (receive_batch(q, &b)) {
        for (unsigned i = 0; i < b.n; i++) {
            uint64_t n;
            memcpy(&n, b.p[i] + 8, 8); /* checked by free_block below */
            sum += free_block(b.p[i], MAX_BLOCK, "remotefree", 0);
            bytes += n;
        }
        blocks += b.n;
    }
    F->blocks = blocks;
    F->bytes = bytes;
    F->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t per_allocator = scaled(scale, 10000000, 2000);

    for (unsigned f = 0; f < FREERS; f++) {
        struct queue *q = &inbox[f];
        if (pthread_mutex_init(&q->lock, NULL) ||
            pthread_cond_init(&q->not_empty, NULL) ||
            pthread_cond_init(&q->not_full, NULL))
            DIE("remotefree: cannot set up the queues");
        q->first = q->count = 0;
        q->senders = ALLOCATORS;
    }

    struct allocator alloc[ALLOCATORS];
    struct freer freer[FREERS];
    pthread_t at[ALLOCATORS], ft[FREERS];
    for (unsigned f = 0; f < FREERS; f++) {
        freer[f] = (struct freer){ .index = f };
        if (pthread_create(&ft[f], NULL, free_only, &freer[f]))
            DIE("remotefree: cannot create a thread");
    }
    for (unsigned a = 0; a < ALLOCATORS; a++) {
        alloc[a] = (struct allocator){ .index = a, .blocks = per_allocator };
        if (pthread_create(&at[a], NULL, allocate_only, &alloc[a]))
            DIE("remotefree: cannot create a thread");
    }
    for (unsigned a = 0; a < ALLOCATORS; a++)
        pthread_join(at[a], NULL);
    for (unsigned f = 0; f < FREERS; f++)
        pthread_join(ft[f], NULL);

    uint64_t made = 0, made_bytes = 0, made_sum = 0, hash = 0;
    for (unsigned a = 0; a < ALLOCATORS; a++) {
        made += alloc[a].blocks;
        made_bytes += alloc[a].bytes;
        made_sum += alloc[a].sum;
        hash = mix64(hash, alloc[a].hash);
    }
    uint64_t freed = 0, freed_bytes = 0, freed_sum = 0, full_waits = 0,
             empty_waits = 0;
    for (unsigned f = 0; f < FREERS; f++) {
        freed += freer[f].blocks;
        freed_bytes += freer[f].bytes;
        freed_sum += freer[f].sum;
        full_waits += inbox[f].full_waits;
        empty_waits += inbox[f].empty_waits;
        pthread_mutex_destroy(&inbox[f].lock);
        pthread_cond_destroy(&inbox[f].not_empty);
        pthread_cond_destroy(&inbox[f].not_full);
    }
    if (freed != made || freed_bytes != made_bytes || freed_sum != made_sum)
        DIE("remotefree: the freers consumed %" PRIu64 " blocks, %" PRIu64
            " bytes, sum %016" PRIx64 "; the allocators produced %" PRIu64
            ", %" PRIu64 ", %016" PRIx64,
            freed, freed_bytes, freed_sum, made, made_bytes, made_sum);

    fprintf(stderr, "METRIC full_waits=%" PRIu64 "\n", full_waits);
    fprintf(stderr, "METRIC empty_waits=%" PRIu64 "\n", empty_waits);
    printf("remotefree allocators=%u freers=%u blocks=%" PRIu64
           " bytes=%" PRIu64 " checksum=%016" PRIx64 "\n",
           ALLOCATORS, FREERS, made, made_bytes, mix64(hash, freed_sum));
    return 0;
}
