/* ebb's size classes as the documentation states them, built from that rule
 * and not taken from the library, so that a test comparing the two checks
 * the library against its promise:
 *   - usable size in 16-byte steps up to 512, then four classes per doubling
 *     (640, 768, 896, 1024, 1280, ...) up to SMALL_MAX;
 *   - above SMALL_MAX a block is "large" and its usable size is the request
 *     rounded up to LARGE_STEP;
 *   - malloc(0) is a block of usable size 16.
 * Shared by the API conformance tests and the fuzzer (which has no cmocka),
 * so it uses nothing but the C library. */
#ifndef EBB_TEST_CLASSES_H
#define EBB_TEST_CLASSES_H

#include <stddef.h>

#define SMALL_MAX ((size_t)131072)
#define LARGE_STEP ((size_t)4096)

/* Room for more classes than the rule makes: a test can tell the two apart. */
static size_t class_table[80];
static size_t class_count;

static inline void class_table_init(void)
{
    if (class_count)
        return;
    for (size_t s = 16; s <= 512; s += 16)
        class_table[class_count++] = s;
    for (size_t base = 512; base < SMALL_MAX; base *= 2)
        for (size_t q = 1; q <= 4; q++)
            class_table[class_count++] = base + q * (base / 4);
}

/* The usable size a request of n bytes must get (at least, for a large
 * block that reuses a bigger cached mapping). */
static inline size_t class_usable(size_t n)
{
    class_table_init();
    if (n == 0)
        return 16;
    for (size_t i = 0; i < class_count; i++)
        if (n <= class_table[i])
            return class_table[i];
    return (n + LARGE_STEP - 1) / LARGE_STEP * LARGE_STEP;
}

#endif
