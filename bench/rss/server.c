/*
 * server -- scenario 6 of bench/rss: a long-running server whose live set
 * drifts slowly.
 *
 *   server [-s scale] [-r epochs] [-e every] [-S settle_ms]
 *
 * The live set is scale x 128 MiB of objects.  Each epoch (100 by default)
 * is a batch of requests: it frees a random 2-6% of the live objects, takes
 * a temporary buffer of 1-16 MiB (written, checked, freed at the end of the
 * epoch), and allocates replacements until the live bytes are back at the
 * target.  The size mix of the replacements shifts slowly over the run:
 * 97% of them are small, log-uniform over 16..128 bytes at the start and
 * 64..512 bytes at the end; 3% are 512 B..4 KiB.  So the heap sees steady
 * churn, a changing demand per size class, and large temporaries: what
 * makes RSS creep above the live set over days.
 *
 * Every `every` epochs (10), and after the initial fill (epoch 0), is a
 * phase point "epochN": RSS at once and after settle_ms of light work, with
 * the floor of the live objects.  The object table is bookkeeping (mmap'd
 * and touched before base).
 */
#include "rss.h"

static struct {
    struct obj **v;
    size_t n, cap;
    uint64_t bytes;
} live;

static uint64_t n_alloc, n_free;

static size_t mix_size(rng_t *r, double drift)
{
    if (rng_below32(r, 100) < 3)
        return (size_t)rng_logu(r, 9, 12);
    return (size_t)rng_logu(r, 4 + 2 * drift, 7 + 2 * drift);
}

static void refill(rng_t *r, uint64_t target, double drift)
{
    while (live.bytes < target && live.n < live.cap) {
        size_t n = mix_size(r, drift);
        live.v[live.n++] = obj_new(n, (uint32_t)rng_next(r));
        live.bytes += n;
        n_alloc++;
    }
}

static void phase_point(long epoch)
{
    observe(rss_opt.settle_ms);
    struct pageset ps;
    pageset_open(&ps);
    for (size_t i = 0; i < live.n; i++)
        pageset_add(&ps, live.v[i], live.v[i]->size);
    rss_report_settled("epoch", epoch, pageset_close(&ps), live.bytes);
}

int main(int argc, char **argv)
{
    struct opts o = opts_parse(argc, argv,
        "scenario 6: a server loop over a scale x 128 MiB live set whose size mix drifts");
    rss_init(&o);
    long epochs = o.count >= 0 ? o.count : 100;
    int every = o.every > 0 ? o.every : 10;
    uint64_t target = (uint64_t)(o.scale * 128.0 * (double)MIB);
    /* the first mix averages ~105 bytes an object: room for 1.6x that
     * many (refill stops early if the table is full) */
    live.cap = (size_t)(target / 64) + 1024;
    live.v = book_alloc(live.cap * sizeof *live.v);
    rss_set_base();

    rng_t r = rng_make_splitmix(6);
    refill(&r, target, 0);
    phase_point(0);
    uint64_t temp_bytes = 0;
    for (long e = 1; e <= epochs; e++) {
        double drift = (double)e / (double)(epochs > 0 ? epochs : 1);
        size_t k = (size_t)((double)live.n * (0.02 + 0.04 * rng_unit(&r)));
        for (size_t i = 0; i < k && live.n > 0; i++) {
            size_t j = rng_below32(&r, (uint32_t)live.n);
            live.bytes -= live.v[j]->size;
            obj_free(live.v[j], "server");
            live.v[j] = live.v[--live.n];
            n_free++;
        }
        struct big tmp;
        tmp.n = ((size_t)rng_logu(&r, 20, 24) + 15) & ~(size_t)15;
        tmp.tag = (uint32_t)rng_next(&r);
        tmp.p = malloc(tmp.n);
        if (!tmp.p)
            DIE("out of memory allocating a %zu-byte buffer", tmp.n);
        big_fill(&tmp, 0, tmp.n);
        temp_bytes += tmp.n;
        refill(&r, target, drift);
        big_check(&tmp, "server temporary buffer");
        free(tmp.p);
        if (e % every == 0 || e == epochs)
            phase_point(e);
    }
    printf("INFO epochs=%ld target_kib=%" PRIu64 " live_kib=%" PRIu64 " objects=%zu table_cap=%zu"
           " allocs=%" PRIu64 " frees=%" PRIu64 " temp_kib=%" PRIu64 "\n",
           epochs, target / 1024, live.bytes / 1024, live.n, live.cap, n_alloc, n_free,
           temp_bytes / 1024);
    for (size_t i = 0; i < live.n; i++)
        obj_free(live.v[i], "server");
    rss_done();
    return 0;
}
