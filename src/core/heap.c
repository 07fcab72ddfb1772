/*
 * heap.c -- the shared heaps: a locked bin per size class, pools sorted by
 * fullness.
 *
 * Owns: which pools serve which (heap, class), the fullness buckets, and the
 * decision to release an empty pool to its arena.
 *
 * Threads are spread over a bounded number of heaps (one per CPU by default,
 * EBB_HEAPS to change), never one heap per thread: a thousand threads share
 * the same few pools per class instead of each pinning its own, which is
 * glibc's arena-per-thread footprint problem.  Heaps are reached only through
 * thread caches, half a cache at a time, so a bin lock is taken once per
 * dozens of allocations and contention stays low.
 *
 * Placement: a bin keeps its partly used pools in EBB_POOL_BUCKETS buckets by
 * the fraction of blocks in use, and takes blocks from the fullest bucket
 * first.  Live data thus piles into few pools and the others drain to empty.
 * An empty pool goes back to its arena unless the bin has no other pool with
 * room, which stops a pool from being made and released on every turn of an
 * allocate/free loop at a pool boundary.
 *
 * Frees arrive here from any thread's cache; each block is checked against
 * its pool's bitmap (double free, interior pointer) before it is taken back.
 *
 * Purging: a pool that gets blocks back joins the tail of its bin's purge
 * list.  More frees into it, or blocks taken from it, only restamp it; the
 * pass moves it to its due place when it reaches it, so the list stays in
 * order of earliest possible due time and a pass walks only what may be
 * due, while the refill and flush paths never move list entries.  A pass (purge.c)
 * purges a listed pool, and releases it if empty, once it has been quiet
 * (no block returned or taken) for the delay, or at the latest about
 * EBB_PURGE_MAX_DELAYS delays after it joined, so memory goes
 * back after staying unused for the delay whether or not the thread that
 * freed it ever runs again, a teardown still in progress is purged once at
 * its end rather than piece by piece (each purge is a system call and an
 * interrupt of every CPU running the program), and frees trickling into a
 * pool forever cannot postpone it forever.  Taking blocks from a listed
 * pool sends it back to the tail with a fresh start: it is in use, and its
 * free pages will be reused; purging them would only cost page faults.
 * The ranges one hold of the bin lock gathers go back together, in as few
 * system calls as the OS allows, with the lock let go: the blocks over them
 * are marked out meanwhile ("borrowed", purge_bin_due), so no refill hands
 * out a page whose purge is pending, and a free into the pool's other
 * blocks does not wait for the system call.
 */
#include "internal.h"

EBB_HIDDEN ebb__heap_set_t ebb__heaps;

static unsigned bucket_for(const ebb__pool_t *p)
{
    return ebb__bucket_for(p->used, p->cls);
}

static void bin_link(ebb__bin_t *b, ebb__pool_t *p, unsigned k)
{
    p->bucket = (uint8_t)k;
    p->prev = NULL;
    p->next = b->bucket[k];
    if (p->next)
        p->next->prev = p;
    b->bucket[k] = p;
    b->nonempty |= 1u << k;
}

static void bin_unlink(ebb__bin_t *b, ebb__pool_t *p)
{
    unsigned k = p->bucket;
    if (p->prev)
        p->prev->next = p->next;
    else
        b->bucket[k] = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (b->bucket[k] == NULL)
        b->nonempty &= ~(1u << k);
    p->next = p->prev = NULL;
    p->bucket = EBB_BUCKET_NONE;
}

static EBB_NOINLINE void bin_move(ebb__bin_t *b, ebb__pool_t *p, unsigned k)
{
    bin_unlink(b, p);
    bin_link(b, p, k);
}

/* After every run of blocks taken or returned: most leave the pool in its
 * bucket (eight buckets), so the move is out of line. */
static inline void bin_rebucket(ebb__bin_t *b, ebb__pool_t *p)
{
    unsigned k = bucket_for(p);
    if (EBB_UNLIKELY(k != p->bucket))
        bin_move(b, p, k);
}

/* ------------------------------------------------------------ purge list */

/* A listed pool's links and clocks are in the cold part of its descriptor
 * (types.h): joining the list announces it to the arena first, which may
 * have purged that page (arena.c, "Header pages"), and leaving it last. */
static inline ebb__pool_cold_t *cold(const ebb__pool_t *p)
{
    return ebb__pool_cold(p);
}

/* The clock, read at most once per call of heap_alloc or heap_free (0 means
 * not read yet; a clock that reads 0 is read again, which is harmless). */
static uint32_t clock_read(uint32_t *now)
{
    if (*now == 0)
        *now = ebb__os_now_ms();
    return *now;
}

