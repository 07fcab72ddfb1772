/* Purging, white box: which pages are marked dirty, which are purged, the
 * purge lists' clock, free arena slots, the large-block cache's expiry, and
 * the inline fallback.  Time is passed in explicitly, so nothing sleeps
 * long and nothing depends on the machine's speed. */
#include "unit.h"
#include "purger_watch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define DELAY UNIT_QUIET_DELAY /* the purger thread never finds anything due */
#define CLS64 3        /* 64-byte blocks: 64 to a page, 1024 to a pool */

static int surplus; /* what the passes' surplus flag was set to (not reset) */

static int setup(void **state)
{
    (void)state;
    unit_quiet_purger();
    ebb_collect(1); /* every free slot and pool page starts clean */
    return 0;
}

static ebb__pool_t *clean_pool(unsigned cls)
{
    ebb_collect(1);
    ebb__pool_t *p = ebb__arena_take_pool(ebb__classes[cls].span, cls);
    assert_non_null(p);
    ebb__pool_format(p, &ebb__heaps.heap[0], cls);
    for (unsigned s = 0; s < p->span; s++)
        assert_int_equal(ebb__arena_of_pool(p)->dirty[p->head_slot + s], 0);
    return p;
}

static uint16_t dirty_of(ebb__pool_t *p)
{
    return ebb__arena_of_pool(p)->dirty[p->head_slot];
}

static int resident(const void *page)
{
    unsigned char v = 0;
    assert_int_equal(mincore((void *)((uintptr_t)page & ~(uintptr_t)4095), 4096, &v), 0);
    return v & 1;
}

static size_t clean_now(void)
{
    return atomic_load(&ebb__ledger.clean_pages);
}

static void put_range(ebb__pool_t *p, uint32_t first, uint32_t last)
{
    for (uint32_t i = first; i <= last; i++)
        unit_pool_put(p, i);
}

static void test_take_marks_exactly_the_pages_touched(void **state)
{
    (void)state;
    ebb__pool_t *p = clean_pool(CLS64);
    size_t clean = clean_now();
    void *b[1024];
    /* 64 blocks fill page 0; the 65th lies on page 1. */
    assert_int_equal(unit_pool_take(p, b, 65), 65);
    assert_int_equal(dirty_of(p), 0x3);
    assert_int_equal(clean_now(), clean - 2);
    assert_int_equal(unit_pool_take(p, b + 65, 1024 - 65), 1024 - 65);
    assert_int_equal(dirty_of(p), 0xffff);
    assert_int_equal(clean_now(), clean - 16);
    put_range(p, 0, 1023);
    assert_int_equal(ebb__pool_purge(p, 1, NULL), 16);
    ebb__arena_release_pool(p);
}

static void test_purge_takes_only_pages_with_no_live_block(void **state)
{
    (void)state;
    ebb__pool_t *p = clean_pool(CLS64);
    void *b[1024];
    assert_int_equal(unit_pool_take(p, b, 1024), 1024);
    for (int i = 0; i < 1024; i++)
        memset(b[i], (i & 0x7f) + 1, 64);
    size_t clean = clean_now(), purged = atomic_load(&ebb__ledger.purged);
    put_range(p, 128, 255); /* pages 2 and 3 whole */
    put_range(p, 320, 351); /* half of page 5 */
    put_range(p, 511, 512); /* one block either side of the page 7/8 border */
    assert_int_equal(ebb__pool_purge(p, 1, NULL), 2);
    assert_int_equal(dirty_of(p), 0xffff & ~0x000c);
    assert_int_equal(clean_now(), clean + 2);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged + 2 * 4096);
    assert_false(resident(b[128]));
    assert_false(resident(b[255]));
    assert_true(resident(b[352]));
    for (int i = 0; i < 1024; i++) {
        if ((i >= 128 && i <= 255) || (i >= 320 && i <= 351) || i == 511 || i == 512)
            continue;
        for (int k = 0; k < 64; k++)
            assert_int_equal(((unsigned char *)b[i])[k], (i & 0x7f) + 1);
    }
    /* Nothing more to find: a second purge is a no-op. */
    assert_int_equal(ebb__pool_purge(p, 1, NULL), 0);
    /* A purged page handed out again reads as zeros and is dirty again. */
    void *again[200];
    assert_int_equal(unit_pool_take(p, again, 128), 128);
    assert_ptr_equal(again[0], b[128]);
    for (int k = 0; k < 64; k++)
        assert_int_equal(((unsigned char *)again[0])[k], 0);
    assert_int_equal(dirty_of(p), 0xffff);
    for (uint32_t i = 0; i < 1024; i++)
        if (!ebb__pool_is_free(p, i))
            unit_pool_put(p, i);
    assert_int_equal(ebb__pool_purge(p, 1, NULL), 16);
    assert_int_equal(dirty_of(p), 0);
    ebb__arena_release_pool(p);
}

/* Blocks borrowed while their pages are purged with the bin lock let go:
 * a refill skips them, they come back free, and one freed meanwhile (a
 * double free: it was free) is reported and counted once. */
static void test_borrowed_blocks_are_out_of_reach(void **state)
{
    (void)state;
    ebb__pool_t *p = clean_pool(CLS64);
    void *b[1024];
    assert_int_equal(unit_pool_take(p, b, 1024), 1024);
    put_range(p, 128, 255); /* pages 2 and 3 */
    assert_int_equal(p->used, 896);
    uint8_t *pages = ebb__pool_start(p) + 2 * 4096;
    assert_int_equal(ebb__pool_borrow(p, pages, 2 * 4096), 128);
    assert_int_equal(p->used, 1024);
    void *none[1];
    assert_int_equal(unit_pool_take(p, none, 1), 0); /* nothing to hand out */
    int saved = ebb__opt.on_error;
    ebb__opt.on_error = EBB_ON_ERROR_IGNORE;
    size_t errors = ebb__misuse.errors;
    unit_pool_put(p, 130); /* free again a block that is free: taken as out */
    assert_int_equal(ebb__misuse.errors, errors);
    assert_int_equal(p->used, 1023);
    assert_int_equal(ebb__pool_unborrow(p, pages, 2 * 4096), 127);
    assert_int_equal(ebb__misuse.errors, errors + 1); /* found when they come back */
    ebb__opt.on_error = saved;
    assert_int_equal(p->used, 896);
    for (uint32_t i = 128; i <= 255; i++)
        assert_true(ebb__pool_is_free(p, i));
    void *again[128];
    assert_int_equal(unit_pool_take(p, again, 128), 128); /* free to take again */
    assert_ptr_equal(again[0], b[128]);
    for (uint32_t i = 0; i < 1024; i++)
        if (!ebb__pool_is_free(p, i))
            unit_pool_put(p, i);
    ebb__pool_purge(p, 1, NULL);
    ebb__arena_release_pool(p);
}

static void test_blocks_larger_than_a_page(void **state)
{
    (void)state;
    unsigned cls = ebb__class_of(20000); /* blocks spanning several pages */
    ebb__pool_t *p = clean_pool(cls);
    const ebb__class_t *c = &ebb__classes[cls];
    void *b[64];
    unsigned n = unit_pool_take(p, b, c->blocks);
    assert_int_equal(n, c->blocks);
    for (unsigned i = 0; i < n; i++)
        memset(b[i], 0x5a, c->size);
    unit_pool_put(p, 1); /* the second block: its pages except any it shares */
    size_t lo = c->size, hi = 2 * (size_t)c->size; /* its byte range [lo, hi) */
    size_t whole = (hi >> 12) - ((lo + 4095) >> 12); /* pages it covers alone */
    assert_int_equal(ebb__pool_purge(p, 1, NULL), whole);
    assert_true(resident((uint8_t *)b[0] + c->size - 1));
    assert_true(resident(b[2]));
    assert_int_equal(((unsigned char *)b[0])[c->size - 1], 0x5a);
    assert_int_equal(((unsigned char *)b[2])[0], 0x5a);
    for (uint32_t i = 0; i < c->blocks; i++)
        if (i != 1)
            unit_pool_put(p, i);
    ebb__pool_purge(p, 1, NULL);
    ebb__arena_release_pool(p);
}

/* ---------------------------------------------------------- purge lists */

/* A heap this thread's cache does not use, so no allocation made by the
 * test framework shares its pools; NULL when there is only one heap. */
