/*
 * thread.c -- what ebb keeps per thread: its cache of free blocks (the
 * lock-free fast path) and the heap profiler's countdown.
 *
 * Owns: each thread's state (ebb__thread_t: a stack of free blocks per
 * cached size class, and the sampler's countdown beside them, since
 * malloc's fast path touches both through one pointer), the registry of all
 * of them, and their lifecycle (made on a thread's first allocation, by the
 * front, flushed and recycled when it exits, reclaimed in a fork child).
 *
 * malloc pops and free pushes on the calling thread's stack for the class:
 * a load, a compare and a store, no lock, no atomic.  A free from another
 * thread is just a push on the freeing thread's own stack, so cross-thread
 * frees cost the owner nothing at all; the block goes home, checked against
 * its pool's bitmap, when that stack flushes.  An empty stack refills half
 * its capacity from the thread's heap under one lock; a full one flushes its
 * newer half (see "Flushing" below).  Capacity per class: 32 KiB of blocks,
 * between 4 and 128 of them, so an idle thread pins a bounded amount (about
 * 1.2 MiB if every cached class is full, usually far less); after a run of
 * frees with no allocation (a teardown), half that (EBB_FREE_ONLY_OVERFLOWS).
 *
 * Cached blocks are out of their pools and pin their pages, so the purger
 * pokes threads to give them back (see "Poking" below), and takes them
 * from a thread that leaves the poke unanswered (see "Idle threads").
 *
 * The thread-local pointer starts at a placeholder cache of zero capacity, so
 * the fast paths never test for NULL: the first push or pop fails over to the
 * slow path, where the front makes the real cache (ebb__thread_create).
 * Thread exit is detected through the C library's thread-exit destructor
 * list (no pthread key, whose setter may allocate), which runs the hook the
 * front gave (it calls ebb__thread_exit, then acts on what the flush
 * recorded); after it the thread uses the `bypass` placeholder and goes
 * straight to its heap.
 *
 * Only the owner writes its stacks' entries and tops (the purger, taking
 * from an idle thread, raises a stack's `low` and nothing else), and only
 * one reader looks at another thread's entries: the double-free check (freed.c), for a block that holds the
 * freed mark, with the atomic stores and acquire load internal.h describes
 * (before those, plain stores in whatever order the compiler picked let a
 * reader see a new `top` over a stale entry: ebb_check in an EBB_DEBUG=2
 * build did, and aborted on a block that had already gone home,
 * tests/api/test_fork.c, a few runs in a hundred under load).  A reader
 * that wants a whole stack's worth (statistics, ebb_check) would see it
 * change under it, so what others may know of a cache is what its owner
 * publishes on its slow paths: each stack's depth after every refill, flush,
 * poke and exit (relaxed atomic stores, nothing on the fast paths).  So
 * ebb_stats counts the calling thread's cache exactly and every other
 * thread's as of its last slow path for the class (off by at most a
 * stack's capacity per class while it runs), and ebb_check walks only the
 * calling thread's stacks; in an EBB_DEBUG=2 build every thread checks its
 * own on each of its slow paths.
 */
#include "internal.h"

#include <string.h>

EBB_HIDDEN ebb__thread_registry_t ebb__threads = { .lock = EBB_LOCK_INIT };
EBB_HIDDEN ebb__thread_t ebb__thread_unset, ebb__thread_bypass, ebb__thread_poked;
/* Caches the purger took blocks from (see "Idle threads"); atomic adds. */
EBB_HIDDEN unsigned long ebb__tcache_takes;
EBB_HIDDEN __thread _Atomic(ebb__thread_t *) ebb__self __attribute__((tls_model("initial-exec"))) =
    &ebb__thread_unset;
/* The thread's own cache, while ebb__self may be `poked`. */
static __thread ebb__thread_t *tc_own __attribute__((tls_model("initial-exec")));

static void tc_set(ebb__thread_t *tc)
{
    atomic_store_explicit(&ebb__self, tc, memory_order_relaxed);
}

_Static_assert(EBB_TCACHE_MAX_COUNT <= UINT8_MAX, "a stack's depth fits its published byte");

