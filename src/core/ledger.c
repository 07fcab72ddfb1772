/*
 * ledger.c -- what ebb holds, in bytes: the counters the mechanism keeps and
 * every other layer reads.
 *
 * Owns: `mapped` (address space ebb has mapped, with its peak), the count of
 * arena pages known not to be resident (`clean_pages`), and so `committed`
 * (mapped less clean pages: ebb's estimate of its resident memory, with its
 * peak and the moment it was reached); what was purged (bytes and calls);
 * the one place that asks the OS to purge pages, a range at once or a batch
 * of them in as few calls as the OS allows; and the record that purgeable
 * memory appeared.
 *
 * Why a module of its own.  The mechanism (arenas, pools, heaps, large
 * blocks) must say what it did without knowing who cares: the limit wants
 * committed, the purge policy wants to hear that something can be given back,
 * statistics want everything.  So the mechanism records facts here and
 * returns; the policy and the statistics above read them.  Nothing here calls
 * upward.
 *
 * committed follows RSS at page granularity: pool pages are marked dirty
 * when a block on them is handed out (pool.c) and clean when purged, so it
 * over-counts only untouched parts of large blocks and arena headers, and
 * pages purged with MADV_FREE, which stay resident until the kernel wants
 * them.  All counters are updated with relaxed atomics on slow paths, never
 * on the fast paths.
 *
 * "Purgeable memory appeared" (ebb__purge_announce) bumps a counter, read by
 * the purger thread before it decides to end (front/purger.c), and marks the
 * announcing thread as owing a kick: whoever drove that thread into the
 * mechanism (a slow path of malloc or free, a thread's exit) starts the
 * purger on its way out, holding no lock.
 *
 * The watch on committed.  The timeline (insight/timeline.c) wants a point
 * whenever committed has moved by a sixteenth since its last one, without
 * a clock and without being called from the mechanism.  So it leaves a
 * mark here (ebb__ledger_watch), and every change of committed (the four
 * counters' writers below, all on slow paths) compares against it: one
 * relaxed load while the watch is not armed, a subtraction while it is.
 * The move is recorded like purgeable memory -- the purger's work counter
 * bumped, the thread owing a kick -- and the front starts or wakes the
 * purger on its way out (front/purger.c), which takes the point.  The
 * state goes ARMED -> MOVED here (once per move), MOVED -> KICKED by the
 * one kick that acts on it, and back to ARMED with the next mark.
 *
 * The peak of committed carries its time (the coarse clock, read only when
 * the peak rises: during growth, once per page first touched, next to that
 * page's fault).
 */
#include "internal.h"

EBB_HIDDEN ebb__ledger_t ebb__ledger;
EBB_HIDDEN __thread int ebb__purge_owed __attribute__((tls_model("initial-exec")));

void ebb__ledger_start(void)
{
    ebb__ledger.start_ns = ebb__os_now_ns();
}