static ebb__heap_t *quiet_heap(void)
{
    /* The real cache: ebb__self may be the poked placeholder (no heap). */
    ebb__heap_t *mine = ebb__thread_get_slow()->heap;
    for (unsigned h = 0; h < ebb__heaps.n; h++)
        if (&ebb__heaps.heap[h] != mine)
            return &ebb__heaps.heap[h];
    return NULL;
}

/* A quiet heap, and every page of the process purged to start from. */
#define QUIET_HEAP(h)                                                          \
    ebb__heap_t *h = quiet_heap();                                             \
    if (h == NULL) /* the framework's blocks would share the pools */          \
        SKIP_TEST("a single heap (EBB_HEAPS=%s)",                              \
                  getenv("EBB_HEAPS") ? getenv("EBB_HEAPS") : "unset");          \
    ebb_collect(1)

static ebb__bin_t *bin_of(ebb__heap_t *h, unsigned cls)
{
    return &h->bin[cls];
}

/* The pool that holds block blk. */
static ebb__pool_t *pool_holding(void *blk)
{
    return ebb__pool_of(ebb__arena_of((uintptr_t)blk), (uintptr_t)blk);
}

/* Free n blocks with misuse reported but not fatal; how many were reported. */
static size_t reported_by_free(void **blk, unsigned n)
{
    int saved = ebb__opt.on_error;
    ebb__opt.on_error = EBB_ON_ERROR_IGNORE;
    size_t errors = ebb__misuse.errors;
    ebb__heap_free(blk, n);
    size_t reported = ebb__misuse.errors - errors;
    ebb__opt.on_error = saved;
    return reported;
}

/* n 64-byte blocks from heap h, each filled with `byte`. */
static void take_filled(ebb__heap_t *h, void **blk, unsigned n, int byte)
{
    assert_int_equal(unit_heap_alloc(h, CLS64, blk, n), n);
    for (unsigned i = 0; i < n; i++)
        memset(blk[i], byte, 64);
}

static void test_freed_pool_is_listed_and_purged_when_due(void **state)
{
    (void)state;
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    assert_null(b->purge_head);
    void *blk[1024];
    take_filled(h, blk, 1024, 7);
    ebb__heap_free(blk, 512); /* the first 8 pages come back */
    ebb__pool_t *p = b->purge_head;
    assert_non_null(p);
    assert_true(p->listed);
    uint32_t now = ebb__os_now_ms();
    size_t purged = atomic_load(&ebb__ledger.purged);
    /* Not due yet: nothing purged, and the pass says when it will be. */
    uint32_t left = ebb__heap_purge(now, DELAY, &surplus);
    assert_true(left <= DELAY && left >= DELAY - 1000);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged);
    /* Due: the free pages go, the pool leaves the list, live blocks stay. */
    assert_int_equal(ebb__heap_purge(now + DELAY, DELAY, &surplus), UINT32_MAX);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged + 8 * 4096);
    assert_null(b->purge_head);
    assert_false(p->listed);
    for (int i = 512; i < 1024; i++)
        assert_int_equal(((unsigned char *)blk[i])[63], 7);
    ebb__heap_free(blk + 512, 512);
    ebb_collect(1);
}

/* Real milliseconds, so that the pools' keys differ: more than a tick of
 * the coarse clock ebb reads (4 ms at 250 Hz, 10 at 100). */
static void sleep_ms(long ms)
{
    struct timespec t = { 0, ms * 1000000L };
    while (nanosleep(&t, &t) != 0)
        ;
}

/* A pool the pass meets before it is due goes back in at the time of its
 * last free: behind the pools stamped earlier, before those stamped later,
 * and a second one with the same key next to the first (through the bin's
 * hint for that key, which leaves with the pool). */
static void test_met_early_goes_back_at_its_last_free(void **state)
{
    (void)state;
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    static void *blk[5 * 1024];
    take_filled(h, blk, 5 * 1024, 3); /* pools P0..P4 */
    ebb__pool_t *pool[5];
    for (int i = 0; i < 4; i++) { /* P0..P3 join the list apart */
        ebb__heap_free(blk + i * 1024, 16);
        pool[i] = b->purge_tail;
        sleep_ms(12);
    }
    ebb__heap_free(blk + 16, 16);        /* P0 and P1 freed into again */
    ebb__heap_free(blk + 1024 + 16, 16);
    uint32_t s0 = ebb__pool_cold(pool[0])->stamp, s1 = ebb__pool_cold(pool[1])->stamp;
    sleep_ms(12);
    ebb__heap_free(blk + 4 * 1024, 16); /* P4 joins last */
    pool[4] = b->purge_tail;
    assert_ptr_equal(b->purge_head, pool[0]);
    assert_true((int32_t)(ebb__pool_cold(pool[4])->queued_at - s1) > 0);

    /* P0 and P1 are due by their keys, not by their last frees.  (A pass
     * a delay ahead sees no recent demand: the surplus rule is off, or free
     * blocks left by other tests could make the bin's quiet time shorter.) */
    size_t purged = atomic_load(&ebb__ledger.purged);
    ebb__opt.purge_surplus = 0;
    uint32_t left = ebb__heap_purge(ebb__pool_cold(pool[1])->queued_at + DELAY, DELAY, &surplus);
    ebb__opt.purge_surplus = 1;
    assert_true(left > 0 && left != UINT32_MAX);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged);
    assert_int_equal(ebb__pool_cold(pool[0])->queued_at, s0);
    assert_int_equal(ebb__pool_cold(pool[1])->queued_at, s1);
    const ebb__pool_t *order[5] = { pool[2], pool[3], pool[0], pool[1], pool[4] };
    const ebb__pool_t *p = b->purge_head;
    for (int i = 0; i < 5; i++, p = ebb__pool_cold(p)->purge_next)
        assert_ptr_equal(p, order[i]);
    assert_null(p);
    assert_ptr_equal(b->purge_hint[s1 % EBB_PURGE_HINTS], pool[1]);
    if (s0 == s1)
        assert_ptr_equal(ebb__pool_cold(pool[1])->purge_prev, pool[0]);
    assert_int_equal(ebb_check(), 0); /* order and hints */

    /* Leaving the list takes the hints along. */
    for (int i = 0; i < 5; i++)
        ebb__heap_free(blk + i * 1024 + 32, 1024 - 32);
    for (int i = 2; i < 5; i++)
        ebb__heap_free(blk + i * 1024 + 16, 16);
    ebb_collect(1);
    assert_null(b->purge_head);
    for (unsigned k = 0; k < EBB_PURGE_HINTS; k++)
        assert_null(b->purge_hint[k]);
}

/* Blocks a thread cache held idle through a poke come home due at once:
 * the next pass purges their pages without waiting another delay, and a
 * pool they empty goes back to its arena purged. */
static void test_idle_blocks_are_due_at_once(void **state)
{
    (void)state;
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    void *blk[2048];
    take_filled(h, blk, 2048, 5); /* two pools */
    ebb__heap_free(blk + 1024, 16); /* the second pool listed, not due */
    ebb__heap_free_idle(blk, 512); /* half of the first: due now */
    ebb__pool_t *p = b->purge_head;
    assert_non_null(p);
    assert_ptr_equal(ebb__pool_start(p), (uint8_t *)blk[0]);
    size_t purged = atomic_load(&ebb__ledger.purged);
    uint32_t now = ebb__os_now_ms();
    uint32_t left = ebb__heap_purge(now, DELAY, &surplus);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged + 8 * 4096);
    assert_false(p->listed);
    assert_true(left > 0 && left <= DELAY); /* the other pool still waits */
    for (int i = 512; i < 1024; i++)
        assert_int_equal(((unsigned char *)blk[i])[0], 5);
    purged = atomic_load(&ebb__ledger.purged);
    ebb__heap_free_idle(blk + 512, 512); /* the pool empties: purged, released */
    assert_true(atomic_load(&ebb__ledger.purged) > purged);
    ebb__heap_free(blk + 1040, 1008);
    ebb_collect(1);
}

/* A pool with only a few free pages waits: purging two pages is not worth
 * a system call while the pool may still fill or empty; at its longest
 * wait it is purged anyway. */