/* Owner only: stack cls's depth, for other threads to read. */
static void publish(ebb__thread_t *tc, unsigned cls)
{
    const ebb__tbin_t *b = &tc->bin[cls];
    atomic_store_explicit(&tc->published[cls], (uint8_t)(b->top - b->low), memory_order_relaxed);
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
    size_t bytes = sizeof(ebb__thread_t) + tcache_entry_count() * sizeof(void *);
    size_t page = ebb__os_page_size();
    return (bytes + page - 1) & ~(page - 1);
}

/* Every stack, empty, starts at its class's place in tc->entries: when the
 * cache is laid out, and after the purger raised some stack's `low` (see
 * "Idle threads"). */
static void stacks_rebase(ebb__thread_t *tc)
{
    void **e = tc->entries;
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        ebb__tbin_t *b = &tc->bin[c];
        ebb__assert(b->top == b->low);
        ebb__tbin_set_low(b, e);
        ebb__tbin_drop_top(b, e);
        e += ebb__classes[c].tcache_cap;
    }
    tc->taken_from = 0;
}

/* tc is new (zeroed) or was retired empty. */
static void tcache_layout(ebb__thread_t *tc)
{
    tc->unwind_memo.sp = 0; /* a cache an exited thread left: its memo is not this one's */
    ebb__lock_reset(&tc->stacks_lock); /* a fork child may inherit one held */
    tc->poked_at = 0;
    memset(tc->took, 0, sizeof tc->took);
    stacks_rebase(tc);
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        ebb__tbin_t *b = &tc->bin[c];
        __atomic_store_n(&b->high, b->low + ebb__classes[c].tcache_cap, __ATOMIC_RELAXED);
        b->busy = 0;
        b->streak = 0;
        atomic_store_explicit(&tc->published[c], 0, memory_order_relaxed);
    }
}

static void registry_link(ebb__thread_t *tc)
{
    tc->prev = NULL;
    tc->next = ebb__threads.active;
    if (tc->next)
        tc->next->prev = tc;
    ebb__threads.active = tc;
    ebb__threads.count++;
}

static void registry_unlink(ebb__thread_t *tc)
{
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        ebb__threads.active = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    ebb__threads.count--;
}

/* ms: when a thread last made its cache. */
static _Atomic uint32_t made_at;

/* No thread was made within the last purge delay.  Then the blocks an
 * exiting thread took lately were its own demand, which leaves with it
 * (bench/rss scenario 7: producers that made 768 MiB over a second exit,
 * and their takes kept 3.6 MiB of pools for the delay as if they would
 * take again).  While threads come and go (a thread per request), the next
 * one takes as much again, and the demand stays. */
static int threads_settled(void)
{
    long delay = ebb__opt.purge_delay;
    uint32_t made = atomic_load_explicit(&made_at, memory_order_relaxed);
    return delay > 0 && ebb__due(ebb__os_now_ms(), made, delay);
}

/* Registry lock held. */
static ebb__thread_t *tcache_new(void)
{
    ebb__thread_t *tc = ebb__threads.free;
    if (tc) {
        ebb__threads.free = tc->next;
    } else {
        size_t size = tcache_map_size();
        tc = ebb__os_map_meta(size);
        if (tc == NULL)
            return NULL;
        tc->map_size = size;
        ebb__threads.bytes += size;
        ebb__mapped_add(size);
    }
    tcache_layout(tc);
    if (!ebb__thread_is_internal()) /* the purger's restarts are not the program's */
        atomic_store_explicit(&made_at, ebb__os_now_ms(), memory_order_relaxed);
    tc->heap = ebb__heap_pick();
    tc->tls_slot = &ebb__self;
    tc->state = EBB_TC_ACTIVE;
    registry_link(tc);
    return tc;
}

/* Registry lock held; the cache must be empty. */
static void tcache_retire(ebb__thread_t *tc)
{
    registry_unlink(tc);
    tc->state = EBB_TC_FREE;
    tc->next = ebb__threads.free;
    tc->prev = NULL;
    ebb__threads.free = tc;
}

/* A fork may snapshot this thread between any two of its stores.  So blocks
 * leave the cache before they go home, never after: at worst a child inherits
 * a block that is in neither place (a leak in the child), never one that is
 * in both (a block handed out twice). */
static void leave_cache_then_go_home(void)
{
    atomic_thread_fence(memory_order_seq_cst);
}

