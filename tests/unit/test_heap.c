/* Heaps: fullest pool first, release of empty pools, and the checks that
 * catch double frees and interior pointers when blocks come home. */
#include "unit.h"

#include <sys/mman.h>

#define CLS 60 /* 81920-byte blocks: not thread-cached, nobody else uses it */

static ebb__heap_t *H(void)
{
    ebb__ensure_init();
    return &ebb__heaps.heap[0];
}

static ebb__pool_t *pool_of(void *p)
{
    return ebb__pool_of(ebb__arena_of((uintptr_t)p), (uintptr_t)p);
}

static void test_fullest_pool_first(void **state)
{
    (void)state;
    ebb__heap_t *h = H();
    unsigned n = ebb__classes[CLS].blocks; /* 6 */
    void *a[6], *b[6];
    assert_int_equal(n, 6);
    assert_int_equal(unit_heap_alloc(h, CLS, a, n), n);
    assert_int_equal(unit_heap_alloc(h, CLS, b, n), n);
    ebb__pool_t *pa = pool_of(a[0]), *pb = pool_of(b[0]);
    assert_ptr_not_equal(pa, pb);
    ebb__heap_free(a, 5);     /* pool A: 1 of 6 used */
    ebb__heap_free(&b[0], 1); /* pool B: 5 of 6 used */
    void *x;
    assert_int_equal(unit_heap_alloc(h, CLS, &x, 1), 1);
    assert_ptr_equal(x, b[0]); /* taken from the fuller pool B */
    assert_int_equal(unit_heap_alloc(h, CLS, &x, 1), 1);
    assert_ptr_equal(pool_of(x), pa); /* B is full now */
    ebb__heap_free(&x, 1);
    ebb__heap_free(&a[5], 1);
    ebb__heap_free(b, n);
}

static void test_empty_pool_released_unless_last(void **state)
{
    (void)state;
    ebb__heap_t *h = H();
    ebb__bin_t *bin = &h->bin[CLS];
    assert_true(bin->pools <= 1 && bin->used == 0); /* at most the kept pool */
    void *a[12];
    assert_int_equal(unit_heap_alloc(h, CLS, a, 12), 12);
    assert_int_equal(bin->pools, 2);
    ebb__pool_t *first = pool_of(a[0]);
    void *mine[6], *other[6];
    int m = 0, o = 0;
    for (int i = 0; i < 12; i++) {
        if (pool_of(a[i]) == first)
            mine[m++] = a[i];
        else
            other[o++] = a[i];
    }
    assert_int_equal(m, 6);
    ebb__heap_free(mine, 6);
    /* empty, but the only pool with room: kept against alloc/free thrash */
    assert_int_equal(bin->pools, 2);
    ebb__heap_free(other, 5);
    assert_int_equal(bin->pools, 2);
    ebb__heap_free(other + 5, 1);
    /* now another pool has room, so the one that just emptied goes back */
    assert_int_equal(bin->pools, 1);
}

static void test_double_free_and_interior_pointer_caught(void **state)
{
    (void)state;
    ebb__heap_t *h = H();
    int saved = ebb__opt.on_error;
    ebb__opt.on_error = EBB_ON_ERROR_IGNORE;
    void *a[2];
    assert_int_equal(unit_heap_alloc(h, CLS, a, 2), 2);
    size_t errors = ebb__misuse.errors;
    void *inner = (char *)a[1] + 64;
    ebb__heap_free(&inner, 1);
    assert_int_equal(ebb__misuse.errors, errors + 1);
    ebb__heap_free(&a[0], 1);
    ebb__heap_free(&a[0], 1);
    assert_int_equal(ebb__misuse.errors, errors + 2);
    ebb__heap_free(&a[1], 1);
    ebb__opt.on_error = saved;
}

static void test_used_counter_tracks_blocks(void **state)
{
    (void)state;
    ebb__heap_t *h = H();
    unsigned cls = 20;
    size_t used0 = h->bin[cls].used;
    static void *b[3000];
    assert_int_equal(unit_heap_alloc(h, cls, b, 3000), 3000);
    assert_int_equal(h->bin[cls].used, used0 + 3000);
    ebb__heap_free(b, 3000);
    assert_int_equal(h->bin[cls].used, used0);
}

/* The heaps past the ones in use are never written, so their pages never
 * become resident: 64 heaps of 16 KiB are 1 MiB of static memory, and a
 * start-up that wrote one field of each cost every process 256 KiB. */
static void test_unused_heaps_take_no_memory(void **state)
{
    (void)state;
    ebb__ensure_init();
    unsigned checked = 0;
    for (unsigned h = ebb__heaps.n + 1; h + 1 < EBB_MAX_HEAPS; h++) {
        uintptr_t lo = ((uintptr_t)&ebb__heaps.heap[h] + 4095) & ~(uintptr_t)4095;
        uintptr_t hi = (uintptr_t)&ebb__heaps.heap[h + 1] & ~(uintptr_t)4095;
        unsigned char v[8];
        assert_true(hi - lo <= sizeof v * 4096);
        if (hi <= lo)
            continue;
        assert_int_equal(mincore((void *)lo, hi - lo, v), 0);
        for (size_t i = 0; i < (hi - lo) / 4096; i++)
            assert_int_equal(v[i] & 1, 0);
        checked++;
    }
    if (ebb__heaps.n + 3 < EBB_MAX_HEAPS)
        assert_true(checked > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fullest_pool_first, unit_teardown_check),
        cmocka_unit_test_teardown(test_empty_pool_released_unless_last, unit_teardown_check),
        cmocka_unit_test_teardown(test_double_free_and_interior_pointer_caught, unit_teardown_check),
        cmocka_unit_test_teardown(test_used_counter_tracks_blocks, unit_teardown_check),
        cmocka_unit_test(test_unused_heaps_take_no_memory),
    };
    return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
