/*
 * realloc -- many buffers grown step by step with realloc.
 *
 * A pool of builders, each growing one buffer from nothing to a target
 * between 64 bytes and 4 MiB (log-uniform: every size octave equally
 * likely), then dropping it and starting over.  Two growth styles are mixed:
 *
 *   string  -- realloc to exactly the new length on every append, like a
 *              string builder or a bytearray that is extended in place;
 *              appends are small for small buffers and about 1/8 of the
 *              length for large ones;
 *   vector  -- capacity doubling: realloc only when full, like a dynamic
 *              array.
 *
 * Now and then a buffer is truncated and shrunk (shrink_to_fit).  Every
 * appended byte is written; a sample of the contents goes into the checksum.
 * stderr reports how often realloc moved the block.
 */
#include "common.h"

#define BUILDERS 48u

struct builder {
    unsigned char *p;
    size_t len, cap, target;
    int vector;
    uint8_t fill;
};

static uint64_t checksum, reallocs, moves;

static void resize(struct builder *b, size_t cap)
{
    unsigned char *q = realloc(b->p, cap);
    if (!q)
        DIE("realloc: out of memory growing to %zu bytes", cap);
    reallocs++;
    if (q != b->p && b->p)
        moves++;
    b->p = q;
    b->cap = cap;
}

static void start(struct builder *b, rng_t *r)
{
    unsigned octave = (unsigned)rng_range(r, 6, 21);
    b->target = ((size_t)1 << octave) + (size_t)rng_below(r, (uint64_t)1 << octave);
    b->vector = (int)rng_below(r, 2);
    b->p = NULL;
    b->len = b->cap = 0;
    b->fill = (uint8_t)rng_next(r);
}

static void finish(struct builder *b)
{
    /* sample every 61st byte (odd stride so all chunk phases are seen) */
    uint64_t h = b->len;
    for (size_t i = 0; i < b->len; i += 61)
        h = mix64(h, b->p[i]);
    if (b->len)
        h = mix64(h, b->p[b->len - 1]);
    checksum = mix64(checksum, h);
    free(b->p);
    b->p = NULL;
}

static void step(struct builder *b, rng_t *r)
{
    if (b->len > 256 && rng_below(r, 100) < 2) {
        /* truncate to a random shorter length and shrink to fit */
        b->len = (size_t)rng_range(r, 1, b->len / 2);
        resize(b, b->len);
        return;
    }

    size_t chunk;
    if (b->len < 4096)
        chunk = (size_t)rng_range(r, 1, 256);
    else
        chunk = (size_t)rng_range(r, 1, b->len / 4);
    size_t need = b->len + chunk;

    if (b->vector) {
        if (need > b->cap) {
            size_t cap = b->cap ? b->cap : 16;
            while (cap < need)
                cap *= 2;
            resize(b, cap);
        }
    } else {
        resize(b, need);
    }
    memset(b->p + b->len, b->fill++, chunk);
    b->len = need;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t buffers = scaled(scale, 8000, 2 * BUILDERS);
    rng_t r = rng_make(3);

    struct builder *pool = xmalloc(BUILDERS * sizeof *pool);
    for (unsigned i = 0; i < BUILDERS; i++)
        start(&pool[i], &r);

    uint64_t done = 0, bytes = 0;
    while (done < buffers) {
        struct builder *b = &pool[rng_below(&r, BUILDERS)];
        step(b, &r);
        if (b->len >= b->target) {
            bytes += b->len;
            finish(b);
            done++;
            start(b, &r);
        }
    }
    for (unsigned i = 0; i < BUILDERS; i++)
        if (pool[i].p)
            finish(&pool[i]);
    free(pool);

    fprintf(stderr, "METRIC realloc_calls=%" PRIu64 "\n", reallocs);
    fprintf(stderr, "METRIC realloc_moved_pct=%.1f\n",
            reallocs ? 100.0 * (double)moves / (double)reallocs : 0.0);
    printf("realloc buffers=%" PRIu64 " reallocs=%" PRIu64 " bytes=%" PRIu64
           " checksum=%016" PRIx64 "\n",
           done, reallocs, bytes, checksum);
    return 0;
}