/* Put p in the list at its key (the time from which it counts as due, less
 * the quiet time), after every pool with a key not later.  A pool joining
 * or going back gets `now`, so this is the tail but for pools requeued in
 * surplus, whose keys are up to EBB_SURPLUS_RECHECK_MS ahead.  The head is
 * read without the lock by the purge pass (to skip idle bins), so it is
 * written atomically. */
static void purge_list_link_after(ebb__bin_t *b, ebb__pool_t *p, ebb__pool_t *after,
                                  uint32_t key)
{
    ebb__pool_cold_t *c = cold(p);
    p->listed = 1;
    c->queued_at = key;
    c->purge_prev = after;
    c->purge_next = after ? cold(after)->purge_next : b->purge_head;
    if (c->purge_next)
        cold(c->purge_next)->purge_prev = p;
    else
        b->purge_tail = p;
    if (after)
        cold(after)->purge_next = p;
    else
        __atomic_store_n(&b->purge_head, p, __ATOMIC_RELAXED);
}

static ebb__pool_t **purge_hint_slot(ebb__bin_t *b, uint32_t key)
{
    return &b->purge_hint[key % EBB_PURGE_HINTS];
}

/* The pool after which a pool keyed `key` goes, found from the hint of the
 * nearest earlier key that has one: forward from it past the pools keyed
 * no later than `key` (usually none); NULL if no earlier key has a hint. */
static ebb__pool_t *purge_list_after_earlier(ebb__bin_t *b, uint32_t key)
{
    for (uint32_t d = 1; d < EBB_PURGE_HINTS; d++) {
        ebb__pool_t *h = *purge_hint_slot(b, key - d);
        if (!h || cold(h)->queued_at != key - d)
            continue;
        for (ebb__pool_t *n; (n = cold(h)->purge_next) && (int32_t)(cold(n)->queued_at - key) <= 0;)
            h = n;
        return h;
    }
    return NULL;
}

/* The list is in order of key, so a pool with this very key has none with
 * a later key before it: p may follow it.  Else p goes after the pools of
 * the nearest earlier hinted key; the walk back from the tail is the last
 * resort.  In surplus the pass requeues pools up to EBB_SURPLUS_RECHECK_MS
 * ahead (purge_due_pool), so a pool joining at `now` lands before all the
 * pools requeued since, and the walk back passed every one of them:
 * bench/run.py buildfree (1 GiB freed in random order) made 1.0M steps on
 * the freeing thread and 1.7M on the purger, about 10% of the freeing
 * thread's samples under perf; with the earlier key's hint 64-88K and
 * 3-5K. */
static void purge_list_insert(ebb__bin_t *b, ebb__pool_t *p, uint32_t key)
{
    ebb__pool_t *after = b->purge_tail;
    if (after && (int32_t)(cold(after)->queued_at - key) > 0) {
        ebb__pool_t *same = *purge_hint_slot(b, key);
        if (same && cold(same)->queued_at == key) {
            after = same;
        } else if ((same = purge_list_after_earlier(b, key)) != NULL) {
            after = same;
        } else {
            while (after && (int32_t)(cold(after)->queued_at - key) > 0)
                after = cold(after)->purge_prev;
        }
    }
    purge_list_link_after(b, p, after, key);
    *purge_hint_slot(b, key) = p;
}

/* p leaves the list: a hint to it moves to a neighbour with its key, or
 * goes. */
static void purge_hint_drop(ebb__bin_t *b, const ebb__pool_t *p)
{
    const ebb__pool_cold_t *c = cold(p);
    ebb__pool_t **h = purge_hint_slot(b, c->queued_at);
    if (*h != p)
        return;
    if (c->purge_prev && cold(c->purge_prev)->queued_at == c->queued_at)
        *h = c->purge_prev;
    else if (c->purge_next && cold(c->purge_next)->queued_at == c->queued_at)
        *h = c->purge_next;
    else
        *h = NULL;
}

static void purge_list_add(ebb__bin_t *b, ebb__pool_t *p, uint32_t now)
{
    ebb__arena_cold_enter(p);
    cold(p)->listed_at = now;
    cold(p)->stamp = now;
    purge_list_insert(b, p, now);
}

/* p leaves the list but stays listed (it goes back in at once). */
static void purge_list_unlink(ebb__bin_t *b, ebb__pool_t *p)
{
    ebb__pool_cold_t *c = cold(p);
    purge_hint_drop(b, p);
    if (c->purge_prev)
        cold(c->purge_prev)->purge_next = c->purge_next;
    else
        __atomic_store_n(&b->purge_head, c->purge_next, __ATOMIC_RELAXED);
    if (c->purge_next)
        cold(c->purge_next)->purge_prev = c->purge_prev;
    else
        b->purge_tail = c->purge_prev;
    c->purge_next = c->purge_prev = NULL;
}