static void test_few_free_pages_wait_for_the_longest_wait(void **state)
{
    (void)state;
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    void *blk[1024];
    take_filled(h, blk, 1024, 9);
    ebb__heap_free(blk, 128); /* pages 0 and 1: 2 of 16, under a quarter */
    ebb__pool_t *p = b->purge_head;
    assert_non_null(p);
    uint32_t t0 = ebb__pool_cold(p)->listed_at;
    size_t purged = atomic_load(&ebb__ledger.purged);
    ebb__heap_purge(t0 + DELAY, DELAY, &surplus); /* quiet for the delay: not worth it */
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged);
    assert_true(p->listed);
    assert_int_equal(ebb__pool_cold(p)->listed_at, t0);
    ebb__heap_purge(t0 + DELAY * EBB_PURGE_MAX_DELAYS, DELAY, &surplus); /* longest wait */
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged + 2 * 4096);
    assert_false(p->listed);
    for (int i = 128; i < 1024; i++)
        assert_int_equal(((unsigned char *)blk[i])[0], 9);
    ebb__heap_free(blk + 128, 896);
    ebb_collect(1);
}

static void test_allocating_from_a_listed_pool_restarts_its_clock(void **state)
{
    (void)state;
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    static void *blk[3072];
    /* Three full pools: A, B, C in address order of taking. */
    assert_int_equal(unit_heap_alloc(h, cls, blk, 3072), 3072);
    ebb__heap_free(blk, 100);        /* pool A listed */
    ebb__heap_free(blk + 1024, 100); /* pool B listed after it */
    ebb__pool_t *a = b->purge_head, *bb = ebb__pool_cold(a)->purge_next;
    assert_non_null(bb);
    assert_null(ebb__pool_cold(bb)->purge_next);
    /* Allocation takes from the fullest pool with room; both have 924 used.
     * Whichever it takes from moves to the tail of the list. */
    void *one;
    assert_int_equal(unit_heap_alloc(h, cls, &one, 1), 1);
    ebb__pool_t *taken = pool_holding(one);
    assert_ptr_equal(b->purge_tail, taken);
    assert_ptr_equal(b->purge_head, taken == a ? bb : a);
    ebb__heap_free(&one, 1);
    ebb__heap_free(blk + 100, 924);
    ebb__heap_free(blk + 1124, 924);
    ebb__heap_free(blk + 2048, 1024);
    ebb_collect(1);
    assert_null(b->purge_head);
}

static void test_idle_empty_pool_is_released_clean(void **state)
{
    (void)state;
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    void *blk[1024];
    assert_int_equal(unit_heap_alloc(h, cls, blk, 1024), 1024);
    size_t pools = b->pools;
    ebb__heap_free(blk, 1024); /* the only pool: kept, empty, listed */
    assert_int_equal(b->pools, pools);
    assert_non_null(b->purge_head);
    size_t clean = clean_now();
    ebb__heap_purge(ebb__os_now_ms() + DELAY, DELAY, &surplus);
    assert_int_equal(b->pools, pools - 1); /* released */
    assert_int_equal(clean_now(), clean + 16); /* and clean */
}

/* While a pass purges with the bin lock let go, a free of one of the
 * borrowed blocks (a double free: it was free) is refused at once, so the
 * block cannot be handed out onto a page whose purge is pending; a free of
 * another block of the pool goes through. */
static void test_a_borrowed_block_freed_again_is_refused(void **state)
{
    (void)state;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, CLS64);
    static void *blk[1024];
    take_filled(h, blk, 1024, 7);
    ebb__pool_t *p = pool_holding(blk[0]);
    uint8_t *page = ebb__pool_start(p) + 4096; /* page 1: blocks 64..127 */
    void *on_page[64], *elsewhere = ebb__pool_start(p) + 200 * 64;
    for (unsigned i = 0; i < 64; i++)
        on_page[i] = page + i * 64;
    ebb__heap_free(on_page, 64);
    ebb__purge_batch_t batch = { .n = 1 }, lent;
    batch.range[0] = (ebb__os_range_t){ .p = page, .size = 4096 };
    ebb__pool_t *owner[1];
    ebb__lock(&ebb__arenas.lend_lock); /* as purge_bin_due does, up to the system call */
    ebb__lock(&b->lock);
    ebb__heap_lend(b, &batch, &lent, owner);
    ebb__unlock(&b->lock);
    uint32_t used = p->used;
    size_t errors = ebb__misuse.errors;
    void *twice[2] = { on_page[5], elsewhere };
    /* Read now, asserted once the locks are let go. */
    size_t reported = reported_by_free(twice, 2);
    uint32_t used_then = p->used;
    int still_out = !ebb__pool_is_free(p, 64 + 5);
    ebb__lock(&b->lock);
    ebb__heap_unlend(b, &lent, owner);
    ebb__unlock(&b->lock);
    ebb__unlock(&ebb__arenas.lend_lock);
    assert_int_equal(reported, 1);         /* the borrowed one */
    assert_int_equal(used_then, used - 1); /* the other went home */
    assert_true(still_out);                /* still borrowed */
    assert_int_equal(ebb__misuse.errors, errors + 1); /* not reported twice */
    assert_true(ebb__pool_is_free(p, 64 + 5));
    unsigned nlive = 0;
    for (unsigned i = 0; i < 1024; i++)
        if (!ebb__pool_is_free(p, i) && ebb__pool_start(p) + i * 64 != (uint8_t *)elsewhere)
            blk[nlive++] = ebb__pool_start(p) + i * 64;
    ebb__heap_free(blk, nlive);
    ebb_collect(1);
}

/* A refill that finds no room in its bin but what a purge pass borrowed
 * waits for the pass (it holds the lend lock until the blocks are back)
 * rather than take a new pool while that memory waits. */
typedef struct {
    ebb__heap_t *h;
    void *got;
    _Atomic int done;
} refill_arg_t;

static void *refill_one(void *arg)
{
    refill_arg_t *r = arg;
    assert_int_equal(unit_heap_alloc(r->h, CLS64, &r->got, 1), 1);
    atomic_store(&r->done, 1);
    return NULL;
}

static void test_a_refill_waits_for_borrowed_room(void **state)
{
    (void)state;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, CLS64);
    static void *blk[1024];
    take_filled(h, blk, 1024, 7); /* one whole pool: the bin has no room */
    ebb__pool_t *p = pool_holding(blk[0]);
    uint8_t *page = ebb__pool_start(p) + 4096;
    void *on_page[64];
    for (unsigned i = 0; i < 64; i++)
        on_page[i] = page + i * 64;
    ebb__heap_free(on_page, 64);
    size_t pools = b->pools;
    ebb__purge_batch_t batch = { .n = 1 }, lent;
    batch.range[0] = (ebb__os_range_t){ .p = page, .size = 4096 };
    ebb__pool_t *owner[1];
    ebb__lock(&ebb__arenas.lend_lock); /* as purge_bin_due does */
    ebb__lock(&b->lock);
    ebb__heap_lend(b, &batch, &lent, owner);
    ebb__unlock(&b->lock);
    refill_arg_t r = { .h = h };
    pthread_t t;
    pthread_create(&t, NULL, refill_one, &r);
    sleep_ms(50);
    int early = atomic_load(&r.done); /* asserted once the locks are let go */
    ebb__lock(&b->lock);
    size_t pools_then = b->pools;
    ebb__heap_unlend(b, &lent, owner);
    ebb__unlock(&b->lock);
    ebb__unlock(&ebb__arenas.lend_lock);
    pthread_join(t, NULL);
    assert_false(early); /* it waited, and took no new pool meanwhile */
    assert_int_equal(pools_then, pools);
    assert_true((uint8_t *)r.got >= page && (uint8_t *)r.got < page + 4096); /* the room it waited for */
    assert_int_equal(b->pools, pools);
    unsigned nlive = 0;
    for (unsigned i = 0; i < 1024; i++)
        if (!ebb__pool_is_free(p, i))
            blk[nlive++] = ebb__pool_start(p) + i * 64;
    ebb__heap_free(blk, nlive);
    ebb_collect(1);
}

/* Does this kernel take a vector of ranges in one call (os/linux.c)? */
static int vectors_taken(void)
{
    ebb__os_purge_setup(); /* ebb's start did it; the test does not rely on that */
    unsigned char *p = ebb__os_map(4 * 4096);
    ebb__os_range_t r[2] = { { p, 4096 }, { p + 2 * 4096, 4096 } };
    unsigned calls = ebb__os_purge_ranges(r, 2, 0);
    ebb__os_unmap(p, 4 * 4096);
    return calls == 1;
}

/* A pass over many due pools in one hold of the bin lock: every free page
 * goes back and every live block keeps its contents, and the ranges (8 in
 * each partly used pool) take one call per EBB_PURGE_RANGES where the
 * kernel takes a vector, else one each.  The pools that emptied went back
 * to their arenas at the free (but one the bin keeps); the arenas' pass
 * gives their slots back, also batched. */