/* Every block of stack cls goes home; `idle`: as blocks idle for a delay. */
static void empty_stack(ebb__thread_t *tc, unsigned cls, int idle)
{
    ebb__tbin_t *b = &tc->bin[cls];
    unsigned n = (unsigned)(b->top - b->low);
    if (n == 0)
        return;
    ebb__tbin_drop_top(b, b->low); /* entries stay readable: only this thread pushes */
    publish(tc, cls);
    leave_cache_then_go_home();
    if (idle)
        ebb__heap_free_idle(b->low, n);
    else
        ebb__heap_free(b->low, n);
}

/* Every cached block goes home.  Callers own the stacks: the thread is
 * exiting (the purger takes only from active ones) or another thread's in a
 * fork child. */
static void flush_all_unlocked(ebb__thread_t *tc)
{
    for (unsigned c = 0; c < EBB_CLASSES; c++)
        empty_stack(tc, c, 0);
}

/* The owner, before a slow path changes its stacks: none of its blocks are
 * being taken, and a stack that some were taken from starts afresh. */
static void stacks_hold(ebb__thread_t *tc)
{
    ebb__lock(&tc->stacks_lock);
    if (EBB_UNLIKELY(tc->taken_from)) {
        flush_all_unlocked(tc);
        stacks_rebase(tc);
    }
}

static void stacks_release(ebb__thread_t *tc)
{
    ebb__unlock(&tc->stacks_lock);
}

void ebb__tcache_flush_all(ebb__thread_t *tc)
{
    stacks_hold(tc);
    flush_all_unlocked(tc);
    stacks_release(tc);
}

void ebb__thread_exit(void *arg)
{
    ebb__thread_t *tc = arg;
    /* Later destructors of this thread may still allocate: they bypass.
     * Under the registry lock, so no poke lands after this store. */
    ebb__lock(&ebb__threads.lock);
    tc->state = EBB_TC_EXITING;
    tc_set(&ebb__thread_bypass);
    tc_own = NULL;
    ebb__unlock(&ebb__threads.lock);
    flush_all_unlocked(tc);
    if (threads_settled())
        ebb__heap_forget(tc->heap, tc->took);
    ebb__lock(&ebb__threads.lock);
    tcache_retire(tc);
    ebb__unlock(&ebb__threads.lock);
}

/*
 * Poking.  Blocks sitting in a thread's cache are out of their pools, so
 * they pin their pages: after a teardown, a full cache holds a block from
 * each of some 3,000 pools, and kept 2,600 pages (10 MiB) resident in
 * bench/rss scenario 1 at scale 0.1 once everything else was purged.  Only
 * the owner may touch its stacks (the fast paths take no lock), so the
 * purger cannot take the blocks; it asks instead, by pointing the thread's
 * ebb__self at `poked`, a placeholder with no capacity.  The thread's next
 * malloc or free then misses its fast path, and the slow path gives every
 * cached block back and restores the cache; an in-flight fast path that
 * loaded the old pointer just completes on the real cache.  The blocks go
 * home like any free, so their pools are purged a delay later if they stay
 * unused.  Costs: nothing on the fast paths; for a busy thread, one flush
 * and refill per class per poke (the purger pokes once a delay, or every
 * EBB_SURPLUS_POKE_MS for a few pokes while a mass free is given back:
 * policy/purge.c).
 * A thread that never calls the allocator again cannot answer: the purger
 * takes its blocks instead (see "Idle threads").
 */
/* A stack of tc holds more than the purger leaves when it takes. */
static int holds_more_than_kept(ebb__thread_t *tc)
{
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        ebb__tbin_t *b = &tc->bin[c];
        void **top = __atomic_load_n(&b->top, __ATOMIC_ACQUIRE);
        if (top - ebb__tbin_low(b) > EBB_TCACHE_KEPT_BLOCKS)
            return 1;
    }
    return 0;
}

unsigned ebb__thread_poke_all(uint32_t now, uint32_t *take_in)
{
    unsigned n = 0;
    *take_in = UINT32_MAX;
    ebb__lock(&ebb__threads.lock);
    for (ebb__thread_t *tc = ebb__threads.active; tc; tc = tc->next)
        if (tc->state == EBB_TC_ACTIVE) {
            ebb__thread_t *was = atomic_exchange_explicit(tc->tls_slot, &ebb__thread_poked,
                                                          memory_order_relaxed);
            if (was != &ebb__thread_poked)
                tc->poked_at = now;
            if (tc != tc_own && holds_more_than_kept(tc))
                *take_in = ebb__sooner_ms(*take_in,
                                          ebb__ms_until(now, tc->poked_at, EBB_TCACHE_IDLE_MS));
            n++;
        }
    ebb__unlock(&ebb__threads.lock);
    return n;
}

