/*
 * test_aligned.c -- ebb_aligned_alloc, ebb_memalign, ebb_posix_memalign,
 * ebb_valloc and ebb_pvalloc: every alignment, realloc of an aligned block,
 * and EINVAL or ENOMEM where glibc gives them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "conformance.h"

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

/* p, made by made_by(al, had) and holding had bytes of pattern seed,
 * reallocated to n (more): room for n, the bytes kept; then freed. */
static void realloc_grows(void *p, const char *made_by, size_t al, size_t had, size_t n,
                          unsigned seed)
{
    void *q = ebb_realloc(p, n);
    assert_non_null(q);
    EXPECT(ebb_usable_size(q) >= n, "realloc(%s(%zu, %zu), %zu): usable %zu", made_by, al, had,
           n, ebb_usable_size(q));
    assert_true(verify(q, had, seed) == SIZE_MAX);
    fill(q, n, seed);
    ebb_free(q);
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
        realloc_grows(p, "aligned_alloc", al[k], 1000, 100000, 4);
        p = NULL;
        assert_int_equal(ebb_posix_memalign(&p, al[k], 100), 0);
        fill(p, 100, 5);
        realloc_grows(p, "posix_memalign", al[k], 100, 20000, 5);
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
    expect_huge_sizes_fail(ebb_valloc, "valloc");
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
    expect_huge_sizes_fail(ebb_pvalloc, "pvalloc");
}

API_TEST_MAIN("aligned allocation",
              T(test_aligned_alloc_all), T(test_memalign_all), T(test_posix_memalign_all),
              T(test_alignment_beyond_4mib), T(test_aligned_many_live),
              T(test_realloc_aligned_block), T(test_posix_memalign_einval),
              T(test_posix_memalign_enomem), T(test_aligned_alloc_einval),
              T(test_aligned_huge_enomem), T(test_memalign_rounds_alignment), T(test_valloc),
              T(test_pvalloc))
