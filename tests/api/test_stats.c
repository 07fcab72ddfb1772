/*
 * test_stats.c -- ebb_stats adds up at every step, ebb_collect empties the
 * caches without touching live blocks, ebb_version.
 */
#define _GNU_SOURCE
#include "conformance.h"

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

API_TEST_MAIN("statistics, collect, version",
              T(test_stats), T(test_collect_keeps_live), T(test_version))