/*
 * Idle threads.  A thread that never calls the allocator again after a
 * poke (blocked on a lock, a socket, a join) would keep its cache for good,
 * and after a teardown that pins a page per cached block: bench/rss
 * scenario 3 (the builder thread blocks once it has freed everything) held
 * 7.9 MiB against a floor of 2.6, scenario 3b 1.14x its floor against
 * scenario 2's 1.08x.  So once a thread has left a poke unanswered for
 * EBB_TCACHE_IDLE_MS, the purger takes the blocks itself.
 *
 * The owner's fast paths take no lock, so the purger must not race them.
 * A poked thread's next call misses its fast path (the placeholder has no
 * capacity) and answers in the slow path, which holds stacks_lock, as every
 * slow path that changes the stacks does; the purger holds it too while it
 * takes, and takes only if the thread is still poked then.  What it cannot
 * exclude is a fast path that loaded the real cache just before the poke
 * and has not finished: descheduled, or interrupted by a signal whose
 * handler blocks.  That one call pops the top entry or pushes above it, and
 * reads `low` only to compare it with `top`.  So the purger leaves the top
 * EBB_TCACHE_KEPT_BLOCKS entries of each stack and raises `low` over what
 * it takes; `top` and the entries the fast paths touch are never written
 * by anyone but their owner.  Raising `low` shrinks the stack, so the
 * owner's next slow path (stacks_hold) sends the rest home and puts every
 * stack back where it began.  A thread that was only descheduled loses
 * nothing by it: its answer to the poke would have sent the same blocks
 * home, and as with that answer (flush_for_poke), a stack that neither
 * refilled nor overflowed since the poke before goes home as idle.
 *
 * By the time the purger looks, the owner's last stores are 10 ms old or
 * more, long visible to other cores; and the entries left on top cover one
 * pop it might not see, too.  Costs: a lock and an unlock per slow path
 * (one refill or flush moves up to 64 blocks), nothing on the fast paths.
 */

/* Registry lock and tc->stacks_lock held; tc is poked and idle. */
static void take_stacks(ebb__thread_t *tc)
{
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        ebb__tbin_t *b = &tc->bin[c];
        void **top = __atomic_load_n(&b->top, __ATOMIC_ACQUIRE);
        void **low = ebb__tbin_low(b);
        if (top - low <= EBB_TCACHE_KEPT_BLOCKS)
            continue;
        void **kept = top - EBB_TCACHE_KEPT_BLOCKS;
        ebb__tbin_set_low(b, kept);
        atomic_store_explicit(&tc->published[c], (uint8_t)EBB_TCACHE_KEPT_BLOCKS,
                              memory_order_relaxed);
        if (!tc->taken_from)
            __atomic_fetch_add(&ebb__tcache_takes, 1, __ATOMIC_RELAXED);
        tc->taken_from = 1;
        leave_cache_then_go_home();
        if (b->busy)
            ebb__heap_free(low, (unsigned)(kept - low));
        else
            ebb__heap_free_idle(low, (unsigned)(kept - low));
        b->busy = 0;
    }
}

uint32_t ebb__thread_take_idle(uint32_t now)
{
    uint32_t next = UINT32_MAX;
    ebb__lock(&ebb__threads.lock);
    for (ebb__thread_t *tc = ebb__threads.active; tc; tc = tc->next) {
        if (tc->state != EBB_TC_ACTIVE || tc == tc_own ||
            atomic_load_explicit(tc->tls_slot, memory_order_relaxed) != &ebb__thread_poked ||
            !holds_more_than_kept(tc))
            continue;
        uint32_t wait = ebb__ms_until(now, tc->poked_at, EBB_TCACHE_IDLE_MS);
        if (wait > 0) {
            next = ebb__sooner_ms(next, wait);
        } else if (!ebb__trylock(&tc->stacks_lock)) {
            next = ebb__sooner_ms(next, EBB_TCACHE_IDLE_MS); /* answering now, most likely */
        } else {
            /* Under the lock the thread cannot start answering; if it
             * already has, its slow path holds the stacks. */
            if (atomic_load_explicit(tc->tls_slot, memory_order_relaxed) == &ebb__thread_poked)
                take_stacks(tc);
            ebb__unlock(&tc->stacks_lock);
        }
    }
    ebb__unlock(&ebb__threads.lock);
    return next;
}

