/*
 * buildfree -- build a large heap of small objects, free it all, reuse a bit.
 *
 * Models a program that loads a big data structure (a parsed document, a
 * dict of lists of objects), drops it, and keeps running.  About 1 GiB of
 * requested bytes at scale 1, in groups: each group is a list-like container
 * holding 1-64 pointers to objects of py_size() sizes.  Groups are threaded
 * onto one of many chains picked at random, and teardown walks the chains,
 * so objects die in an order that is local within a group but scattered
 * across the heap.  Afterwards a small amount is allocated again.
 *
 * stderr reports peak RSS and RSS after the teardown and after the small
 * re-use phase: whether, and how fast, an allocator gives memory back.
 */
#include "common.h"

#define CHAINS 1024u

struct group {
    struct group *next;
    uint32_t n;
    uint32_t pad;
    unsigned char *item[];
};

/* Each object starts with its tag and its size so teardown can check it. */
static unsigned char *make_obj(rng_t *r, size_t *bytes)
{
    size_t n = py_size(r);
    uint64_t tag = rng_next(r);
    unsigned char *p = new_block(n, tag, n);
    *bytes += n;
    return p;
}

static uint64_t kill_obj(unsigned char *p, uint64_t h)
{
    return free_block(p, 8192, "buildfree", h);
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t target = scaled(scale, 1ull << 30, 1u << 20);
    rng_t r = rng_make(2);

    struct group **chain = calloc(CHAINS, sizeof *chain);
    if (!chain)
        DIE("out of memory");

    size_t bytes = 0;
    uint64_t objects = 0, groups = 0;
    while (bytes < target) {
        uint32_t n = (uint32_t)rng_range(&r, 1, 64);
        struct group *g = xmalloc(sizeof *g + n * sizeof g->item[0]);
        bytes += sizeof *g + n * sizeof g->item[0];
        g->n = n;
        g->pad = 0;
        for (uint32_t i = 0; i < n; i++)
            g->item[i] = make_obj(&r, &bytes);
        uint64_t c = rng_below(&r, CHAINS);
        g->next = chain[c];
        chain[c] = g;
        objects += n;
        groups++;
    }
    long peak_kib = status_kib("VmRSS");

    uint64_t h = 0;
    for (unsigned c = 0; c < CHAINS; c++) {
        struct group *g = chain[c];
        while (g) {
            struct group *next = g->next;
            for (uint32_t i = 0; i < g->n; i++)
                h = kill_obj(g->item[i], h);
            free(g);
            g = next;
        }
    }
    free(chain);
    long after_free_kib = status_kib("VmRSS");

    /* A little new work after the teardown: 1% of the original volume,
     * live at once, then freed. */
    size_t again_target = target / 100, again_bytes = 0;
    size_t cap = 1024, cnt = 0;
    unsigned char **again = xmalloc(cap * sizeof *again);
    while (again_bytes < again_target) {
        if (cnt == cap) {
            cap *= 2;
            unsigned char **grown = realloc(again, cap * sizeof *again);
            if (!grown)
                DIE("out of memory");
            again = grown;
        }
        again[cnt++] = make_obj(&r, &again_bytes);
    }
    long after_again_kib = status_kib("VmRSS");
    for (size_t i = 0; i < cnt; i++)
        h = kill_obj(again[i], h);
    free(again);

    metric_mib("rss_built_mib", peak_kib);
    metric_mib("rss_after_free_mib", after_free_kib);
    metric_mib("rss_after_reuse_mib", after_again_kib);
    metric_mib("rss_peak_mib", status_kib("VmHWM"));
    fprintf(stderr, "buildfree: requested %.1f MiB\n", bytes / 1048576.0);

    printf("buildfree groups=%" PRIu64 " objects=%" PRIu64 " bytes=%zu "
           "checksum=%016" PRIx64 "\n",
           groups, objects, bytes, h);
    return 0;
}
