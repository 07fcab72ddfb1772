/*
 * mixed -- scenarios 5 and 8 of bench/rss: large buffers and small objects
 * interleaved, with a constant live set of small survivors.
 *
 *   mixed [-s scale] [-p survive] [-r rounds] [-e every] [-n keep] [-S settle_ms] [-P]
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
 * round's buffers live through the next round's batch); with -n K, instead,
 * random older buffers are freed until K of them are left, so about K large
 * buffers stay live (a fuller address space, for the 32-bit run).  Every
 * buffer is written on every page and checked before it is freed.
 *
 * Every `every` rounds (8) is a phase point "roundN": RSS at once and after
 * settle_ms of light work, with the floor of the survivors and the live
 * large buffers; and the peak of RSS over the rounds since the last point
 * against its ideal, base + the most the program held at once (issue 15:
 * RSS grows while freed memory waits to go back).
 *
 * With -P (scenario 8, meant for the -m32 build) the program reports, after
 * the last round, with its survivors and large buffers still live, the
 * largest block malloc can still return (binary search on the size, 1 MiB
 * steps, each probe freed at once; at most 2047 MiB in a 32-bit process,
 * where no object may exceed PTRDIFF_MAX) and the largest gap between
 * mappings in /proc/self/maps: RESULT largest_kib=N largest_gap_kib=M.  With
 * -r 0 that is the largest block of a fresh process.
 */
#include "rss.h"

#define CHAINS 256u
#define MAX_BIGS 3   /* new large buffers a round */
#define POOL_MAX 256 /* large buffers live at once, at most (-n) */

static struct {
    struct obj **v; /* bookkeeping, touched before base */
    size_t cap, head, n;
    uint64_t bytes;
} ring;

/* Live large buffers: those of the current round at the end, after
 * `keep` (-n) older ones or, with -n 0, none. */
static struct big pool[POOL_MAX + MAX_BIGS];
static int npool, keep;
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
        live_add(b->n);
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
        live_add(n - b->n);
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

/* Free pool[i], keeping the order of the others (this round's are last). */
static void free_big(int i)
{
    big_check(&pool[i], "mixed large buffer");
    live_sub(pool[i].n);
    free(pool[i].p);
    memmove(&pool[i], &pool[i + 1], (size_t)(npool - i - 1) * sizeof pool[0]);
    npool--;
}

static void round_run(rng_t *r, uint64_t batch, double survive)
{
    struct plan plans[MAX_BIGS];
    int k = (int)rng_range32(r, 1, MAX_BIGS), steps = 0;
    for (int i = 0; i < k; i++) {
        struct big *b = &pool[npool++];
        b->p = NULL;
        b->n = 0;
        b->tag = (uint32_t)rng_next(r);
        plans[i].b = b;
        plans[i].final = ((size_t)rng_logu(r, 20, 26) + PAGE - 1) / PAGE * PAGE;
        plans[i].grow = rng_below32(r, 3) == 0;
        plans[i].done = 0;
        n_grown += (uint64_t)plans[i].grow;
        steps += plan_steps(&plans[i]);
    }

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
            uint32_t c = rng_below32(r, CHAINS);
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
    /* the older buffers: all go (-n 0), or random ones down to `keep` */
    while (npool - k > keep)
        free_big(keep == 0 ? 0 : (int)rng_below32(r, (uint32_t)(npool - k)));
}

static void phase_point(long round)
{
    rss_peak_end("round", round);
    observe(rss_opt.settle_ms);
    struct pageset ps;
    uint64_t live = ring.bytes;
    pageset_open(&ps);
    for (size_t i = 0; i < ring.n; i++) {
        const struct obj *o = ring.v[(ring.head + i) % ring.cap];
        pageset_add(&ps, o, o->size);
    }
    for (int i = 0; i < npool; i++) {
        pageset_add(&ps, pool[i].p, pool[i].n);
        live += pool[i].n;
    }
    rss_report_settled("round", round, pageset_close(&ps), live);
    rss_peak_begin();
}