/* Every cached block goes home.  A stack that neither refilled nor
 * overflowed since the last poke (at least a delay ago) has held its blocks
 * idle: they go home as idle, so their pools are purged at the next pass
 * instead of a delay later (bench/rss scenario 2: the tail of pages pinned
 * by a teardown's cache went back at about 250 ms instead of 350). */
static void flush_for_poke(ebb__thread_t *tc)
{
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        ebb__tbin_t *b = &tc->bin[c];
        empty_stack(tc, c, !b->busy);
        b->busy = 0;
    }
}

/* Set between ebb__thread_cache_pause and resume. */
static __thread int paused __attribute__((tls_model("initial-exec")));

static ebb__thread_t *answer_poke(void)
{
    ebb__thread_t *tc = tc_own;
    if (tc == NULL) { /* poked while making its cache: carry on bypassing */
        tc_set(&ebb__thread_bypass);
        return NULL;
    }
    tc_set(paused ? &ebb__thread_bypass : tc); /* paused: past the cache until resumed */
    stacks_hold(tc);
    flush_for_poke(tc);
    stacks_release(tc);
    return paused ? NULL : tc;
}

/* This thread's state if it has a cache; NULL if it has none (yet). */
ebb__thread_t *ebb__thread_get_slow(void)
{
    ebb__thread_t *tc = ebb__self_get();
    if (tc == &ebb__thread_poked)
        return answer_poke();
    return tc == &ebb__thread_bypass || tc == &ebb__thread_unset ? NULL : tc;
}


/* Until ebb__thread_cache_resume, this thread's allocations go straight to
 * its heap, past its cache: for what the C library allocates while ebb
 * starts a thread of its own (on 32-bit, the new thread's TLS vector at
 * every start), which must not refill the cache of the thread that happened
 * to start it (ebb_collect has just emptied it, and says so).  Nor are they
 * sampled: they are ebb's, and a sample of them would stand at whatever
 * site of the program's freed memory and kicked the purger
 * (tests/api/test_unwind.c test_threads_share_a_site counted one once, under
 * load).  A poke that lands meanwhile is answered at the thread's next call
 * after resume. */
ebb__thread_t *ebb__thread_cache_pause(void)
{
    ebb__thread_t *tc = ebb__thread_get_slow();
    if (tc)
        tc_set(&ebb__thread_bypass);
    paused = 1;
    return tc;
}

void ebb__thread_cache_resume(ebb__thread_t *tc)
{
    paused = 0;
    /* A poke that landed meanwhile stands: once it has stood for a while
     * the purger may be taking from these stacks, which only the slow
     * path's answer may wait for. */
    ebb__thread_t *bypass = &ebb__thread_bypass;
    if (tc)
        atomic_compare_exchange_strong_explicit(&ebb__self, &bypass, tc, memory_order_relaxed,
                                                memory_order_relaxed);
}

ebb__thread_t *ebb__thread_create(void (*on_exit)(void *))
{
    ebb__ensure_init();
    /* Until the cache is ready, and for good if it cannot be had, this
     * thread goes straight to a heap; registering the exit hook below
     * allocates, and that allocation must not recurse into here. */
    tc_set(&ebb__thread_bypass);
    if (!ebb__opt.tcache || ebb__opt.debug) /* the debug heap sees every call */
        return NULL;
    ebb__lock(&ebb__threads.lock);
    ebb__thread_t *tc = tcache_new();
    ebb__unlock(&ebb__threads.lock);
    if (tc == NULL)
        return NULL;
    /* The hook's record (glibc allocates it) is ebb's as much as the cache
     * is: unsampled, or the profile would show a sample at the program's
     * first allocation in every thread, gone again when the thread ends
     * (tests/api/test_sample.c test_thread_start_is_not_sampled). */
    int was_paused = paused;
    paused = 1;
    int hooked = ebb__os_on_thread_exit(on_exit, tc);
    paused = was_paused;
    if (hooked != 0) {
        /* Without an exit hook the cache would strand its blocks. */
        ebb__lock(&ebb__threads.lock);
        tcache_retire(tc);
        ebb__unlock(&ebb__threads.lock);
        return NULL;
    }
    tc_own = tc;
    tc_set(tc);
    return tc;
}

