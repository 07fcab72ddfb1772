/*
 * largeblk -- large blocks allocated, touched and freed over and over.
 *
 * Sizes are log-uniform between 64 KiB and 32 MiB (every octave equally
 * likely).  A few blocks are live at a time and replaced at random.  Each
 * new block gets one word written in every 4 KiB page -- enough to fault
 * every page in -- and those words are checked before the block is freed.
 * This is the case glibc handles well (after the first frees its mmap
 * threshold rises and blocks are recycled from the heap), while an
 * allocator that returns every large block to the kernel at once pays for
 * fresh zeroed pages each time.
 */
#include "common.h"

#define LIVE 4u

struct big {
    uint64_t *p;
    size_t n;
    uint64_t tag;
};

static uint64_t checksum;

static void make_big(struct big *b, rng_t *r)
{
    unsigned octave = (unsigned)rng_range(r, 16, 24);
    size_t n = ((size_t)1 << octave) + (size_t)rng_below(r, (uint64_t)1 << octave);
    b->n = n;
    b->tag = rng_next(r);
    b->p = xmalloc(n);
    size_t words = n / sizeof(uint64_t);
    for (size_t i = 0; i < words; i += PAGE / sizeof(uint64_t))
        b->p[i] = b->tag + i;
    b->p[words - 1] = ~b->tag;
}

static void drop_big(struct big *b)
{
    size_t words = b->n / sizeof(uint64_t);
    uint64_t h = b->n;
    for (size_t i = 0; i < words - 1; i += PAGE / sizeof(uint64_t)) {
        if (b->p[i] != b->tag + i)
            DIE("largeblk: block of %zu bytes was corrupted", b->n);
        h += b->p[i];
    }
    if (b->p[words - 1] != ~b->tag)
        DIE("largeblk: block of %zu bytes was corrupted at its end", b->n);
    checksum = mix64(checksum, h);
    free(b->p);
    b->p = NULL;
}

int main(int argc, char **argv)
{
    double scale = parse_scale(argc, argv);
    uint64_t iters = scaled(scale, 1500, 2 * LIVE);
    rng_t r = rng_make(6);

    struct big live[LIVE];
    for (unsigned i = 0; i < LIVE; i++)
        make_big(&live[i], &r);

    uint64_t bytes = 0;
    for (uint64_t i = 0; i < iters; i++) {
        struct big *b = &live[rng_below(&r, LIVE)];
        drop_big(b);
        make_big(b, &r);
        bytes += b->n;
    }
    for (unsigned i = 0; i < LIVE; i++)
        drop_big(&live[i]);

    printf("largeblk iters=%" PRIu64 " bytes=%" PRIu64 " checksum=%016" PRIx64
           "\n",
           iters, bytes, checksum);
    return 0;
}
