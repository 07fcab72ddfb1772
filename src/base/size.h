/*
 * size.h -- values as people write them (512M, 2G, 64KiB, 1048576, 90%,
 * auto), and the bounds ebb holds them to.
 *
 * Shared by the options ebb reads at start-up (base/options.c) and the
 * command-line tool (cli/), which has no libebb to call: `ebb run --limit X`
 * and `--purge-delay X` accept exactly what EBB_LIMIT=X and
 * EBB_PURGE_DELAY_MS=X do, and refuse the rest with the same reasons.  Never
 * allocates: options.c runs before the C library may be used.
 */
#ifndef EBB_SIZE_H
#define EBB_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Digits, then an optional K, M or G (powers of 1024), an optional "i" and
 * an optional "B"; 1 and *out set if s is such a size that fits a size_t. */
static inline int ebb__parse_size(const char *s, size_t *out)
{
    size_t v = 0;
    if (*s < '0' || *s > '9')
        return 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (SIZE_MAX - 9) / 10)
            return 0;
        v = v * 10 + (size_t)(*s - '0');
    }
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    default: break;
    }
    if (shift && *s == 'i') /* KiB, MiB, GiB */
        s++;
    if (*s == 'b' || *s == 'B')
        s++;
    if (*s != '\0' || (shift && v > (SIZE_MAX >> shift)))
        return 0;
    *out = v << shift;
    return 1;
}

/* A percentage from 1 to 100: digits with an optional "%" ("90%", "90"). */
static inline int ebb__parse_percent(const char *s, unsigned *out)
{
    unsigned v = 0;
    if (*s < '0' || *s > '9')
        return 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > 100)
            return 0;
    }
    if (*s == '%')
        s++;
    if (*s != '\0' || v == 0)
        return 0;
    *out = v;
    return 1;
}

/* A value of EBB_LIMIT (and `ebb run --limit`): a size (*bytes set,
 * *percent 0), "N%" of the effective limit (*percent = N, 1..100), or
 * "auto", which is 100% of it.  1 if valid.  A bare number is a size:
 * "50" is 50 bytes, never 50%. */
static inline int ebb__parse_limit(const char *s, size_t *bytes, unsigned *percent)
{
    size_t n;
    unsigned pct;
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p[0] == '%' && p[1] == '\0') {
        if (!ebb__parse_percent(s, &pct))
            return 0;
        *bytes = 0;
        *percent = pct;
        return 1;
    }
    if (s[0] == 'a' && s[1] == 'u' && s[2] == 't' && s[3] == 'o' && s[4] == '\0') {
        *bytes = 0;
        *percent = 100;
        return 1;
    }
    if (!ebb__parse_size(s, &n))
        return 0;
    *bytes = n;
    *percent = 0;
    return 1;
}

/* ------------------------------------------------------------ bounds */

/* The least limit ebb can work in.  Below ebb's own metadata, a limit
 * refuses the C library's own start-up (EBB_LIMIT=1: /bin/true aborted in
 * glibc, "failed to register TLS destructor"): a request of a size class
 * takes a pool of up to 512 KiB, charged whole, beside an arena's header
 * and the thread caches; CPython prints a line within 0.6 MiB here.  One
 * arena, 4 MiB, leaves room for each and for the emergency reserve's share
 * (1/32: 128 KiB). */
#define EBB_LIMIT_FLOOR ((size_t)4 << 20)
/* The least mean gap between heap-profile samples.  Each sample costs a
 * backtrace (about 17,000 instructions) and a page for as long as its
 * block lives: EBB_SAMPLE_RATE=1 turned a 20 MB Python workload into 865 MB
 * and 60 times the time.  At a page, a sample is at most as dear as the
 * memory it stands for. */
#define EBB_SAMPLE_RATE_FLOOR ((size_t)4 << 10)
/* The longest purge delay: a day (longer is "never", -1). */
#define EBB_PURGE_DELAY_MAX_MS (24L * 3600 * 1000)

/* What is wrong with a value, for the one-line message. */
enum {
    EBB_VALUE_OK = 0,
    EBB_VALUE_INVALID, /* not a value of that kind */
    EBB_VALUE_LOW,     /* below the least allowed (0 aside, where it means off) */
    EBB_VALUE_HIGH     /* above the most allowed */
};

/* A size that is 0 (off, none) or at least `floor`: EBB_VALUE_*. */
static inline int ebb__check_size(const char *s, size_t floor, size_t *out)
{
    size_t n;
    if (!ebb__parse_size(s, &n))
        return EBB_VALUE_INVALID;
    if (n != 0 && n < floor)
        return EBB_VALUE_LOW;
    *out = n;
    return EBB_VALUE_OK;
}

/* EBB_PURGE_DELAY_MS and --purge-delay: "-1" (never), or milliseconds as
 * a size from 0 to EBB_PURGE_DELAY_MAX_MS.  EBB_VALUE_*. */
static inline int ebb__check_delay(const char *s, long *out)
{
    size_t n;
    if (s[0] == '-' && s[1] == '1' && s[2] == '\0') {
        *out = -1;
        return EBB_VALUE_OK;
    }
    if (!ebb__parse_size(s, &n))
        return EBB_VALUE_INVALID;
    if (n > (size_t)EBB_PURGE_DELAY_MAX_MS)
        return EBB_VALUE_HIGH;
    *out = (long)n;
    return EBB_VALUE_OK;
}

/* EBB_LIMIT and --limit: ebb__parse_limit's syntax, and a size of 0 (no
 * limit) or at least EBB_LIMIT_FLOOR.  EBB_VALUE_*. */
static inline int ebb__check_limit(const char *s, size_t *bytes, unsigned *percent)
{
    size_t b;
    unsigned p;
    if (!ebb__parse_limit(s, &b, &p))
        return EBB_VALUE_INVALID;
    if (b != 0 && b < EBB_LIMIT_FLOOR)
        return EBB_VALUE_LOW;
    *bytes = b;
    *percent = p;
    return EBB_VALUE_OK;
}

#endif
