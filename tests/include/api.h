/* Shared by the API tests: sizes, EXPECT and SOFT (test.h), and a
 * teardown that insists the heap is consistent after every test. */
#ifndef EBB_API_TEST_H
#define EBB_API_TEST_H

#include <stddef.h>

#include "ebb.h"
#include "test.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define PAGE ((size_t)4096)

/* After every test: the heap must be consistent. */
static inline int teardown_check(void **state)
{
    (void)state;
    int faults = ebb_check();
    if (faults != 0)
        print_error("ebb_check() = %d after the test\n", faults);
    assert_int_equal(faults, 0);
    return 0;
}

#define T(f) cmocka_unit_test_teardown(f, teardown_check)

/* main() for a file of tests that need no child process and no group
 * set-up. */
#define API_TEST_MAIN(group, ...) int main(void) { return RUN_GROUP(group, __VA_ARGS__); }

#endif
