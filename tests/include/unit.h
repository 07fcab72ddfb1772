/* Shared by the white-box unit tests: the library's internals, cmocka,
 * EXPECT and SOFT (test.h), and a teardown that insists the heap is
 * consistent after every test. */
#ifndef EBB_UNIT_H
#define EBB_UNIT_H
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"
#include "test.h"

static inline int unit_teardown_check(void **state)
{
    (void)state;
    assert_int_equal(ebb_check(), 0);
    return 0;
}

/* The library stores taken blocks downwards, lowest address on top (what a
 * thread cache pops first); the tests read them in address order: out[0]
 * is the lowest. */
static inline unsigned unit_pool_take(ebb__pool_t *p, void **out, unsigned want)
{
    void *tmp[want ? want : 1];
    unsigned got = ebb__pool_take(p, tmp + want, want);
    for (unsigned i = 0; i < got; i++)
        out[i] = tmp[want - 1 - i];
    return got;
}

static inline unsigned unit_heap_alloc(ebb__heap_t *h, unsigned cls, void **out, unsigned want)
{
    void *tmp[want ? want : 1];
    unsigned got = ebb__heap_alloc(h, cls, tmp + want, want, NULL);
    for (unsigned i = 0; i < got; i++)
        out[i] = tmp[want - 1 - i];
    return got;
}

/* Give block idx of pool p back, as a thread cache's flush does (the pool's
 * bin lock held, or the pool private to the test). */
static inline void unit_pool_put(ebb__pool_t *p, uint32_t idx)
{
    void *blk = ebb__pool_start(p) + (size_t)idx * ebb__classes[p->cls].size;
    assert_int_equal(ebb__pool_put_run(p, &blk, 1), 1);
}

/* Keep the background purger from acting while a test inspects exact cache
 * and pool contents: a delay no test outlives, and a poke stamped now, so
 * no thread is asked to flush its cache in the middle of a test (a poke
 * due at start-up once emptied a cache test_tcache was counting, in CI). */
#define UNIT_QUIET_DELAY 1000000L /* ms */
static inline void unit_quiet_purger(void)
{
    ebb__ensure_init();
    ebb__opt.purge_delay = UNIT_QUIET_DELAY;
    atomic_store(&ebb__purge_poked_at, ebb__os_now_ms());
}

/* Unit tests count exact bytes per layer; the heap profiler would add its
 * own, at random: a sampled block is served as a large one, and the first
 * sample maps the site table (about 110 KiB of metadata, which once landed
 * inside test_committed_follows_dirty_pages' window, 10 runs in 40).  The
 * profiler has its tests in tests/api/test_sample.c. */
__attribute__((constructor)) static void unit_no_sampling(void)
{
    ebb_set_sample_rate(0);
}
#endif
