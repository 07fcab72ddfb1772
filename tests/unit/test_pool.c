/* Pools: bitmap allocation order, block indices, double-free evidence, and
 * bookkeeping that survives the OS dropping the pool's pages. */
#include "unit.h"

#include <string.h>

static ebb__pool_t *new_pool(unsigned cls)
{
    ebb__ensure_init();
    ebb__pool_t *p = ebb__arena_take_pool(ebb__classes[cls].span, cls);
    assert_non_null(p);
    ebb__pool_format(p, &ebb__heaps.heap[0], cls);
    return p;
}

static void test_takes_lowest_address_first(void **state)
{
    (void)state;
    unsigned cls = 4; /* 80 bytes */
    ebb__pool_t *p = new_pool(cls);
    void *b[100];
    assert_int_equal(unit_pool_take(p, b, 100), 100);
    for (int i = 0; i < 100; i++)
        assert_ptr_equal(b[i], ebb__pool_start(p) + (size_t)i * 80);
    assert_int_equal(p->used, 100);
    /* free two in the middle: they are the next taken, lowest first */
    uint32_t i1, i2;
    assert_true(ebb__pool_block_index(p, (uintptr_t)b[70], &i1));
    assert_true(ebb__pool_block_index(p, (uintptr_t)b[30], &i2));
    unit_pool_put(p, i1);
    unit_pool_put(p, i2);
    assert_true(ebb__pool_is_free(p, i1));
    void *again[2];
    assert_int_equal(unit_pool_take(p, again, 2), 2);
    assert_ptr_equal(again[0], b[30]);
    assert_ptr_equal(again[1], b[70]);
    ebb__arena_release_pool(p);
}

static void test_block_index_rejects_non_blocks(void **state)
{
    (void)state;
    unsigned cls = 33; /* 768 bytes */
    ebb__pool_t *p = new_pool(cls);
    const ebb__class_t *c = &ebb__classes[cls];
    uint32_t idx;
    for (uint32_t i = 0; i < c->blocks; i++) {
        assert_true(ebb__pool_block_index(p, (uintptr_t)ebb__pool_start(p) + (uintptr_t)i * c->size, &idx));
        assert_int_equal(idx, i);
        assert_false(ebb__pool_block_index(p, (uintptr_t)ebb__pool_start(p) + (uintptr_t)i * c->size + 16, &idx));
    }
    assert_false(ebb__pool_block_index(p, (uintptr_t)ebb__pool_start(p) + (uintptr_t)c->blocks * c->size, &idx));
    assert_false(ebb__pool_block_index(p, (uintptr_t)ebb__pool_start(p) - 16, &idx));
    ebb__arena_release_pool(p);
}

static void test_fills_to_capacity_exactly(void **state)
{
    (void)state;
    for (unsigned cls = 0; cls < EBB_CLASSES; cls += 7) {
        ebb__pool_t *p = new_pool(cls);
        uint32_t n = ebb__classes[cls].blocks;
        void **b = ebb__os_map(n * sizeof(void *) + 4096);
        assert_int_equal(unit_pool_take(p, b, n + 10), n);
        assert_int_equal(unit_pool_take(p, b, 1), 0);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t idx;
            assert_true(ebb__pool_block_index(p, (uintptr_t)b[i], &idx));
            unit_pool_put(p, idx);
        }
        assert_int_equal(p->used, 0);
        ebb__os_unmap(b, n * sizeof(void *) + 4096);
        ebb__arena_release_pool(p);
    }
}