static void test_a_pass_gives_back_its_pools_in_few_calls(void **state)
{
    (void)state;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, CLS64);
    enum { POOLS = 12, EMPTIED = 4, PER = 1024, RANGES = (POOLS - EMPTIED) * 8 };
    static void *blk[POOLS * PER], *gone[POOLS * PER];
    take_filled(h, blk, POOLS * PER, 7);
    /* A 64-byte pool is one 64 KiB slot; pools are numbered as first met
     * (sorting would allocate, and purge what it freed). */
    uintptr_t slot[POOLS];
    unsigned ngone = 0, npools = 0;
    for (unsigned i = 0; i < POOLS * PER; i++) {
        unsigned pool = 0;
        while (pool < npools && slot[pool] != (uintptr_t)blk[i] >> 16)
            pool++;
        if (pool == npools) {
            assert_true(npools < POOLS);
            slot[npools++] = (uintptr_t)blk[i] >> 16;
        }
        unsigned page = (unsigned)(((uintptr_t)blk[i] >> 12) & 15);
        if (pool < EMPTIED || page % 2) {
            gone[ngone++] = blk[i];
            blk[i] = NULL;
        }
    }
    assert_int_equal(npools, POOLS);
    assert_int_equal(ngone, EMPTIED * PER + (POOLS - EMPTIED) * PER / 2);
    int vector = vectors_taken();
    size_t bytes = atomic_load(&ebb__ledger.purged), clean = clean_now();
    size_t calls = atomic_load(&ebb__ledger.purges);
    ebb__heap_free(gone, ngone);
    uint32_t due = ebb__os_now_ms() + DELAY;
    /* A hold ends when the next pool's ranges might not fit in the batch;
     * the pass then says 0 ms and the purger comes back at once. */
    for (int pass = 0; pass < 4 && b->purge_head; pass++)
        ebb__heap_purge(due, DELAY, &surplus);
    assert_null(b->purge_head);
    size_t heap_calls = atomic_load(&ebb__ledger.purges) - calls;
    ebb__arena_purge(due, DELAY, &surplus);
    size_t pages = (POOLS - EMPTIED) * 8 + EMPTIED * 16;
    assert_int_equal(atomic_load(&ebb__ledger.purged) - bytes, pages * 4096);
    assert_int_equal(clean_now() - clean, pages);
    size_t made = atomic_load(&ebb__ledger.purges) - calls;
    if (vector) {
        /* 64 ranges, and at most one emptied pool the bin kept */
        assert_true(heap_calls >= 1 && heap_calls <= 2);
        assert_true(made <= heap_calls + 1); /* the slots: a vector, or a single run */
    } else {
        assert_true(heap_calls >= RANGES);
    }
    unsigned nlive = 0;
    for (unsigned i = 0; i < POOLS * PER; i++) {
        if (blk[i] == NULL)
            continue;
        assert_true(resident(blk[i]));
        assert_int_equal(((unsigned char *)blk[i])[63], 7);
        blk[nlive++] = blk[i];
    }
    for (unsigned i = 0; i < ngone; i++)
        if (((uintptr_t)gone[i] & 4095) == 0)
            assert_false(resident(gone[i]));
    ebb__heap_free(blk, nlive);
    ebb_collect(1);
    if (!vector)
        SKIP_TEST("the kernel refuses process_madvise on the process itself: the ranges "
                  "went back one call each (checked), not in vectors");
}

/* ------------------------------------------------------- sparse pools */

/* Pages 1 on of arena a's header (the first holds its fields and the hot
 * part of its descriptors) are dirty in dirty[0] exactly if a pool has a
 * bitmap word on them, or, for the page of the descriptors' cold part, if a
 * pool has a bitmap or is listed; and resident if they are. */
static void header_pages_checked(ebb__arena_t *a)
{
    const size_t at = offsetof(ebb__arena_t, bits), words = EBB_SLOTS * EBB_BITMAP_WORDS;
    /* Residency first: reading a purged page maps the zero page, which
     * mincore counts. */
    int in[EBB_SLOT_PAGES];
    for (size_t pg = 1; pg < EBB_SLOT_PAGES; pg++)
        in[pg] = resident((uint8_t *)a + (pg << 12));
    int cold_used = (atomic_load(&a->cold_users) & EBB_COLD_USERS) != 0;
    for (size_t w = 0; w < EBB_SLOTS; w++)
        cold_used |= a->bits_used[w] != 0;
    for (size_t pg = 1; (pg << 12) < at + words * 8; pg++) {
        int used = (pg << 12) < at && cold_used;
        size_t from = (pg << 12) > at ? ((pg << 12) - at) / 8 : 0, end = (((pg + 1) << 12) - at) / 8;
        for (size_t w = from; w < end && w < words && !used; w++)
            used = (a->bits_used[w / 64] >> (w % 64)) & 1;
        int dirty = (a->dirty[0] >> pg) & 1;
        if (used) {
            assert_true(dirty);
        } else {
            assert_false(dirty);
            assert_false(in[pg]);
        }
    }
}

/* A teardown that leaves a few blocks in each pool: after the pass each
 * pool keeps their indices and no bitmap words, and the arena pass purges
 * the header pages no pool has a word on; the blocks left are intact, and
 * the pools' bitmaps come back whole when they are needed. */
static void test_pools_with_few_blocks_out_give_their_bitmaps_back(void **state)
{
    (void)state;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, CLS64);
    enum { POOLS = 24, PER = 1024, KEPT = 3 };
    static void *blk[POOLS * PER], *gone[POOLS * PER];
    take_filled(h, blk, POOLS * PER, 9);
    unsigned nkept = 0, ngone = 0;
    static void *kept[POOLS * PER];
    for (unsigned i = 0; i < POOLS * PER; i++) {
        unsigned idx = (unsigned)(((uintptr_t)blk[i] & 0xffff) / 64);
        if (idx == 5 || idx == 500 || idx == 1023)
            kept[nkept++] = blk[i];
        else
            gone[ngone++] = blk[i];
    }
    assert_int_equal(nkept, POOLS * KEPT);
    /* The pages the pools' bitmaps reach, before. */
    ebb__arena_t *arena[POOLS];
    unsigned narenas = 0;
    for (unsigned i = 0; i < nkept; i += KEPT) {
        ebb__arena_t *a = ebb__arena_of((uintptr_t)kept[i]);
        unsigned k = 0;
        while (k < narenas && arena[k] != a)
            k++;
        if (k == narenas)
            arena[narenas++] = a;
    }
    uint16_t dirty_before[POOLS];
    for (unsigned k = 0; k < narenas; k++)
        dirty_before[k] = arena[k]->dirty[0];
    ebb__heap_free(gone, ngone);
    uint32_t due = ebb__os_now_ms() + DELAY;
    for (int pass = 0; pass < 8 && b->purge_head; pass++)
        ebb__heap_purge(due, DELAY, &surplus);
    for (unsigned i = 0; i < nkept; i += KEPT) {
        ebb__pool_t *p = pool_holding(kept[i]);
        assert_int_equal(p->bits_at, EBB_BITS_SPARSE);
        assert_int_equal(p->used, KEPT);
        for (unsigned j = 0; j < KEPT; j++)
            assert_false(ebb__pool_is_free(p, (uint32_t)(((uintptr_t)kept[i + j] & 0xffff) / 64)));
        assert_true(ebb__pool_is_free(p, 6));
    }
    assert_int_equal(ebb_check(), 0);
    ebb__arena_purge(ebb__os_now_ms() + DELAY, DELAY, &surplus); /* a delay after the sparsening */
    unsigned went = 0;
    for (unsigned k = 0; k < narenas; k++) {
        header_pages_checked(arena[k]);
        went += (unsigned)__builtin_popcount(dirty_before[k] & ~arena[k]->dirty[0]);
    }
    assert_true(went >= 1); /* 24 bitmaps of 16 words reach past page 1 */
    for (unsigned i = 0; i < nkept; i++) {
        assert_true(resident(kept[i]));
        assert_int_equal(((unsigned char *)kept[i])[63], 9);
    }
    /* Refills make the bitmaps again, from the lists: every block handed
     * out is one that was free, and the header pages come back as needed. */
    static void *again[POOLS * PER];
    unsigned nagain = unit_heap_alloc(h, CLS64, again, POOLS * (PER - KEPT));
    assert_int_equal(nagain, POOLS * (PER - KEPT));
    for (unsigned i = 0; i < nagain; i++)
        for (unsigned j = 0; j < nkept; j++)
            assert_ptr_not_equal(again[i], kept[j]);
    for (unsigned k = 0; k < narenas; k++)
        header_pages_checked(arena[k]);
    assert_int_equal(ebb_check(), 0);
    ebb__heap_free(again, nagain);
    ebb__heap_free(kept, nkept);
    ebb_collect(1);
}