/* n entries from src to dst (below it), each with the atomic store that
 * keeps other threads' reads of a stack defined (internal.h).  Only a
 * refill that got fewer blocks than it asked for moves any. */
static void move_down(void **dst, void *const *src, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ebb__tbin_put(&dst[i], src[i]);
}

static void *refill_pop(ebb__thread_t *tc, unsigned cls)
{
    ebb__tbin_t *b = &tc->bin[cls];
    ebb__assert(b->top == b->low);
    if (b->streak > EBB_FREE_ONLY_OVERFLOWS) /* a free-only run ends: the whole stack again */
        __atomic_store_n(&b->high, b->low + ebb__classes[cls].tcache_cap, __ATOMIC_RELAXED);
    unsigned cap = (unsigned)(b->high - b->low);
    unsigned want = cap / 2 ? cap / 2 : 1;
    b->busy = 1;
    b->streak = 0;
    unsigned got = ebb__heap_alloc(tc->heap, cls, b->low + want, want, &tc->took[cls]);
    if (got == 0) {
        publish(tc, cls);
        return NULL;
    }
    /* Stored downwards from low + want, lowest address on top: handed out
     * lowest first, so a pool fills from its bottom. */
    if (got < want)
        move_down(b->low, b->low + (want - got), got);
    ebb__tbin_set_top(b, b->low + got - 1);
    publish(tc, cls);
    return *b->top;
}

void *ebb__tcache_refill_pop(ebb__thread_t *tc, unsigned cls)
{
    stacks_hold(tc);
    void *p = refill_pop(tc, cls);
    stacks_release(tc);
    return p;
}

/*
 * Flushing.  A full stack sends its newer (top) half home and keeps the
 * older half where it is: lowering `top` is the whole change to the stack.
 * Keeping the newer half instead meant moving the upper entries down before
 * lowering `top`, and a fork taken in between (other threads run on while
 * one forks) gave the child a stack whose moved entries appeared twice below
 * the old top: the child's flush of that stack found a block already free
 * and aborted (tests/api/test_unwind.c test_fork_while_sampling under TSan,
 * once in 150 forks).  The child copies the page holding `top` before the
 * pages of entries, so it sees entries at least as new as its `top`; with
 * no moves, no such pair holds a block twice.  Cost measured (callgrind,
 * bench/run.py at scale 0.02, purging off): buildfree -1.4%, prodcons -1.6%,
 * remotefree -1.4%, churn -0.4% instructions (the moves are gone); wall
 * time of churn equal within the noise (best of 11 runs: 0.531 s, 0.526 s).
 *
 * In a free-only run (more than EBB_FREE_ONLY_OVERFLOWS overflows since the
 * last refill) the whole stack goes home, and the stack's end (`high`, which
 * the push fast path compares with) comes down to half its capacity until
 * the next refill puts it back: trips home stay 64 blocks, and what the
 * stack holds when the run ends, each block pinning a page, is under half
 * its capacity instead of between half and all of it.
 */
static void flush_push(ebb__thread_t *tc, unsigned cls, void *blk)
{
    ebb__tbin_t *b = &tc->bin[cls];
    unsigned n = (unsigned)(b->top - b->low);
    unsigned drop = n - n / 2; /* the newer (top) half, at least one */
    b->busy = 1;
    if (++b->streak > EBB_FREE_ONLY_OVERFLOWS) {
        drop = n; /* a free-only run: see above */
        __atomic_store_n(&b->high, b->low + (ebb__classes[cls].tcache_cap + 1) / 2,
                         __ATOMIC_RELAXED);
    }
    if (n) {
        void **home = b->top - drop;
        ebb__tbin_drop_top(b, home); /* entries stay readable: only this thread pushes */
        leave_cache_then_go_home();
        ebb__heap_free(home, drop);
    }
    if (b->top != b->high) {
        ebb__tbin_put(b->top, blk);
        ebb__tbin_set_top(b, b->top + 1);
    } else
        ebb__heap_free(&blk, 1); /* a class with no capacity */
    publish(tc, cls);
}

