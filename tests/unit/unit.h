/* Shared by the white-box unit tests: the library's internals, cmocka, and
 * a teardown that insists the heap is consistent after every test. */
#ifndef EBB_UNIT_H
#define EBB_UNIT_H
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

static inline int unit_teardown_check(void **state)
{
    (void)state;
    assert_int_equal(ebb_check(), 0);
    return 0;
}

/* Keep the background purger from acting while a test inspects exact cache
 * and pool contents: a delay no test outlives, and a poke stamped now, so
 * no thread is asked to flush its cache in the middle of a test (a poke
 * due at start-up once emptied a cache test_tcache was counting, in CI). */
#define UNIT_QUIET_DELAY 1000000L /* ms */
static inline void unit_quiet_purger(void)
{
    ebb__ensure_init();
    ebb__g.opt.purge_delay = UNIT_QUIET_DELAY;
    atomic_store(&ebb__g.poked_at, ebb__os_now_ms());
}
#endif