/* An arena of sparse, unlisted pools gives the cold part of its header
 * back (its descriptors' purge-list links, bits_used); a free that lists
 * one of its pools brings the page back, counted resident, before the
 * links are written; once that pool was purged and left its list, the page
 * goes again a delay later.  Blocks intact throughout. */
static void test_a_listed_pool_brings_the_cold_page_back(void **state)
{
    (void)state;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, CLS64);
    enum { POOLS = 140, PER = 1024 }; /* over two arenas: one is all ours */
    static void *blk[POOLS * PER], *gone[POOLS * PER], *kept[POOLS * 2];
    take_filled(h, blk, POOLS * PER, 5);
    unsigned nkept = 0, ngone = 0;
    for (unsigned i = 0; i < POOLS * PER; i++) {
        unsigned idx = (unsigned)(((uintptr_t)blk[i] & 0xffff) / 64);
        if (idx == 3 || idx == 700)
            kept[nkept++] = blk[i];
        else
            gone[ngone++] = blk[i];
    }
    ebb__heap_free(gone, ngone);
    uint32_t due = ebb__os_now_ms() + DELAY;
    for (int pass = 0; pass < 16 && b->purge_head; pass++)
        ebb__heap_purge(due, DELAY, &surplus);
    assert_null(b->purge_head);
    /* A delay after the pass that made the pools sparse (it may have taken
     * a few ms): their arenas' header pages are due. */
    ebb__arena_purge(ebb__os_now_ms() + DELAY, DELAY, &surplus);
    /* An arena whose cold part went: one holding our pools only. */
    ebb__arena_t *a = NULL;
    void *mine[2] = { NULL, NULL };
    for (unsigned i = 0; i < nkept && a == NULL; i++) {
        ebb__arena_t *c = ebb__arena_of((uintptr_t)kept[i]);
        if (c->dirty[0] & EBB_COLD_PAGES)
            continue;
        a = c;
        mine[0] = kept[i];
        for (unsigned j = 0; j < nkept; j++)
            if (j != i && pool_holding(kept[j]) == pool_holding(kept[i]))
                mine[1] = kept[j];
    }
    assert_non_null(a);
    assert_non_null(mine[1]);
    assert_true(atomic_load(&a->cold_users) & EBB_COLD_GONE);
    header_pages_checked(a);
    assert_int_equal(ebb_check(), 0);
    /* A free lists the pool: the page comes back. */
    size_t clean = clean_now();
    ebb__pool_t *p = pool_holding(mine[1]);
    ebb__heap_free(mine, 1);
    assert_true(p->listed);
    assert_int_equal(p->bits_at, EBB_BITS_SPARSE);
    assert_int_equal(a->dirty[0] & EBB_COLD_PAGES, EBB_COLD_PAGES);
    assert_int_equal(atomic_load(&a->cold_users), 1);
    assert_int_equal(clean_now(), clean - (size_t)__builtin_popcount(EBB_COLD_PAGES));
    assert_ptr_equal(b->purge_tail, p);
    header_pages_checked(a);
    assert_int_equal(ebb_check(), 0);
    /* Purged (one free page is worth a call once it has waited its
     * longest) and off the list: the cold page goes a delay later at most
     * (sooner when the arenas are in surplus). */
    due = ebb__os_now_ms() + DELAY * EBB_PURGE_MAX_DELAYS;
    ebb__heap_purge(due, DELAY, &surplus);
    assert_false(p->listed);
    ebb__arena_purge(due, DELAY, &surplus); /* sees the pool leave */
    ebb__arena_purge(due + DELAY, DELAY, &surplus);
    assert_int_equal(a->dirty[0] & EBB_COLD_PAGES, 0);
    header_pages_checked(a);
    assert_int_equal(ebb_check(), 0);
    for (unsigned i = 0; i < nkept; i++)
        if (kept[i] != mine[0])
            assert_int_equal(((unsigned char *)kept[i])[63], 5);
    for (unsigned i = 0, n = 0; i < nkept; i++)
        if (kept[i] != mine[0])
            kept[n++] = kept[i];
    ebb__heap_free(kept, nkept - 1);
    ebb_collect(1);
}

/* Frees into a sparse pool take the blocks off its list; a second free of
 * one is refused and reported; the last one empties the pool. */
static void test_frees_into_a_sparse_pool(void **state)
{
    (void)state;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, CLS64);
    static void *blk[1024];
    take_filled(h, blk, 1024, 4);
    ebb__pool_t *p = pool_holding(blk[0]);
    void *kept[EBB_SPARSE_BLOCKS];
    for (unsigned i = 0; i < EBB_SPARSE_BLOCKS; i++)
        kept[i] = blk[100 * i];
    for (unsigned i = 0; i < EBB_SPARSE_BLOCKS; i++)
        blk[100 * i] = NULL;
    unsigned n = 0;
    for (unsigned i = 0; i < 1024; i++)
        if (blk[i])
            blk[n++] = blk[i];
    ebb__heap_free(blk, n);
    ebb_collect(0); /* a pass over everything: the pool keeps the most a list holds */
    assert_int_equal(p->bits_at, EBB_BITS_SPARSE);
    assert_int_equal(p->used, EBB_SPARSE_BLOCKS);
    size_t used = b->used;
    ebb__heap_free(kept, 2);
    assert_int_equal(p->used, EBB_SPARSE_BLOCKS - 2);
    assert_int_equal(b->used, used - 2);
    assert_true(ebb__pool_is_free(p, 0));
    assert_true(ebb__pool_is_free(p, 100));
    assert_false(ebb__pool_is_free(p, 200));
    void *twice[2] = { kept[1], (uint8_t *)kept[2] + 8 };
    assert_int_equal(reported_by_free(twice, 2), 2); /* the double free, and the interior pointer */
    assert_int_equal(p->used, EBB_SPARSE_BLOCKS - 2);
    assert_int_equal(ebb_check(), 0);
    /* A corrupt list is what ebb_check reports. */
    uint16_t was = p->held[1];
    p->held[1] = p->held[0];
    int saved = ebb__opt.on_error;
    ebb__opt.on_error = EBB_ON_ERROR_IGNORE;
    int faults = ebb_check();
    ebb__opt.on_error = saved;
    p->held[1] = was;
    assert_true(faults >= 1);
    ebb__heap_free(kept + 2, EBB_SPARSE_BLOCKS - 2);
    assert_int_equal(p->used, 0);
    assert_int_equal(b->used, used - EBB_SPARSE_BLOCKS);
    ebb_collect(1);
}

/* -------------------------------------------------------------- surplus */

/* The demand estimate slides over the last window: what was taken since
 * the current window began, plus the part of the previous window still
 * inside the last `window` ms; after a silence, the average over it. */
static void test_demand_is_a_sliding_window(void **state)
{
    (void)state;
    uint32_t t = 4000000000u; /* the clock wraps through the test */
    ebb__demand_t d = { .taken = 100, .mark = 0, .last = 0, .since = t };
    assert_int_equal(ebb__demand_recent(&d, t + 50, 100), 100);
    assert_int_equal(ebb__demand_recent(&d, t + 100, 100), 100); /* rolled: all in `last` */
    assert_int_equal(ebb__demand_recent(&d, t + 150, 100), 50);  /* half of it still inside */
    d.taken += 10;
    assert_int_equal(ebb__demand_recent(&d, t + 150, 100), 60);
    assert_int_equal(ebb__demand_recent(&d, t + 500, 100), 2); /* 10 over 400 ms */
    assert_int_equal(ebb__demand_recent(&d, t + 700, 100), 0);
}

/* Free memory beyond the demand and the margin is surplus; with the
 * option off, a delay of 0, or within the margin, the delay stands. */