static void purge_list_remove(ebb__bin_t *b, ebb__pool_t *p)
{
    purge_list_unlink(b, p);
    p->listed = 0;
    ebb__arena_cold_leave(p);
}

/* A call reads the clock once and may use it after waiting for a lock, so
 * another thread may have stamped the pool later meanwhile: stamps only
 * move forward (wrap-safe). */
static void advance(uint32_t *stamp, uint32_t now)
{
    if ((int32_t)(now - *stamp) > 0)
        *stamp = now;
}

/* Blocks were just taken from a listed pool: it is in use, so its free
 * pages are likely to be reused; its clocks start again.  It stays where it
 * is: the pass moves it when it gets there (purge_bin_due), so a refill or a
 * flush costs two stores, not a list move (measured: moving the pool on
 * every flush was 4% of the instructions of bench churn). */
static void purge_list_touch(ebb__pool_t *p, uint32_t now)
{
    advance(&cold(p)->stamp, now);
    advance(&cold(p)->listed_at, now);
}

/* Blocks came back to a listed pool: it is not quiet yet.  Its longest wait
 * still counts from when it joined, so frees trickling in forever cannot
 * postpone its purge forever. */
static void purge_list_freed_into(ebb__pool_t *p, uint32_t now)
{
    advance(&cold(p)->stamp, now);
}

/* Unlink an empty pool from its bin and give its slots back. */
static void bin_release(ebb__bin_t *b, ebb__pool_t *p)
{
    if (p->listed)
        purge_list_remove(b, p);
    bin_unlink(b, p);
    b->pools--;
    ebb__arena_release_pool(p); /* bin -> arena: lock order kept */
}

/* The fullest pool with a free block, or a new one; NULL if out of memory. */
static ebb__pool_t *bin_pool_with_room(ebb__heap_t *h, ebb__bin_t *b, unsigned cls)
{
    uint32_t partial = b->nonempty & ((1u << EBB_POOL_BUCKETS) - 1);
    if (partial) {
        unsigned k = 31u - (unsigned)__builtin_clz(partial);
        return b->bucket[k];
    }
    /* A new pool may commit all its pages: admitted whole (budget.c). */
    if (!ebb__budget_admits((size_t)ebb__classes[cls].span * EBB_SLOT_SIZE))
        return NULL;
    ebb__pool_t *p = ebb__arena_take_pool(ebb__classes[cls].span, cls);
    if (p == NULL)
        return NULL;
    ebb__pool_format(p, h, cls);
    b->pools++;
    bin_link(b, p, 0);
    return p;
}

unsigned ebb__heap_alloc(ebb__heap_t *h, unsigned cls, void **end, unsigned want,
                         ebb__took_t *took)
{
    ebb__bin_t *b = &h->bin[cls];
    unsigned got = 0;
    uint32_t now = 0;
    ebb__lock(&b->lock);
    while (got < want) {
        if (EBB_UNLIKELY(!(b->nonempty & ((1u << EBB_POOL_BUCKETS) - 1)) &&
                         atomic_load_explicit(&ebb__heaps.lent_bin, memory_order_relaxed) == b)) {
            /* No room but what a purge pass has borrowed: wait the system
             * call out (the pass holds the lend lock until the blocks are
             * back) rather than take a new pool while that memory waits.
             * With blocks in hand, go with those: the lock is let go only
             * while the bin's counters hold (b->used counts `got` below). */
            if (got)
                break;
            ebb__unlock(&b->lock);
            ebb__lock(&ebb__arenas.lend_lock);
            ebb__unlock(&ebb__arenas.lend_lock);
            ebb__lock(&b->lock);
            continue;
        }
        ebb__pool_t *p = bin_pool_with_room(h, b, cls);
        if (p == NULL)
            break;
        got += ebb__pool_take(p, end - got, want - got);
        bin_rebucket(b, p);
        if (p->listed)
            purge_list_touch(p, clock_read(&now));
    }
    b->used += got;
    ebb__demand_count(&b->demand, took, got);
    ebb__unlock(&b->lock);
    return got;
}

void ebb__heap_forget(ebb__heap_t *h, ebb__took_t took[EBB_CLASSES])
{
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        if (took[c].n == 0)
            continue;
        ebb__bin_t *b = &h->bin[c];
        ebb__lock(&b->lock);
        ebb__demand_forget(&b->demand, &took[c]);
        ebb__unlock(&b->lock);
    }
}

/* Another pool of this bin has room, so an empty one can go.  p's bucket
 * may be stale (rebucketing is deferred while a batch returns blocks). */
