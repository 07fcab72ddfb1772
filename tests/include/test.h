/* Shared by every cmocka test, API and unit: EXPECT and SOFT, checks that
 * fail the current test with a message naming the input (cmocka's own
 * asserts say only which values differed, not for which of a loop's
 * inputs), SKIP_TEST, a skip that says why, and RUN_GROUP for main(). */
#ifndef EBB_TEST_H
#define EBB_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The failed condition, then the caller's account of the input. */
__attribute__((format(printf, 2, 3))) static inline void check_failed(const char *cond,
                                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_error("check (%s) failed: ", cond);
    vprint_error(fmt, ap);
    print_error("\n");
    va_end(ap);
}

#define CHECK_OR_(cond, on_failure, ...)                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            check_failed(#cond, __VA_ARGS__);                                 \
            on_failure;                                                       \
        }                                                                     \
    } while (0)

/* Fail the test now. */
#define EXPECT(cond, ...) CHECK_OR_(cond, fail(), __VA_ARGS__)

/* Record a failure without leaving the test, so that a loop over many inputs
 * reports every failing one (and frees what it got before the next try);
 * end the test with END_SOFT().  The count is a function's, not a file's
 * variable: every file without a SOFT would be warned of an unused one. */
static inline int *soft_failures(void)
{
    static int count;
    return &count;
}
#define SOFT(cond, ...) CHECK_OR_(cond, (*soft_failures())++, __VA_ARGS__)
#define END_SOFT()                                                            \
    do {                                                                      \
        int n_ = *soft_failures();                                            \
        *soft_failures() = 0;                                                 \
        EXPECT(n_ == 0, "%d failed checks (listed above)", n_);               \
    } while (0)

/* Skip the current test, with one line saying why ("SKIP: why"): the
 * tally (tests/tally/tally.sh) records that line as the reason, and
 * scripts/test.sh names every skipped test with it above its last line.
 * A test skips only for what the machine lacks, never to hide a failure. */
__attribute__((format(printf, 1, 2))) static inline void skip_reason(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_message("SKIP: ");
    vprint_message(fmt, ap);
    print_message("\n");
    va_end(ap);
}
#define SKIP_TEST(...)                                                        \
    do {                                                                      \
        skip_reason(__VA_ARGS__);                                             \
        skip();                                                               \
    } while (0)

/* Run the tests listed (T(f), ...) as the cmocka group `group`; the list
 * needs no array of its own in main(). */
#define RUN_GROUP(group, ...)                                                 \
    cmocka_run_group_tests_name(group, ((const struct CMUnitTest[]){ __VA_ARGS__ }), NULL, NULL)

#endif
