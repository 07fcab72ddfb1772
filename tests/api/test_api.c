/*
 * test_api.c -- conformance of every exported ebb_* function.
 *
 * The semantics are glibc's, plus ebb's size classes:
 *   - usable size in 16-byte steps up to 512, then four classes per doubling
 *     (640, 768, 896, 1024, 1280, ...) up to 131072; above that a block is
 *     "large" and its usable size is the request rounded up to 4096;
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
 *
 * Build: cc -std=c11 -Iinclude tests/api/test_api.c build/libebb.a -lcmocka -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ebb.h"
#include "api.h"

#define SMALL_MAX ((size_t)131072)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* The address of p, laundered through a volatile so that the compiler cannot
 * fold comparisons between results of malloc-like functions. */
static uintptr_t addr(const void *p)
{
    volatile uintptr_t a = (uintptr_t)p;
    return a;
}

static int is_aligned(const void *p, size_t alignment)
{
    return (addr(p) & (alignment - 1)) == 0;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* Table of the small size classes, built from the rule in the header
 * comment (not from the library). */
static size_t class_table[80];
static size_t class_count;

static void build_class_table(void)
{
    if (class_count)
        return;
    for (size_t s = 16; s <= 512; s += 16)
        class_table[class_count++] = s;
    for (size_t base = 512; base < SMALL_MAX; base *= 2)
        for (size_t q = 1; q <= 4; q++)
            class_table[class_count++] = base + q * (base / 4);
    assert_int_equal(class_table[class_count - 1], SMALL_MAX);
    assert_true(class_count < ARRAY_LEN(class_table));
}

/* The usable size ebb must report for a request of n bytes. */
static size_t expected_usable(size_t n)
{
    build_class_table();
    if (n == 0)
        return 16;
    for (size_t i = 0; i < class_count; i++)
        if (n <= class_table[i])
            return class_table[i];
    return round_up(n, PAGE);
}

/* A small block's usable size is its class exactly; a large block's is its
 * page-rounded size, or up to twice that when it reuses a cached mapping. */
static int usable_ok(size_t n, size_t u)
{
    size_t want = expected_usable(n);
    if (want <= SMALL_MAX)
        return u == want;
    return u >= want && u <= 2 * want;
}

static unsigned char pattern_byte(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u) ^ (i >> 9) ^ seed);
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = pattern_byte(i, seed);
}

/* Index of the first byte that does not match, or SIZE_MAX. */
static size_t verify(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != pattern_byte(i, seed))
            return i;
    return SIZE_MAX;
}

static size_t first_nonzero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return i;
    return SIZE_MAX;
}

static ebb_stats_t stats(void)
{
    ebb_stats_t s;
    memset(&s, 0xff, sizeof s);
    ebb_stats(&s);
    return s;
}

/* Bytes of small blocks the program holds (handed out, not in a cache). */
static size_t small_live(void)
{
    ebb_stats_t s = stats();
    return s.small_used - s.small_cached;
}

/* Common checks on a freshly allocated block of n requested bytes. */
static void check_block(void *p, size_t n, const char *what)
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

/* ------------------------------------------------------------------------ */
/* malloc, size classes                                                      */
/* ------------------------------------------------------------------------ */

static void test_malloc_zero_unique(void **state)
{
    (void)state;
    void *a = ebb_malloc(0);
    void *b = ebb_malloc(0);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(addr(a) != addr(b));
    assert_int_equal(ebb_usable_size(a), 16);
    assert_int_equal(ebb_usable_size(b), 16);
    assert_int_equal(ebb_owns(a), 1);
    assert_int_equal(ebb_owns(b), 1);
    assert_true(is_aligned(a, 16) && is_aligned(b, 16));
    /* usable and distinct: writing one must not touch the other */
    memset(a, 0x11, 16);
    memset(b, 0x22, 16);
    assert_int_equal(((unsigned char *)a)[15], 0x11);
    assert_int_equal(((unsigned char *)b)[0], 0x22);
    ebb_free(a);
    ebb_free(b);
}

static void test_malloc_smallest(void **state)
{
    (void)state;
    void *p1 = ebb_malloc(1), *p16 = ebb_malloc(16), *p17 = ebb_malloc(17);
    void *p512 = ebb_malloc(512), *p513 = ebb_malloc(513);
    assert_int_equal(ebb_usable_size(p1), 16);
    assert_int_equal(ebb_usable_size(p16), 16);
    assert_int_equal(ebb_usable_size(p17), 32);
    assert_int_equal(ebb_usable_size(p512), 512);
    assert_int_equal(ebb_usable_size(p513), 640);
    ebb_free(p1);
    ebb_free(p16);
    ebb_free(p17);
    ebb_free(p512);
    ebb_free(p513);
}

/* Every class boundary s: s-1, s and s+1 land in the right class. */
static void test_class_edges(void **state)
{
    (void)state;
    build_class_table();
    for (size_t i = 0; i < class_count; i++) {
        size_t s = class_table[i];
        size_t probes[3] = {s - 1, s, s + 1};
        for (size_t k = 0; k < 3; k++) {
            size_t n = probes[k];
            void *p = ebb_malloc(n);
            check_block(p, n, "malloc");
            size_t u = ebb_usable_size(p);
            EXPECT(usable_ok(n, u), "malloc(%zu): usable %zu, expected %zu",
                   n, u, expected_usable(n));
            ebb_free(p);
        }
    }
    /* first large sizes */
    static const size_t large[] = {SMALL_MAX + 1, SMALL_MAX + PAGE, SMALL_MAX + PAGE + 1,
                                   200000, MiB - 1, MiB, MiB + 1, 3 * MiB + 17};
    for (size_t k = 0; k < ARRAY_LEN(large); k++) {
        void *p = ebb_malloc(large[k]);
        check_block(p, large[k], "malloc");
        EXPECT(ebb_usable_size(p) == round_up(large[k], PAGE),
               "malloc(%zu): usable %zu, expected %zu", large[k], ebb_usable_size(p),
               round_up(large[k], PAGE));
        ebb_free(p);
    }
}

/* A large block that reuses the mapping of a freed, bigger block may keep
 * it whole (no page is given back only to be faulted in again), but never
 * more than twice its page-rounded size; the whole usable size is writable. */