static int bin_has_other_room(const ebb__bin_t *b, const ebb__pool_t *p)
{
    uint32_t partial = b->nonempty & ((1u << EBB_POOL_BUCKETS) - 1);
    if (p->bucket == EBB_BUCKET_FULL)
        return partial != 0;
    if (partial & ~(1u << p->bucket))
        return 1;
    return b->bucket[p->bucket] != p || p->next != NULL;
}

/* Idle blocks came back to pool p, which was not listed: it joins the head
 * of the list, due now (its key is the oldest in the list, so the order
 * holds and the insert costs nothing). */
static void purge_list_add_due(ebb__bin_t *b, ebb__pool_t *p, uint32_t now, uint32_t delay)
{
    uint32_t key = now - delay;
    ebb__pool_t *head = b->purge_head;
    if (head && (int32_t)(cold(head)->queued_at - key) < 0)
        key = cold(head)->queued_at;
    ebb__arena_cold_enter(p);
    cold(p)->listed_at = cold(p)->stamp = key;
    purge_list_link_after(b, p, NULL, key);
}

/* Blocks just came back to pool p (bin lock held): schedule or do the purge
 * ebb__purge_when asks for; `idle` blocks (see ebb__heap_free_idle) make it
 * due now, and an emptied pool is purged before it goes back to its arena.
 * Purgeable memory that waits is announced (the front kicks the purger). */
static EBB_NOINLINE void after_return_slow(ebb__bin_t *b, ebb__pool_t *p, uint32_t *now, int idle)
{
    ebb__purge_when_t when = ebb__purge_when();
    if (p->used == 0 && (when == EBB_PURGE_NOW || bin_has_other_room(b, p))) {
        if (idle && when == EBB_PURGE_LATER)
            ebb__pool_purge(p, 1, NULL);
        bin_release(b, p);
        return;
    }
    bin_rebucket(b, p);
    if (when == EBB_PURGE_NOW) {
        ebb__pool_purge(p, 1, NULL);
        return;
    }
    if (when == EBB_PURGE_NEVER)
        return;
    if (p->listed) {
        /* Idle blocks into a listed pool: the frees that listed it set its
         * due time.  Others restamp it. */
        if (!idle)
            purge_list_freed_into(p, clock_read(now));
        return;
    }
    if (idle)
        purge_list_add_due(b, p, clock_read(now), ebb__purge_delay_ms());
    else
        purge_list_add(b, p, clock_read(now));
    ebb__purge_announce();
}

/* The common case inline, the rest out of line: a pool that still has
 * blocks out and is already listed (or purging is off) only changes bucket
 * and stamp.  Kept small so the flush loop keeps its registers (measured:
 * with all of after_return inline, the loop spilled a dozen values). */
static inline void after_return(ebb__bin_t *b, ebb__pool_t *p, uint32_t *now, int idle)
{
    long delay = ebb__opt.purge_delay;
    if (EBB_LIKELY(p->used != 0 && delay != 0 && (delay < 0 || p->listed))) {
        bin_rebucket(b, p);
        if (delay > 0 && !idle)
            purge_list_freed_into(p, clock_read(now));
        return;
    }
    after_return_slow(b, p, now, idle);
}

/* Blocks come home from a thread cache, in the order they were cached, so
 * runs of them share a pool: the bin lock is kept across runs of one bin,
 * and each run of one pool costs a lookup, a bucket update and, per block,
 * an index multiply and a bit test-and-set. */
#define NO_POOL "double free (the block is in no pool: freed, and its pool given back)"

/* The pool block a lies in and the index of the heap that owns it (the
 * pool's `heap`, read once), or NULL. */
static ebb__pool_t *home_pool(uintptr_t a, unsigned *heap)
{
    ebb__arena_t *ar = ebb__arena_of(a);
    ebb__pool_t *p = ar ? ebb__pool_of(ar, a) : NULL;
    if (p == NULL)
        return NULL;
    *heap = __atomic_load_n(&p->heap, __ATOMIC_ACQUIRE);
    return *heap != EBB_NO_HEAP ? p : NULL;
}

/* A free of a block a purge pass borrowed (its bin lock held): the block
 * was free, so this is a double free, caught here before the block could
 * be handed out again onto a page whose purge is pending. */
#define BORROWED "double free (the block is free; its page is being purged)"

static int is_borrowed(const ebb__pool_t *p, uintptr_t a)
{
    const ebb__purge_batch_t *lent = ebb__heaps.lent;
    uintptr_t end = a + ebb__class_size[p->cls];
    for (unsigned i = 0; i < lent->n; i++) {
        uintptr_t from = (uintptr_t)lent->range[i].p;
        if (a < from + lent->range[i].size && end > from)
            return 1; /* the borrowed blocks are those over a range */
    }
    return 0;
}

