/*
 * test_limit.c -- the memory limit through the public API: refusal at the
 * limit (small and large requests, realloc growth), recovery after frees,
 * the pressure callbacks (soft once per episode, hard on refusal, never
 * recursive, able to rescue the request), the soft level's percentage,
 * where the limit comes from (ebb_limit_info, ebb_set_limit_auto),
 * ebb_last_failure, and the two
 * helpers runtimes use beside it: ebb_manages and ebb_class_stats.
 *
 * The limit is set relative to what is committed when a test starts, so
 * the tests do not depend on what earlier tests left behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "ebb.h"
#include "api.h"

static size_t committed(void)
{
    ebb_stats_t s;
    ebb_stats(&s);
    return s.committed;
}

/* Start each test clean: no limit, nothing purgeable, no callbacks left. */
static int setup(void **state)
{
    (void)state;
    ebb_set_limit(0);
    ebb_collect(1);
    ebb_last_failure(NULL, 1);
    return 0;
}

static int teardown(void **state)
{
    ebb_set_limit(0);
    return teardown_check(state);
}

#define MAXB 4096
static void *blocks[MAXB];

/* Allocate `size` blocks until the limit refuses one; returns how many. */
static size_t fill(size_t size)
{
    size_t n = 0;
    while (n < MAXB) {
        void *p = ebb_malloc(size);
        if (p == NULL)
            break;
        memset(p, 0xab, size);
        blocks[n++] = p;
    }
    return n;
}

static void free_all(size_t n)
{
    for (size_t i = 0; i < n; i++)
        ebb_free(blocks[i]);
}

static void test_small_refused_at_limit_then_recovers(void **state)
{
    (void)state;
    size_t limit = committed() + 8 * MiB;
    ebb_set_limit(limit);
    assert_int_equal(ebb_get_limit(), limit);
    errno = 0;
    size_t n = fill(4 * KiB);
    EXPECT(n > 0 && n < MAXB, "%zu blocks of 4 KiB under an 8 MiB margin", n);
    EXPECT(errno == ENOMEM, "errno %d after the refusal", errno);
    EXPECT(n * 4 * KiB <= 8 * MiB, "%zu KiB given under an 8 MiB margin", n * 4);
    EXPECT(n * 4 * KiB >= 6 * MiB, "only %zu KiB given under an 8 MiB margin", n * 4);
    EXPECT(committed() <= limit, "committed %zu above the limit %zu", committed(), limit);
    ebb_failure_t f;
    assert_int_equal(ebb_last_failure(&f, 0), EBB_FAIL_LIMIT);
    assert_int_equal(f.request, 4 * KiB);
    assert_int_equal(f.limit, limit);
    EXPECT(f.committed <= limit, "failure recorded committed %zu", f.committed);
    /* Frees make room again: the same request succeeds. */
    free_all(n / 2);
    ebb_collect(0);
    void *p = ebb_malloc(4 * KiB);
    EXPECT(p != NULL, "no block after freeing half (committed %zu, limit %zu)", committed(), limit);
    ebb_free(p);
    for (size_t i = n / 2; i < n; i++)
        ebb_free(blocks[i]);
    ebb_last_failure(NULL, 1);
    assert_int_equal(ebb_last_failure(NULL, 0), EBB_FAIL_NONE);
}

