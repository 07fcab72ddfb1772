/* Large blocks: own mappings, the descriptor table, the bounded cache of
 * freed mappings, and mremap-based realloc. */
#include "unit.h"

#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#define MiB ((size_t)1 << 20)

static void test_large_block_lives_outside_arenas(void **state)
{
    (void)state;
    void *p = ebb_malloc(200 * 1024);
    assert_non_null(p);
    assert_null(ebb__arena_of((uintptr_t)p));
    assert_int_equal(ebb_usable_size(p), 200 * 1024);
    assert_int_equal((uintptr_t)p % ebb__os_page_size(), 0);
    ebb_free(p);
}

static void test_freed_mapping_is_reused(void **state)
{
    (void)state;
    char *p = ebb_malloc(3 * MiB);
    memset(p, 0x77, 3 * MiB);
    ebb_free(p);
    char *q = ebb_malloc(3 * MiB - 100);
    assert_ptr_equal(q, p); /* same mapping, no new pages */
    char *z = NULL;
    ebb_free(q);
    z = ebb_calloc(1, 3 * MiB);
    assert_ptr_equal(z, p);
    for (size_t i = 0; i < 3 * MiB; i += 4093)
        assert_int_equal(z[i], 0); /* calloc zeroes a reused mapping */
    ebb_free(z);
}

static void test_cache_is_bounded(void **state)
{
    (void)state;
    ebb_collect(0);
    size_t saved = ebb__opt.large_cache;
    ebb__opt.large_cache = 4 * MiB;
    void *p[6];
    for (int i = 0; i < 6; i++)
        p[i] = ebb_malloc(MiB);
    for (int i = 0; i < 6; i++)
        ebb_free(p[i]);
    ebb_stats_t s;
    ebb_stats(&s);
    assert_true(s.mapped_large_cached <= 4 * MiB);
    assert_true(s.mapped_large_cached >= 3 * MiB);
    void *big = ebb_malloc(8 * MiB);
    ebb_free(big); /* bigger than the whole cache: unmapped at once */
    ebb_stats(&s);
    assert_true(s.mapped_large_cached <= 4 * MiB);
    ebb__opt.large_cache = saved;
    ebb_collect(0);
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 0);
}

/* With many big blocks live, the cache's budget grows past the option to
 * half the live large bytes: blocks freed one by one while 40 MiB or more
 * stay live are kept beyond the 4 MiB floor, which alone would keep one. */
static void test_cache_grows_with_live_blocks(void **state)
{
    (void)state;
    ebb_collect(0);
    size_t saved = ebb__opt.large_cache;
    ebb__opt.large_cache = 4 * MiB;
    enum { N = 16 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = ebb_malloc(4 * MiB);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < 6; i++) /* 40 MiB stay live: a budget of 20 MiB */
        ebb_free(p[i]);
    ebb_stats_t s;
    ebb_stats(&s);
    size_t kept = s.mapped_large_cached;
    for (int i = 6; i < N; i++)
        ebb_free(p[i]);
    ebb__opt.large_cache = saved;
    ebb_collect(0);
    /* the floor alone keeps at most 4 MiB (one block); neighbours merge
     * only up to half the budget, so not all six stay */
    assert_true(kept > 8 * MiB && kept <= 24 * MiB + 64 * 1024);
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 0);
}

static void test_table_grows(void **state)
{
    (void)state;
    enum { N = 1500 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = ebb_malloc(132 * 1024 + (size_t)i);
        assert_non_null(p[i]);
        *(int *)p[i] = i;
    }
    ebb_stats_t s;
    ebb_stats(&s);
    assert_true(s.large_blocks >= N);
    assert_int_equal(ebb_check(), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(*(int *)p[i], i);
        assert_true(ebb_usable_size(p[i]) >= 132 * 1024 + (size_t)i);
        ebb_free(p[i]);
    }
    ebb_stats(&s);
    assert_int_equal(s.large_blocks, 0);
}

/* A table grown for thousands of blocks gives its mapping back once the
 * blocks are gone (at the next purge pass), and still finds the blocks
 * that remain, which a shrink rehashes. */
