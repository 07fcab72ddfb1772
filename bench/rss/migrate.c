/*
 * migrate -- scenario 4 of bench/rss: size-class migration.
 *
 *   migrate [-s scale] [-w window_ms] [-k tick_ms]
 *
 * Phase 1 builds scale x 1 GiB of 32-byte objects and frees them all; phase
 * 2 at once builds scale x 1 GiB of 256-byte objects and frees them all.
 * Objects are held in groups of 1-48 by a malloc'd container and freed
 * group by group in a scattered order, as in `build`.  An allocator that
 * can hand the pages of the dead 32-byte objects to the 256-byte ones (or
 * give them back to the system in time) peaks at about one phase's size; one
 * that keeps them for their size class peaks at both phases together.
 *
 * Phases: "built32" and "built256" (one sample each, at the peak of the
 * phase), "freed32" (one sample, just before phase 2 starts), "freed256"
 * (samples for window_ms).  RESULT reports peak1_kib (VmHWM at the end of
 * phase 1's build), peak_kib (VmHWM at the end of phase 2's build) and
 * floor2_kib (phase 2's floor at its peak).
 */
#include "rss.h"

#define CHAINS 4096u
#define GROUP_MAX 48u

struct group {
    struct group *next;
    uint32_t n;
    uint32_t tag;
    struct obj *item[];
};

static struct group *chain[CHAINS];

static size_t group_bytes(uint32_t n)
{
    return sizeof(struct group) + n * sizeof(struct obj *);
}

/* Build target bytes of objects of exactly `size` bytes; returns the bytes
 * requested (objects and containers). */
static uint64_t build(uint64_t target, size_t size, uint64_t seed)
{
    rng_t r = rng_make_splitmix(seed);
    uint64_t bytes = 0;
    while (bytes < target) {
        uint32_t n = rng_range32(&r, 1, GROUP_MAX);
        struct group *g = xmalloc(group_bytes(n));
        g->n = n;
        g->tag = (uint32_t)rng_next(&r);
        for (uint32_t i = 0; i < n; i++)
            g->item[i] = obj_new(size, (uint32_t)rng_next(&r));
        bytes += group_bytes(n) + n * size;
        uint32_t c = rng_below32(&r, CHAINS);
        g->next = chain[c];
        chain[c] = g;
    }
    return bytes;
}

static void teardown(void)
{
    for (unsigned c = 0; c < CHAINS; c++) {
        struct group *g = chain[c];
        while (g) {
            struct group *next = g->next;
            if (g->n > GROUP_MAX)
                DIE("migrate: group %p corrupted", (void *)g);
            for (uint32_t i = 0; i < g->n; i++)
                obj_free(g->item[i], "migrate");
            free(g);
            g = next;
        }
        chain[c] = NULL;
    }
}

static uint64_t floor_pages(void)
{
    struct pageset ps;
    pageset_open(&ps);
    for (unsigned c = 0; c < CHAINS; c++)
        for (struct group *g = chain[c]; g; g = g->next) {
            pageset_add(&ps, g, group_bytes(g->n));
            for (uint32_t i = 0; i < g->n; i++)
                pageset_add(&ps, g->item[i], g->item[i]->size);
        }
    return pageset_close(&ps);
}

static const int zero[] = { 0 };

/* One phase's build of `size`-byte objects, reported as "built<size>":
 * the bytes built; *peak is VmHWM and *floor the floor pages right after. */
static uint64_t build_phase(uint64_t target, size_t size, uint64_t seed, long *peak,
                            uint64_t *floor)
{
    uint64_t bytes = build(target, size, seed);
    rss_instant();
    *peak = status_kib("VmHWM");
    *floor = floor_pages();
    char name[32];
    snprintf(name, sizeof name, "built%zu", size);
    rss_report(name, zero, 1, *floor, bytes);
    teardown();
    return bytes;
}

int main(int argc, char **argv)
{
    struct opts o = opts_parse(argc, argv,
        "scenario 4: scale GiB of 32-byte objects freed, then scale GiB of 256-byte ones");
    rss_init(&o);
    uint64_t target = (uint64_t)(o.scale * (double)GIB);
    long base = rss_set_base();
    long peak1, peak;
    uint64_t f1, f2;

    uint64_t b1 = build_phase(target, 32, 41, &peak1, &f1);
    rss_instant();
    rss_report("freed32", zero, 1, 0, 0);

    uint64_t b2 = build_phase(target, 256, 42, &peak, &f2);
    int pts[16];
    int n = free_points(pts);
    observe(o.window_ms);
    rss_report("freed256", pts, n, 0, 0);

    printf("INFO target_kib=%" PRIu64 " bytes1=%" PRIu64 " bytes2=%" PRIu64 "\n",
           target / 1024, b1, b2);
    printf("RESULT peak1_kib=%ld peak_kib=%ld floor1_kib=%ld floor2_kib=%ld\n", peak1, peak,
           base + (long)(f1 * (PAGE / 1024)), base + (long)(f2 * (PAGE / 1024)));
    rss_done();
    return 0;
}
