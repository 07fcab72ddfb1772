/*
 * size.h -- sizes as people write them: 512M, 2G, 64KiB, 1048576.
 *
 * Shared by the options ebb reads at start-up (init.c) and the command-line
 * tool (cli/), so that `ebb run --limit X` accepts exactly what EBB_LIMIT=X
 * does (a size, N% or auto).  Never allocates: init.c runs before the C library may be used.
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

#endif