static void test_large_reuse_usable(void **state)
{
    (void)state;
    static const size_t pairs[][2] = {
        {3200000, 3187817}, {300000, 290000}, {MiB, MiB - 8192}, {200000, 140000},
        {4 * MiB, 3 * MiB}, {MiB + PAGE, MiB},
    };
    for (size_t k = 0; k < ARRAY_LEN(pairs); k++) {
        void *a = ebb_malloc(pairs[k][0]);
        assert_non_null(a);
        memset(a, 0x77, pairs[k][0]);
        ebb_free(a);
        void *b = ebb_malloc(pairs[k][1]);
        assert_non_null(b);
        size_t want = round_up(pairs[k][1], PAGE), got = ebb_usable_size(b);
        SOFT(got >= want && got <= 2 * want,
             "malloc(%zu), free, malloc(%zu): usable %zu, expected %zu to %zu (%s address)",
             pairs[k][0], pairs[k][1], got, want, 2 * want, addr(a) == addr(b) ? "same" : "new");
        memset(b, 0x55, got);
        ebb_free(b);
    }
    END_SOFT();
}

/* Every size 0..8192, then a sweep to 300000: exact usable size. */
static void test_class_sweep(void **state)
{
    (void)state;
    for (size_t n = 0; n <= 300000; n += (n < 8192 ? 1 : 97)) {
        void *p = ebb_malloc(n);
        EXPECT(p != NULL, "malloc(%zu) NULL", n);
        EXPECT(is_aligned(p, 16), "malloc(%zu) = %p misaligned", n, p);
        size_t u = ebb_usable_size(p);
        EXPECT(usable_ok(n, u), "malloc(%zu): usable %zu, expected %zu", n, u,
               expected_usable(n));
        /* touch both ends of the usable area */
        ((unsigned char *)p)[0] = 1;
        ((unsigned char *)p)[u - 1] = 2;
        ebb_free(p);
    }
}

/* Live blocks never overlap, are 16-aligned and keep their contents. */
static void test_no_overlap(void **state)
{
    (void)state;
    enum { N = 4000 };
    struct blk { uintptr_t a; size_t u; unsigned seed; } *b;
    void **ptrs = ebb_calloc(N, sizeof *ptrs);
    b = ebb_calloc(N, sizeof *b);
    assert_non_null(ptrs);
    assert_non_null(b);
    unsigned x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        size_t n = (x >> 8) % (i % 50 == 0 ? 300000 : 2048);
        ptrs[i] = ebb_malloc(n);
        check_block(ptrs[i], n, "malloc");
        b[i].a = addr(ptrs[i]);
        b[i].u = ebb_usable_size(ptrs[i]);
        b[i].seed = (unsigned)i;
        fill(ptrs[i], b[i].u, b[i].seed);
    }
    /* insertion sort by address on a copy (N is small enough) */
    for (size_t i = 1; i < N; i++) {
        struct blk t = b[i];
        size_t j = i;
        while (j > 0 && b[j - 1].a > t.a) {
            b[j] = b[j - 1];
            j--;
        }
        b[j] = t;
    }
    for (size_t i = 1; i < N; i++)
        EXPECT(b[i - 1].a + b[i - 1].u <= b[i].a,
               "blocks overlap: %#lx+%zu > %#lx", (unsigned long)b[i - 1].a, b[i - 1].u,
               (unsigned long)b[i].a);
    for (size_t i = 0; i < N; i++) {
        EXPECT(verify(ptrs[i], ebb_usable_size(ptrs[i]), (unsigned)i) == SIZE_MAX,
               "block %zu lost its contents", i);
        ebb_free(ptrs[i]);
    }
    ebb_free(ptrs);
    ebb_free(b);
}

static void test_malloc_huge_fails(void **state)
{
    (void)state;
    for (size_t k = 0; k < ARRAY_LEN(huge_sizes); k++) {
        errno = 0;
        void *p = ebb_malloc(huge_sizes[k]);
        int e = errno;
        if (p)
            ebb_free(p);
        SOFT(p == NULL && e == ENOMEM, "malloc(%#zx) = %p, errno %d", huge_sizes[k], p, e);
    }
    END_SOFT();
    /* the allocator still works afterwards */
    void *p = ebb_malloc(100);
    check_block(p, 100, "malloc");
    ebb_free(p);
}

/* ------------------------------------------------------------------------ */
/* calloc                                                                    */
/* ------------------------------------------------------------------------ */

static void test_calloc_overflow(void **state)
{
    (void)state;
    static const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {SIZE_MAX / 2 + 1, 2},
        {HALF, HALF},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2}, /* = PTRDIFF_MAX + 1, no overflow */
#if SIZE_MAX > 0xffffffffu
        {(size_t)1 << 23, (size_t)1 << 23}, /* 64 TiB, mmap refuses */
#else
        {(size_t)3 << 14, (size_t)1 << 16}, /* 3 GiB, no overflow */
#endif
        {3, SIZE_MAX / 3 + 1},
        {SIZE_MAX, 1},
        {1, SIZE_MAX},
        {65537, 65537 * (size_t)65537 * 65537},
    };
    for (size_t k = 0; k < ARRAY_LEN(pairs); k++) {
        errno = 0;
        void *p = ebb_calloc(pairs[k][0], pairs[k][1]);
        int e = errno;
        if (p)
            ebb_free(p);
        SOFT(p == NULL && e == ENOMEM, "calloc(%#zx, %#zx) = %p, errno %d", pairs[k][0],
             pairs[k][1], p, e);
    }
    END_SOFT();
}