static void test_table_shrinks_when_emptied(void **state)
{
    (void)state;
    enum { N = 1500, KEEP = 3 };
    static void *p[N];
    ebb_stats_t s0, s1, s2;
    int surplus = 0;
    ebb__large_purge(ebb__os_now_ms(), 100000, &surplus); /* a table grown before goes */
    ebb_stats(&s0);
    for (int i = 0; i < N; i++) {
        p[i] = ebb_malloc(132 * 1024 + (size_t)i);
        assert_non_null(p[i]);
        *(int *)p[i] = i;
    }
    ebb_stats(&s1);
    size_t table = 2048 * 3 * sizeof(void *); /* 1500 entries grow it to 2048 of 24 bytes */
    assert_true(s1.mapped_meta >= s0.mapped_meta + table);
    for (int i = KEEP; i < N; i++)
        ebb_free(p[i]);
    uint32_t now = ebb__os_now_ms();
    ebb__large_purge(now, 100000, &surplus); /* the cache keeps what it keeps */
    ebb_stats(&s2);
    assert_int_equal(s2.large_blocks, KEEP);
    assert_true(s2.mapped_meta + table <= s1.mapped_meta);
    assert_int_equal(ebb_check(), 0);
    for (int i = 0; i < KEEP; i++) {
        assert_int_equal(*(int *)p[i], i);
        assert_true(ebb_usable_size(p[i]) >= 132 * 1024 + (size_t)i); /* found */
        ebb_free(p[i]);
    }
    ebb_stats(&s2);
    assert_int_equal(s2.large_blocks, 0);
}

static void test_realloc_grows_by_remap(void **state)
{
    (void)state;
    size_t n = 2 * MiB;
    unsigned *p = ebb_malloc(n);
    for (size_t i = 0; i < n / sizeof *p; i++)
        p[i] = (unsigned)i * 2654435761u;
    unsigned *q = ebb_realloc(p, 64 * MiB);
    assert_non_null(q);
    for (size_t i = 0; i < n / sizeof *q; i++)
        assert_int_equal(q[i], (unsigned)i * 2654435761u);
    unsigned *r = ebb_realloc(q, MiB); /* shrinks in place */
    assert_ptr_equal(r, q);
    assert_int_equal(ebb_usable_size(r), MiB);
    ebb_free(r);
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* A large block shrunk by realloc keeps its tail's pages in the cache, and
 * grows back into them in place: no page is faulted in again.  With the
 * cache off, the tail goes back to the OS at once. */
static void test_shrunk_tail_is_cached_and_regrown(void **state)
{
    (void)state;
    ebb_collect(0);
    size_t saved = ebb__opt.large_cache;
    ebb__opt.large_cache = 64 * MiB; /* 32-bit keeps no cache by default */
    char *p = ebb_malloc(8 * MiB);
    assert_non_null(p);
    memset(p, 0x5a, 8 * MiB);
    char *r = ebb_realloc(p, 2 * MiB);
    assert_ptr_equal(r, p);
    assert_int_equal(ebb_usable_size(r), 2 * MiB);
    ebb_stats_t s;
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 6 * MiB);
    long before = minor_faults();
    char *q = ebb_realloc(r, 6 * MiB);
    assert_ptr_equal(q, p); /* absorbed the tail in place */
    memset(q + 2 * MiB, 0x33, 4 * MiB);
    long faults = minor_faults() - before;
    assert_true(faults < 64); /* 1024 pages refaulted if the tail was given back */
    assert_int_equal(q[2 * MiB - 1], 0x5a);
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 2 * MiB);
    ebb_free(q);
    ebb_collect(0);
    ebb__opt.large_cache = 0;
    p = ebb_malloc(8 * MiB);
    assert_non_null(p);
    r = ebb_realloc(p, 2 * MiB);
    assert_ptr_equal(r, p);
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 0);
    assert_int_equal(s.mapped_large, 2 * MiB);
    ebb_free(r);
    ebb__opt.large_cache = saved;
    ebb_collect(0);
}

/* Linux 6.17 and later move a range that spans several mappings with one
 * mremap (a block filled from the cache is such a range); before, ebb
 * copies it when it grows. */
static int kernel_moves_several_mappings(void)
{
    struct utsname u;
    int major = 0, minor = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
        return 0;
    return major > 6 || (major == 6 && minor >= 17);
}

/* A block no cached mapping is big enough for is mapped fresh, and the
 * smaller cached mappings are moved into it by the kernel, largest first:
 * their pages serve again without a fault, and nothing waits in the cache
 * while fresh memory comes in (issue 15).  A block made of such pieces
 * spans several kernel mappings: calloc still zeroes it, and realloc still
 * grows it with its bytes intact (mremap cannot, so it copies). */
