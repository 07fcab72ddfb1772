/*
 * server -- scenario 6 of bench/rss: a long-running server whose live set
 * drifts slowly.
 *
 *   server [-s scale] [-r epochs] [-e every] [-S settle_ms] [-c cycles]
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
 * With -c N the mix makes N passes instead of one: up to 64..512 bytes,
 * back down to 16..128, up again...  (scenario 6b: 400 epochs, 4 passes).
 * Each pass down leaves the larger classes' pages pinned by a few survivors
 * and each pass up the smaller ones', and the next pass can refill them: the
 * floor of a placement that does not know lifetimes, measured over several
 * mixes.
 *
 * Every `every` epochs (10), and after the initial fill (epoch 0), is a
 * phase point "epochN": RSS at once and after settle_ms of light work, with
 * the floor of the live objects.  The object table is bookkeeping (mmap'd
 * and touched before base).
 *
 * After the last phase point, lines "BAND upto=N pages_kib= live_kib=" say
 * where the floor is: each page holding a live object goes to the band of
 * the smallest object on it (16-32, 33-64, ... bytes, then above 512), with
 * the live bytes on those pages.  A band whose pages hold far fewer bytes
 * is a size class the mix has left: its few survivors pin its pages.
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

/* Where the mix stands at epoch e of n: 0 (16..128 B) to 1 (64..512 B),
 * going up and down `passes` times in all. */
static double drift_at(long e, long n, int passes)
{
    double x = (double)e / (double)(n > 0 ? n : 1) * (double)passes;
    long k = (long)x;
    if (k >= passes)
        k = passes - 1;
    double f = x - (double)k;
    return k % 2 == 0 ? f : 1.0 - f;
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

struct page_use {
    uintptr_t page;
    uint32_t smallest, bytes; /* on this page, of one object */
};

static int by_page(const void *a, const void *b)
{
    const struct page_use *x = a, *y = b;
    return x->page < y->page ? -1 : x->page > y->page;
}

/* Size bands of the BAND lines: the smallest object on a page decides. */
static const uint32_t band_upto[] = { 32, 64, 128, 256, 512, UINT32_MAX };
#define BANDS (sizeof band_upto / sizeof band_upto[0])

static void report_bands(void)
{
    size_t cap = live.n * 2 + 1, m = 0; /* objects are < 4 KiB: at most 2 pages */
    struct page_use *u = mmap(NULL, cap * sizeof *u, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (u == MAP_FAILED)
        DIE("mmap of %zu bytes for the band table failed", cap * sizeof *u);
    for (size_t i = 0; i < live.n; i++) {
        uintptr_t a = (uintptr_t)live.v[i], end = a + live.v[i]->size;
        for (uintptr_t pg = a / PAGE; pg * PAGE < end && m < cap; pg++) {
            uintptr_t lo = pg * PAGE > a ? pg * PAGE : a;
            uintptr_t hi = (pg + 1) * PAGE < end ? (pg + 1) * PAGE : end;
            u[m++] = (struct page_use){ pg, live.v[i]->size, (uint32_t)(hi - lo) };
        }
    }
    qsort(u, m, sizeof *u, by_page);
    uint64_t pages[BANDS] = {0}, bytes[BANDS] = {0};
    for (size_t i = 0; i < m;) {
        uint32_t smallest = u[i].smallest;
        uint64_t b = 0;
        size_t j = i;
        for (; j < m && u[j].page == u[i].page; j++) {
            if (u[j].smallest < smallest)
                smallest = u[j].smallest;
            b += u[j].bytes;
        }
        size_t k = 0;
        while (smallest > band_upto[k])
            k++;
        pages[k]++;
        bytes[k] += b;
        i = j;
    }
    for (size_t k = 0; k < BANDS; k++)
        printf("BAND upto=%" PRIu32 " pages_kib=%" PRIu64 " live_kib=%" PRIu64 "\n",
               band_upto[k] == UINT32_MAX ? (uint32_t)OBJ_MAX : band_upto[k],
               pages[k] * (PAGE / 1024), bytes[k] / 1024);
    munmap(u, cap * sizeof *u);
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
        double drift = drift_at(e, epochs, o.cycles);
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
    report_bands();
    for (size_t i = 0; i < live.n; i++)
        obj_free(live.v[i], "server");
    rss_done();
    return 0;
}