static void test_calloc_zero_sizes(void **state)
{
    (void)state;
    void *a = ebb_calloc(0, 0), *b = ebb_calloc(0, 100), *c = ebb_calloc(100, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(addr(a) != addr(b) && addr(b) != addr(c) && addr(a) != addr(c));
    assert_int_equal(ebb_usable_size(a), 16);
    ebb_free(a);
    ebb_free(b);
    ebb_free(c);
}

static const size_t zero_sizes[] = {
    1,      15,     16,     17,     100,    255,   512,   513,    640,
    1000,   2048,   4095,   4096,   4097,   10000, 65536, 131072, 131073,
    200000, 1 << 20, (1 << 20) + 3, 3 << 20, 8 << 20,
};

/* calloc returns zeroed memory, including when it reuses dirty blocks. */
static void test_calloc_zeroed(void **state)
{
    (void)state;
    for (size_t k = 0; k < ARRAY_LEN(zero_sizes); k++) {
        size_t n = zero_sizes[k];
        for (int round = 0; round < 8; round++) {
            unsigned char *d = ebb_malloc(n);
            assert_non_null(d);
            memset(d, 0xAB, ebb_usable_size(d));
            ebb_free(d);
            unsigned char *z = (round & 1) ? ebb_calloc(1, n) : ebb_calloc(n, 1);
            EXPECT(z != NULL, "calloc(%zu) NULL", n);
            EXPECT(is_aligned(z, 16), "calloc(%zu) misaligned", n);
            EXPECT(ebb_usable_size(z) >= n, "calloc(%zu): usable %zu", n, ebb_usable_size(z));
            size_t bad = first_nonzero(z, n);
            EXPECT(bad == SIZE_MAX, "calloc(%zu, 1) round %d: byte %zu is %#x", n, round,
                   bad, bad == SIZE_MAX ? 0 : z[bad]);
            memset(z, 0xCD, ebb_usable_size(z));
            ebb_free(z);
        }
    }
}

/* Many dirty blocks of one class freed at once, then calloc'd back. */
static void test_calloc_zeroed_batch(void **state)
{
    (void)state;
    enum { N = 600 };
    static const size_t sizes[] = {16, 48, 112, 496, 768, 3584, 16384, 131072, 262144};
    void **v = ebb_calloc(N, sizeof *v);
    assert_non_null(v);
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k], cnt = n > SMALL_MAX ? 20 : N;
        for (size_t i = 0; i < cnt; i++) {
            v[i] = ebb_malloc(n);
            assert_non_null(v[i]);
            memset(v[i], 0xAB, ebb_usable_size(v[i]));
        }
        for (size_t i = 0; i < cnt; i++)
            ebb_free(v[i]);
        for (size_t i = 0; i < cnt; i++) {
            size_t count = n / 16, each = 16;
            unsigned char *z = ebb_calloc(count, each);
            assert_non_null(z);
            size_t bad = first_nonzero(z, n);
            EXPECT(bad == SIZE_MAX, "calloc(%zu, %zu) #%zu: byte %zu nonzero", count, each,
                   i, bad);
            v[i] = z;
        }
        for (size_t i = 0; i < cnt; i++)
            ebb_free(v[i]);
    }
    ebb_free(v);
}

/* ------------------------------------------------------------------------ */
/* realloc, reallocarray                                                     */
/* ------------------------------------------------------------------------ */

static void test_realloc_null_is_malloc(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 17, 100, 513, 1000, 131072, 131073, 200000};
    void *prev = NULL;
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        void *p = ebb_realloc(NULL, sizes[k]);
        check_block(p, sizes[k], "realloc(NULL)");
        EXPECT(usable_ok(sizes[k], ebb_usable_size(p)),
               "realloc(NULL, %zu): usable %zu", sizes[k], ebb_usable_size(p));
        EXPECT(addr(p) != addr(prev), "realloc(NULL, %zu) not unique", sizes[k]);
        ebb_free(prev);
        prev = p;
    }
    ebb_free(prev);
}

/* realloc(p, 0) frees p and returns NULL (glibc). */
static void test_realloc_zero_frees(void **state)
{
    (void)state;
    enum { N = 1000 };
    void **v = ebb_calloc(N, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < N; i++) {
        v[i] = ebb_malloc(64);
        assert_non_null(v[i]);
    }
    size_t before = small_live();
    for (size_t i = 0; i < N; i++)
        EXPECT(ebb_realloc(v[i], 0) == NULL, "realloc(small #%zu, 0) != NULL", i);
    size_t after = small_live();
    EXPECT(after + 64 * N <= before, "realloc(p,0) x%d: small live %zu -> %zu", N, before,
           after);

    size_t lb = stats().large_blocks;
    void *big = ebb_malloc(MiB);
    assert_non_null(big);
    assert_int_equal(stats().large_blocks, lb + 1);
    assert_null(ebb_realloc(big, 0));
    assert_int_equal(stats().large_blocks, lb);
    ebb_free(v);
}

/* Growing within the usable size keeps the block, for every class. */
static void test_realloc_grow_in_place(void **state)
{
    (void)state;
    build_class_table();
    size_t prev = 0;
    for (size_t i = 0; i < class_count; i++) {
        size_t c = class_table[i];
        void *p = ebb_malloc(prev + 1);
        assert_int_equal(ebb_usable_size(p), c);
        fill(p, prev + 1, 7);
        uintptr_t a = addr(p);
        for (size_t n = prev + 1; n <= c; n += (c - prev) / 4 ? (c - prev) / 4 : 1) {
            void *q = ebb_realloc(p, n);
            EXPECT(addr(q) == a, "realloc(%zu-byte class block, %zu) moved", c, n);
            p = q;
        }
        void *q = ebb_realloc(p, c);
        EXPECT(addr(q) == a, "realloc(block of %zu, %zu) moved", c, c);
        EXPECT(verify(q, prev + 1, 7) == SIZE_MAX, "class %zu: contents lost", c);
        ebb_free(q);
        prev = c;
    }
    /* large blocks: usable is the page-rounded size (or a reused mapping) */
    void *p = ebb_malloc(200000);
    size_t u = ebb_usable_size(p);
    assert_true(usable_ok(200000, u));
    fill(p, 200000, 3);
    uintptr_t a = addr(p);
    void *q = ebb_realloc(p, u);
    EXPECT(addr(q) == a, "realloc(large 200000, %zu) moved", u);
    assert_true(verify(q, 200000, 3) == SIZE_MAX);
    ebb_free(q);
}

/* Shrinking: in place iff class(new) > 3/4 of the current usable size. */
static void test_realloc_shrink_rule(void **state)
{
    (void)state;
    build_class_table();
    for (size_t i = 0; i < class_count; i++) {
        size_t u = class_table[i];
        size_t step = u <= 1024 ? 1 : u / 64;
        for (size_t n = 1; n < u; n += step) {
            void *p = ebb_malloc(u);
            assert_non_null(p);
            fill(p, u, (unsigned)n);
            uintptr_t a = addr(p);
            void *q = ebb_realloc(p, n);
            EXPECT(q != NULL, "realloc(%zu, %zu) NULL", u, n);
            size_t cn = expected_usable(n);
            int stays = 4 * cn > 3 * u;
            EXPECT((addr(q) == a) == stays, "realloc(block of %zu, %zu): %s, expected %s",
                   u, n, addr(q) == a ? "stayed" : "moved", stays ? "stay" : "move");
            EXPECT(verify(q, n, (unsigned)n) == SIZE_MAX, "realloc(%zu, %zu): contents lost",
                   u, n);
            if (!stays)
                EXPECT(ebb_usable_size(q) == cn, "realloc(%zu, %zu) moved to usable %zu", u,
                       n, ebb_usable_size(q));
            ebb_free(q);
        }
    }
    /* the examples from the specification */
    void *p = ebb_malloc(1024);
    uintptr_t a = addr(p);
    p = ebb_realloc(p, 900);
    assert_true(addr(p) == a);
    p = ebb_realloc(p, 769);
    assert_true(addr(p) == a);
    fill(p, 769, 9);
    p = ebb_realloc(p, 768);
    assert_true(addr(p) != a);
    assert_true(verify(p, 768, 9) == SIZE_MAX);
    ebb_free(p);
    p = ebb_malloc(1024);
    a = addr(p);
    fill(p, 100, 5);
    p = ebb_realloc(p, 100);
    assert_true(addr(p) != a);
    assert_int_equal(ebb_usable_size(p), 112);
    assert_true(verify(p, 100, 5) == SIZE_MAX);
    ebb_free(p);
}

