/*
 * tcache.c -- per-thread caches: the lock-free fast path.
 *
 * Owns: each thread's stacks of free blocks (one per cached size class), the
 * registry of all caches, and their lifecycle (made on a thread's first
 * allocation, flushed and recycled when it exits, reclaimed in a fork child).
 *
 * malloc pops and free pushes on the calling thread's stack for the class:
 * a load, a compare and a store, no lock, no atomic.  A free from another
 * thread is just a push on the freeing thread's own stack, so cross-thread
 * frees cost the owner nothing at all; the block goes home, checked against
 * its pool's bitmap, when that stack flushes.  An empty stack refills half
 * its capacity from the thread's heap under one lock; a full one flushes its
 * older half.  Capacity per class: 32 KiB of blocks, between 4 and 128 of
 * them, so an idle thread pins a bounded amount (about 1.2 MiB if every
 * cached class is full, usually far less).
 *
 * Cached blocks are out of their pools and pin their pages, so the purger
 * pokes threads to give them back (see "Poking" below).
 *
 * The thread-local pointer starts at a placeholder cache of zero capacity, so
 * the fast paths never test for NULL: the first push or pop fails over to the
 * slow path, which makes the real cache.  Thread exit is detected through the
 * C library's thread-exit destructor list (no pthread key, whose setter may
 * allocate); after it runs the thread uses the `bypass` placeholder and goes
 * straight to its heap.
 */
#include "internal.h"

#include <string.h>

EBB_HIDDEN ebb__tcache_t ebb__tcache_unset, ebb__tcache_bypass, ebb__tcache_poked;
EBB_HIDDEN __thread _Atomic(ebb__tcache_t *) ebb__tc __attribute__((tls_model("initial-exec"))) =
    &ebb__tcache_unset;
/* The thread's own cache, while ebb__tc may be `poked`. */
static __thread ebb__tcache_t *tc_own __attribute__((tls_model("initial-exec")));

static void tc_set(ebb__tcache_t *tc)
{
    atomic_store_explicit(&ebb__tc, tc, memory_order_relaxed);
}

static size_t tcache_entry_count(void)
{
    size_t n = 0;
    for (unsigned c = 0; c < EBB_CLASSES; c++)
        n += ebb__classes[c].tcache_cap;
    return n;
}

static size_t tcache_map_size(void)
{
    size_t bytes = sizeof(ebb__tcache_t) + tcache_entry_count() * sizeof(void *);
    size_t page = ebb__os_page_size();
    return (bytes + page - 1) & ~(page - 1);
}

static void tcache_layout(ebb__tcache_t *tc)
{
    void **e = tc->entries;
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        ebb__tbin_t *b = &tc->bin[c];
        b->low = b->top = e;
        e += ebb__classes[c].tcache_cap;
        b->high = e;
        b->busy = 0;
    }
}

static void registry_link(ebb__tcache_t *tc)
{
    tc->prev = NULL;
    tc->next = ebb__g.threads;
    if (tc->next)
        tc->next->prev = tc;
    ebb__g.threads = tc;
    ebb__g.nthreads++;
}

static void registry_unlink(ebb__tcache_t *tc)
{
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        ebb__g.threads = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    ebb__g.nthreads--;
}

/* Registry lock held. */
static ebb__tcache_t *tcache_new(void)
{
    ebb__tcache_t *tc = ebb__g.free_tcaches;
    if (tc) {
        ebb__g.free_tcaches = tc->next;
    } else {
        size_t size = tcache_map_size();
        tc = ebb__os_map(size);
        if (tc == NULL)
            return NULL;
        tc->map_size = size;
        ebb__g.tcache_bytes += size;
        ebb__mapped_add(size);
    }
    tcache_layout(tc);
    tc->heap = ebb__heap_pick();
    tc->tls_slot = &ebb__tc;
    tc->state = EBB_TC_ACTIVE;
    registry_link(tc);
    return tc;
}

/* Registry lock held; the cache must be empty. */
static void tcache_retire(ebb__tcache_t *tc)
{
    registry_unlink(tc);
    tc->state = EBB_TC_FREE;
    tc->next = ebb__g.free_tcaches;
    tc->prev = NULL;
    ebb__g.free_tcaches = tc;
}

/* A fork may snapshot this thread between any two of its stores.  So blocks
 * leave the cache before they go home, never after: at worst a child inherits
 * a block that is in neither place (a leak in the child), never one that is
 * in both (a block handed out twice). */
static void leave_cache_then_go_home(void)
{
    atomic_thread_fence(memory_order_seq_cst);
}

/* Every block of stack b goes home; `idle`: as blocks idle for a delay. */
static void empty_stack(ebb__tbin_t *b, int idle)
{
    unsigned n = (unsigned)(b->top - b->low);
    if (n == 0)
        return;
    b->top = b->low; /* entries stay readable: only this thread pushes */
    leave_cache_then_go_home();
    if (idle)
        ebb__heap_free_idle(b->low, n);
    else
        ebb__heap_free(b->low, n);
}

void ebb__tcache_flush_all(ebb__tcache_t *tc)
{
    for (unsigned c = 0; c < EBB_CLASSES; c++)
        empty_stack(&tc->bin[c], 0);
}

static void tcache_thread_exit(void *arg)
{
    ebb__tcache_t *tc = arg;
    /* Later destructors of this thread may still allocate: they bypass.
     * Under the registry lock, so no poke lands after this store. */
    ebb__lock(&ebb__g.registry_lock);
    tc->state = EBB_TC_EXITING;
    tc_set(&ebb__tcache_bypass);
    tc_own = NULL;
    ebb__unlock(&ebb__g.registry_lock);
    ebb__tcache_flush_all(tc);
    ebb__lock(&ebb__g.registry_lock);
    tcache_retire(tc);
    ebb__unlock(&ebb__g.registry_lock);
}