/* Largest n (in MiB) for which malloc(n MiB) succeeds.  A single object
 * cannot exceed PTRDIFF_MAX, so 2047 MiB is the most a 32-bit process can
 * get. */
static size_t largest_mib(void)
{
    size_t lo = 0, hi = sizeof(size_t) == 4 ? (size_t)(PTRDIFF_MAX / MIB) : (size_t)1 << 20;
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

/* The largest gap between two mappings of /proc/self/maps, in KiB: the
 * largest block of address space a new mapping could get (above 64 KiB). */
static uint64_t largest_gap_kib(void)
{
    if (!read_maps())
        return 0;
    uint64_t prev_end = 64 * KIB, best = 0;
    for (char *line = rss_maps_buf; *line;) {
        char *end;
        uint64_t lo = strtoull(line, &end, 16), hi = strtoull(end + 1, NULL, 16);
        if (lo > prev_end && lo - prev_end > best)
            best = lo - prev_end;
        if (hi > prev_end)
            prev_end = hi;
        line = strchr(line, '\n');
        if (!line)
            break;
        line++;
    }
    return best / KIB;
}

int main(int argc, char **argv)
{
    struct opts o = opts_parse(argc, argv,
        "scenarios 5 and 8: rounds of 1-64 MiB buffers between batches of small objects,\n"
        "2% of which survive (-p); -n K keeps K older buffers live; -P reports the largest\n"
        "allocatable block at the end");
    rss_init(&o);
    double survive = o.survive >= 0 ? o.survive : 0.02;
    long rounds = o.count >= 0 ? o.count : 48;
    int every = o.every > 0 ? o.every : 8;
    keep = o.threads > POOL_MAX ? POOL_MAX : o.threads;
    uint64_t batch = (uint64_t)(o.scale * 16.0 * (double)MIB);
    /* 8 rounds' worth of survivors, counting ~80 bytes an object */
    ring.cap = (size_t)((double)batch / 80.0 * survive * 8.0) + 16;
    ring.v = book_alloc(ring.cap * sizeof *ring.v);
    rss_set_base();
    if (!rss_peak_begin())
        printf("INFO no_peak_windows=1\n"); /* PEAK lines would hold the whole run's peak */

    rng_t r = rng_make_splitmix(5);
    for (long i = 0; i < rounds; i++) {
        round_run(&r, batch, survive);
        if ((i + 1) % every == 0 || i + 1 == rounds)
            phase_point(i + 1);
    }
    printf("INFO rounds=%ld batch_kib=%" PRIu64 " survive=%g ring_cap=%zu survived=%" PRIu64
           " grown=%" PRIu64 " realloc_moves=%" PRIu64 " ptr_bits=%zu\n",
           rounds, batch / 1024, survive, ring.cap, n_survived, n_grown, n_realloc_moves,
           sizeof(void *) * 8);

    if (o.probe) {
        uint64_t live = ring.bytes;
        for (int i = 0; i < npool; i++)
            live += pool[i].n;
        size_t mib = largest_mib();
        printf("RESULT largest_kib=%zu largest_gap_kib=%" PRIu64 " live_kib=%" PRIu64
               " live_buffers=%d\n", mib * 1024, largest_gap_kib(), live / 1024, npool);
        const char *maps_out = getenv("RSS_MAPS_OUT"); /* where the gaps are, to study */
        FILE *f = maps_out ? fopen(maps_out, "w") : NULL;
        if (f) {
            fputs(rss_maps_buf, f);
            fclose(f);
        }
    }
    while (npool > 0)
        free_big(npool - 1);
    for (size_t i = 0; i < ring.n; i++)
        obj_free(ring.v[(ring.head + i) % ring.cap], "mixed survivor");
    rss_done();
    return 0;
}
