/* Arenas: pool placement (fullest arena first), slot bookkeeping, the
 * ownership map, and unmapping empty arenas beyond the spare. */
#include "unit.h"

#include <string.h>

#define MANY 130

static unsigned min_nfree_with_run(unsigned span)
{
    unsigned best = EBB_SLOTS;
    for (unsigned n = span; n < EBB_SLOTS; n++)
        for (ebb__arena_t *a = ebb__arenas.by_nfree[n]; a; a = a->next) {
            uint64_t m = a->free_mask;
            for (unsigned j = 1; j < span; j++)
                m &= a->free_mask >> j;
            if (m && n < best)
                best = n;
        }
    return best;
}

static void test_take_marks_slots_and_map(void **state)
{
    (void)state;
    ebb__ensure_init();
    ebb__pool_t *p = ebb__arena_take_pool(1, 3);
    assert_non_null(p);
    ebb__arena_t *a = ebb__arena_of_pool(p);
    assert_ptr_equal(ebb__arena_of((uintptr_t)ebb__pool_start(p) + 100), a);
    assert_int_equal(a->slot_class[p->head_slot], 3);
    assert_int_equal(a->slot_head[p->head_slot], p->head_slot);
    assert_false((a->free_mask >> p->head_slot) & 1);
    assert_int_equal((uintptr_t)ebb__pool_start(p) % EBB_SLOT_SIZE, 0);
    assert_true(p->head_slot >= 1);
    ebb__arena_release_pool(p);
    assert_int_equal(a->slot_class[p->head_slot], EBB_NO_CLASS);
}

static void test_multi_slot_span(void **state)
{
    (void)state;
    ebb__ensure_init();
    ebb__pool_t *p = ebb__arena_take_pool(8, 62);
    assert_non_null(p);
    ebb__arena_t *a = ebb__arena_of_pool(p);
    for (unsigned s = p->head_slot; s < p->head_slot + 8u; s++) {
        assert_int_equal(a->slot_head[s], p->head_slot);
        assert_int_equal(a->slot_class[s], 62);
        assert_ptr_equal(ebb__pool_of(a, (uintptr_t)a + s * EBB_SLOT_SIZE + 5), p);
    }
    ebb__arena_release_pool(p);
}

static void test_fullest_arena_first(void **state)
{
    (void)state;
    ebb__ensure_init();
    static ebb__pool_t *pools[MANY];
    for (int i = 0; i < MANY; i++)
        pools[i] = ebb__arena_take_pool(1, 5);
    /* free every other pool of the later ones: arenas now differ in fill */
    for (int i = 70; i < MANY; i += 2) {
        ebb__arena_release_pool(pools[i]);
        pools[i] = NULL;
    }
    for (int k = 0; k < 20; k++) {
        ebb__lock(&ebb__arenas.lock);
        unsigned fullest = min_nfree_with_run(1);
        ebb__unlock(&ebb__arenas.lock);
        ebb__pool_t *p = ebb__arena_take_pool(1, 5);
        assert_non_null(p);
        /* the arena it came from had the fewest free slots before */
        assert_int_equal(ebb__arena_of_pool(p)->nfree + 1, fullest);
        ebb__arena_release_pool(p);
    }
    for (int i = 0; i < MANY; i++)
        if (pools[i])
            ebb__arena_release_pool(pools[i]);
}

static void test_empty_arenas_unmapped_beyond_spare(void **state)
{
    (void)state;
    ebb__ensure_init();
    static ebb__pool_t *pools[3 * 63];
    static ebb__arena_t *arenas[3 * 63];
    for (int i = 0; i < 3 * 63; i++) {
        pools[i] = ebb__arena_take_pool(1, 7);
        arenas[i] = ebb__arena_of_pool(pools[i]);
    }
    size_t before = ebb__arenas.count;
    for (int i = 0; i < 3 * 63; i++)
        ebb__arena_release_pool(pools[i]);
    assert_true(ebb__arenas.spare <= EBB_SPARE_ARENAS);
    assert_true(ebb__arenas.count <= before - 2);
    /* unmapped arenas are gone from the ownership map */
    int still = 0;
    for (int i = 0; i < 3 * 63; i++)
        if (i == 0 || arenas[i] != arenas[i - 1])
            still += ebb__arena_of((uintptr_t)arenas[i]) != NULL && arenas[i]->nfree == EBB_SLOTS - 1;
    assert_true(still <= EBB_SPARE_ARENAS);
    ebb_collect(1);
    assert_int_equal(ebb__arenas.spare, 0);
}