static void test_surplus_rule(void **state)
{
    (void)state;
    size_t mib = (size_t)1 << 20;
    int s = 0;
    assert_int_equal(ebb__surplus_delay(100, 64 * mib, 0, mib, &s), EBB_SURPLUS_QUIET_MS);
    assert_true(s);
    s = 0;
    assert_int_equal(ebb__surplus_delay(100, 64 * mib, 64 * mib, mib, &s), 100);
    assert_int_equal(ebb__surplus_delay(100, 64 * mib, 63 * mib, mib, &s), 100); /* the margin */
    assert_int_equal(ebb__surplus_delay(100, 64 * mib, 62 * mib, mib, &s), EBB_SURPLUS_QUIET_MS);
    assert_true(s);
    s = 0;
    assert_int_equal(ebb__surplus_delay(0, 64 * mib, 0, mib, &s), 0);
    ebb__opt.purge_surplus = 0;
    assert_int_equal(ebb__surplus_delay(100, 64 * mib, 0, mib, &s), 100);
    ebb__opt.purge_surplus = 1;
    assert_false(s);
}

/* Set an owner's demand to `recent` units over the last window, at now. */
static void demand_set(ebb__demand_t *d, uint32_t recent, uint32_t now)
{
    d->mark = d->taken;
    d->last = recent;
    d->since = now;
}

/* What a thread took is counted in the owner's window and as its own
 * share; when the thread is gone its share leaves the demand, from the
 * current window or, once that rolled, from the one before. */
static void test_a_gone_thread_takes_its_share_back(void **state)
{
    (void)state;
    uint32_t t = 1000;
    ebb__demand_t d = { .taken = 0, .mark = 0, .last = 0, .since = t };
    ebb__took_t mine = { 0, 0 };
    ebb__demand_count(&d, NULL, 40); /* another thread's, or nobody's */
    ebb__demand_count(&d, &mine, 100);
    assert_int_equal(mine.n, 100);
    assert_int_equal(ebb__demand_recent(&d, t + 10, 100), 140);
    ebb__demand_forget(&d, &mine);
    assert_int_equal(ebb__demand_recent(&d, t + 10, 100), 40);
    assert_int_equal(mine.n, 0);
    ebb__demand_count(&d, &mine, 60);
    assert_int_equal(ebb__demand_recent(&d, t + 100, 100), 100); /* rolled: 40 + 60 in `last` */
    ebb__demand_forget(&d, &mine); /* counted in the window before */
    assert_int_equal(ebb__demand_recent(&d, t + 100, 100), 40);
    ebb__demand_count(&d, &mine, 5); /* a new window: the share starts again */
    assert_int_equal(mine.n, 5);
    assert_int_equal(mine.since, d.since);
}

/* A thread that took blocks and exits, with no thread made within the last
 * delay: its takes leave its bin's demand.  While threads are being made,
 * they stay (the next thread takes as much again): with a delay of a
 * minute, the exiting thread's own start is within it.  Demand is read
 * over a window no test outlives, so it does not fade while the test runs
 * late under load.  Last in the group: the short delay lets the purger
 * roll every bin's window meanwhile. */
static ebb__heap_t *exit_heap;
static void *take_then_exit(void *arg)
{
    unsigned ms = *(unsigned *)arg;
    ebb_free(ebb_malloc(16)); /* the thread's cache is made now */
    struct timespec ts = { 0, (long)ms * 1000000L };
    nanosleep(&ts, NULL); /* older than the delay when it exits, if ms is */
    static void *b[200];
    for (int i = 0; i < 200; i++)
        b[i] = ebb_malloc(400); /* refills: takes from the thread's heap */
    exit_heap = ebb__self->heap;
    for (int i = 0; i < 200; i++)
        ebb_free(b[i]);
    return NULL;
}

static uint32_t demand_after_a_thread(long delay, unsigned sleep_ms)
{
    unsigned cls = ebb__class_of(400);
    ebb__opt.purge_delay = delay;
    for (unsigned h = 0; h < ebb__heaps.n; h++) { /* earlier takes: long ago */
        ebb__bin_t *b = &ebb__heaps.heap[h].bin[cls];
        ebb__lock(&b->lock);
        demand_set(&b->demand, 0, ebb__os_now_ms());
        ebb__unlock(&b->lock);
    }
    pthread_t t;
    pthread_create(&t, NULL, take_then_exit, &sleep_ms);
    pthread_join(t, NULL);
    ebb__bin_t *b = &exit_heap->bin[cls];
    ebb__lock(&b->lock);
    uint32_t d = ebb__demand_recent(&b->demand, ebb__os_now_ms(), (uint32_t)DELAY);
    ebb__unlock(&b->lock);
    return d;
}

static void test_exited_threads_takes_leave_the_demand(void **state)
{
    (void)state;
    long was = ebb__opt.purge_delay;
    atomic_store(&ebb__purge_poked_at, ebb__os_now_ms() + 600000); /* no pokes meanwhile */
    uint32_t settled = demand_after_a_thread(20, 60);
    uint32_t churning = demand_after_a_thread(60000, 0);
    ebb__opt.purge_delay = was;
    atomic_store(&ebb__purge_poked_at, ebb__os_now_ms());
    assert_true(settled < 64);   /* what the thread took was forgotten at its exit, */
    assert_true(churning >= 64); /* not while threads are made: a refill takes 64 blocks */
}

/* A pass reads the clock once; a thread that frees while it runs stamps a
 * later time.  That memory was just freed: not due, and no window of the
 * demand ends because of it (CI at 4a08db7: 4 MiB of a loop's slots purged
 * under a 60 s delay, their stamps 4-12 ms after the pass's clock). */
static void test_a_stamp_after_the_pass_clock_is_new(void **state)
{
    (void)state;
    uint32_t t = 4294967290u; /* the clock wraps between the two readings */
    assert_int_equal(ebb__age_ms(t, t + 12), 0);
    assert_int_equal(ebb__age_ms(t + 12, t), 12);
    assert_false(ebb__due(t, t + 12, 60000));
    assert_true(ebb__due(t, t + 12, 0));
    assert_int_equal(ebb__ms_until(t, t + 12, 60000), 60000);
    ebb__demand_t d = { .taken = 100, .mark = 0, .last = 0, .since = t + 12 };
    assert_int_equal(ebb__demand_recent(&d, t, 100), 100);
    assert_int_equal(d.since, t + 12);

    enum { POOLS = 40 };
    QUIET_HEAP(h);
    static void *blk[POOLS * 1024];
    take_filled(h, blk, POOLS * 1024, 5);
    uint32_t pass_clock = ebb__os_now_ms();
    ebb__heap_free(blk, POOLS * 1024); /* stamped at or after pass_clock */
    ebb__lock(&ebb__arenas.lock);
    demand_set(&ebb__arenas.demand, 1000, pass_clock);
    ebb__unlock(&ebb__arenas.lock);
    size_t committed = ebb__committed_now();
    int s = 0;
    ebb__arena_purge(pass_clock - 5, DELAY, &s);
    assert_int_equal(ebb__committed_now(), committed);
    ebb_collect(1);
}

/* Free arena slots: kept for the delay while the program took as many
 * over the last one, given back once quiet for the surplus time when it
 * took none. */
static void test_surplus_slots_go_back_once_quiet(void **state)
{
    (void)state;
    enum { POOLS = 40 }; /* 2.5 MiB, over the margin */
    QUIET_HEAP(h);
    static void *blk[POOLS * 1024];
    take_filled(h, blk, POOLS * 1024, 3);
    ebb__heap_free(blk, POOLS * 1024); /* all but the bin's last pool go back, dirty */
    uint32_t now = ebb__os_now_ms();
    size_t committed = ebb__committed_now();
    ebb__lock(&ebb__arenas.lock);
    demand_set(&ebb__arenas.demand, 1000, now);
    ebb__unlock(&ebb__arenas.lock);
    int s = 0;
    ebb__arena_purge(now + 5, DELAY, &s);
    assert_false(s);
    assert_true(ebb__committed_now() >= committed); /* taken as fast as it came back */
    ebb__lock(&ebb__arenas.lock);
    demand_set(&ebb__arenas.demand, 0, now);
    ebb__unlock(&ebb__arenas.lock);
    ebb__arena_purge(now + 5, DELAY, &s);
    assert_true(s);
    assert_true(committed - ebb__committed_now() >= (size_t)(POOLS - 2) * 64 * 1024);
    ebb_collect(1);
}

/* Partly used pools of a bin that took nothing lately are purged once
 * quiet for the surplus time; while it took more than it has free, they
 * wait the delay. */
