/*
 * size.h -- sizes as people write them: 512M, 2G, 64KiB, 1048576.
 *
 * Shared by the options ebb reads at start-up (init.c) and the command-line
 * tool (cli/), so that `ebb run --limit X` accepts exactly what EBB_LIMIT=X
 * does.  Never allocates: init.c runs before the C library may be used.
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

#endif
