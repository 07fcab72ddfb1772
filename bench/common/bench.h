/*
 * bench.h -- what every C benchmark program of bench/ shares: the workloads
 * of bench/workloads/ (through workloads/common.h) and the RSS scenarios of
 * bench/rss/ (through rss/rss.h).
 *
 * It owns:
 *   - size units and the 4 KiB page the programs reason in;
 *   - DIE, the one way a program reports corrupted data (exit status 3,
 *     which the drivers read as "the allocator broke something");
 *   - xmalloc and the plain-malloc discipline: the programs call only
 *     malloc, calloc, realloc and free, so LD_PRELOAD decides what they
 *     measure;
 *   - the pseudo-random generator (xorshift64*), with the two seedings and
 *     two bounded draws the two families were written with: their outputs
 *     (the workloads' checksums, the scenarios' object counts) depend on the
 *     exact streams, so both stay, under names that say which is which;
 *   - reading /proc without touching the heap being measured, and command
 *     line numbers in a range.
 *
 * Everything is static inline so that each program stays one translation
 * unit.  It must build with gcc and clang, -std=c11 -Wall -Wextra -Werror,
 * for x86-64 and for -m32 (the 32-bit scenario): no __int128 unless the
 * compiler has it.
 */
#ifndef EBB_BENCH_H
#define EBB_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)
#define PAGE 4096u

/* stdout first: a driver reading the records of a run that died should see
 * all of them before the reason. */
#define DIE(...)                                                              \
    do {                                                                      \
        fflush(stdout);                                                       \
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

/* ---- pseudo-random numbers: xorshift64*, fixed seeds --------------------- */

typedef struct {
    uint64_t s;
} rng_t;

/* Two rounds of the SplitMix64 kind of finaliser, with the shifts as
 * parameters because the two seedings below differ in them. */
static inline uint64_t rng_scramble(uint64_t z, int a, int b, int c)
{
    z = (z ^ (z >> a)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> b)) * 0x94d049bb133111ebull;
    return z ^ (z >> c);
}

/* The workloads' seeding: a small seed spread over all 64 bits so nearby
 * seeds give unrelated streams; never 0 (xorshift's one forbidden state). */
static inline rng_t rng_make(uint64_t seed)
{
    uint64_t z = rng_scramble(seed + 0x6a09e667f3bcc909ull, 31, 29, 32);
    rng_t r = { z ? z : 0x853c49e6748fea9bull };
    return r;
}

/* The RSS scenarios' seeding: SplitMix64's output function proper. */
static inline rng_t rng_make_splitmix(uint64_t seed)
{
    uint64_t z = rng_scramble(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull, 30, 27, 31);
    rng_t r = { z ? z : 1 };
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

/* The high half of a 64 x 64-bit product; the portable branch gives the
 * same bits where there is no 128-bit type (-m32). */
static inline uint64_t mul_high64(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
#else
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t lo_lo = al * bl, hi_lo = ah * bl, lo_hi = al * bh;
    uint64_t mid = (lo_lo >> 32) + (uint32_t)hi_lo + (uint32_t)lo_hi;
    return ah * bh + (hi_lo >> 32) + (lo_hi >> 32) + (mid >> 32);
#endif
}

/* Uniform in [0, n), n > 0, from all 64 bits (multiply-high: no division,
 * no modulo bias worth caring about).  The workloads' draw. */
static inline uint64_t rng_below(rng_t *r, uint64_t n)
{
    return mul_high64(rng_next(r), n);
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/* Uniform in [0, n), n < 2^32, from the top 32 bits only: the RSS
 * scenarios' draw, cheap in a 32-bit process. */
static inline uint32_t rng_below32(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static inline uint32_t rng_range32(rng_t *r, uint32_t lo, uint32_t hi)
{
    return lo + rng_below32(r, hi - lo + 1);
}

/* Uniform in [0, 1). */
static inline double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Log-uniform between 2^lo and 2^hi. */
static inline double rng_logu(rng_t *r, double lo, double hi)
{
    return exp2(lo + (hi - lo) * rng_unit(r));
}

/* ---- /proc, without the heap ----------------------------------------------- */

/*
 * The whole of a small file (/proc/self/status, /proc/self/maps) into buf,
 * NUL-terminated, with raw open/read: stdio would allocate from the heap
 * whose size is being measured.  The length read, or -1 if the file cannot
 * be opened; a file longer than the buffer is cut.
 */
static inline long read_small_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return (long)len;
}

/* A "Name:   N kB" field of /proc/self/status ("VmRSS", "VmHWM"), in KiB;
 * -1 if missing. */
static inline long status_kib(const char *field)
{
    char buf[8192];
    if (read_small_file("/proc/self/status", buf, sizeof buf) < 0)
        return -1;
    size_t fl = strlen(field);
    for (char *line = buf; line && *line;) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':')
            return strtol(line + fl + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

/* ---- command line ---------------------------------------------------------- */

/* *v = the number s spells, if it is all number and in [lo, hi]; else 0. */
static inline int parse_number(const char *s, double lo, double hi, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !(x >= lo && x <= hi))
        return 0;
    *v = x;
    return 1;
}

#endif
