/*
 * mixed -- scenarios 5 and 8 of bench/rss: large buffers and small objects
 * interleaved, with a constant live set of small survivors.
 *
 *   mixed [-s scale] [-p survive] [-r rounds] [-e every] [-S settle_ms] [-P]
 *
 * Each round (48 by default) allocates 1-3 large buffers of 1-64 MiB
 * (log-uniform; the sizes do not scale), a third of them grown by realloc
 * from 64 KiB in steps of 25%, while it allocates a batch of scale x 16 MiB
 * of small objects (16..512 bytes): the big allocations and growth steps are
 * spread through the batch, so small objects land between them.  Then the
 * batch is freed in a scattered order except for 2% of its objects (-p),
 * which join a ring of survivors; when the ring is full (8 rounds' worth)
 * each new survivor frees the oldest one, so the live set of small objects
 * stays constant.  Last, the previous round's large buffers are freed (each
 * round's buffers live through the next round's batch).  Every buffer is
 * written on every page and checked before it is freed.
 *
 * Every `every` rounds (8) is a phase point "roundN": RSS at once and after
 * settle_ms of light work, with the floor of the survivors and the live
 * large buffers.
 *
 * With -P (scenario 8, meant for the -m32 build) the program frees the
 * large buffers after the last round, keeps the survivors, and reports the
 * largest block malloc can still return (binary search on the size, 1 MiB
 * steps, each probe freed at once): RESULT largest_kib=N.  With -r 0 that is
 * the largest block of a fresh process.
 */
#include "rss.h"

#define CHAINS 256u
#define MAX_BIGS 3

static struct {
    struct obj **v; /* bookkeeping, touched before base */
    size_t cap, head, n;
    uint64_t bytes;
} ring;

static struct big bigs[2][MAX_BIGS];
static int nbigs[2];
static struct obj *chain[CHAINS];
static uint64_t n_survived, n_realloc_moves, n_grown;

static void ring_push(struct obj *o)
{
    if (ring.n == ring.cap) {
        struct obj *old = ring.v[ring.head];
        ring.bytes -= old->size;
        obj_free(old, "mixed survivor");
        ring.v[ring.head] = o;
        ring.head = (ring.head + 1) % ring.cap;
    } else {
        ring.v[(ring.head + ring.n) % ring.cap] = o;
        ring.n++;
    }
    ring.bytes += o->size;
    n_survived++;
}

/* One large buffer being made: allocated at once, or grown step by step. */
struct plan {
    struct big *b;
    size_t final;
    int grow;
    int done;
};

/* Perform one step of the plan: the allocation, or one growth step. */
static void plan_step(struct plan *pl)
{
    struct big *b = pl->b;
    if (!b->p) {
        b->n = pl->grow ? 64 * KIB : pl->final;
        b->p = malloc(b->n);
        if (!b->p)
            DIE("out of memory allocating a %zu-byte buffer", b->n);
        big_fill(b, 0, b->n);
    } else {
        size_t n = b->n + b->n / 4;
        if (n > pl->final)
            n = pl->final;
        unsigned char *q = realloc(b->p, n);
        if (!q)
            DIE("out of memory growing a buffer to %zu bytes", n);
        if (q != b->p)
            n_realloc_moves++;
        b->p = q;
        big_fill(b, b->n, n);
        b->n = n;
    }
    if (b->n >= pl->final)
        pl->done = 1;
}

static int plan_steps(const struct plan *pl)
{
    if (!pl->grow)
        return 1;
    int s = 1;
    for (size_t n = 64 * KIB; n < pl->final; n += n / 4)
        s++;
    return s;
}

static void free_bigs(int which)
{
    for (int i = 0; i < nbigs[which]; i++) {
        big_check(&bigs[which][i], "mixed large buffer");
        free(bigs[which][i].p);
        bigs[which][i].p = NULL;
    }
    nbigs[which] = 0;
}

