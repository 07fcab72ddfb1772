/*
 * test_calloc.c -- ebb_calloc: overflowing products fail, zero sizes give
 * blocks, and memory comes back zeroed even where a dirty block is reused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "conformance.h"

static size_t first_nonzero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return i;
    return SIZE_MAX;
}

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

API_TEST_MAIN("calloc",
              T(test_calloc_overflow), T(test_calloc_zero_sizes), T(test_calloc_zeroed),
              T(test_calloc_zeroed_batch))