static void test_bookkeeping_survives_purge(void **state)
{
    (void)state;
    unsigned cls = 0; /* 16 bytes: 4096 blocks over 16 pages */
    ebb__pool_t *p = new_pool(cls);
    static void *b[4096];
    assert_int_equal(unit_pool_take(p, b, 4096), 4096);
    memset(ebb__pool_start(p), 0xee, EBB_SLOT_SIZE);
    /* free every block on pages 4..11 and let the OS drop those pages */
    for (int i = 4 * 256; i < 12 * 256; i++) {
        uint32_t idx;
        assert_true(ebb__pool_block_index(p, (uintptr_t)b[i], &idx));
        unit_pool_put(p, idx);
    }
    ebb__os_purge(ebb__pool_start(p) + 4 * 4096, 8 * 4096);
    void *again[8 * 256];
    assert_int_equal(unit_pool_take(p, again, 8 * 256), 8 * 256);
    for (int i = 0; i < 8 * 256; i++) {
        assert_ptr_equal(again[i], b[4 * 256 + i]);
        assert_int_equal(*(unsigned char *)again[i], 0); /* zero after purge */
    }
    assert_int_equal(*(unsigned char *)b[0], 0xee); /* untouched page kept */
    assert_int_equal(p->used, 4096);
    ebb__arena_release_pool(p);
}

/* Bitmaps take the words their class needs, packed low in the header: an
 * arena full of 64-byte pools (16 words each) keeps all its bitmaps in the
 * first 1008 words (two pages), not spread over rows of 64 words per slot
 * (eight pages).  And the packing never runs out: 63 pools of the 16-byte
 * class, 64 words each, fit, also after a mixed churn. */
#define TAKE 200
static void assert_no_shared_words(ebb__pool_t **pools, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (ebb__arena_of_pool(pools[i]) != ebb__arena_of_pool(pools[j]))
                continue;
            unsigned a0 = pools[i]->bits_at, a1 = a0 + ebb__bitmap_words(pools[i]->cls);
            unsigned b0 = pools[j]->bits_at, b1 = b0 + ebb__bitmap_words(pools[j]->cls);
            assert_true(a1 <= b0 || b1 <= a0);
        }
}
static void test_bitmaps_pack_low(void **state)
{
    (void)state;
    static ebb__pool_t *pools[TAKE];
    for (int i = 0; i < TAKE; i++)
        pools[i] = new_pool(3);
    assert_int_equal(ebb__bitmap_words(3), 16);
    int full_arenas = 0;
    for (int i = 0; i < TAKE; i++) {
        ebb__arena_t *a = ebb__arena_of_pool(pools[i]);
        int mine = 0;
        unsigned end = 0;
        for (int j = 0; j < TAKE; j++)
            if (ebb__arena_of_pool(pools[j]) == a) {
                mine++;
                if (pools[j]->bits_at + 16u > end)
                    end = pools[j]->bits_at + 16u;
            }
        if (mine == EBB_SLOTS - 1) {
            full_arenas++;
            assert_true(end <= (EBB_SLOTS - 1) * 16);
        }
    }
    assert_true(full_arenas >= 1);
    /* Swap every other pool for a 16-byte one, then the rest too. */
    for (int i = 0; i < TAKE; i += 2) {
        ebb__arena_release_pool(pools[i]);
        pools[i] = new_pool(0);
    }
    assert_no_shared_words(pools, TAKE);
    for (int i = 1; i < TAKE; i += 2) {
        ebb__arena_release_pool(pools[i]);
        pools[i] = new_pool(0);
    }
    assert_no_shared_words(pools, TAKE);
    for (int i = 0; i < TAKE; i++) {
        uint64_t *bits = ebb__pool_bitmap(pools[i]);
        for (unsigned w = 0; w < 64; w++)
            assert_true(bits[w] == ~(uint64_t)0); /* all 4096 blocks free, words intact */
        ebb__arena_release_pool(pools[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_takes_lowest_address_first, unit_teardown_check),
        cmocka_unit_test_teardown(test_bitmaps_pack_low, unit_teardown_check),
        cmocka_unit_test_teardown(test_block_index_rejects_non_blocks, unit_teardown_check),
        cmocka_unit_test_teardown(test_fills_to_capacity_exactly, unit_teardown_check),
        cmocka_unit_test_teardown(test_bookkeeping_survives_purge, unit_teardown_check),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