static void heap_free(void *const *blocks, unsigned n, int idle)
{
    ebb__bin_t *locked = NULL;
    uint32_t now = 0;
    for (unsigned i = 0; i < n;) {
        unsigned heap;
        ebb__pool_t *p = home_pool((uintptr_t)blocks[i], &heap);
        ebb__bin_t *b = p ? &ebb__heaps.heap[heap].bin[p->cls] : NULL;
        if (b != locked && b != NULL) {
            if (locked)
                ebb__unlock(&locked->lock);
            ebb__lock(&b->lock);
            locked = b;
            /* Read before the lock: the pool may have changed hands since.
             * Under the lock it cannot (a pool changes bins only under the
             * lock of both), so a run in the bin already held needs no
             * second look. */
            if (p->heap != heap || &ebb__heaps.heap[heap].bin[p->cls] != b)
                b = NULL;
        }
        if (EBB_UNLIKELY(b == NULL)) {
            ebb__report_corruption("free", blocks[i], NO_POOL);
            i++;
            continue;
        }
        unsigned run = n - i;
        if (EBB_UNLIKELY(atomic_load_explicit(&ebb__heaps.lent_bin, memory_order_relaxed) == b)) {
            if (is_borrowed(p, (uintptr_t)blocks[i])) {
                ebb__report_corruption("free", blocks[i], BORROWED);
                i++;
                continue;
            }
            run = 1; /* each block checked */
        }
        uint32_t before = p->used;
        i += ebb__pool_put_run(p, blocks + i, run);
        b->used -= before - p->used;
        /* An emptied pool is unlinked and released under the bin lock (bin
         * -> arena is the lock order), so a fork never sees it in neither
         * place. */
        after_return(b, p, &now, idle);
    }
    if (locked)
        ebb__unlock(&locked->lock);
}

int ebb__heap_block_is_free(const void *blk)
{
    uintptr_t a = (uintptr_t)blk;
    unsigned heap;
    ebb__pool_t *p = home_pool(a, &heap);
    if (p == NULL)
        return 0;
    ebb__bin_t *b = &ebb__heaps.heap[heap].bin[p->cls];
    ebb__lock(&b->lock);
    uint32_t idx;
    int is_free = p->heap == heap && &ebb__heaps.heap[heap].bin[p->cls] == b &&
                  ebb__pool_block_index(p, a, &idx) &&
                  ebb__pool_is_free(p, idx);
    ebb__unlock(&b->lock);
    return is_free;
}

void ebb__heap_free(void *const *blocks, unsigned n)
{
    heap_free(blocks, n, 0);
}

void ebb__heap_free_idle(void *const *blocks, unsigned n)
{
    heap_free(blocks, n, 1);
}

/* ----------------------------------------------------------- purge pass */

/* Purge a pool (ebb_collect: whatever its state): an empty one gives its
 * pages back, a partly used one the pages that hold no block that is out.
 * The ranges go into `batch`; the caller flushes it and releases the pool
 * if it is empty. */
static void purge_pool(ebb__bin_t *b, ebb__pool_t *p, ebb__purge_batch_t *batch)
{
    if (p->listed)
        purge_list_remove(b, p);
    ebb__pool_purge(p, 1, batch);
}

/* ms until listed pool p is due: quiet for `quiet` ms (the delay, or less
 * for surplus), or listed for the longest wait (counted in delays); 0 if it
 * is due now. */
static uint32_t pool_due_in(const ebb__pool_t *p, uint32_t now, uint32_t quiet, uint32_t delay)
{
    uint32_t calm = ebb__ms_until(now, cold(p)->stamp, quiet);
    uint32_t cap = ebb__ms_until(now, cold(p)->listed_at, delay * EBB_PURGE_MAX_DELAYS);
    return calm < cap ? calm : cap;
}

/* Move listed pool p, due `left` ms from now, to its place: its key is when
 * it falls due, less the quiet time the walk uses (the delay, or less for
 * surplus: a key set for the delay is then early, and the walk moves the
 * pool on when it meets it). */
static void purge_list_requeue(ebb__bin_t *b, ebb__pool_t *p, uint32_t now, uint32_t left,
                               uint32_t delay)
{
    purge_list_unlink(b, p);
    purge_list_insert(b, p, now + left - delay);
}

/* A listed pool fell due.  A partly used one is purged only when that is
 * worth a system call now: a quarter of its pages can go, or it has waited
 * its longest (or, in surplus, no free came for EBB_SURPLUS_RECHECK_MS).
 * Otherwise it waits another delay, or EBB_SURPLUS_RECHECK_MS in surplus
 * (measured: without this rule a teardown of 1 GiB made 65000 purges, most
 * of one or two pages, in pools about to empty anyway). */