/* Moves across classes, small -> large -> small, preserve contents. */
static void test_realloc_moves_preserve(void **state)
{
    (void)state;
    static const size_t path[] = {1,     16,     17,     500,    513,    3000,  131072,
                                  131073, 300000, 5000,   140000, 100,    1,     0x30000,
                                  2 * MiB, 64,    4096,   16};
    size_t cur = 5;
    unsigned char *p = ebb_malloc(cur);
    fill(p, cur, 1);
    for (size_t k = 0; k < ARRAY_LEN(path); k++) {
        size_t n = path[k];
        unsigned char *q = ebb_realloc(p, n);
        EXPECT(q != NULL, "realloc(%zu -> %zu) NULL", cur, n);
        size_t keep = cur < n ? cur : n;
        size_t bad = verify(q, keep, 1);
        EXPECT(bad == SIZE_MAX, "realloc(%zu -> %zu): byte %zu changed", cur, n, bad);
        check_block(q, n, "realloc");
        fill(q, n, 1);
        p = q;
        cur = n;
    }
    ebb_free(p);
}

/* Large blocks grow to tens of MiB and shrink back, contents preserved. */
static void test_realloc_large(void **state)
{
    (void)state;
    size_t cur = 150 * KiB;
    unsigned char *p = ebb_malloc(cur);
    assert_non_null(p);
    fill(p, cur, 77);
    size_t lb = stats().large_blocks;
    while (cur < 48 * MiB) {
        size_t n = cur + cur / 2 + 12345;
        unsigned char *q = ebb_realloc(p, n);
        EXPECT(q != NULL, "realloc(large %zu -> %zu) NULL", cur, n);
        size_t bad = verify(q, cur, 77);
        EXPECT(bad == SIZE_MAX, "realloc(%zu -> %zu): byte %zu changed", cur, n, bad);
        EXPECT(ebb_usable_size(q) >= n, "realloc(%zu -> %zu): usable %zu", cur, n,
               ebb_usable_size(q));
        EXPECT(is_aligned(q, 16), "realloc(%zu -> %zu) misaligned", cur, n);
        for (size_t i = cur; i < n; i++)
            q[i] = pattern_byte(i, 77);
        assert_int_equal(stats().large_blocks, lb);
        p = q;
        cur = n;
    }
    while (cur > 1000) {
        size_t n = cur / 3;
        unsigned char *q = ebb_realloc(p, n);
        EXPECT(q != NULL, "realloc(large %zu -> %zu) NULL", cur, n);
        size_t bad = verify(q, n, 77);
        EXPECT(bad == SIZE_MAX, "realloc(%zu -> %zu): byte %zu changed", cur, n, bad);
        EXPECT(ebb_usable_size(q) >= n, "realloc(%zu -> %zu): usable %zu", cur, n,
               ebb_usable_size(q));
        p = q;
        cur = n;
    }
    ebb_free(p);
    assert_int_equal(stats().large_blocks, lb - 1);
}

static void test_realloc_failure_keeps_block(void **state)
{
    (void)state;
    static const size_t sizes[] = {100, 700, 131072, 200000, 3 * MiB};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k];
        void *p = ebb_malloc(n);
        assert_non_null(p);
        size_t u = ebb_usable_size(p);
        fill(p, u, 0x5a);
        for (size_t h = 0; h < ARRAY_LEN(huge_sizes); h++) {
            errno = 0;
            void *q = ebb_realloc(p, huge_sizes[h]);
            int e = errno;
            SOFT(q == NULL && e == ENOMEM, "realloc(%zu-byte block, %#zx) = %p, errno %d", n,
                 huge_sizes[h], q, e);
            if (q) {
                /* it "succeeded": shrink it back and carry on */
                p = ebb_realloc(q, n);
                assert_non_null(p);
                u = ebb_usable_size(p);
                fill(p, u, 0x5a);
                continue;
            }
            SOFT(ebb_owns(p) == 1, "after failed realloc(%zu-byte block, %#zx): not owned", n,
                 huge_sizes[h]);
            SOFT(ebb_usable_size(p) == u,
                 "after failed realloc(%zu-byte block, %#zx): usable %zu != %zu", n,
                 huge_sizes[h], ebb_usable_size(p), u);
            size_t bad = verify(p, u, 0x5a);
            SOFT(bad == SIZE_MAX, "failed realloc(%zu-byte block, %#zx) changed byte %zu", n,
                 huge_sizes[h], bad);
        }
        /* still a valid block: realloc to a sane size works */
        void *q = ebb_realloc(p, n * 2);
        assert_non_null(q);
        assert_true(verify(q, n, 0x5a) == SIZE_MAX);
        ebb_free(q);
    }
    END_SOFT();
}

static void test_reallocarray(void **state)
{
    (void)state;
    /* NULL -> malloc */
    unsigned char *p = ebb_reallocarray(NULL, 10, 10);
    check_block(p, 100, "reallocarray(NULL)");
    assert_int_equal(ebb_usable_size(p), 112);
    fill(p, 100, 4);
    /* normal resize */
    p = ebb_reallocarray(p, 1000, 3);
    assert_non_null(p);
    assert_true(verify(p, 100, 4) == SIZE_MAX);
    assert_true(ebb_usable_size(p) >= 3000);
    fill(p, 3000, 4);
    /* overflow: NULL, ENOMEM, old block intact */
    static const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {HALF * 2, HALF * 2},
        {SIZE_MAX / 16 + 1, 16},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2},
#if SIZE_MAX > 0xffffffffu
        {(size_t)1 << 23, (size_t)1 << 23}, /* 64 TiB, mmap refuses */
#else
        {(size_t)3 << 14, (size_t)1 << 16}, /* 3 GiB, no overflow */
