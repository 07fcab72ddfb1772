/*
 * test_realloc.c -- ebb_realloc and ebb_reallocarray: NULL and 0, when the
 * block stays and when it moves, contents kept across classes, and a failure
 * that leaves the block as it was.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "conformance.h"

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
    size_t prev = 0;
    FOR_EACH_CLASS(c) {
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
    FOR_EACH_CLASS(u) {
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

/* One step of test_realloc_large: the block of cur bytes (pattern 77)
 * reallocated to n keeps the bytes both sizes have and has room for n. */
static unsigned char *realloc_large_to(unsigned char *p, size_t cur, size_t n)
{
    unsigned char *q = ebb_realloc(p, n);
    EXPECT(q != NULL, "realloc(large %zu -> %zu) NULL", cur, n);
    size_t bad = verify(q, cur < n ? cur : n, 77);
    EXPECT(bad == SIZE_MAX, "realloc(%zu -> %zu): byte %zu changed", cur, n, bad);
    EXPECT(ebb_usable_size(q) >= n, "realloc(%zu -> %zu): usable %zu", cur, n,
           ebb_usable_size(q));
    return q;
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
        unsigned char *q = realloc_large_to(p, cur, n);
        EXPECT(is_aligned(q, 16), "realloc(%zu -> %zu) misaligned", cur, n);
        for (size_t i = cur; i < n; i++)
            q[i] = pattern_byte(i, 77);
        assert_int_equal(stats().large_blocks, lb);
        p = q;
        cur = n;
    }
    while (cur > 1000) {
        size_t n = cur / 3;
        p = realloc_large_to(p, cur, n);
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

API_TEST_MAIN("realloc and reallocarray",
              T(test_realloc_null_is_malloc), T(test_realloc_zero_frees),
              T(test_realloc_grow_in_place), T(test_realloc_shrink_rule),
              T(test_realloc_moves_preserve), T(test_realloc_large),
              T(test_realloc_failure_keeps_block), T(test_reallocarray))