/* 1 if `now` became the peak. */
static int raise_peak(_Atomic size_t *peak, size_t now)
{
    size_t seen = atomic_load_explicit(peak, memory_order_relaxed);
    while (now > seen) {
        if (atomic_compare_exchange_weak_explicit(peak, &seen, now, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    }
    return 0;
}

/* The clocks are read only when the peak rises, which growth does at most
 * once per page made resident or mapping made: the slow paths that grow,
 * never the fast paths.  Two threads raising it at once may leave the time
 * of the smaller raise, a moment apart: the time is the peak's to within
 * that.  Two clocks: the statistics' (ns) and the timeline's (coarse ms). */
static void raise_committed_peak(size_t committed)
{
    if (raise_peak(&ebb__ledger.peak_committed, committed)) {
        atomic_store_explicit(&ebb__ledger.peak_committed_ns, ebb__os_now_ns(),
                              memory_order_relaxed);
        atomic_store_explicit(&ebb__ledger.peak_committed_ms, ebb__os_now_ms(),
                              memory_order_relaxed);
    }
}

/* committed changed: if the watch is armed and committed moved a step from
 * its mark, the move is recorded and this thread owes the purger a kick. */
static void watch_check(size_t committed)
{
    if (EBB_LIKELY(atomic_load_explicit(&ebb__ledger.watch, memory_order_relaxed) !=
                   EBB_WATCH_ARMED))
        return;
    size_t mark = atomic_load_explicit(&ebb__ledger.watch_mark, memory_order_relaxed);
    size_t step = mark >> EBB_TIMELINE_STEP_SHIFT;
    if (step < EBB_TIMELINE_STEP_MIN)
        step = EBB_TIMELINE_STEP_MIN;
    size_t moved = committed > mark ? committed - mark : mark - committed;
    int armed = EBB_WATCH_ARMED;
    if (moved < step || !atomic_compare_exchange_strong_explicit(&ebb__ledger.watch, &armed,
                                                                 EBB_WATCH_MOVED,
                                                                 memory_order_relaxed,
                                                                 memory_order_relaxed))
        return;
    atomic_fetch_add_explicit(&ebb__ledger.purge_work, 1, memory_order_seq_cst);
    ebb__purge_owed = 1;
}

void ebb__ledger_watch(size_t mark)
{
    atomic_store_explicit(&ebb__ledger.watch_mark, mark, memory_order_relaxed);
    atomic_store_explicit(&ebb__ledger.watch, EBB_WATCH_ARMED, memory_order_release);
    /* A move made while the mark was being set is caught now, not only at
     * the next change. */
    watch_check(ebb__committed_now());
}

int ebb__ledger_watch_kick(void)
{
    int moved = EBB_WATCH_MOVED;
    return atomic_load_explicit(&ebb__ledger.watch, memory_order_relaxed) == EBB_WATCH_MOVED &&
           atomic_compare_exchange_strong_explicit(&ebb__ledger.watch, &moved, EBB_WATCH_KICKED,
                                                   memory_order_relaxed, memory_order_relaxed);
}

size_t ebb__committed_now(void)
{
    size_t mapped = atomic_load_explicit(&ebb__ledger.mapped, memory_order_relaxed);
    size_t clean = atomic_load_explicit(&ebb__ledger.clean_pages, memory_order_relaxed) * EBB_PAGE;
    return mapped > clean ? mapped - clean : 0;
}

void ebb__mapped_add(size_t n)
{
    size_t now = atomic_fetch_add_explicit(&ebb__ledger.mapped, n, memory_order_relaxed) + n;
    raise_peak(&ebb__ledger.peak_mapped, now);
    size_t committed = ebb__committed_now();
    raise_committed_peak(committed);
    watch_check(committed);
}

void ebb__mapped_sub(size_t n)
{
    atomic_fetch_sub_explicit(&ebb__ledger.mapped, n, memory_order_relaxed);
    watch_check(ebb__committed_now());
}

void ebb__pages_dirtied(size_t pages)
{
    atomic_fetch_sub_explicit(&ebb__ledger.clean_pages, pages, memory_order_relaxed);
    size_t committed = ebb__committed_now();
    raise_committed_peak(committed);
    watch_check(committed);
}

void ebb__pages_cleaned(size_t pages)
{
    atomic_fetch_add_explicit(&ebb__ledger.clean_pages, pages, memory_order_relaxed);
    watch_check(ebb__committed_now());
}

void ebb__purge_range(void *p, size_t bytes)
{
    if (ebb__opt.purge_lazy)
        ebb__os_purge_lazy(p, bytes);
    else
        ebb__os_purge(p, bytes);
    atomic_fetch_add_explicit(&ebb__ledger.purged, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&ebb__ledger.purges, 1, memory_order_relaxed);
}

void ebb__purge_batch_flush(ebb__purge_batch_t *b)
{
    if (b->n == 0)
        return;
    size_t bytes = 0;
    for (unsigned i = 0; i < b->n; i++)
        bytes += b->range[i].size;
    unsigned calls = ebb__os_purge_ranges(b->range, b->n, ebb__opt.purge_lazy);
    atomic_fetch_add_explicit(&ebb__ledger.purged, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&ebb__ledger.purges, calls, memory_order_relaxed);
    b->n = 0;
}

void ebb__purge_batch_add(ebb__purge_batch_t *b, void *p, size_t bytes)
{
    if (b == NULL) {
        ebb__purge_range(p, bytes);
        return;
    }
    if (b->n == EBB_PURGE_RANGES)
        ebb__purge_batch_flush(b);
    b->range[b->n++] = (ebb__os_range_t){ .p = p, .size = bytes };
}