static void test_emergency_reserve(void **state)
{
    (void)state;
    size_t limit = committed() + 64 * MiB;
    ebb_set_limit(limit);
    ebb_limit_info_t info;
    ebb_limit_info(&info);
    EXPECT(info.reserve == limit / 32 || info.reserve == 4 * MiB, "reserve %zu of %zu",
           info.reserve, limit);
    /* Refused at the limit less the reserve.  Pool pages purged under
     * pressure and touched again are not admitted one by one (limit.c), so
     * committed may pass an admission level by a few pages. */
    const size_t pages = 64 * KiB;
    size_t n = fill(16 * KiB);
    EXPECT(n > 0 && n < MAXB, "%zu blocks", n);
    size_t at_refusal = committed();
    EXPECT(at_refusal <= limit - info.reserve + pages, "committed %zu, limit %zu, reserve %zu",
           at_refusal, limit, info.reserve);
    EXPECT(at_refusal + info.reserve + MiB > limit, "refused early: %zu of %zu", at_refusal, limit);
    /* After the refusal the reserve serves what handles it... */
    void *handling[64];
    for (int i = 0; i < 64; i++) {
        handling[i] = ebb_malloc(4 * KiB);
        EXPECT(handling[i] != NULL, "block %d of the failure's handling refused", i);
        memset(handling[i], 1, 4 * KiB);
    }
    /* ...up to the limit itself, never past it. */
    size_t m = 0;
    void *more[1024];
    while (m < 1024 && (more[m] = ebb_malloc(16 * KiB)) != NULL)
        memset(more[m++], 2, 16 * KiB);
    EXPECT(m < 1024 && committed() <= limit + pages && committed() > limit - info.reserve,
           "%zu more blocks, committed %zu, limit %zu", m, committed(), limit);
    for (size_t i = 0; i < m; i++)
        ebb_free(more[i]);
    for (int i = 0; i < 64; i++)
        ebb_free(handling[i]);
    /* Back well below the limit, the reserve closes: refusals start below
     * it again. */
    free_all(n);
    ebb_collect(0);
    void *probe = ebb_malloc(16 * KiB); /* an admission that sees the drop */
    ebb_free(probe);
    n = fill(16 * KiB);
    EXPECT(committed() <= limit - info.reserve + pages, "reserve still open: committed %zu",
           committed());
    free_all(n);
    ebb_last_failure(NULL, 1);
}

static void test_large_and_realloc_refused(void **state)
{
    (void)state;
    /* A freed large block stays cached; growing it into a bigger request
     * is growth too (this once slipped past the limit). */
    void *cached = ebb_malloc(512 * KiB);
    assert_non_null(cached);
    ebb_free(cached);
    ebb_set_limit(committed() + 16 * MiB);
    void *big = ebb_malloc(32 * MiB);
    EXPECT(big == NULL && errno == ENOMEM, "32 MiB under a 16 MiB margin: %p", big);
    void *ok = ebb_malloc(4 * MiB);
    assert_non_null(ok);
    memset(ok, 1, 4 * MiB);
    void *grown = ebb_realloc(ok, 64 * MiB);
    EXPECT(grown == NULL && errno == ENOMEM, "realloc to 64 MiB: %p", grown);
    /* The block is untouched by the failed growth. */
    assert_int_equal(((unsigned char *)ok)[4 * MiB - 1], 1);
    void *z = ebb_calloc(1, 64 * MiB);
    EXPECT(z == NULL, "calloc of 64 MiB under the limit: %p", z);
    ebb_free(ok);
    ebb_set_limit(0);
    big = ebb_malloc(32 * MiB);
    EXPECT(big != NULL, "32 MiB once the limit is gone");
    ebb_free(big);
}

static int soft_calls, hard_calls, depth, max_depth;
static void *reserve;

static void on_pressure(void *arg, int level, size_t request, size_t now, size_t limit)
{
    (void)arg;
    (void)request;
    (void)now;
    (void)limit;
    if (++depth > max_depth)
        max_depth = depth;
    if (level == EBB_PRESSURE_SOFT)
        soft_calls++;
    else if (level == EBB_PRESSURE_HARD)
        hard_calls++;
    /* A callback may allocate: far over the limit, refused, and never
     * calls back again on this thread. */
    void *p = ebb_malloc(256 * MiB);
    assert_null(p);
    if (reserve) { /* give back a reserve: the refused request is retried */
        ebb_free(reserve);
        reserve = NULL;
    }
    depth--;
}