static void test_surplus_pools_go_back_once_quiet(void **state)
{
    (void)state;
    enum { POOLS = 40 };
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    static void *blk[POOLS * 1024];
    take_filled(h, blk, POOLS * 1024, 4);
    for (unsigned i = 0; i < POOLS; i++) /* pages 0-11 of every pool */
        ebb__heap_free(blk + i * 1024, 768);
    uint32_t now = ebb__os_now_ms();
    size_t purged = atomic_load(&ebb__ledger.purged);
    ebb__lock(&b->lock);
    demand_set(&b->demand, POOLS * 1024, now);
    ebb__unlock(&b->lock);
    int s = 0;
    ebb__heap_purge(now + 5, DELAY, &s);
    assert_false(s);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged);
    ebb__lock(&b->lock);
    demand_set(&b->demand, 0, now);
    ebb__unlock(&b->lock);
    for (int pass = 0; pass < 100 && b->purge_head; pass++) /* a batch per hold */
        ebb__heap_purge(now + 5, DELAY, &s);
    assert_true(s);
    assert_null(b->purge_head);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged + (size_t)POOLS * 12 * 4096);
    for (unsigned i = 0; i < POOLS; i++) /* live blocks untouched */
        assert_int_equal(((unsigned char *)blk[i * 1024 + 1000])[0], 4);
    for (unsigned i = 0; i < POOLS; i++)
        ebb__heap_free(blk + i * 1024 + 768, 256);
    ebb_collect(1);
}

/* A bin's last empty pool: while anything was taken from the bin over the
 * delay, a pool's worth waits the delay (the margin); once nothing was,
 * there is no margin and it goes back once quiet. */
static void test_no_margin_without_demand(void **state)
{
    (void)state;
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    static void *blk[1024];
    take_filled(h, blk, 1024, 5);
    ebb__heap_free(blk, 1024); /* the bin's only pool: it stays, empty, listed */
    assert_int_equal(b->pools, 1);
    uint32_t now = ebb__os_now_ms();
    size_t purged = atomic_load(&ebb__ledger.purged);
    ebb__lock(&b->lock);
    demand_set(&b->demand, 2, now); /* 1 block still inside the window at now + 5 */
    ebb__unlock(&b->lock);
    int s = 0;
    ebb__heap_purge(now + 5, DELAY, &s);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged); /* within the margin */
    ebb__lock(&b->lock);
    demand_set(&b->demand, 0, now);
    ebb__unlock(&b->lock);
    ebb__heap_purge(now + 5, DELAY, &s);
    assert_true(s);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged + (size_t)16 * 4096);
    ebb_collect(1);
}

/* In surplus the pass requeues a pool not worth a purge yet ahead of the
 * clock (EBB_SURPLUS_RECHECK_MS past its pass); pools that join the list
 * at the clock go before those, each after the pools of the nearest
 * earlier key (heap.c finds them through that key's hint rather than
 * walking back over the requeued pools). */
static void test_joining_pools_go_before_the_requeued_ones(void **state)
{
    (void)state;
    enum { POOLS = 6, AHEAD = 4 };
    unsigned cls = CLS64;
    QUIET_HEAP(h);
    ebb__bin_t *b = bin_of(h, cls);
    static void *blk[POOLS * 1024];
    take_filled(h, blk, POOLS * 1024, 6);
    uint32_t t = ebb__os_now_ms();
    for (int i = 0; i < AHEAD; i++) /* 16 blocks: no free page, never worth a purge */
        ebb__heap_free(blk + i * 1024, 16);
    ebb__pool_t *requeued = b->purge_head;
    ebb__lock(&b->lock);
    demand_set(&b->demand, 0, t);
    ebb__unlock(&b->lock);
    int s = 0;
    uint32_t pass = t + 1000; /* far ahead of the frees below */
    ebb__heap_purge(pass, DELAY, &s);
    assert_true(s);
    uint32_t key = ebb__pool_cold(requeued)->queued_at;
    assert_int_equal(key, pass + EBB_SURPLUS_RECHECK_MS - EBB_SURPLUS_QUIET_MS);

    ebb__heap_free(blk + 4 * 1024, 16); /* B joins at the clock */
    ebb__pool_t *pb = b->purge_head;
    uint32_t kb = ebb__pool_cold(pb)->queued_at;
    uint32_t kc;
    while ((kc = ebb__os_now_ms()) == kb) /* the coarse clock's next tick */
        sleep_ms(1);
    assert_true(kc - kb < EBB_PURGE_HINTS && (int32_t)(key - kc) > 0);
    ebb__heap_free(blk + 5 * 1024, 16); /* C joins a tick later */
    ebb__pool_t *pc = ebb__pool_cold(pb)->purge_next;
    assert_int_equal(ebb__pool_cold(pc)->queued_at, kc);
    assert_null(ebb__pool_cold(pb)->purge_prev);
    assert_ptr_equal(ebb__pool_cold(pc)->purge_prev, pb);
    const ebb__pool_t *p = ebb__pool_cold(pc)->purge_next;
    for (int i = 0; i < AHEAD; i++, p = ebb__pool_cold(p)->purge_next)
        assert_int_equal(ebb__pool_cold(p)->queued_at, key);
    assert_null(p);
    assert_ptr_equal(b->purge_hint[kc % EBB_PURGE_HINTS], pc);
    assert_int_equal(ebb_check(), 0); /* order and hints */
    for (int i = 0; i < POOLS; i++)
        ebb__heap_free(blk + i * 1024 + 16, 1024 - 16);
    ebb_collect(1);
}

/* Threads are asked for their cached blocks once a delay, but every
 * EBB_SURPLUS_POKE_MS within EBB_SURPLUS_POKE_WINDOW_MS of a pass that
 * found surplus: a teardown's last blocks sit in the freeing thread's
 * cache, a block from each of hundreds of pools it emptied. */
static void test_in_surplus_threads_are_asked_sooner(void **state)
{
    (void)state;
    uint32_t now = ebb__os_now_ms();
    int s = 0;
    atomic_store(&ebb__purge_surplus_seen, 0);
    atomic_store(&ebb__purge_poked_at, now);
    ebb__purge_pass(now + EBB_SURPLUS_POKE_MS, DELAY, &s); /* no surplus seen: no poke */
    assert_int_equal(atomic_load(&ebb__purge_poked_at), now);

    atomic_store(&ebb__purge_surplus_at, now);
    atomic_store(&ebb__purge_surplus_seen, 1);
    uint32_t next = ebb__purge_pass(now + EBB_SURPLUS_POKE_MS, DELAY, &s);
    assert_int_equal(atomic_load(&ebb__purge_poked_at), now + EBB_SURPLUS_POKE_MS);
    assert_ptr_equal(atomic_load(&ebb__self), &ebb__thread_poked); /* this thread too */
    assert_true(next <= EBB_SURPLUS_POKE_MS); /* the purger comes back for the next */
    ebb_free(ebb_malloc(64)); /* answers: its cache goes home */
    assert_ptr_not_equal(atomic_load(&ebb__self), &ebb__thread_poked);

    /* The window over, once a delay again. */
    atomic_store(&ebb__purge_surplus_at,
                 now + 2 * EBB_SURPLUS_POKE_MS - EBB_SURPLUS_POKE_WINDOW_MS - 1);
    ebb__purge_pass(now + 2 * EBB_SURPLUS_POKE_MS, DELAY, &s);
    assert_int_equal(atomic_load(&ebb__purge_poked_at), now + EBB_SURPLUS_POKE_MS);
    atomic_store(&ebb__purge_surplus_seen, 0);
    atomic_store(&ebb__purge_poked_at, ebb__os_now_ms());
}

/* ----------------------------------------------------- arenas and large */

static void test_free_slots_purged_when_due(void **state)
{
    (void)state;
    ebb__pool_t *p = clean_pool(CLS64);
    void *b[1024];
    unit_pool_take(p, b, 1024);
    memset(b[0], 1, 64 * 1024);
    put_range(p, 0, 1023);
    ebb__arena_t *a = ebb__arena_of_pool(p);
    unsigned slot = p->head_slot;
    size_t clean = clean_now();
    ebb__arena_release_pool(p); /* dirty pages go back with the slot */
    assert_ptr_equal(ebb__arena_of((uintptr_t)b[0]), a); /* kept: the spare at worst */
    assert_int_equal(a->dirty[slot], 0xffff);
    uint32_t now = ebb__os_now_ms();
    uint32_t left = ebb__arena_purge(now, DELAY, &surplus);
    assert_true(left <= DELAY && left >= DELAY - 1000);
    assert_int_equal(a->dirty[slot], 0xffff);
    uint16_t header = a->dirty[0];
    assert_int_equal(ebb__arena_purge(now + DELAY, DELAY, &surplus), UINT32_MAX);
    assert_false(resident(b[0]));
    assert_int_equal(a->dirty[slot], 0);
    /* ...and the header's pages that only the pool needed (its bitmap, and
     * the cold part of its descriptor) */
    unsigned header_gone = (unsigned)__builtin_popcount((unsigned)(header & ~a->dirty[0]));
    assert_int_equal(clean_now(), clean + 16 + header_gone);
}

