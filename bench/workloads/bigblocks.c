/*
 * bigblocks -- many very large blocks live at once, replaced and grown.
 *
 * A table of 20 slots holds blocks of 5 to 25 MiB (uniform in bytes).  Each
 * step frees the block of a random slot, if it has one, and puts a new block
 * of random size there; so the table fills up over the first steps and then
 * holds about 300 MiB on average, never more than 640 MiB.  One step in four
 * also grows a random live block with realloc by up to a quarter of its
 * size (never past 32 MiB), as a growing image, buffer or array does.
 * Every new block, and every page a block gains, gets one word written in
 * each 4 KiB page, so all its pages fault in; those words (and a word at
 * the block's end) are checked after each realloc and before each free.
 *
 * Why it matters: requests this big go straight to the kernel in most
 * allocators, so the cost is mapping, faulting and unmapping memory, and
 * for realloc whether a block can grow where it is (mremap, or spare address
 * space after it) or must be copied.  glibc's mmap threshold adapts up to
 * 32 MiB, so after the first frees it serves some of these blocks from its
 * heap; an allocator that caches large spans, or gives them back to the
 * kernel only after a delay, trades RSS for page faults, and with 20 blocks
 * of different sizes live, reusing freed spans without fragmenting the
 * address space is the hard part.
 *
 * Work: 1600 steps at scale 1 (about 24 GiB of blocks, every page touched),
 * never fewer than 40.  stderr reports how often realloc moved the block
 * and the peak RSS.
 */
#include "common.h"

#define SLOTS 20u
#define MIN_SIZE (5 * MIB)
#define MAX_SIZE (25 * MIB)
#define GROWN_MAX (32 * MIB)
#define WPP (PAGE / sizeof(uint64_t)) /* words per page */

struct big {
    uint64_t *p; /* NULL: an empty slot */
    size_t n;
    uint64_t tag;
};

static uint64_t checksum, reallocs, moves;

/* Write the pattern from word `from` (a multiple of WPP) to the end: the
 * first word of every page holds tag + its index, the last word ~tag. */
static void stamp(struct big *b, size_t from)
{
    size_t words = b->n / sizeof(uint64_t);
    for (size_t i = from; i < words; i += WPP)
        b->p[i] = b->tag + i;
    b->p[words - 1] = ~b->tag;
}

/* Check the pattern of a block of n bytes; returns what it read. */
static uint64_t verify(const struct big *b, size_t n, const char *when)
{
    size_t words = n / sizeof(uint64_t);
    uint64_t h = n;
    for (size_t i = 0; i < words - 1; i += WPP) {
        if (b->p[i] != b->tag + i)
            DIE("bigblocks: block of %zu bytes was corrupted (%s)", n, when);
        h += b->p[i];
    }
    if (b->p[words - 1] != ~b->tag)
        DIE("bigblocks: block of %zu bytes was corrupted at its end (%s)", n, when);
    return h;
}

static uint64_t make(struct big *b, rng_t *r)
{
    b->n = (size_t)rng_range(r, MIN_SIZE, MAX_SIZE);
    b->tag = rng_next(r);
    b->p = xmalloc(b->n);
    stamp(b, 0);
    return b->n;
}

static void drop(struct big *b)
{
    checksum = mix64(checksum, verify(b, b->n, "before free"));
    free(b->p);
    b->p = NULL;
}

/* Grow by up to a quarter; returns the bytes added. */
static uint64_t grow(struct big *b, rng_t *r)
{
    size_t old = b->n;
    size_t n = old + (size_t)rng_range(r, 1, old / 4);
    if (n > GROWN_MAX)
        n = GROWN_MAX;
    if (n <= old)
        return 0;
    uintptr_t was = (uintptr_t)b->p;
    uint64_t *q = realloc(b->p, n);
    if (!q)
        DIE("bigblocks: out of memory growing a block to %zu bytes", n);
    reallocs++;
    if ((uintptr_t)q != was)
        moves++;
    b->p = q;
    checksum = mix64(checksum, verify(b, old, "after realloc"));
    /* re-stamp from the page holding the old end marker: it may have
     * been a page's first word */
    b->n = n;
    stamp(b, (old / sizeof(uint64_t) - 1) / WPP * WPP);
    return n - old;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t steps = scaled(scale, 1600, 2 * SLOTS);
    rng_t r = rng_make(8);

    struct big table[SLOTS];
    for (unsigned i = 0; i < SLOTS; i++)
        table[i].p = NULL;

    uint64_t bytes = 0, grown = 0;
    for (uint64_t s = 0; s < steps; s++) {
        struct big *b = &table[rng_below(&r, SLOTS)];
        if (b->p)
            drop(b);
        bytes += make(b, &r);
        if (rng_below(&r, 4) == 0) {
            struct big *g = &table[rng_below(&r, SLOTS)];
            if (g->p) {
                uint64_t added = grow(g, &r);
                bytes += added;
                grown += added != 0;
            }
        }
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (table[i].p)
            drop(&table[i]);

    fprintf(stderr, "METRIC realloc_calls=%" PRIu64 "\n", reallocs);
    fprintf(stderr, "METRIC realloc_moved_pct=%.1f\n",
            reallocs ? 100.0 * (double)moves / (double)reallocs : 0.0);
    metric_mib("rss_peak_mib", status_kib("VmHWM"));
    printf("bigblocks steps=%" PRIu64 " grown=%" PRIu64 " bytes=%" PRIu64
           " checksum=%016" PRIx64 "\n",
           steps, grown, bytes, checksum);
    return 0;
}