static void test_fresh_block_takes_smaller_cached_mappings(void **state)
{
    (void)state;
    ebb_collect(0);
    size_t saved = ebb__opt.large_cache;
    ebb__opt.large_cache = 64 * MiB; /* 32-bit keeps no cache by default */
    static const size_t sizes[3] = { 4 * MiB, 3 * MiB, 2 * MiB };
    char *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = ebb_malloc(sizes[i]);
        assert_non_null(b[i]);
        memset(b[i], 0x40 + i, sizes[i]);
    }
    /* b[1] stays live between the others (mappings come one below the
     * other), so the cache cannot merge two freed neighbours into one entry:
     * one that spans two kernel mappings, which kernels before 6.17 will not
     * move */
    ebb_free(b[0]);
    ebb_free(b[2]);
    ebb_stats_t s;
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 6 * MiB);
    long before = minor_faults();
    char *p = ebb_malloc(7 * MiB);
    assert_non_null(p);
    assert_int_equal(p[0], 0x40); /* the largest cached mapping's pages first */
    assert_int_equal(p[4 * MiB - 1], 0x40);
    assert_int_equal(p[4 * MiB], 0x42);
    assert_int_equal(p[6 * MiB - 1], 0x42);
    assert_int_equal(p[6 * MiB], 0); /* the fresh rest */
    memset(p, 0x11, 7 * MiB);
    long faults = minor_faults() - before;
    assert_true(faults < 256 + 64); /* 1792 if all 7 MiB were fresh */
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 0);
    assert_int_equal(s.mapped_large, 10 * MiB);
    assert_int_equal(ebb_check(), 0);
    ebb_free(p);
    ebb_free(b[1]);

    char *z = ebb_calloc(1, 12 * MiB); /* takes the cached mappings, pieced ones too */
    assert_non_null(z);
    for (size_t i = 0; i < 12 * MiB; i += 4093)
        assert_int_equal(z[i], 0);
    memset(z, 0x5c, 12 * MiB);
    before = minor_faults();
    char *g = ebb_realloc(z, 40 * MiB);
    assert_non_null(g);
    if (kernel_moves_several_mappings())
        assert_true(minor_faults() - before < 64); /* moved, not copied into 3072 fresh pages */
    for (size_t i = 0; i < 12 * MiB; i += 4093)
        assert_int_equal(g[i], 0x5c);
    assert_int_equal(g[12 * MiB - 1], 0x5c);
    memset(g, 0x22, 40 * MiB);
    ebb_free(g);
    ebb__opt.large_cache = saved;
    ebb_collect(0);
}

/* A cached mapping the OS refuses to move stays cached, and the block it
 * was to fill is whole and fresh there.  The refusal is injected: the
 * countdown lets the block's own mapping through, then fails the move. */
static void test_refused_move_keeps_the_mapping(void **state)
{
    (void)state;
    ebb_collect(0);
    size_t saved = ebb__opt.large_cache;
    ebb__opt.large_cache = 64 * MiB;
    int refused = 0;
    for (long k = 1; k <= 4 && !refused; k++) {
        char *b = ebb_malloc(2 * MiB);
        assert_non_null(b);
        memset(b, 0x61, 2 * MiB);
        ebb_free(b);
        atomic_store(&ebb__os_fail_after, k);
        char *p = ebb_malloc(3 * MiB);
        atomic_store(&ebb__os_fail_after, -1);
        ebb_stats_t s;
        ebb_stats(&s);
        if (p != NULL && s.mapped_large_cached == 2 * MiB) {
            refused = 1;
            for (size_t i = 0; i < 3 * MiB; i += 4093)
                assert_int_equal(p[i], 0);
            memset(p, 0x12, 3 * MiB);
        }
        assert_int_equal(ebb_check(), 0);
        ebb_free(p);
        ebb_collect(0);
    }
    assert_true(refused);
    ebb__opt.large_cache = saved;
}

static void test_foreign_pointer_not_in_table(void **state)
{
    (void)state;
    int local;
    uint32_t tag = 7;
    assert_int_equal(ebb__large_free(&local, &tag), 0);
    assert_int_equal(ebb__large_usable(&local), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_large_block_lives_outside_arenas, unit_teardown_check),
        cmocka_unit_test_teardown(test_freed_mapping_is_reused, unit_teardown_check),
        cmocka_unit_test_teardown(test_cache_is_bounded, unit_teardown_check),
        cmocka_unit_test_teardown(test_cache_grows_with_live_blocks, unit_teardown_check),
        cmocka_unit_test_teardown(test_table_grows, unit_teardown_check),
        cmocka_unit_test_teardown(test_table_shrinks_when_emptied, unit_teardown_check),
        cmocka_unit_test_teardown(test_realloc_grows_by_remap, unit_teardown_check),
        cmocka_unit_test_teardown(test_shrunk_tail_is_cached_and_regrown, unit_teardown_check),
        cmocka_unit_test_teardown(test_fresh_block_takes_smaller_cached_mappings, unit_teardown_check),
        cmocka_unit_test_teardown(test_refused_move_keeps_the_mapping, unit_teardown_check),
        cmocka_unit_test_teardown(test_foreign_pointer_not_in_table, unit_teardown_check),
    };
    return cmocka_run_group_tests_name("large", tests, NULL, NULL);
}