static void test_callbacks_soft_once_hard_rescues(void **state)
{
    (void)state;
    soft_calls = hard_calls = max_depth = 0;
    assert_int_equal(ebb_on_pressure(on_pressure, &soft_calls), 0);
    size_t limit = committed() + 16 * MiB;
    ebb_set_limit(limit);
    /* Past the soft level (90%) with large blocks of 1 MiB: one episode. */
    void *b[24];
    size_t n = 0;
    while (n < 24 && (b[n] = ebb_malloc(MiB)) != NULL)
        n++;
    EXPECT(n < 24, "24 MiB under a 16 MiB margin");
    EXPECT(soft_calls == 1, "soft callbacks %d (want 1 per episode)", soft_calls);
    EXPECT(hard_calls >= 1, "refused, but hard callbacks %d", hard_calls);
    EXPECT(max_depth == 1, "callbacks nested %d deep", max_depth);
    /* Leave the episode, come back: soft runs again. */
    for (size_t i = 0; i < n; i++)
        ebb_free(b[i]);
    ebb_collect(0);
    void *probe = ebb_malloc(MiB); /* an admission below the soft level ends it */
    ebb_free(probe);
    int before = soft_calls;
    n = 0;
    while (n < 15 && (b[n] = ebb_malloc(MiB)) != NULL)
        n++;
    EXPECT(soft_calls == before + 1, "second episode: soft callbacks %d -> %d", before, soft_calls);
    for (size_t i = 0; i < n; i++)
        ebb_free(b[i]);
    ebb_collect(0);
    /* A callback that frees a reserve rescues the request that hit the
     * limit: it succeeds on the retry. */
    reserve = ebb_malloc(8 * MiB);
    assert_non_null(reserve);
    memset(reserve, 2, 8 * MiB);
    void *first = ebb_malloc(6 * MiB);
    assert_non_null(first);
    int hard_before = hard_calls;
    void *rescued = ebb_malloc(6 * MiB);
    EXPECT(rescued != NULL, "the request was not rescued by the callback's free");
    EXPECT(hard_calls == hard_before + 1, "hard callbacks %d -> %d", hard_before, hard_calls);
    assert_null(reserve);
    ebb_free(first);
    ebb_free(rescued);
    assert_int_equal(ebb_on_pressure_remove(on_pressure, &soft_calls), 0);
    assert_int_equal(ebb_on_pressure_remove(on_pressure, &soft_calls), -1);
}

static void noop(void *arg, int level, size_t request, size_t now, size_t limit)
{
    (void)arg, (void)level, (void)request, (void)now, (void)limit;
}

/* The soft level follows ebb_set_limit_soft: at 50% of a 16 MiB margin the
 * episode opens within the first 9 MiB, at 100% only at the limit. */
static void test_soft_percent(void **state)
{
    (void)state;
    soft_calls = hard_calls = max_depth = 0;
    assert_int_equal(ebb_on_pressure(on_pressure, &soft_calls), 0);
    assert_int_equal(ebb_set_limit_soft(0), -1);
    assert_int_equal(ebb_set_limit_soft(101), -1);
    assert_int_equal(ebb_set_limit_soft(50), 0);
    size_t base = committed();
    ebb_set_limit(2 * (base + 8 * MiB)); /* soft level: base + 8 MiB */
    ebb_limit_info_t info;
    ebb_limit_info(&info);
    EXPECT(info.soft_percent == 50 && info.soft == base + 8 * MiB, "soft %zu (%u%%)", info.soft,
           info.soft_percent);
    void *b[10];
    size_t n = 0;
    while (n < 10 && soft_calls == 0 && (b[n] = ebb_malloc(MiB)) != NULL)
        n++;
    EXPECT(soft_calls == 1 && n <= 10, "soft callbacks %d after %zu MiB", soft_calls, n);
    for (size_t i = 0; i < n; i++)
        ebb_free(b[i]);
    ebb_collect(0);
    soft_calls = 0;
    assert_int_equal(ebb_set_limit_soft(100), 0);
    ebb_set_limit(committed() + 16 * MiB);
    void *c[24];
    n = 0;
    while (n < 24 && (c[n] = ebb_malloc(MiB)) != NULL)
        n++;
    EXPECT(n < 24 && soft_calls == 0 && hard_calls >= 1,
           "at 100%%: %zu MiB, soft %d, hard %d", n, soft_calls, hard_calls);
    for (size_t i = 0; i < n; i++)
        ebb_free(c[i]);
    assert_int_equal(ebb_set_limit_soft(90), 0);
    assert_int_equal(ebb_on_pressure_remove(on_pressure, &soft_calls), 0);
}