void ebb__tcache_flush_push(ebb__thread_t *tc, unsigned cls, void *blk)
{
    stacks_hold(tc);
    flush_push(tc, cls, blk);
    stacks_release(tc);
}

/* ------------------------------------------------ fork, statistics, flags */

/* In a fork child only this thread exists: the other threads' caches hold
 * blocks nobody will free; give them back to their heaps (the bin and arena
 * locks, later in the lock order, were made usable first). */
static void registry_fork_child(void)
{
    ebb__lock(&ebb__threads.lock);
    ebb__thread_t *tc = ebb__threads.active;
    while (tc) {
        ebb__thread_t *next = tc->next;
        if (tc != tc_own) {
            flush_all_unlocked(tc);
            tcache_retire(tc);
        }
        tc = next;
    }
    ebb__unlock(&ebb__threads.lock);
}

EBB_HIDDEN const ebb__lockset_t ebb__thread_locks = { .name = "thread registry",
                                                       .one = &ebb__threads.lock,
                                                       .child = registry_fork_child };

/* Blocks in stack cls of tc: exact for the calling thread's own cache,
 * else as its owner last published them. */
size_t ebb__tcache_depth(const ebb__thread_t *tc, unsigned cls)
{
    if (tc == tc_own)
        return (size_t)(tc->bin[cls].top - ebb__tbin_low(&tc->bin[cls]));
    return atomic_load_explicit(&tc->published[cls], memory_order_relaxed);
}

const ebb__thread_t *ebb__thread_own(void)
{
    return tc_own;
}

void ebb__thread_stats(ebb_stats_t *s)
{
    ebb__lock(&ebb__threads.lock);
    for (ebb__thread_t *tc = ebb__threads.active; tc; tc = tc->next)
        for (unsigned c = 0; c < EBB_CLASSES; c++)
            s->small_cached += ebb__tcache_depth(tc, c) * ebb__classes[c].size;
    s->threads = ebb__threads.count;
    s->mapped_meta += ebb__threads.bytes;
    ebb__unlock(&ebb__threads.lock);
}

void ebb__thread_cached_classes(size_t cached[EBB_CLASSES])
{
    ebb__lock(&ebb__threads.lock);
    for (ebb__thread_t *tc = ebb__threads.active; tc; tc = tc->next)
        for (unsigned c = 0; c < EBB_CLASSES; c++)
            cached[c] += ebb__tcache_depth(tc, c);
    ebb__unlock(&ebb__threads.lock);
}

void ebb__thread_each_map_locked(ebb__range_fn fn, void *ctx)
{
    for (ebb__thread_t *tc = ebb__threads.active; tc; tc = tc->next)
        fn(ctx, tc, tc->map_size, EBB_RANGE_META);
    for (ebb__thread_t *tc = ebb__threads.free; tc; tc = tc->next)
        fn(ctx, tc, tc->map_size, EBB_RANGE_META);
}

/* The sampler's countdown of a thread without a cache (it goes straight to
 * a heap: EBB_TCACHE=0, or after its cache was torn down). */
static __thread ebb__sample_counter_t spare_counter __attribute__((tls_model("initial-exec")));

ebb__sample_counter_t *ebb__thread_sample_counter(void)
{
    if (EBB_UNLIKELY(paused))
        return NULL;
    ebb__thread_t *tc = ebb__thread_get_slow();
    return tc ? &tc->sample : &spare_counter;
}

ebb__unwind_memo_t *ebb__thread_unwind_memo(void)
{
    ebb__thread_t *tc = tc_own;
    return tc ? &tc->unwind_memo : NULL;
}

/* ebb's own threads (the purger, the pressure watcher, the reporter) never
 * run the program's pressure callbacks, and keep no cache: they allocate
 * rarely, and a cache of theirs would hold blocks (pinning their pages)
 * that no flush of the program's own ever reaches. */
static __thread int internal __attribute__((tls_model("initial-exec")));

void ebb__thread_mark_internal(void)
{
    internal = 1;
    if (tc_own == NULL)
        tc_set(&ebb__thread_bypass);
}

int ebb__thread_is_internal(void)
{
    return internal;
}