static void purge_due_pool(ebb__bin_t *b, ebb__pool_t *p, uint32_t now, long quiet, long delay,
                           ebb__purge_batch_t *batch)
{
    if (p->used == 0 || ebb__due(now, cold(p)->listed_at, delay * EBB_PURGE_MAX_DELAYS)) {
        purge_pool(b, p, batch);
        return;
    }
    size_t worth = (size_t)p->span * EBB_SLOT_PAGES / EBB_PURGE_WORTH_FRACTION;
    /* Surplus, and no free into it for a while: its share of a teardown
     * is over, so whatever it has free is worth a purge. */
    if (quiet < delay && ebb__due(now, cold(p)->stamp, EBB_SURPLUS_RECHECK_MS))
        worth = 1;
    if (ebb__pool_purge(p, worth, batch) != 0) {
        purge_list_remove(b, p);
    } else { /* another wait at the tail */
        uint32_t again = quiet < delay ? EBB_SURPLUS_RECHECK_MS : (uint32_t)delay;
        advance(&cold(p)->stamp, now);
        purge_list_requeue(b, p, now, pool_due_in(p, now, again, (uint32_t)delay),
                           (uint32_t)quiet);
    }
}

/* Every pool of bin b with free blocks, whatever its stamp (ebb_collect),
 * purged with the lock held.  The pools it empties go back to their arenas
 * only after the flush: an arena could otherwise hand their slots to a new
 * pool whose first writes the purge would then drop. */
static void purge_bin_all(ebb__bin_t *b)
{
    ebb__purge_batch_t batch;
    ebb__pool_t *emptied[EBB_PURGE_BATCH];
    unsigned nemptied = 0;
    batch.n = 0;
    for (unsigned k = 0; k < EBB_POOL_BUCKETS; k++) {
        ebb__pool_t *p = b->bucket[k];
        while (p) {
            ebb__pool_t *next = p->next; /* not released before the flush */
            purge_pool(b, p, &batch);
            ebb__pool_sparsen(p);
            if (p->used == 0) {
                if (nemptied == EBB_PURGE_BATCH) {
                    ebb__purge_batch_flush(&batch);
                    for (unsigned i = 0; i < nemptied; i++)
                        bin_release(b, emptied[i]);
                    nemptied = 0;
                }
                emptied[nemptied++] = p;
            }
            p = next;
        }
    }
    ebb__purge_batch_flush(&batch);
    for (unsigned i = 0; i < nemptied; i++)
        bin_release(b, emptied[i]);
    while (b->purge_head) /* listed but full again: nothing to purge */
        purge_list_remove(b, b->purge_head);
}

/* The most ranges purging pool p can make: its free runs alternate with
 * pages that hold a block. */
static unsigned most_ranges(const ebb__pool_t *p)
{
    return ((unsigned)p->span * EBB_SLOT_PAGES + 1) / 2;
}

_Static_assert((EBB_MAX_POOL_SPAN * EBB_SLOT_PAGES + 1) / 2 <= EBB_PURGE_RANGES,
               "any pool's ranges fit in an empty batch");

/* Bin lock held: the blocks over every gathered range are marked out, so
 * the lock can be let go while their pages are purged (owner[i]: range i's
 * pool; each pool's ranges are next to each other). */
static void borrow_ranges(ebb__bin_t *b, const ebb__purge_batch_t *batch, ebb__pool_t **owner)
{
    for (unsigned i = 0; i < batch->n; i++) {
        uintptr_t a = (uintptr_t)batch->range[i].p;
        owner[i] = ebb__pool_of(ebb__arena_of(a), a);
        ebb__assert(owner[i] && ebb__pool_heap(owner[i]) && (uintptr_t)ebb__pool_start(owner[i]) <= a);
    }
    for (unsigned i = 0; i < batch->n; i++) {
        b->used += ebb__pool_borrow(owner[i], batch->range[i].p, batch->range[i].size);
        if (i + 1 == batch->n || owner[i + 1] != owner[i])
            bin_rebucket(b, owner[i]); /* at its last range */
    }
}

/* Bin lock held again, the pages purged: the blocks go back, each pool
 * left empty goes back to its arena (clean, but for what was freed into it
 * meanwhile), and each left with a few blocks out gives its bitmap words
 * back (pool.c, "Sparse pools"). */