static void round_run(rng_t *r, long round, uint64_t batch, double survive)
{
    int cur = (int)(round & 1);
    struct plan plans[MAX_BIGS];
    int k = (int)rng_range(r, 1, MAX_BIGS), steps = 0;
    for (int i = 0; i < k; i++) {
        struct big *b = &bigs[cur][i];
        b->p = NULL;
        b->n = 0;
        b->tag = (uint32_t)rng_next(r);
        plans[i].b = b;
        plans[i].final = ((size_t)rng_logu(r, 20, 26) + PAGE - 1) / PAGE * PAGE;
        plans[i].grow = rng_below(r, 3) == 0;
        plans[i].done = 0;
        n_grown += (uint64_t)plans[i].grow;
        steps += plan_steps(&plans[i]);
    }
    nbigs[cur] = k;

    /* the small batch, with a large-buffer step every `gap` bytes */
    uint64_t gap = batch / (uint64_t)(steps + 1), next_step = gap, bytes = 0;
    int p = 0;
    while (bytes < batch || p < k) {
        if (bytes >= next_step || bytes >= batch) {
            while (p < k && plans[p].done)
                p++;
            if (p < k)
                plan_step(&plans[p]);
            next_step += gap;
            if (bytes >= batch)
                continue;
        }
        size_t n = obj_size(r);
        struct obj *o = obj_new(n, (uint32_t)rng_next(r));
        bytes += n;
        if (rng_unit(r) < survive) {
            ring_push(o);
        } else {
            uint32_t c = rng_below(r, CHAINS);
            o->next = chain[c];
            chain[c] = o;
        }
    }
    for (unsigned c = 0; c < CHAINS; c++) {
        struct obj *o = chain[c];
        while (o) {
            struct obj *next = o->next;
            obj_free(o, "mixed batch");
            o = next;
        }
        chain[c] = NULL;
    }
    free_bigs(cur ^ 1);
}

static void phase_point(long round)
{
    static int pts[2];
    char name[32];
    pts[0] = 0;
    pts[1] = rss_opt.settle_ms;
    observe(rss_opt.settle_ms);
    struct pageset ps;
    uint64_t live = ring.bytes;
    pageset_open(&ps);
    for (size_t i = 0; i < ring.n; i++) {
        const struct obj *o = ring.v[(ring.head + i) % ring.cap];
        pageset_add(&ps, o, o->size);
    }
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < nbigs[w]; i++) {
            pageset_add(&ps, bigs[w][i].p, bigs[w][i].n);
            live += bigs[w][i].n;
        }
    uint64_t pages = pageset_close(&ps);
    snprintf(name, sizeof name, "round%ld", round);
    rss_report(name, pts, rss_opt.settle_ms > 0 ? 2 : 1, pages, live);
}

/* Largest n (in MiB) for which malloc(n MiB) succeeds. */
static size_t largest_mib(void)
{
    size_t lo = 0, hi = sizeof(size_t) == 4 ? 4095 : (size_t)1 << 20;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        void *p = malloc(mid * MIB);
        if (p) {
            free(p);
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

int main(int argc, char **argv)
{
    struct opts o = opts_parse(argc, argv,
        "scenarios 5 and 8: rounds of 1-64 MiB buffers between batches of small objects,\n"
        "2% of which survive (-p); -P reports the largest allocatable block at the end");
    rss_init(&o);
    double survive = o.survive >= 0 ? o.survive : 0.02;
    long rounds = o.count >= 0 ? o.count : 48;
    int every = o.every > 0 ? o.every : 8;
    uint64_t batch = (uint64_t)(o.scale * 16.0 * (double)MIB);
    /* 8 rounds' worth of survivors, counting ~80 bytes an object */
    ring.cap = (size_t)((double)batch / 80.0 * survive * 8.0) + 16;
    ring.v = book_alloc(ring.cap * sizeof *ring.v);
    rss_set_base();

    rng_t r = rng_make(5);
    for (long i = 0; i < rounds; i++) {
        round_run(&r, i, batch, survive);
        if ((i + 1) % every == 0 || i + 1 == rounds)
            phase_point(i + 1);
    }
    printf("INFO rounds=%ld batch_kib=%" PRIu64 " survive=%g ring_cap=%zu survived=%" PRIu64
           " grown=%" PRIu64 " realloc_moves=%" PRIu64 " ptr_bits=%zu\n",
           rounds, batch / 1024, survive, ring.cap, n_survived, n_grown, n_realloc_moves,
           sizeof(void *) * 8);

    free_bigs(0);
    free_bigs(1);
    if (o.probe) {
        size_t mib = largest_mib();
        printf("RESULT largest_kib=%zu live_kib=%" PRIu64 "\n", mib * 1024, ring.bytes / 1024);
    }
    for (size_t i = 0; i < ring.n; i++)
        obj_free(ring.v[(ring.head + i) % ring.cap], "mixed survivor");
    rss_done();
    return 0;
}