#endif
    };
    for (size_t k = 0; k < ARRAY_LEN(pairs); k++) {
        errno = 0;
        void *q = ebb_reallocarray(p, pairs[k][0], pairs[k][1]);
        int e = errno;
        SOFT(q == NULL && e == ENOMEM, "reallocarray(p, %#zx, %#zx) = %p, errno %d",
             pairs[k][0], pairs[k][1], q, e);
        if (q) {
            p = ebb_realloc(q, 3000);
            assert_non_null(p);
            fill(p, 3000, 4);
            continue;
        }
        SOFT(ebb_owns(p) == 1, "after failed reallocarray(p, %#zx, %#zx): not owned",
             pairs[k][0], pairs[k][1]);
        SOFT(verify(p, 3000, 4) == SIZE_MAX, "failed reallocarray(p, %#zx, %#zx) changed it",
             pairs[k][0], pairs[k][1]);
    }
    END_SOFT();
    /* overflow with NULL: nothing allocated */
    errno = 0;
    assert_null(ebb_reallocarray(NULL, SIZE_MAX, SIZE_MAX));
    assert_int_equal(errno, ENOMEM);
    /* reallocarray(p, 0, n) is realloc(p, 0): frees, returns NULL (glibc) */
    size_t lb = stats().large_blocks;
    void *big = ebb_reallocarray(NULL, 1024, 1024);
    assert_non_null(big);
    assert_int_equal(stats().large_blocks, lb + 1);
    assert_null(ebb_reallocarray(big, 0, 1024));
    assert_int_equal(stats().large_blocks, lb);
    ebb_free(p);
}

/* ------------------------------------------------------------------------ */
/* Aligned allocation                                                        */
/* ------------------------------------------------------------------------ */

#define MAX_ALIGN_LOG 22 /* 4 MiB: every power of two up to here */

static void aligned_sizes(size_t a, size_t out[6])
{
    out[0] = 0;
    out[1] = 1;
    out[2] = a - 1;
    out[3] = a;
    out[4] = a + 1;
    out[5] = 100000;
}

static void check_aligned(void *p, size_t a, size_t n, const char *what)
{
    EXPECT(p != NULL, "%s(%zu, %zu) NULL (errno %d)", what, a, n, errno);
    EXPECT(is_aligned(p, a), "%s(%zu, %zu) = %p misaligned", what, a, n, p);
    EXPECT(is_aligned(p, 16), "%s(%zu, %zu) = %p not 16-aligned", what, a, n, p);
    size_t u = ebb_usable_size(p);
    EXPECT(u >= n, "%s(%zu, %zu): usable %zu", what, a, n, u);
    EXPECT(ebb_owns(p) == 1, "%s(%zu, %zu) = %p not owned", what, a, n, p);
    memset(p, 0xA5, u);
    EXPECT(((unsigned char *)p)[0] == 0xA5 && ((unsigned char *)p)[u - 1] == 0xA5,
           "%s(%zu, %zu): usable area not writable", what, a, n);
}

/* Every alignment up to 4 MiB, with the sizes around it, through fn. */
static void each_alignment(void *(*fn)(size_t, size_t), const char *name)
{
    for (int lg = 0; lg <= MAX_ALIGN_LOG; lg++) {
        size_t a = (size_t)1 << lg, sz[6];
        aligned_sizes(a, sz);
        for (int k = 0; k < 6; k++) {
            errno = 0;
            void *p = fn(a, sz[k]);
            check_aligned(p, a, sz[k], name);
            ebb_free(p);
        }
    }
}

static void test_aligned_alloc_all(void **state)
{
    (void)state;
    each_alignment(ebb_aligned_alloc, "aligned_alloc");
}

static void test_memalign_all(void **state)
{
    (void)state;
    each_alignment(ebb_memalign, "memalign");
}

static void test_posix_memalign_all(void **state)
{
    (void)state;
    for (int lg = 3; lg <= MAX_ALIGN_LOG; lg++) {
        size_t a = (size_t)1 << lg, sz[6];
        aligned_sizes(a, sz);
        for (int k = 0; k < 6; k++) {
            void *p = NULL;
            int rc = ebb_posix_memalign(&p, a, sz[k]);
            EXPECT(rc == 0, "posix_memalign(%zu, %zu) = %d", a, sz[k], rc);
            check_aligned(p, a, sz[k], "posix_memalign");
            ebb_free(p);
        }
    }
}

/* Alignments beyond 4 MiB: still honoured. */
static void test_alignment_beyond_4mib(void **state)
{
    (void)state;
    for (int lg = MAX_ALIGN_LOG + 1; lg <= 26; lg++) {
        size_t a = (size_t)1 << lg;
        void *p = ebb_aligned_alloc(a, 100000);
        check_aligned(p, a, 100000, "aligned_alloc");
        ebb_free(p);
        p = ebb_memalign(a, 1);
        check_aligned(p, a, 1, "memalign");
        ebb_free(p);
        p = NULL;
        assert_int_equal(ebb_posix_memalign(&p, a, a + 1), 0);
        check_aligned(p, a, a + 1, "posix_memalign");
        ebb_free(p);
    }
}

/* Many aligned blocks live at once: distinct, aligned, intact. */
static void test_aligned_many_live(void **state)
{
    (void)state;
    enum { N = 400 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)1 << (4 + i % 10), n = (size_t)(i * 37 % 3000);
        v[i] = ebb_aligned_alloc(a, n);
        check_aligned(v[i], a, n, "aligned_alloc");
        fill(v[i], n, (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i * 37 % 3000);
        EXPECT(verify(v[i], n, (unsigned)i) == SIZE_MAX, "aligned block %d overwritten", i);
        if (i % 2)
            ebb_free_aligned_sized(v[i], (size_t)1 << (4 + i % 10), n);
        else
            ebb_free(v[i]);
    }
}

