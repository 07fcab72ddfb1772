/*
 * Shared by the API conformance tests (test_malloc, test_calloc,
 * test_realloc, test_aligned, test_free, test_stats): every exported ebb_*
 * function against its documented semantics.
 *
 * The semantics are glibc's, plus ebb's size classes (classes.h):
 *   - every block is at least 16-byte aligned; malloc(0) is a unique block of
 *     usable size 16;
 *   - failures are NULL + ENOMEM (sizes above PTRDIFF_MAX, overflowing
 *     calloc/reallocarray, mappings the kernel refuses), EINVAL for bad
 *     alignments;
 *   - realloc keeps the pointer when the new size fits the usable size and,
 *     when shrinking, as long as the new size's class is more than 3/4 of the
 *     current usable size; realloc(p, 0) frees p and returns NULL.
 *
 * Only ebb_* functions are used (the sanitizer builds link a library that does
 * not export malloc).  Every test ends with ebb_check() == 0 (teardown).
 */
#ifndef EBB_TEST_CONFORMANCE_H
#define EBB_TEST_CONFORMANCE_H

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "api.h"
#include "classes.h"

/* Several tests count small blocks exactly; a sampled block is served as a
 * large one (test_sample covers sampled blocks' behaviour). */
__attribute__((constructor)) static void conformance_no_sampling(void)
{
    ebb_set_sample_rate(0);
}

/* The address of p, laundered through a volatile so that the compiler cannot
 * fold comparisons between results of malloc-like functions. */
static inline uintptr_t addr(const void *p)
{
    volatile uintptr_t a = (uintptr_t)p;
    return a;
}

static inline int is_aligned(const void *p, size_t alignment)
{
    return (addr(p) & (alignment - 1)) == 0;
}

static inline size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* The rule's table, checked for the shape the rule promises. */
static inline void build_class_table(void)
{
    class_table_init();
    assert_int_equal(class_table[class_count - 1], SMALL_MAX);
    assert_true(class_count < ARRAY_LEN(class_table));
}

/* The usable size ebb must report for a request of n bytes. */
static inline size_t expected_usable(size_t n)
{
    build_class_table();
    return class_usable(n);
}

/* Each size class the rule makes, smallest first, as size_t s. */
#define FOR_EACH_CLASS(s)                                                     \
    for (size_t s, i_ = (build_class_table(), 0); i_ < class_count && ((s = class_table[i_]), 1); \
         i_++)

/* A small block's usable size is its class exactly; a large block's is its
 * page-rounded size, or up to twice that when it reuses a cached mapping. */
static inline int usable_ok(size_t n, size_t u)
{
    size_t want = expected_usable(n);
    if (want <= SMALL_MAX)
        return u == want;
    return u >= want && u <= 2 * want;
}

static inline unsigned char pattern_byte(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u) ^ (i >> 9) ^ seed);
}

static inline void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = pattern_byte(i, seed);
}

/* Index of the first byte that does not match, or SIZE_MAX. */
static inline size_t verify(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != pattern_byte(i, seed))
            return i;
    return SIZE_MAX;
}

static inline ebb_stats_t stats(void)
{
    ebb_stats_t s;
    memset(&s, 0xff, sizeof s);
    ebb_stats(&s);
    return s;
}

/* Bytes of small blocks the program holds (handed out, not in a cache). */
static inline size_t small_live(void)
{
    ebb_stats_t s = stats();
    return s.small_used - s.small_cached;
}

/* Common checks on a freshly allocated block of n requested bytes. */
static inline void check_block(void *p, size_t n, const char *what)
{
    EXPECT(p != NULL, "%s(%zu) returned NULL", what, n);
    EXPECT(is_aligned(p, 16), "%s(%zu) = %p not 16-aligned", what, n, p);
    size_t u = ebb_usable_size(p);
    EXPECT(u >= n, "%s(%zu): usable %zu < requested", what, n, u);
    EXPECT(ebb_owns(p) == 1, "%s(%zu) = %p: ebb_owns != 1", what, n, p);
    /* The whole usable size must be writable. */
    fill(p, u, (unsigned)n);
    EXPECT(verify(p, u, (unsigned)n) == SIZE_MAX, "%s(%zu): pattern lost", what, n);
}

/* Half the bits of a size: HALF * HALF is the first product that overflows. */
#define HALF ((size_t)1 << (sizeof(size_t) * CHAR_BIT / 2))

/* Sizes that can never be satisfied. */
static const size_t huge_sizes[] = {
    (size_t)PTRDIFF_MAX + 1, SIZE_MAX,        SIZE_MAX - 1,
    SIZE_MAX - 15,           SIZE_MAX - 16,   SIZE_MAX - PAGE + 1,
    SIZE_MAX - PAGE,         SIZE_MAX / 2,    SIZE_MAX / 2 + 1,
    (size_t)PTRDIFF_MAX,
#if SIZE_MAX > 0xffffffffu
    /* below PTRDIFF_MAX even page-rounded, but beyond RAM + swap (64 TiB,
     * which the kernel's overcommit check refuses) or the whole 47-bit user
     * address space */
    (size_t)PTRDIFF_MAX - PAGE + 1,
    (size_t)1 << 46,         (size_t)1 << 47, ((size_t)1 << 46) + 1,
#else
    /* 32-bit: a process under a 64-bit kernel has 4 GiB of address space and
     * may well find the 2 GiB - 4 KiB of PTRDIFF_MAX - PAGE + 1, so it is not
     * here; the smallest size that page rounding takes past PTRDIFF_MAX is,
     * and sizes spanning most of the address space. */
    (size_t)PTRDIFF_MAX - PAGE + 2,
    (size_t)3 << 30,         (size_t)0xf0000000, ((size_t)3 << 30) + 1,
#endif
    SIZE_MAX - 4 * MiB,      SIZE_MAX - 128 * KiB,
};

/* fn (malloc, valloc, ...) of each of huge_sizes: NULL and ENOMEM every
 * time, every failing size listed. */
static inline void expect_huge_sizes_fail(void *(*fn)(size_t), const char *name)
{
    for (size_t k = 0; k < ARRAY_LEN(huge_sizes); k++) {
        errno = 0;
        void *p = fn(huge_sizes[k]);
        int e = errno;
        if (p)
            ebb_free(p);
        SOFT(p == NULL && e == ENOMEM, "%s(%#zx) = %p, errno %d", name, huge_sizes[k], p, e);
    }
    END_SOFT();
}

#endif