static void unborrow_ranges(ebb__bin_t *b, const ebb__os_range_t *range, unsigned n,
                            ebb__pool_t *const *owner)
{
    for (unsigned i = 0; i < n; i++)
        b->used -= ebb__pool_unborrow(owner[i], range[i].p, range[i].size);
    for (unsigned i = 0; i < n; i++) {
        ebb__pool_t *p = owner[i];
        if (i + 1 < n && owner[i + 1] == p)
            continue; /* once, at its last range */
        if (p->used == 0) {
            bin_release(b, p);
        } else {
            ebb__pool_sparsen(p); /* its pages are done: its bitmap may go too */
            bin_rebucket(b, p);
        }
    }
}

void ebb__heap_lend(ebb__bin_t *b, const ebb__purge_batch_t *batch, ebb__purge_batch_t *lent,
                    ebb__pool_t **owner)
{
    borrow_ranges(b, batch, owner);
    *lent = *batch;
    ebb__heaps.lent = lent;
    atomic_store_explicit(&ebb__heaps.lent_bin, b, memory_order_relaxed);
}

void ebb__heap_unlend(ebb__bin_t *b, const ebb__purge_batch_t *lent, ebb__pool_t *const *owner)
{
    atomic_store_explicit(&ebb__heaps.lent_bin, NULL, memory_order_relaxed);
    ebb__heaps.lent = NULL;
    unborrow_ranges(b, lent->range, lent->n, owner);
}

/* How long bin b's listed pools must be quiet before they are purged: the
 * delay, or less if the bin's free blocks are more than it handed out over
 * the last delay (core/demand.c).  Bin lock held. */
static long bin_quiet(ebb__bin_t *b, unsigned cls, uint32_t now, long delay, int *surplus)
{
    const ebb__class_t *c = &ebb__classes[cls];
    size_t free_blocks = b->pools * c->blocks - b->used;
    size_t demand = ebb__demand_recent(&b->demand, now, (uint32_t)delay);
    /* A pool's worth may wait the delay (there are dozens of bins), unless
     * nothing was taken over the delay: no reuse is in sight then. */
    size_t margin = demand ? (size_t)c->span * EBB_SLOT_SIZE : 0;
    return ebb__surplus_delay(delay, free_blocks * c->size, demand * c->size, margin, surplus);
}

/* Purge at most EBB_PURGE_BATCH due pools of bin b in one hold of its lock,
 * fewer if their ranges could overflow the batch or a thread comes to wait
 * for the lock; the system calls come after the hold, with the lock let go
 * (if more are due, the pass reports 0 ms left and the purger comes back at
 * once).  The list is in order of key (queued_at), and no pool falls due
 * before its key plus the delay, so the walk stops at the first pool whose
 * key is recent.  A pool met before it is due (used or freed into since it
 * was queued) moves to its due place, behind the pools due sooner.  Returns
 * the ms until the next pool falls due, or UINT32_MAX. */
static uint32_t purge_bin_due(ebb__bin_t *b, unsigned cls, uint32_t now, long delay,
                              int *surplus)
{
    uint32_t next = UINT32_MAX;
    unsigned done = 0, moved = 0;
    ebb__purge_batch_t batch;
    ebb__pool_t *owner[EBB_PURGE_RANGES];
    batch.n = 0;
    /* Borrowed blocks are back before a fork or a heap snapshot (both take
     * this lock first). */
    ebb__lock(&ebb__arenas.lend_lock);
    ebb__lock(&b->lock);
    long quiet = bin_quiet(b, cls, now, delay, surplus);
    for (ebb__pool_t *p = b->purge_head; p; p = b->purge_head) {
        uint32_t wait = ebb__ms_until(now, cold(p)->queued_at, (uint32_t)quiet);
        if (wait) {
            next = wait;
            break;
        }
        if (done >= EBB_PURGE_BATCH || moved >= EBB_PURGE_BATCH * 32 ||
            batch.n + most_ranges(p) > EBB_PURGE_RANGES) {
            next = 0; /* due, but this hold's share is done */
            break;
        }
        uint32_t left = pool_due_in(p, now, (uint32_t)quiet, (uint32_t)delay);
        if (left) {
            purge_list_requeue(b, p, now, left, (uint32_t)quiet);
            moved++;
            continue;
        }
        unsigned before = batch.n;
        purge_due_pool(b, p, now, quiet, delay, &batch);
        if (p->used == 0 && batch.n == before)
            bin_release(b, p); /* empty and clean: nothing to wait for */
        done++;
        if (ebb__lock_waited(&b->lock)) {
            next = 0; /* a thread waits to free or allocate: let it in */
            break;
        }
    }
    unsigned n = batch.n;
    ebb__purge_batch_t lent; /* what the frees check while the lock is let go */
    if (n)
        ebb__heap_lend(b, &batch, &lent, owner);
    ebb__unlock(&b->lock);
    if (n) {
        ebb__purge_batch_flush(&batch); /* the system calls, no bin lock held */
        ebb__lock(&b->lock);
        ebb__heap_unlend(b, &lent, owner);
        ebb__unlock(&b->lock);
    }
    ebb__unlock(&ebb__arenas.lend_lock);
    return next;
}

