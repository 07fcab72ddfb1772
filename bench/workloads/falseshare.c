/*
 * falseshare -- threads writing small blocks that may share a cache line.
 *
 * Two cores that write to the same 64-byte cache line take turns owning
 * it: every write by one invalidates the other's copy, so a counter that
 * costs about a cycle to bump in a private line costs several times more,
 * up to a hundred on a large machine, once the line bounces.  Programs do
 * not choose where their small objects land; the allocator does.  If it
 * carves neighbouring 8-64 byte blocks of one line out for different
 * threads, threads that share no data still fight over the line ("false
 * sharing"), and nothing in the program shows why.
 *
 * Each worker keeps a small window of live blocks (8) and steps through
 * it: a step checks and frees the oldest block, allocates a new one of 8-64
 * bytes in its place, and bumps the counter of every block in the window
 * 32 times, so each block is written 256 times in its life and the
 * workers' mallocs are spread evenly through their writing, as they are in
 * a program that allocates while it works.  Two phases, all workers busy
 * at once in each:
 *
 *   active  -- the workers step through their windows.  An allocator that
 *              serves threads from common memory, without keeping each
 *              thread's small blocks apart, gives them neighbours.
 *   passive -- in rounds: the main thread allocates a batch of blocks in
 *              one go (neighbours under any allocator) and deals them out
 *              in turn, block j to worker j mod N.  Each worker bumps the
 *              counters of its blocks 256 times, frees them (blocks another
 *              thread allocated), then takes as many steps through its own
 *              window.  The first half is the sharing that comes with
 *              blocks allocated by one thread and used by another; the
 *              second shows whether the allocator hands a thread back the
 *              memory it just freed, which would put two workers' new
 *              blocks on the lines main's batch was cut from.
 *
 * A block holds a 64-bit counter at its start, which begins at the block's
 * tag and is incremented through a volatile pointer (each increment a real
 * load and store), and the tag's low byte in the rest; before it is freed
 * the counter must equal the tag plus the increments it was given and the
 * bytes must be intact.  Each worker draws from its own generator (seeded
 * by its index; main has one of its own) and keeps its hash in its own
 * slot, which the main thread mixes in index order, so the result does not
 * depend on timing.  The work is a number of steps and of rounds, scaled by
 * argv[1] (4 million steps per worker and 4000 rounds at scale 1, about
 * 1.3 billion increments per worker); argv[2] is the number of workers
 * (default 2).  The time of each phase goes to stderr as a METRIC.
 *
 * usage: falseshare [scale] [threads]
 */
#include "common.h"

#include <pthread.h>
#include <time.h>

#define MAXW 64u    /* most workers                                         */
#define WINDOW 8u   /* live blocks a worker steps through                   */
#define BUMPS 32u   /* increments to each block of the window per step      */
#define LIFE (WINDOW * BUMPS) /* increments a block gets in its life        */
#define DEALT 128u  /* blocks a worker is dealt in a passive round          */
#define MINBLK 8u
#define MAXBLK 64u

struct slot {
    unsigned char *p;
    size_t n;
    uint64_t tag;
    uint64_t hits; /* increments given so far */
};

struct worker {
    unsigned index;
    uint64_t h; /* its hash, read by main after the join */
};

static unsigned nworkers;
static uint64_t active_steps, passive_rounds;
static pthread_barrier_t bar;
/* The passive batch: main fills it between rounds, worker t takes entries
 * t, t + N, t + 2N, ...; the barriers order the accesses. */
static struct slot dealt[MAXW * DEALT];

static void make(struct slot *s, rng_t *r)
{
    size_t n = (size_t)rng_range(r, MINBLK, MAXBLK);
    uint64_t tag = rng_next(r);
    unsigned char *p = xmalloc(n);
    memset(p + 8, (int)(tag & 0xff), n - 8);
    memcpy(p, &tag, 8);
    s->p = p;
    s->n = n;
    s->tag = tag;
    s->hits = 0;
}

/* Check a block's counter and filling, free it; h with it mixed in. */
static uint64_t drop(struct slot *s, uint64_t h)
{
    uint64_t count;
    memcpy(&count, s->p, 8);
    if (count != s->tag + s->hits)
        DIE("falseshare: a counter was corrupted");
    unsigned char fill = (unsigned char)(s->tag & 0xff);
    for (size_t i = 8; i < s->n; i++)
        if (s->p[i] != fill)
            DIE("falseshare: a block of %zu bytes was corrupted", s->n);
    free(s->p);
    s->p = NULL;
    return mix64(h, count ^ ((uint64_t)s->n << 56));
}