/*
 * Poking.  Blocks sitting in a thread's cache are out of their pools, so
 * they pin their pages: after a teardown, a full cache holds a block from
 * each of some 3,000 pools, and kept 2,600 pages (10 MiB) resident in
 * bench/rss scenario 1 at scale 0.1 once everything else was purged.  Only
 * the owner may touch its stacks (the fast paths take no lock), so the
 * purger cannot take the blocks; it asks instead, by pointing the thread's
 * ebb__tc at `poked`, a placeholder with no capacity.  The thread's next
 * malloc or free then misses its fast path, and the slow path gives every
 * cached block back and restores the cache; an in-flight fast path that
 * loaded the old pointer just completes on the real cache.  The blocks go
 * home like any free, so their pools are purged a delay later if they stay
 * unused.  Costs: nothing on the fast paths; for a busy thread, one flush
 * and refill per class per poke (the purger pokes at most once a delay); a
 * thread that never calls the allocator again keeps its cache (bounded:
 * EBB_TCACHE_CLASS_BYTES per class).
 */
unsigned ebb__tcache_poke_all(void)
{
    unsigned n = 0;
    ebb__lock(&ebb__g.registry_lock);
    for (ebb__tcache_t *tc = ebb__g.threads; tc; tc = tc->next)
        if (tc->state == EBB_TC_ACTIVE) {
            atomic_store_explicit(tc->tls_slot, &ebb__tcache_poked, memory_order_relaxed);
            n++;
        }
    ebb__unlock(&ebb__g.registry_lock);
    return n;
}

/* Every cached block goes home.  A stack that neither refilled nor
 * overflowed since the last poke (at least a delay ago) has held its blocks
 * idle: they go home as idle, so their pools are purged at the next pass
 * instead of a delay later (bench/rss scenario 2: the tail of pages pinned
 * by a teardown's cache went back at about 250 ms instead of 350). */
static void flush_for_poke(ebb__tcache_t *tc)
{
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        ebb__tbin_t *b = &tc->bin[c];
        empty_stack(b, !b->busy);
        b->busy = 0;
    }
}

static ebb__tcache_t *answer_poke(void)
{
    ebb__tcache_t *tc = tc_own;
    if (tc == NULL) { /* poked while making its cache: carry on bypassing */
        tc_set(&ebb__tcache_bypass);
        return NULL;
    }
    tc_set(tc);
    flush_for_poke(tc);
    return tc;
}

/* This thread's cache, made on first use; NULL means go to the heap. */
ebb__tcache_t *ebb__tcache_get_slow(void)
{
    ebb__tcache_t *tc = ebb__tc_get();
    if (tc == &ebb__tcache_poked)
        return answer_poke();
    if (tc != &ebb__tcache_unset)
        return tc == &ebb__tcache_bypass ? NULL : tc;
    ebb__ensure_init();
    /* Until the cache is ready, and for good if it cannot be had, this
     * thread goes straight to a heap; registering the exit hook below
     * allocates, and that allocation must not recurse into here. */
    tc_set(&ebb__tcache_bypass);
    if (!ebb__opt.tcache)
        return NULL;
    ebb__lock(&ebb__g.registry_lock);
    tc = tcache_new();
    ebb__unlock(&ebb__g.registry_lock);
    if (tc == NULL)
        return NULL;
    if (ebb__os_on_thread_exit(tcache_thread_exit, tc) != 0) {
        /* Without an exit hook the cache would strand its blocks. */
        ebb__lock(&ebb__g.registry_lock);
        tcache_retire(tc);
        ebb__unlock(&ebb__g.registry_lock);
        return NULL;
    }
    tc_own = tc;
    tc_set(tc);
    return tc;
}

void *ebb__tcache_refill_pop(ebb__tcache_t *tc, unsigned cls)
{
    ebb__tbin_t *b = &tc->bin[cls];
    ebb__assert(b->top == b->low);
    unsigned cap = (unsigned)(b->high - b->low);
    unsigned want = cap / 2 ? cap / 2 : 1;
    b->busy = 1;
    unsigned got = ebb__heap_alloc(tc->heap, cls, b->low, want);
    if (got == 0)
        return NULL;
    /* Blocks come lowest address first; hand them out in that order. */
    for (unsigned i = 0, j = got - 1; i < j; i++, j--) {
        void *t = b->low[i];
        b->low[i] = b->low[j];
        b->low[j] = t;
    }
    b->top = b->low + got - 1;
    return *b->top;
}

void ebb__tcache_flush_push(ebb__tcache_t *tc, unsigned cls, void *blk)
{
    ebb__tbin_t *b = &tc->bin[cls];
    unsigned n = (unsigned)(b->top - b->low);
    unsigned drop = n - n / 2; /* the older (bottom) half, at least one */
    void *home[EBB_TCACHE_MAX_COUNT];
    b->busy = 1;
    if (n) {
        memcpy(home, b->low, drop * sizeof(void *));
        memmove(b->low, b->low + drop, (n - drop) * sizeof(void *));
        b->top -= drop;
        leave_cache_then_go_home();
        ebb__heap_free(home, drop);
    }
    if (b->top != b->high)
        *b->top++ = blk;
    else
        ebb__heap_free(&blk, 1); /* a class with no capacity */
}

/* In a fork child only this thread exists: the other threads' caches hold
 * blocks nobody will free; give them back to their heaps. */
void ebb__tcache_fork_child(void)
{
    ebb__tcache_t *tc = ebb__g.threads;
    while (tc) {
        ebb__tcache_t *next = tc->next;
        if (tc != tc_own) {
            ebb__tcache_flush_all(tc);
            tcache_retire(tc);
        }
        tc = next;
    }
}
