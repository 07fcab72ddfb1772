/*
 * test_malloc.c -- ebb_malloc: the usable size of every size class and its
 * edges, large blocks, blocks that never overlap, and sizes that cannot be
 * had.  The rules are in tests/include/conformance.h and classes.h.
 */
#define _GNU_SOURCE
#include <string.h>

#include "conformance.h"

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
    FOR_EACH_CLASS(s) {
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
    expect_huge_sizes_fail(ebb_malloc, "malloc");
    /* the allocator still works afterwards */
    void *p = ebb_malloc(100);
    check_block(p, 100, "malloc");
    ebb_free(p);
}

API_TEST_MAIN("malloc and size classes",
              T(test_malloc_zero_unique), T(test_malloc_smallest), T(test_class_edges),
              T(test_class_sweep), T(test_large_reuse_usable), T(test_no_overlap),
              T(test_malloc_huge_fails))
