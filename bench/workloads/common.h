/*
 * common.h -- shared helpers for the ebb benchmark workloads.
 *
 * Everything here is header-only and static so each workload stays a single
 * translation unit.  The workloads only ever call the plain C allocation
 * functions, so LD_PRELOAD decides which allocator they measure.
 *
 * Output convention:
 *   stdout  -- one line that depends only on the workload's data (never on
 *              addresses or timing); the harness compares it across
 *              allocators, so any difference means memory was corrupted.
 *   stderr  -- "METRIC name=value" lines the harness collects, plus any
 *              diagnostics.
 */
#ifndef EBB_BENCH_COMMON_H
#define EBB_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- pseudo-random numbers: xorshift64* with a fixed seed -------------- */

typedef struct {
    uint64_t s;
} rng_t;

/* Spread a small seed over all 64 bits so nearby seeds give unrelated
 * streams; never returns 0 (xorshift's one forbidden state). */
static inline rng_t rng_make(uint64_t seed)
{
    uint64_t z = seed + 0x6a09e667f3bcc909ull;
    z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 29)) * 0x94d049bb133111ebull;
    z ^= z >> 32;
    rng_t r = { z ? z : 0x853c49e6748fea9bull };
    return r;
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n), n > 0 (multiply-high: no modulo bias worth caring
 * about and no division). */
static inline uint64_t rng_below(rng_t *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* ---- checksums ---------------------------------------------------------- */

static inline uint64_t mix64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
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

/* ---- command line, errors, /proc ----------------------------------------- */

/* argv[1] is a positive scale factor (default 1.0) multiplying the amount of
 * work; the defaults are tuned to take about 1-3 s under glibc. */
static inline double parse_scale(int argc, char **argv)
{
    if (argc < 2)
        return 1.0;
    char *end;
    errno = 0;
    double s = strtod(argv[1], &end);
    if (errno || end == argv[1] || *end != '\0' || !(s > 0.0) || s > 1e6) {
        fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
        exit(2);
    }
    return s;
}

/* Scale a base count, never below `min`. */
static inline uint64_t scaled(double scale, uint64_t base, uint64_t min)
{
    double v = (double)base * scale;
    uint64_t n = v < 1.0 ? 0 : (uint64_t)v;
    return n < min ? min : n;
}

#define DIE(...)                                                              \
    do {                                                                      \
        fprintf(stderr, __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                  \
        exit(3);                                                              \
    } while (0)

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        DIE("out of memory allocating %zu bytes", n);
    return p;
}

/* A field such as "VmRSS:" or "VmHWM:" from /proc/self/status, in KiB;
 * -1 if unavailable.  Uses raw open/read into a stack buffer (no stdio), so
 * it does not allocate from the heap being measured. */
/* Blocks carry their tag and size in their first 16 bytes and the tag's low
 * byte in their last; check_block verifies both before a block is freed, so
 * an allocator that corrupts memory fails the run, and returns what the
 * checksum mixes in. */
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

static inline long proc_status_kib(const char *field)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    size_t flen = strlen(field);
    for (char *line = buf; line && *line;) {
        if (strncmp(line, field, flen) == 0)
            return strtol(line + flen, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

static inline void metric_mib(const char *name, long kib)
{
    fprintf(stderr, "METRIC %s=%.1f\n", name, kib < 0 ? -1.0 : kib / 1024.0);
}

#endif