/* `times` increments to the counter of each of k <= WINDOW blocks, taken in
 * turn so that consecutive stores go to different blocks (and, if the
 * allocator placed them so, to lines another core is writing too). */
static void bump(struct slot **s, unsigned k, unsigned times)
{
    volatile uint64_t *c[WINDOW];
    for (unsigned b = 0; b < k; b++) {
        c[b] = (volatile uint64_t *)(void *)s[b]->p;
        s[b]->hits += times;
    }
    for (unsigned i = 0; i < times; i++)
        for (unsigned b = 0; b < k; b++)
            *c[b] = *c[b] + 1;
}

/* A worker's window; `next` is the oldest block, the next to be replaced. */
struct window {
    struct slot s[WINDOW];
    unsigned next;
};

static uint64_t steps(struct window *w, rng_t *r, uint64_t n, uint64_t h)
{
    struct slot *all[WINDOW];
    for (unsigned b = 0; b < WINDOW; b++)
        all[b] = &w->s[b];
    for (uint64_t i = 0; i < n; i++) {
        struct slot *old = &w->s[w->next];
        w->next = (w->next + 1) % WINDOW;
        h = drop(old, h);
        make(old, r);
        bump(all, WINDOW, BUMPS);
    }
    return h;
}

static void wait_all(void)
{
    int rc = pthread_barrier_wait(&bar);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
        DIE("falseshare: barrier failed");
}

static void *work(void *arg)
{
    struct worker *me = arg;
    rng_t r = rng_make(3000 + me->index);
    uint64_t h = mix64(0, me->index);
    struct window w = { .next = 0 };

    wait_all(); /* all start the active phase together */
    for (unsigned b = 0; b < WINDOW; b++)
        make(&w.s[b], &r);
    h = steps(&w, &r, active_steps, h);

    wait_all(); /* the end of the active phase */
    for (uint64_t i = 0; i < passive_rounds; i++) {
        wait_all(); /* main has dealt the batch */
        for (unsigned g = 0; g < DEALT; g += WINDOW) {
            struct slot *mine[WINDOW];
            for (unsigned b = 0; b < WINDOW; b++)
                mine[b] = &dealt[(g + b) * nworkers + me->index];
            bump(mine, WINDOW, LIFE);
            for (unsigned b = 0; b < WINDOW; b++)
                h = drop(mine[b], h);
        }
        h = steps(&w, &r, DEALT, h);
        wait_all(); /* done with the batch */
    }

    for (unsigned b = 0; b < WINDOW; b++)
        h = drop(&w.s[b], h);
    me->h = h;
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    nworkers = parse_threads(argc, argv, MAXW);
    active_steps = scaled(scale, 4000000, 100);
    passive_rounds = scaled(scale, 4000, 2);

    struct worker wk[MAXW];
    pthread_t t[MAXW];
    if (pthread_barrier_init(&bar, NULL, nworkers + 1))
        DIE("falseshare: cannot make a barrier");
    for (unsigned i = 0; i < nworkers; i++) {
        wk[i].index = i;
        wk[i].h = 0;
        if (pthread_create(&t[i], NULL, work, &wk[i]))
            DIE("falseshare: cannot create a thread");
    }

    rng_t r = rng_make(2999);
    wait_all();
    double t0 = now_s();
    wait_all();
    double t1 = now_s();
    for (uint64_t i = 0; i < passive_rounds; i++) {
        for (unsigned j = 0; j < nworkers * DEALT; j++)
            make(&dealt[j], &r);
        wait_all(); /* deal */
        wait_all(); /* the workers are done with the batch */
    }
    double t2 = now_s();

    for (unsigned i = 0; i < nworkers; i++)
        if (pthread_join(t[i], NULL))
            DIE("falseshare: cannot join a thread");
    pthread_barrier_destroy(&bar);

    uint64_t h = 0;
    for (unsigned i = 0; i < nworkers; i++)
        h = mix64(h, wk[i].h);

    fprintf(stderr, "METRIC active_s=%.3f\nMETRIC passive_s=%.3f\n", t1 - t0,
            t2 - t1);
    /* the window's first blocks, one per step, and two per dealt block
     * (the dealt one and the step that follows it) */
    uint64_t blocks =
        nworkers * (WINDOW + active_steps + 2 * DEALT * passive_rounds);
    printf("falseshare threads=%u active_steps=%" PRIu64
           " passive_rounds=%" PRIu64 " blocks=%" PRIu64 " checksum=%016" PRIx64
           "\n",
           nworkers, active_steps, passive_rounds, blocks, h);
    return 0;
}