/* realloc of an aligned block: usable size covers the new size, contents kept. */
static void test_realloc_aligned_block(void **state)
{
    (void)state;
    static const size_t al[] = {64, 4096, 65536, 1 << 20, 1 << 21};
    static const size_t path[] = {5000, 56723, 131072, 300000, 10, 70000};
    for (size_t k = 0; k < ARRAY_LEN(al); k++) {
        size_t cur = 417;
        unsigned char *p = ebb_memalign(al[k], cur);
        check_aligned(p, al[k], cur, "memalign");
        fill(p, cur, 3);
        for (size_t i = 0; i < ARRAY_LEN(path); i++) {
            size_t n = path[i];
            unsigned char *q = ebb_realloc(p, n);
            EXPECT(q != NULL, "realloc(memalign(%zu, ...) block of %zu, %zu) NULL", al[k], cur,
                   n);
            EXPECT(ebb_usable_size(q) >= n,
                   "realloc(memalign(%zu, ...) block %p of %zu, %zu) = %p with usable %zu",
                   al[k], (void *)p, cur, n, (void *)q, ebb_usable_size(q));
            size_t keep = cur < n ? cur : n;
            EXPECT(verify(q, keep, 3) == SIZE_MAX,
                   "realloc(memalign(%zu) block, %zu -> %zu): contents lost", al[k], cur, n);
            fill(q, n, 3);
            p = q;
            cur = n;
        }
        ebb_free(p);
    }
    /* the same from aligned_alloc and posix_memalign */
    for (size_t k = 0; k < ARRAY_LEN(al); k++) {
        void *p = ebb_aligned_alloc(al[k], 1000);
        check_aligned(p, al[k], 1000, "aligned_alloc");
        fill(p, 1000, 4);
        void *q = ebb_realloc(p, 100000);
        assert_non_null(q);
        EXPECT(ebb_usable_size(q) >= 100000, "realloc(aligned_alloc(%zu, 1000), 100000): "
               "usable %zu", al[k], ebb_usable_size(q));
        assert_true(verify(q, 1000, 4) == SIZE_MAX);
        fill(q, 100000, 4);
        ebb_free(q);
        p = NULL;
        assert_int_equal(ebb_posix_memalign(&p, al[k], 100), 0);
        fill(p, 100, 5);
        q = ebb_realloc(p, 20000);
        assert_non_null(q);
        EXPECT(ebb_usable_size(q) >= 20000, "realloc(posix_memalign(%zu, 100), 20000): "
               "usable %zu", al[k], ebb_usable_size(q));
        assert_true(verify(q, 100, 5) == SIZE_MAX);
        fill(q, 20000, 5);
        ebb_free(q);
    }
}

static const size_t bad_aligns[] = {0, 3, 5, 6, 12, 24, 48, 100, 1000, 4097, 6144,
                                    (1 << 20) + 16, SIZE_MAX, SIZE_MAX / 2};

static void test_posix_memalign_einval(void **state)
{
    (void)state;
    /* not multiples of sizeof(void *), or not powers of two (4 and 24 on
     * 64-bit, 2 and 12 on 32-bit, where 4 is a valid alignment) */
    static const size_t extra[] = {1, 2, sizeof(void *) / 2, sizeof(void *) * 3};
    void *sentinel = (void *)(uintptr_t)0x1234560;
    for (size_t k = 0; k < ARRAY_LEN(bad_aligns) + ARRAY_LEN(extra); k++) {
        size_t a = k < ARRAY_LEN(bad_aligns) ? bad_aligns[k] : extra[k - ARRAY_LEN(bad_aligns)];
        void *out = sentinel;
        int rc = ebb_posix_memalign(&out, a, 64);
        EXPECT(rc == EINVAL, "posix_memalign(align %#zx) = %d, expected EINVAL", a, rc);
        EXPECT(out == sentinel, "posix_memalign(align %#zx) touched *out (%p)", a, out);
        if (rc == 0 && out != sentinel)
            ebb_free(out);
    }
}

static void test_posix_memalign_enomem(void **state)
{
    (void)state;
    static const size_t al[] = {8, 16, 64, 4096, 1 << 20};
    for (size_t k = 0; k < ARRAY_LEN(al); k++)
        for (size_t h = 0; h < ARRAY_LEN(huge_sizes); h++) {
            void *out = NULL;
            int rc = ebb_posix_memalign(&out, al[k], huge_sizes[h]);
            if (rc == 0)
                ebb_free(out);
            SOFT(rc == ENOMEM, "posix_memalign(%zu, %#zx) = %d, expected ENOMEM", al[k],
                 huge_sizes[h], rc);
        }
    END_SOFT();
}

static void test_aligned_alloc_einval(void **state)
{
    (void)state;
    for (size_t k = 0; k < ARRAY_LEN(bad_aligns); k++) {
        if (bad_aligns[k] == 0)
            continue; /* alignment 0: glibc versions differ */
        errno = 0;
        void *p = ebb_aligned_alloc(bad_aligns[k], 64);
        EXPECT(p == NULL, "aligned_alloc(%#zx, 64) = %p", bad_aligns[k], p);
        EXPECT(errno == EINVAL, "aligned_alloc(%#zx, 64): errno %d", bad_aligns[k], errno);
        if (p)
            ebb_free(p);
    }
}

static void test_aligned_huge_enomem(void **state)
{
    (void)state;
    static const size_t al[] = {16, 64, 4096, 1 << 22};
    for (size_t k = 0; k < ARRAY_LEN(al); k++)
        for (size_t h = 0; h < ARRAY_LEN(huge_sizes); h++) {
            errno = 0;
            void *p = ebb_aligned_alloc(al[k], huge_sizes[h]);
            int e = errno;
            if (p)
                ebb_free(p);
            SOFT(p == NULL && e == ENOMEM, "aligned_alloc(%zu, %#zx) = %p errno %d", al[k],
                 huge_sizes[h], p, e);
            errno = 0;
            p = ebb_memalign(al[k], huge_sizes[h]);
            e = errno;
            if (p)
                ebb_free(p);
            SOFT(p == NULL && e == ENOMEM, "memalign(%zu, %#zx) = %p errno %d", al[k],
                 huge_sizes[h], p, e);
        }
    END_SOFT();
}

/* memalign rounds a non-power-of-two alignment up to the next power of two. */
static void test_memalign_rounds_alignment(void **state)
{
    (void)state;
    static const size_t al[] = {3, 5, 24, 48, 100, 1000, 3000, 4097, 6144, 100000, 3000000};
    for (size_t k = 0; k < ARRAY_LEN(al); k++) {
        size_t p2 = 1;
        while (p2 < al[k])
            p2 <<= 1;
        for (size_t n = 1; n <= 5000; n += 2499) {
            void *p = ebb_memalign(al[k], n);
            EXPECT(p != NULL, "memalign(%zu, %zu) NULL", al[k], n);
            EXPECT(is_aligned(p, p2), "memalign(%zu, %zu) = %p not %zu-aligned", al[k], n, p,
                   p2);
            check_aligned(p, p2, n, "memalign");
            ebb_free(p);
        }
    }
}

static void test_valloc(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 100000, 131073, MiB + 1};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        void *p = ebb_valloc(sizes[k]);
        check_aligned(p, PAGE, sizes[k], "valloc");
        ebb_free(p);
    }
    for (size_t h = 0; h < ARRAY_LEN(huge_sizes); h++) {
        errno = 0;
        void *p = ebb_valloc(huge_sizes[h]);
        int e = errno;
        if (p)
            ebb_free(p);
        SOFT(p == NULL && e == ENOMEM, "valloc(%#zx) = %p errno %d", huge_sizes[h], p, e);
    }
    END_SOFT();
}

