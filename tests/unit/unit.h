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
#endif