/* Where the limit comes from: ebb_set_limit, none, and an auto limit
 * derived from this machine (physical memory at least is always known). */
static void test_limit_info_sources(void **state)
{
    (void)state;
    ebb_limit_info_t info;
    ebb_set_limit(512 * MiB);
    assert_int_equal(ebb_limit_info(&info), 0);
    EXPECT(info.limit == 512 * MiB && info.from == EBB_LIMIT_FROM_API &&
           !strcmp(info.source, "ebb_set_limit") && info.percent == 0 && info.effective == 0,
           "after ebb_set_limit: %zu from %d \"%s\"", info.limit, info.from, info.source);
    EXPECT(info.soft == (size_t)((uint64_t)512 * MiB * 90 / 100), "soft %zu", info.soft);
    ebb_set_limit(0);
    ebb_limit_info(&info);
    EXPECT(info.limit == 0 && info.from == EBB_LIMIT_FROM_NONE && !strcmp(info.source, "none"),
           "after ebb_set_limit(0): %zu from %d \"%s\"", info.limit, info.from, info.source);

    errno = 0;
    assert_int_equal(ebb_set_limit_auto(0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(ebb_set_limit_auto(101), -1);
    ebb_limit_info_t found;
    assert_int_equal(ebb_limit_auto(&found), 0);
    EXPECT(found.from >= EBB_LIMIT_FROM_CGROUP2 && found.effective > found.headroom &&
           found.limit == found.effective - found.headroom && found.percent == 100 &&
           found.headroom >= 16 * MiB && found.source[0] != '\0',
           "ebb_limit_auto: %zu = %zu - %zu from %d \"%s\"", found.limit, found.effective,
           found.headroom, found.from, found.source);
    ebb_limit_info(&info);
    EXPECT(info.limit == 0, "ebb_limit_auto set a limit: %zu", info.limit);
    assert_int_equal(ebb_set_limit_auto(50), 0);
    ebb_limit_info(&info);
    EXPECT(info.percent == 50 && info.from == found.from && !strcmp(info.source, found.source) &&
           info.limit >= found.limit / 2 - 64 * MiB && info.limit <= found.limit / 2 + 64 * MiB,
           "ebb_set_limit_auto(50): %zu from %d \"%s\" (auto: %zu)", info.limit, info.from,
           info.source, found.limit);
    EXPECT(ebb_get_limit() == info.limit, "ebb_get_limit %zu", ebb_get_limit());
}

static void test_callback_table_bounds(void **state)
{
    (void)state;
    int i;
    errno = 0;
    assert_int_equal(ebb_on_pressure(NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
    static int args[64];
    for (i = 0; i < 64 && ebb_on_pressure(noop, &args[i]) == 0; i++) {
    }
    EXPECT(i >= 2 && i < 64, "%d callbacks registered", i);
    assert_int_equal(errno, ENOSPC);
    while (i-- > 0)
        assert_int_equal(ebb_on_pressure_remove(noop, &args[i]), 0);
}

static void test_no_limit_no_failure_record(void **state)
{
    (void)state;
    void *p = ebb_malloc((size_t)PTRDIFF_MAX + 1);
    assert_null(p);
    ebb_failure_t f;
    assert_int_equal(ebb_last_failure(&f, 1), EBB_FAIL_NO_MEMORY);
    assert_int_equal(f.limit, 0);
    assert_int_equal(ebb_last_failure(NULL, 0), EBB_FAIL_NONE);
}

static void test_manages(void **state)
{
    (void)state;
    void *small = ebb_malloc(40), *large = ebb_malloc(2 * MiB);
    int local;
    void *foreign = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(foreign != MAP_FAILED);
    assert_int_equal(ebb_manages(small), 1);
    assert_int_equal(ebb_manages((char *)small + 8), 1); /* inside ebb memory */
    assert_int_equal(ebb_manages(large), 1);
    assert_int_equal(ebb_manages(NULL), 0);
    assert_int_equal(ebb_manages(&local), 0);
    assert_int_equal(ebb_manages(foreign), 0);
    munmap(foreign, PAGE);
    ebb_free(small);
    ebb_free(large);
}

static void test_free_if_managed(void **state)
{
    (void)state;
    ebb_stats_t before, after;
    void *small = ebb_malloc(40), *large = ebb_malloc(2 * MiB);
    int local;
    void *foreign = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(foreign != MAP_FAILED);
    ebb_stats(&before);
    errno = 1234;
    assert_int_equal(ebb_free_if_managed(foreign), 0); /* left alone, not diagnosed */
    assert_int_equal(ebb_free_if_managed(&local), 0);
    assert_int_equal(ebb_free_if_managed(NULL), 1);
    ebb_stats(&after);
    assert_int_equal(after.foreign_frees, before.foreign_frees);
    assert_int_equal(after.errors, before.errors);
    assert_int_equal(ebb_free_if_managed(large), 1);
    ebb_stats(&after);
    assert_int_equal(after.large_blocks, before.large_blocks - 1);
    assert_int_equal(ebb_owns(small), 1);
    assert_int_equal(ebb_free_if_managed(small), 1);
    assert_int_equal(errno, 1234);
    /* The freed small block is ebb's again: the next request of its class
     * takes it from the thread cache. */
    assert_ptr_equal(ebb_malloc(40), small);
    ebb_free(small);
    *(volatile char *)foreign = 1; /* still mapped and ours to use */
    munmap(foreign, PAGE);
}

static void test_class_stats(void **state)
{
    (void)state;
    size_t n = ebb_class_stats(NULL, 0);
    assert_true(n >= 32);
    ebb_class_stats_t *c = calloc(n, sizeof *c); /* libc's: ebb_* only here */
    assert_non_null(c);
    void *p[100];
    ebb_class_stats(c, n);
    size_t before = c[2].used;
    assert_int_equal(c[0].size, 16);
    for (size_t i = 1; i < n; i++)
        assert_true(c[i].size > c[i - 1].size);
    for (int i = 0; i < 100; i++)
        p[i] = ebb_malloc(48); /* class 2 */
    ebb_class_stats(c, n);
    assert_int_equal(c[2].size, 48);
    EXPECT(c[2].used >= before + 100, "class 2 used %zu, was %zu", c[2].used, before);
    EXPECT(c[2].pools >= 1 && c[2].pool_bytes >= 64 * KiB, "class 2: %zu pools, %zu bytes",
           c[2].pools, c[2].pool_bytes);
    for (int i = 0; i < 100; i++)
        ebb_free(p[i]);
    free(c);
}

#define TL(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TL(test_small_refused_at_limit_then_recovers),
        TL(test_emergency_reserve),
        TL(test_large_and_realloc_refused),
        TL(test_callbacks_soft_once_hard_rescues),
        TL(test_soft_percent),
        TL(test_limit_info_sources),
        TL(test_callback_table_bounds),
        TL(test_no_limit_no_failure_record),
        TL(test_manages),
        TL(test_free_if_managed),
        TL(test_class_stats),
    };
    return cmocka_run_group_tests_name("limit", tests, NULL, NULL);
}