static void test_pvalloc(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 8191, 100000, 131073, MiB + 1};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        size_t want = sizes[k] ? round_up(sizes[k], PAGE) : PAGE;
        void *p = ebb_pvalloc(sizes[k]);
        check_aligned(p, PAGE, want, "pvalloc");
        EXPECT(ebb_usable_size(p) >= want, "pvalloc(%zu): usable %zu < %zu", sizes[k],
               ebb_usable_size(p), want);
        memset(p, 0x3c, want);
        ebb_free(p);
    }
    for (size_t h = 0; h < ARRAY_LEN(huge_sizes); h++) {
        errno = 0;
        void *p = ebb_pvalloc(huge_sizes[h]);
        int e = errno;
        if (p)
            ebb_free(p);
        SOFT(p == NULL && e == ENOMEM, "pvalloc(%#zx) = %p errno %d", huge_sizes[h], p, e);
    }
    END_SOFT();
}

/* ------------------------------------------------------------------------ */
/* free, usable_size, owns                                                   */
/* ------------------------------------------------------------------------ */

static void test_usable_size(void **state)
{
    (void)state;
    assert_int_equal(ebb_usable_size(NULL), 0);
    for (size_t n = 1; n < 3 * MiB; n = n * 3 + 1) {
        void *p = ebb_malloc(n);
        check_block(p, n, "malloc");
        ebb_free(p);
    }
}

static void test_free_null_and_errno(void **state)
{
    (void)state;
    errno = 1234;
    ebb_free(NULL);
    assert_int_equal(errno, 1234);
    ebb_free_sized(NULL, 0);
    ebb_free_aligned_sized(NULL, 64, 0);
    assert_int_equal(errno, 1234);

    static const size_t sizes[] = {1, 100, 1000, 131072, 131073, MiB, 16 * MiB};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        void *p = ebb_malloc(sizes[k]);
        assert_non_null(p);
        memset(p, 1, sizes[k]);
        errno = 1234;
        ebb_free(p);
        EXPECT(errno == 1234, "free of %zu-byte block changed errno to %d", sizes[k], errno);

        p = ebb_malloc(sizes[k]);
        assert_non_null(p);
        errno = 1234;
        ebb_free_sized(p, sizes[k]);
        EXPECT(errno == 1234, "free_sized of %zu changed errno to %d", sizes[k], errno);

        p = ebb_aligned_alloc(4096, sizes[k]);
        assert_non_null(p);
        errno = 1234;
        ebb_free_aligned_sized(p, 4096, sizes[k]);
        EXPECT(errno == 1234, "free_aligned_sized of %zu changed errno to %d", sizes[k], errno);
    }
    /* many frees in a row, enough to flush any thread cache */
    enum { N = 5000 };
    void **v = ebb_malloc(N * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++)
        v[i] = ebb_malloc((size_t)(i % 700));
    for (int i = 0; i < N; i++) {
        errno = 1234;
        ebb_free(v[i]);
        EXPECT(errno == 1234, "free #%d changed errno to %d", i, errno);
    }
    ebb_free(v);
}

static void test_owns(void **state)
{
    (void)state;
    assert_int_equal(ebb_owns(NULL), 0);
    void *s = ebb_malloc(64), *l = ebb_malloc(MiB), *c = ebb_calloc(3, 7);
    void *a = ebb_aligned_alloc(1 << 16, 5000), *al = ebb_aligned_alloc(1 << 21, 300000);
    void *v = ebb_valloc(10), *pv = ebb_pvalloc(10), *r = ebb_realloc(NULL, 1000);
    void *all[] = {s, l, c, a, al, v, pv, r};
    for (size_t k = 0; k < ARRAY_LEN(all); k++)
        EXPECT(ebb_owns(all[k]) == 1, "block #%zu %p not owned", k, all[k]);
    /* interior pointers are not block starts */
    EXPECT(ebb_owns((char *)s + 16) == 0, "owns(small + 16) != 0 (%p)", s);
    EXPECT(ebb_owns((char *)s + 1) == 0, "owns(small + 1) != 0 (%p)", s);
    EXPECT(ebb_owns((char *)l + 16) == 0, "owns(large + 16) != 0 (%p)", l);
    EXPECT(ebb_owns((char *)l + PAGE) == 0, "owns(large + 4096) != 0 (%p)", l);
    EXPECT(ebb_owns((char *)l + MiB - 16) == 0, "owns(large + MiB - 16) != 0 (%p)", l);
    EXPECT(ebb_owns((char *)a + 16) == 0, "owns(aligned + 16) != 0 (%p)", a);
    r = ebb_realloc(r, 100000);
    assert_int_equal(ebb_owns(r), 1);
    for (size_t k = 0; k < ARRAY_LEN(all) - 1; k++)
        ebb_free(all[k]);
    ebb_free(r);
}

static void test_free_sized(void **state)
{
    (void)state;
    enum { N = 1000 };
    void **v = ebb_malloc(N * sizeof *v);
    assert_non_null(v);
    size_t before = small_live();
    for (int i = 0; i < N; i++)
        v[i] = ebb_malloc(64);
    size_t mid = small_live();
    EXPECT(mid >= before + 64 * N, "small live %zu -> %zu after %d x 64", before, mid, N);
    for (int i = 0; i < N; i++)
        ebb_free_sized(v[i], 64);
    size_t after = small_live();
    EXPECT(after + 64 * N <= mid, "free_sized: small live %zu -> %zu", mid, after);

    for (int i = 0; i < N; i++)
        v[i] = ebb_aligned_alloc(128, 64);
    mid = small_live();
    for (int i = 0; i < N; i++)
        ebb_free_aligned_sized(v[i], 128, 64);
    after = small_live();
    EXPECT(after + 64 * N <= mid, "free_aligned_sized: small live %zu -> %zu", mid, after);

    size_t lb = stats().large_blocks;
    void *l1 = ebb_malloc(500000), *l2 = ebb_aligned_alloc(1 << 20, 500000);
    assert_int_equal(stats().large_blocks, lb + 2);
    ebb_free_sized(l1, 500000);
    ebb_free_aligned_sized(l2, 1 << 20, 500000);
    assert_int_equal(stats().large_blocks, lb);
    ebb_free(v);
}

/* ------------------------------------------------------------------------ */
/* stats, collect, version                                                   */
/* ------------------------------------------------------------------------ */

