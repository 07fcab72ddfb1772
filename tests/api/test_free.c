/*
 * test_free.c -- ebb_free and its sized forms, ebb_usable_size, ebb_owns:
 * what is freed is gone from the counts, errno is left alone, and only a
 * block's start is owned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "conformance.h"

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

API_TEST_MAIN("free, usable size, owns",
              T(test_usable_size), T(test_free_null_and_errno), T(test_owns), T(test_free_sized))
