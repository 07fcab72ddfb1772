/* Size classes: the table's shape, the request->class mapping, pool spans,
 * and the multiply-shift block index. */
#include "unit.h"

static void setup_classes(void **state)
{
    (void)state;
    ebb__ensure_init();
}

static void test_table_shape(void **state)
{
    setup_classes(state);
    for (unsigned c = 0; c < 32; c++)
        assert_int_equal(ebb__classes[c].size, 16 * (c + 1));
    /* four classes per doubling from 512 to 128 KiB */
    for (unsigned d = 0; d < 8; d++) {
        uint32_t base = 512u << d;
        for (unsigned q = 0; q < 4; q++)
            assert_int_equal(ebb__classes[32 + d * 4 + q].size, base + (q + 1) * (base / 4));
    }
    assert_int_equal(ebb__classes[EBB_CLASSES - 1].size, EBB_LARGE_THRESHOLD);
    for (unsigned c = 1; c < EBB_CLASSES; c++) {
        assert_true(ebb__classes[c].size > ebb__classes[c - 1].size);
        assert_int_equal(ebb__classes[c].size % EBB_MIN_ALIGN, 0);
        /* step classes waste under 16 bytes; the rest under a quarter */
        uint32_t worst = ebb__classes[c - 1].size + 1;
        if (c < 32)
            assert_true(ebb__classes[c].size - worst < EBB_SMALL_STEP);
        else
            assert_true((ebb__classes[c].size - worst) * 4 <= ebb__classes[c].size);
    }
}

static void test_class_of_matches_linear_scan(void **state)
{
    setup_classes(state);
    unsigned c = 0;
    for (size_t n = 0; n <= EBB_LARGE_THRESHOLD; n++) {
        while (ebb__classes[c].size < n)
            c++;
        if (ebb__class_of(n) != c)
            fail_msg("size %zu: class %u, expected %u", n, ebb__class_of(n), c);
    }
}

static void test_pool_spans(void **state)
{
    setup_classes(state);
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        const ebb__class_t *k = &ebb__classes[c];
        size_t bytes = k->span * EBB_SLOT_SIZE;
        assert_true(k->span == 1 || k->span == 2 || k->span == 4 || k->span == 8);
        assert_true(k->blocks >= 4);
        assert_true(k->blocks <= EBB_POOL_MAX_BLOCKS);
        assert_int_equal(k->blocks, bytes / k->size);
        assert_true((bytes - (size_t)k->blocks * k->size) * 8 <= bytes);
        /* the span is the smallest that satisfies the rule */
        if (k->span > 1) {
            size_t half = bytes / 2, b = half / k->size;
            assert_true(b < 4 || (half - b * k->size) * 8 > half);
        }
    }
}

static void test_recip_index_exact(void **state)
{
    setup_classes(state);
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        const ebb__class_t *k = &ebb__classes[c];
        uint64_t limit = (uint64_t)k->span * EBB_SLOT_SIZE;
        for (uint64_t off = 0; off < limit; off++) {
            uint64_t idx = (off * k->recip) >> 48;
            if (idx != off / k->size)
                fail_msg("class %u offset %llu: index %llu", c, (unsigned long long)off,
                         (unsigned long long)idx);
        }
    }
}

/* The free fast path's block-start test agrees with a remainder for every
 * offset in a pool (and beyond, up to 2^20, the 32-bit bound's margin). */
static void test_block_start_test_exact(void **state)
{
    setup_classes(state);
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        const ebb__class_t *k = &ebb__classes[c];
        uint64_t limit = 2 * (uint64_t)k->span * EBB_SLOT_SIZE;
        for (uint64_t off = 0; off < limit; off++) {
            int start = ebb__offset_is_block_start((uintptr_t)off, c);
            if (start != (off % k->size == 0))
                fail_msg("class %u offset %llu: start test says %d", c, (unsigned long long)off,
                         start);
        }
    }
}

/* The free fast path tests a slot's class byte only through the start test:
 * a byte that is no class (EBB_NO_CLASS marks the header and free slots)
 * must fail it at every offset, or a pointer into a free slot would be
 * cached. */
static void test_no_class_is_never_a_block_start(void **state)
{
    setup_classes(state);
    for (unsigned c = EBB_CLASSES; c < 256; c++)
        for (uint64_t off = 0; off < (uint64_t)EBB_SLOTS * EBB_SLOT_SIZE; off++)
            if (ebb__offset_is_block_start((uintptr_t)off, c))
                fail_msg("class byte %u offset %llu passes the start test", c,
                         (unsigned long long)off);
}

static void test_bucket_formula_exact(void **state)
{
    setup_classes(state);
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        uint32_t blocks = ebb__classes[c].blocks;
        for (uint32_t used = 0; used < blocks; used++)
            assert_int_equal(ebb__bucket_for(used, c), (uint64_t)used * EBB_POOL_BUCKETS / blocks);
        assert_int_equal(ebb__bucket_for(blocks, c), EBB_BUCKET_FULL);
    }
}

static void test_tcache_caps(void **state)
{
    setup_classes(state);
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        const ebb__class_t *k = &ebb__classes[c];
        if (k->size > EBB_TCACHE_MAX_SIZE) {
            assert_int_equal(k->tcache_cap, 0);
            continue;
        }
        assert_in_range(k->tcache_cap, EBB_TCACHE_MIN_COUNT, EBB_TCACHE_MAX_COUNT);
        assert_true((size_t)k->tcache_cap * k->size <= EBB_TCACHE_CLASS_BYTES ||
                    k->tcache_cap == EBB_TCACHE_MIN_COUNT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_shape),
        cmocka_unit_test(test_class_of_matches_linear_scan),
        cmocka_unit_test(test_pool_spans),
        cmocka_unit_test(test_recip_index_exact),
        cmocka_unit_test(test_block_start_test_exact),
        cmocka_unit_test(test_no_class_is_never_a_block_start),
        cmocka_unit_test(test_bucket_formula_exact),
        cmocka_unit_test(test_tcache_caps),
    };
    return cmocka_run_group_tests_name("sizeclass", tests, NULL, NULL);
}