static void check_stats_sum(const char *when)
{
    ebb_stats_t s = stats();
    size_t sum = s.mapped_meta + s.mapped_pools + s.mapped_free_slots + s.mapped_large +
                 s.mapped_large_cached;
    EXPECT(s.mapped == sum, "%s: mapped %zu != sum of categories %zu (meta %zu pools %zu "
           "free_slots %zu large %zu large_cached %zu)", when, s.mapped, sum, s.mapped_meta,
           s.mapped_pools, s.mapped_free_slots, s.mapped_large, s.mapped_large_cached);
    EXPECT(s.peak_mapped >= s.mapped, "%s: peak %zu < mapped %zu", when, s.peak_mapped,
           s.mapped);
    EXPECT(s.small_cached <= s.small_used, "%s: small_cached %zu > small_used %zu", when,
           s.small_cached, s.small_used);
    EXPECT(s.large_used <= s.mapped_large, "%s: large_used %zu > mapped_large %zu", when,
           s.large_used, s.mapped_large);
}

static void test_stats(void **state)
{
    (void)state;
    check_stats_sum("start");
    /* small_used counts blocks in the thread cache too: empty the cache so
     * that the 1000 blocks below must come from pools. */
    ebb_collect(1);
    check_stats_sum("after first collect");
    ebb_stats_t s0 = stats();
    size_t live0 = s0.small_used - s0.small_cached;
    enum { N = 1000, L = 7 };
    void **v = ebb_malloc(N * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++)
        v[i] = ebb_malloc(64);
    ebb_stats_t s1 = stats();
    EXPECT(s1.small_used >= s0.small_used + 64 * N, "small_used %zu -> %zu", s0.small_used,
           s1.small_used);
    EXPECT(s1.small_used - s1.small_cached >= live0 + 64 * N,
           "small_used - small_cached %zu -> %zu", live0, s1.small_used - s1.small_cached);
    EXPECT(s1.mapped > 0 && s1.mapped_pools > 0, "mapped %zu pools %zu", s1.mapped,
           s1.mapped_pools);
    check_stats_sum("after small");

    void *l[L];
    for (int i = 0; i < L; i++)
        l[i] = ebb_malloc((size_t)(i + 1) * 300000);
    ebb_stats_t s2 = stats();
    EXPECT(s2.large_blocks == s1.large_blocks + L, "large_blocks %zu -> %zu", s1.large_blocks,
           s2.large_blocks);
    size_t want = 0;
    for (int i = 0; i < L; i++)
        want += round_up((size_t)(i + 1) * 300000, PAGE);
    EXPECT(s2.large_used >= s1.large_used + want, "large_used %zu -> %zu (+%zu wanted)",
           s1.large_used, s2.large_used, want);
    EXPECT(s2.mapped >= s2.large_used, "mapped %zu < large_used %zu", s2.mapped, s2.large_used);
    check_stats_sum("after large");

    for (int i = 0; i < L; i++)
        ebb_free(l[i]);
    for (int i = 0; i < N; i++)
        ebb_free(v[i]);
    ebb_free(v);
    ebb_stats_t s3 = stats();
    assert_int_equal(s3.large_blocks, s0.large_blocks);
    check_stats_sum("after free");
    ebb_collect(1);
    check_stats_sum("after collect");
    ebb_stats_t s4 = stats();
    EXPECT(s4.mapped <= s3.mapped, "collect(1) grew mapped %zu -> %zu", s3.mapped, s4.mapped);
    EXPECT(s4.mapped_large_cached == 0, "collect(1) left %zu cached large bytes",
           s4.mapped_large_cached);
    EXPECT(s4.small_cached == 0, "collect(1) left %zu bytes in this thread's cache",
           s4.small_cached);
    assert_int_equal(s4.foreign_frees, s0.foreign_frees);
    assert_int_equal(s4.errors, s0.errors);
}

static void test_collect_keeps_live(void **state)
{
    (void)state;
    enum { N = 3000 };
    void **v = ebb_malloc(N * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i % 3 == 0 ? i * 97 % 200000 : i % 1000);
        v[i] = ebb_malloc(n);
        assert_non_null(v[i]);
        fill(v[i], n, (unsigned)i);
    }
    for (int i = 0; i < N; i += 2)
        ebb_free(v[i]);
    ebb_collect(0);
    assert_int_equal(ebb_check(), 0);
    ebb_collect(1);
    assert_int_equal(ebb_check(), 0);
    for (int i = 1; i < N; i += 2) {
        size_t n = (size_t)(i % 3 == 0 ? i * 97 % 200000 : i % 1000);
        EXPECT(verify(v[i], n, (unsigned)i) == SIZE_MAX, "block %d changed by collect", i);
        EXPECT(ebb_owns(v[i]) == 1, "block %d lost by collect", i);
        ebb_free(v[i]);
    }
    ebb_free(v);
    /* and the allocator works after a full collect */
    void *p = ebb_malloc(77);
    check_block(p, 77, "malloc");
    ebb_free(p);
    p = ebb_malloc(5 * MiB);
    check_block(p, 5 * MiB, "malloc");
    ebb_free(p);
}

static void test_version(void **state)
{
    (void)state;
    const char *v = ebb_version();
    assert_non_null(v);
    assert_string_equal(v, EBB_VERSION_STRING);
}

/* ------------------------------------------------------------------------ */


int main(void)
{
    /* Several tests count small blocks exactly; a sampled block is served
     * as a large one (test_sample covers sampled blocks' behaviour). */
    ebb_set_sample_rate(0);
    const struct CMUnitTest tests[] = {
        T(test_malloc_zero_unique),
        T(test_malloc_smallest),
        T(test_class_edges),
        T(test_class_sweep),
        T(test_large_reuse_usable),
        T(test_no_overlap),
        T(test_malloc_huge_fails),
        T(test_calloc_overflow),
        T(test_calloc_zero_sizes),
        T(test_calloc_zeroed),
        T(test_calloc_zeroed_batch),
        T(test_realloc_null_is_malloc),
        T(test_realloc_zero_frees),
        T(test_realloc_grow_in_place),
        T(test_realloc_shrink_rule),
        T(test_realloc_moves_preserve),
        T(test_realloc_large),
        T(test_realloc_failure_keeps_block),
        T(test_reallocarray),
        T(test_aligned_alloc_all),
        T(test_memalign_all),
        T(test_posix_memalign_all),
        T(test_alignment_beyond_4mib),
        T(test_aligned_many_live),
        T(test_realloc_aligned_block),
        T(test_posix_memalign_einval),
        T(test_posix_memalign_enomem),
        T(test_aligned_alloc_einval),
        T(test_aligned_huge_enomem),
        T(test_memalign_rounds_alignment),
        T(test_valloc),
        T(test_pvalloc),
        T(test_usable_size),
        T(test_free_null_and_errno),
        T(test_owns),
        T(test_free_sized),
        T(test_stats),
        T(test_collect_keeps_live),
        T(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
