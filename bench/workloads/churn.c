/*
 * churn -- single-threaded small-object churn, shaped like an interpreter.
 *
 * A working set of long-lived objects is replaced at random (objects die in
 * no particular order), interleaved with short-lived temporaries that die
 * in roughly LIFO order, as intermediate results do.  Sizes follow
 * py_size(): mostly 16-64 bytes, a tail up to 512, a few 1-8 KiB.  Every
 * block is fully written when allocated and its contents checked when freed.
 */
#include "common.h"

#define LIVE_SLOTS 65536u /* long-lived working set (~6 MiB)  */
#define TEMP_DEPTH 32u    /* short-lived temporaries stack    */

struct blk {
    unsigned char *p;
    size_t n;
};

static uint64_t checksum;

static void fill(struct blk *b, rng_t *r)
{
    size_t n = py_size(r);
    uint64_t tag = rng_next(r);
    unsigned char *p = xmalloc(n);
    memset(p, (int)(tag & 0xff), n);
    memcpy(p, &tag, sizeof tag);
    b->p = p;
    b->n = n;
}

static void drop(struct blk *b)
{
    uint64_t tag;
    memcpy(&tag, b->p, sizeof tag);
    if (b->p[b->n - 1] != (unsigned char)(tag & 0xff) ||
        b->p[b->n / 2 + 4] != (unsigned char)(tag & 0xff))
        DIE("churn: block of %zu bytes was corrupted", b->n);
    checksum = mix64(checksum, tag ^ b->n);
    free(b->p);
    b->p = NULL;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t ops = scaled(scale, 12000000, 1000);
    rng_t r = rng_make(1);

    struct blk *live = xmalloc(LIVE_SLOTS * sizeof *live);
    struct blk temp[TEMP_DEPTH];
    unsigned ntemp = 0;

    for (unsigned i = 0; i < LIVE_SLOTS; i++)
        fill(&live[i], &r);

    for (uint64_t i = 0; i < ops; i++) {
        uint64_t op = rng_below(&r, 8);
        if (op < 3) {
            /* a long-lived object dies, another takes its place */
            struct blk *b = &live[rng_below(&r, LIVE_SLOTS)];
            drop(b);
            fill(b, &r);
        } else if (op < 6 ? ntemp < TEMP_DEPTH : ntemp == 0) {
            fill(&temp[ntemp++], &r);
        } else {
            drop(&temp[--ntemp]);
        }
    }

    while (ntemp)
        drop(&temp[--ntemp]);
    for (unsigned i = 0; i < LIVE_SLOTS; i++)
        drop(&live[i]);
    free(live);

    printf("churn ops=%" PRIu64 " checksum=%016" PRIx64 "\n", ops, checksum);
    return 0;
}