static void test_large_cache_expires(void **state)
{
    (void)state;
    ebb_collect(1);
    size_t saved = ebb__opt.large_cache; /* none by default on 32-bit */
    ebb__opt.large_cache = (size_t)4 << 20;
    void *p = ebb_malloc(1 << 20);
    assert_non_null(p);
    memset(p, 1, 1 << 20);
    ebb_free(p);
    ebb__opt.large_cache = saved;
    ebb_stats_t s;
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 1 << 20);
    uint32_t now = ebb__os_now_ms();
    assert_true(ebb__large_purge(now, DELAY, &surplus) <= DELAY);
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 1 << 20);
    assert_int_equal(ebb__large_purge(now + DELAY, DELAY, &surplus), UINT32_MAX);
    ebb_stats(&s);
    assert_int_equal(s.mapped_large_cached, 0);
}

/* Without a purger thread, frees run the pass themselves once it is due.
 * The pass reads the clock itself: the delay is long enough (half a second)
 * that no pause of this thread between a free and its kick makes a pool
 * due early, and the test waits on the clock for A's deadline rather than
 * sleeping a guess. */
#define INLINE_DELAY 500
static void test_inline_fallback_purges_on_activity(void **state)
{
    (void)state;
    QUIET_HEAP(h); /* nothing listed: a purger thread ends within its longest sleep */
    /* No purger thread may run the pass in the kicks' place: one that ends
     * while the state says INLINE leaves NONE, and the next kick would start
     * a thread whose pass comes after the check (seen: nothing purged, 1 run
     * in 30). */
    assert_true(wait_purger(0, 5 * EBB_PURGE_MAX_SLEEP_MS));
    /* Nothing listed by earlier tests, or freed by the purger as it ended
     * (its TLS vector, on 32-bit), may come due in the wait below and be
     * purged with A (seen: 16 KiB more than A's, 2 runs in 40; 4 KiB more
     * on 32-bit once the test waited for the purger's end). */
    ebb_collect(1);
    int saved_state = atomic_load(&ebb__purger_state);
    atomic_store(&ebb__purger_state, EBB_PURGER_INLINE);
    ebb__opt.purge_delay = INLINE_DELAY;
    static void *blk[2048];
    take_filled(h, blk, 2048, 3);
    size_t purged = atomic_load(&ebb__ledger.purged);
    ebb__heap_free(blk, 256); /* pool A listed, a kick owed */
    assert_true(ebb__purge_owed);
    ebb__purge_owed_kick(); /* as the front does: it finds nothing due */
    assert_false(ebb__purge_owed);
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged);
    uint32_t listed = ebb__os_now_ms(); /* A was listed by now */
    while ((int32_t)(ebb__os_now_ms() - (listed + INLINE_DELAY)) <= 0) {
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    ebb__heap_free(blk + 1024, 256); /* pool B listed; its kick purges A */
    ebb__purge_owed_kick();
    assert_int_equal(atomic_load(&ebb__ledger.purged), purged + 4 * 4096);
    ebb__opt.purge_delay = DELAY;
    atomic_store(&ebb__purger_state, saved_state);
    ebb__heap_free(blk + 256, 768);
    ebb__heap_free(blk + 1280, 768);
    ebb_collect(1);
}

static void test_committed_follows_dirty_pages(void **state)
{
    (void)state;
    ebb_collect(1);
    ebb_stats_t s0, s1, s2;
    ebb_stats(&s0);
    static void *blk[16384];
    for (int i = 0; i < 16384; i++) {
        blk[i] = ebb_malloc(256);
        memset(blk[i], 1, 256);
    }
    ebb_stats(&s1);
    assert_true(s1.committed >= s0.committed + 4u * 1024 * 1024 - 65536);
    assert_true(s1.committed <= s1.mapped);
    assert_true(s1.peak_committed >= s1.committed);
    for (int i = 0; i < 16384; i++)
        ebb_free(blk[i]);
    ebb_collect(1);
    ebb_stats(&s2);
    assert_true(s2.committed <= s0.committed + 65536);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* The purge-list tests need a heap the test framework's blocks do not
     * share (QUIET_HEAP); on one CPU ebb makes a single heap by default:
     * run again with two, rather than skip them. */
    ebb_stats_t s;
    ebb_stats(&s);
    if (s.heaps < 2 && getenv("EBB_HEAPS") == NULL) {
        setenv("EBB_HEAPS", "2", 1);
        execv("/proc/self/exe", argv);
        perror("test_purge: running again with EBB_HEAPS=2");
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_take_marks_exactly_the_pages_touched, unit_teardown_check),
        cmocka_unit_test_teardown(test_purge_takes_only_pages_with_no_live_block, unit_teardown_check),
        cmocka_unit_test_teardown(test_idle_blocks_are_due_at_once, unit_teardown_check),
        cmocka_unit_test_teardown(test_borrowed_blocks_are_out_of_reach, unit_teardown_check),
        cmocka_unit_test_teardown(test_blocks_larger_than_a_page, unit_teardown_check),
        cmocka_unit_test_teardown(test_freed_pool_is_listed_and_purged_when_due, unit_teardown_check),
        cmocka_unit_test_teardown(test_few_free_pages_wait_for_the_longest_wait, unit_teardown_check),
        cmocka_unit_test_teardown(test_met_early_goes_back_at_its_last_free, unit_teardown_check),
        cmocka_unit_test_teardown(test_allocating_from_a_listed_pool_restarts_its_clock, unit_teardown_check),
        cmocka_unit_test_teardown(test_idle_empty_pool_is_released_clean, unit_teardown_check),
        cmocka_unit_test_teardown(test_a_pass_gives_back_its_pools_in_few_calls, unit_teardown_check),
        cmocka_unit_test_teardown(test_a_borrowed_block_freed_again_is_refused, unit_teardown_check),
        cmocka_unit_test_teardown(test_a_refill_waits_for_borrowed_room, unit_teardown_check),
        cmocka_unit_test_teardown(test_pools_with_few_blocks_out_give_their_bitmaps_back,
                                  unit_teardown_check),
        cmocka_unit_test_teardown(test_frees_into_a_sparse_pool, unit_teardown_check),
        cmocka_unit_test_teardown(test_a_listed_pool_brings_the_cold_page_back, unit_teardown_check),
        cmocka_unit_test_teardown(test_free_slots_purged_when_due, unit_teardown_check),
        cmocka_unit_test_teardown(test_demand_is_a_sliding_window, unit_teardown_check),
        cmocka_unit_test_teardown(test_a_stamp_after_the_pass_clock_is_new, unit_teardown_check),
        cmocka_unit_test_teardown(test_surplus_rule, unit_teardown_check),
        cmocka_unit_test_teardown(test_a_gone_thread_takes_its_share_back, unit_teardown_check),
        cmocka_unit_test_teardown(test_surplus_slots_go_back_once_quiet, unit_teardown_check),
        cmocka_unit_test_teardown(test_surplus_pools_go_back_once_quiet, unit_teardown_check),
        cmocka_unit_test_teardown(test_no_margin_without_demand, unit_teardown_check),
        cmocka_unit_test_teardown(test_joining_pools_go_before_the_requeued_ones,
                                  unit_teardown_check),
        cmocka_unit_test_teardown(test_in_surplus_threads_are_asked_sooner, unit_teardown_check),
        cmocka_unit_test_teardown(test_large_cache_expires, unit_teardown_check),
        cmocka_unit_test_teardown(test_inline_fallback_purges_on_activity, unit_teardown_check),
        cmocka_unit_test_teardown(test_committed_follows_dirty_pages, unit_teardown_check),
        cmocka_unit_test_teardown(test_exited_threads_takes_leave_the_demand, unit_teardown_check),
    };
    return cmocka_run_group_tests_name("purge", tests, setup, NULL);
}