static void test_map_rejects_foreign_addresses(void **state)
{
    (void)state;
    int local;
    static char global[64];
    assert_null(ebb__arena_of((uintptr_t)&local));
    assert_null(ebb__arena_of((uintptr_t)global));
    assert_null(ebb__arena_of(0));
    assert_null(ebb__arena_of(UINTPTR_MAX - 5));
}

/* Placement: arenas made one by one between large blocks still cluster
 * above the program break, and no large block lies among them, so small
 * survivors never split the gap large blocks are mapped into.  Before
 * placement, each arena went wherever the kernel's top-down mmap put it,
 * right between the large blocks of the moment. */
#define PLACE_ROUNDS 6
static void test_arenas_cluster_apart_from_large(void **state)
{
    (void)state;
    ebb__ensure_init();
    static ebb__pool_t *pools[PLACE_ROUNDS][EBB_SLOTS - 1];
    void *big[PLACE_ROUNDS];
    const size_t big_size = (size_t)8 << 20;
    for (int r = 0; r < PLACE_ROUNDS; r++) {
        big[r] = ebb_malloc(big_size);
        assert_non_null(big[r]);
        for (unsigned i = 0; i < EBB_SLOTS - 1; i++) {
            pools[r][i] = ebb__arena_take_pool(1, 5);
            assert_non_null(pools[r][i]);
        }
    }
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    size_t arenas = 0;
    for (unsigned n = 0; n < EBB_SLOTS; n++)
        for (ebb__arena_t *a = ebb__arenas.by_nfree[n]; a; a = a->next, arenas++) {
            lo = (uintptr_t)a < lo ? (uintptr_t)a : lo;
            hi = (uintptr_t)a > hi ? (uintptr_t)a : hi;
        }
    assert_true(arenas >= PLACE_ROUNDS);
    uintptr_t brk = ebb__os_program_break();
    /* above the break, or on 32-bit first between the image and the break */
    uintptr_t floor = EBB_ARENA_BELOW_BRK && ebb__os_image_end() ? ebb__os_image_end() : brk;
    assert_true(brk != 0 && lo > floor);
    /* dense: holes left by earlier tests' arenas are filled lowest first
     * (one more place where the run steps over the break) */
    assert_true((hi - lo) / EBB_ARENA_SIZE + 1 <= arenas + 2 + EBB_ARENA_BELOW_BRK);
    for (int r = 0; r < PLACE_ROUNDS; r++) {
        uintptr_t b = (uintptr_t)big[r];
        assert_true(b + big_size <= lo || b >= hi + EBB_ARENA_SIZE);
        ebb_free(big[r]);
    }
    for (int r = 0; r < PLACE_ROUNDS; r++)
        for (unsigned i = 0; i < EBB_SLOTS - 1; i++)
            ebb__arena_release_pool(pools[r][i]);
    ebb__arena_collect(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_take_marks_slots_and_map, unit_teardown_check),
        cmocka_unit_test_teardown(test_multi_slot_span, unit_teardown_check),
        cmocka_unit_test_teardown(test_fullest_arena_first, unit_teardown_check),
        cmocka_unit_test_teardown(test_empty_arenas_unmapped_beyond_spare, unit_teardown_check),
        cmocka_unit_test_teardown(test_map_rejects_foreign_addresses, unit_teardown_check),
        cmocka_unit_test_teardown(test_arenas_cluster_apart_from_large, unit_teardown_check),
    };
    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