uint32_t ebb__heap_purge(uint32_t now, long delay, int *surplus)
{
    uint32_t next = UINT32_MAX;
    for (unsigned h = 0; h < ebb__heaps.n; h++) {
        for (unsigned c = 0; c < EBB_CLASSES; c++) {
            ebb__bin_t *b = &ebb__heaps.heap[h].bin[c];
            if (delay == 0) {
                ebb__lock(&b->lock);
                purge_bin_all(b);
                ebb__unlock(&b->lock);
                continue;
            }
            if (__atomic_load_n(&b->purge_head, __ATOMIC_RELAXED) == NULL)
                continue;
            uint32_t left = purge_bin_due(b, c, now, delay, surplus);
            if (left < next)
                next = left;
        }
    }
    return next;
}

/* Registry lock held: threads take the heaps in turn. */
ebb__heap_t *ebb__heap_pick(void)
{
    unsigned i = ebb__heaps.next++ % ebb__heaps.n;
    return &ebb__heaps.heap[i];
}

/* n heaps in use, fixed from start-up on. */
void ebb__heaps_init(unsigned n)
{
    ebb__heaps.n = n > EBB_MAX_HEAPS ? EBB_MAX_HEAPS : n;
}

/* ---------------------------------------------------- statistics, fork */

void ebb__heap_stats(ebb_stats_t *s, size_t used[EBB_CLASSES], size_t pools[EBB_CLASSES])
{
    for (unsigned h = 0; h < ebb__heaps.n; h++) {
        for (unsigned c = 0; c < EBB_CLASSES; c++) {
            ebb__bin_t *b = &ebb__heaps.heap[h].bin[c];
            ebb__lock(&b->lock);
            size_t n = b->used, p = b->pools;
            ebb__unlock(&b->lock);
            used[c] += n;
            pools[c] += p;
            s->small_used += n * ebb__classes[c].size;
        }
    }
}

/* Bin lock held: pages of p counted resident. */
static size_t pool_committed_pages(const ebb__pool_t *p)
{
    const ebb__arena_t *a = ebb__arena_of_pool(p);
    size_t n = 0;
    for (unsigned s = p->head_slot; s < p->head_slot + p->span; s++)
        n += (size_t)__builtin_popcount(a->dirty[s]);
    return n;
}

static void bin_walk(ebb__bin_t *b, ebb__class_walk_t *w)
{
    for (unsigned k = 0; k <= EBB_POOL_BUCKETS; k++) {
        for (const ebb__pool_t *p = b->bucket[k]; p; p = p->next) {
            size_t pages = pool_committed_pages(p);
            w->pools++;
            w->used += p->used;
            w->committed_pages += pages;
            if (p->used == 0) {
                w->pools_empty++;
                w->empty_committed_pages += pages;
            } else {
                w->in_use_bytes += (size_t)p->span * EBB_SLOT_SIZE;
            }
        }
    }
}

void ebb__heap_class_walk(ebb__class_walk_t out[EBB_CLASSES])
{
    memset(out, 0, EBB_CLASSES * sizeof *out);
    for (unsigned h = 0; h < ebb__heaps.n; h++) {
        for (unsigned c = 0; c < EBB_CLASSES; c++) {
            ebb__bin_t *b = &ebb__heaps.heap[h].bin[c];
            ebb__lock(&b->lock);
            bin_walk(b, &out[c]);
            ebb__unlock(&b->lock);
        }
    }
}

/* Every bin lock, heap by heap and class by class; released the other way. */
static void lock_bins(void)
{
    for (unsigned h = 0; h < ebb__heaps.n; h++)
        for (unsigned c = 0; c < EBB_CLASSES; c++)
            ebb__lock(&ebb__heaps.heap[h].bin[c].lock);
}

static void unlock_bins(void)
{
    for (unsigned h = ebb__heaps.n; h-- > 0;)
        for (unsigned c = EBB_CLASSES; c-- > 0;)
            ebb__unlock(&ebb__heaps.heap[h].bin[c].lock);
}

static void reset_bins(void)
{
    for (unsigned h = 0; h < ebb__heaps.n; h++)
        for (unsigned c = 0; c < EBB_CLASSES; c++)
            ebb__lock_reset(&ebb__heaps.heap[h].bin[c].lock);
}

EBB_HIDDEN const ebb__lockset_t ebb__heap_locks = { .name = "heap bins",
                                                     .lock = lock_bins,
                                                     .unlock = unlock_bins,
                                                     .child = reset_bins };
