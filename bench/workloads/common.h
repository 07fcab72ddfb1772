/*
 * common.h -- what the timing workloads of bench/workloads/ share beyond
 * bench/common/bench.h (the generator, DIE, /proc): their command line (a
 * scale factor), their size mix, the tagged blocks whose contents make the
 * checksum, and their output convention:
 *
 *   stdout  -- one line that depends only on the workload's data (never on
 *              addresses or timing); the harness compares it across
 *              allocators, so any difference means memory was corrupted.
 *   stderr  -- "METRIC name=value" lines the harness collects, plus any
 *              diagnostics.
 *
 * The workloads draw with rng_make/rng_below/rng_range (64-bit draws); their
 * checksums depend on those exact streams.
 */
#ifndef EBB_BENCH_COMMON_H
#define EBB_BENCH_COMMON_H

#include "../common/bench.h"

#include <float.h>

/* ---- checksums ---------------------------------------------------------- */

static inline uint64_t mix64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/*
 * A block of n >= 16 bytes carries its tag and size in its first 16 bytes
 * and the tag's low byte in its last; check_block verifies both before the
 * block is freed, so an allocator that corrupts memory fails the run, and
 * returns what the checksum mixes in: read back from the block, so the
 * checksum covers the memory and not only the program's own counters.
 * (The RSS scenarios' objects must also hold a list pointer in 16 bytes,
 * so they have a layout of their own, struct obj in rss/rss.h.)
 */
static inline void stamp_block(unsigned char *p, uint64_t n, uint64_t tag)
{
    p[n - 1] = (unsigned char)(tag & 0xff); /* first: a 16-byte block's tail is its size */
    memcpy(p, &tag, 8);
    memcpy(p + 8, &n, 8);
}

static inline uint64_t check_block(const unsigned char *p, uint64_t max, const char *who)
{
    uint64_t tag, sz;
    memcpy(&tag, p, 8);
    memcpy(&sz, p + 8, 8);
    if (sz < 16 || sz > max || (sz > 16 && p[sz - 1] != (unsigned char)(tag & 0xff)))
        DIE("%s: block was corrupted", who);
    return tag ^ sz;
}

/* A new tagged block of n bytes whose first `fill` bytes (all of it, or
 * what a workload that writes less touches) hold the tag's low byte. */
static inline unsigned char *new_block(size_t n, uint64_t tag, size_t fill)
{
    unsigned char *p = xmalloc(n);
    memset(p, (int)(tag & 0xff), fill);
    stamp_block(p, n, tag);
    return p;
}

/* Check and free a tagged block; h with the block mixed in. */
static inline uint64_t free_block(unsigned char *p, uint64_t max, const char *who, uint64_t h)
{
    uint64_t v = check_block(p, max, who);
    free(p);
    return mix64(h, v);
}

/* ---- request sizes ------------------------------------------------------ */

/*
 * A size mix shaped like the requests an interpreter such as CPython makes:
 * mostly 16-64 byte objects (numbers, small tuples, short strings, list and
 * dict headers), a tail of medium objects up to 512 bytes, and a few
 * 1-8 KiB buffers (larger dict tables, list storage, I/O buffers).
 */
static inline size_t py_size(rng_t *r)
{
    uint64_t p = rng_below(r, 1000);
    if (p < 700)
        return (size_t)rng_range(r, 16, 64);
    if (p < 920)
        return (size_t)rng_range(r, 65, 160);
    if (p < 994)
        return (size_t)rng_range(r, 161, 512);
    return (size_t)rng_range(r, 1024, 8192);
}

/*
 * Three bands of sizes from 16 bytes: [16, small] with probability
 * small_pct %, (small, medium] up to medium_pct %, (medium, large] for the
 * rest.  The mixes of the threaded workloads, which differ in their bands
 * only.
 */
static inline size_t banded_size(rng_t *r, uint64_t small_pct, uint64_t small,
                                 uint64_t medium_pct, uint64_t medium, uint64_t large)
{
    uint64_t p = rng_below(r, 100);
    if (p < small_pct)
        return (size_t)rng_range(r, 16, small);
    if (p < medium_pct)
        return (size_t)rng_range(r, small + 1, medium);
    return (size_t)rng_range(r, medium + 1, large);
}

/* ---- command line, metrics ------------------------------------------------ */

/* argv[1] is a positive scale factor (default 1.0) multiplying the amount of
 * work; the defaults are tuned to take about 1-3 s under glibc. */
static inline double parse_scale(int argc, char **argv)
{
    double s = 1.0;
    if (argc >= 2 && !parse_number(argv[1], DBL_TRUE_MIN, 1e6, &s)) {
        fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
        exit(2);
    }
    return s;
}

/* argv[2], for the threaded workloads, is the number of threads: a whole
 * number in [1, max], 2 when absent. */
static inline unsigned parse_threads(int argc, char **argv, unsigned max)
{
    double t = 2;
    if (argc > 2 && (!parse_number(argv[2], 1, max, &t) || t != (double)(unsigned)t)) {
        fprintf(stderr, "usage: %s [scale] [threads 1..%u]\n", argv[0], max);
        exit(2);
    }
    return (unsigned)t;
}

/* Scale a base count, never below `min`. */
static inline uint64_t scaled(double scale, uint64_t base, uint64_t min)
{
    double v = (double)base * scale;
    uint64_t n = v < 1.0 ? 0 : (uint64_t)v;
    return n < min ? min : n;
}

static inline void metric_mib(const char *name, long kib)
{
    fprintf(stderr, "METRIC %s=%.1f\n", name, kib < 0 ? -1.0 : kib / 1024.0);
}

#endif
