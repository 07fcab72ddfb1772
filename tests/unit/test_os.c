/* The OS layer: mappings, alignment, purge, remap, environment, locks. */
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void test_page_and_cpus(void **state)
{
    (void)state;
    size_t page = ebb__os_page_size();
    assert_true(page >= 4096 && (page & (page - 1)) == 0);
    assert_true(ebb__os_cpu_count() >= 1);
    assert_true(ebb__os_cpu_count() <= 4096);
}

static void test_map_is_zeroed_and_writable(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    unsigned char *p = ebb__os_map(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i += 4096)
        assert_int_equal(p[i], 0);
    memset(p, 0x5a, n);
    ebb__os_unmap(p, n);
}

static void test_map_aligned(void **state)
{
    (void)state;
    for (size_t align = 4096; align <= ((size_t)16 << 20); align <<= 1) {
        void *p = ebb__os_map_aligned(3 * 4096, align);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % align, 0);
        memset(p, 1, 3 * 4096);
        ebb__os_unmap(p, 3 * 4096);
    }
}

static void test_purge_zeroes_but_keeps_mapping(void **state)
{
    (void)state;
    size_t n = 64 * 4096;
    unsigned char *p = ebb__os_map(n);
    memset(p, 0xff, n);
    ebb__os_purge(p + 4096, 2 * 4096);
    assert_int_equal(p[0], 0xff);
    assert_int_equal(p[4096], 0);
    assert_int_equal(p[3 * 4096 - 1], 0);
    assert_int_equal(p[3 * 4096], 0xff);
    p[4096] = 7; /* still mapped and writable */
    assert_int_equal(p[4096], 7);
    ebb__os_unmap(p, n);
}

static void test_remap_preserves_contents(void **state)
{
    (void)state;
    size_t old = 8 * 4096, big = 4096 * 4096;
    unsigned char *p = ebb__os_map(old);
    for (size_t i = 0; i < old; i++)
        p[i] = (unsigned char)i;
    unsigned char *q = ebb__os_remap(p, old, big, 1);
    assert_non_null(q);
    for (size_t i = 0; i < old; i++)
        assert_int_equal(q[i], (unsigned char)i);
    unsigned char *r = ebb__os_remap(q, big, 4096, 0);
    assert_ptr_equal(r, q); /* shrinking never moves */
    assert_int_equal(r[100], 100);
    ebb__os_unmap(r, 4096);
}

static void test_getenv_without_allocating(void **state)
{
    (void)state;
    char buf[16];
    setenv("EBB_UNIT_PROBE", "hello-world-long-value", 1);
    assert_true(ebb__os_getenv("EBB_UNIT_PROBE", buf, sizeof buf));
    assert_string_equal(buf, "hello-world-lon"); /* truncated to the buffer */
    assert_false(ebb__os_getenv("EBB_UNIT_PROB", buf, sizeof buf));
    assert_false(ebb__os_getenv("EBB_UNIT_NOT_SET", buf, sizeof buf));
}

static ebb__lock_t counter_lock = EBB_LOCK_INIT;
static long counter;

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        ebb__lock(&counter_lock);
        counter++;
        ebb__unlock(&counter_lock);
    }
    return NULL;
}

static void test_lock_excludes(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(counter, 800000);
    assert_true(ebb__trylock(&counter_lock));
    assert_false(ebb__trylock(&counter_lock));
    ebb__unlock(&counter_lock);
}

static void test_clock_advances(void **state)
{
    (void)state;
    uint64_t a = ebb__os_now_ns(), b = ebb__os_now_ns();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_and_cpus),
        cmocka_unit_test(test_map_is_zeroed_and_writable),
        cmocka_unit_test(test_map_aligned),
        cmocka_unit_test(test_purge_zeroes_but_keeps_mapping),
        cmocka_unit_test(test_remap_preserves_contents),
        cmocka_unit_test(test_getenv_without_allocating),
        cmocka_unit_test(test_lock_excludes),
        cmocka_unit_test(test_clock_advances),
    };
    return cmocka_run_group_tests_name("os", tests, NULL, NULL);
}
