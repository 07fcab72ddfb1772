/* Shared by the API tests: sizes, and EXPECT, which fails the current
 * cmocka test with a message naming the input. */
#ifndef EBB_API_TEST_H
#define EBB_API_TEST_H

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define PAGE ((size_t)4096)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            print_error("EXPECT(%s) failed: ", #cond);                        \
            print_error(__VA_ARGS__);                                         \
            print_error("\n");                                                \
            fail();                                                           \
        }                                                                     \
    } while (0)

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

#endif
