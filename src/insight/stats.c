/*
 * stats.c -- ebb_stats() and friends: every module's counters, gathered into
 * categories that add up.
 *
 * Owns: the public statistics (ebb_stats, ebb_class_stats, ebb_stats_print).
 * The counters themselves belong to the modules that change them: the
 * ledger (core/ledger.c: mapped, committed, purged), arenas, heaps, thread
 * caches, large blocks, the profiler's tables, the misuse count.  Each
 * module reports its own into an ebb_stats_t; this file only asks them all.
 *
 * Every byte of address space ebb holds is in exactly one mapped_* category:
 *   meta         arena headers (slot 0 of every arena), thread caches, the
 *                large-block table once it outgrows its static start;
 *   pools        slots that belong to a pool;
 *   free_slots   slots of arenas that belong to no pool;
 *   large        mappings of live large blocks;
 *   large_cached freed large mappings kept for reuse.
 * `mapped` is kept separately, on every map and unmap, and ebb_check()
 * verifies that the categories sum to it.  Against RSS: mapped is an upper
 * bound (untouched and purged pages are mapped but not resident).
 *
 * `committed` is ebb's estimate of its resident memory: mapped minus the
 * arena pages it knows are not resident (never touched since mapped, or
 * purged since).  Pages of pools are marked dirty when a block on them is
 * handed out, so committed follows RSS at page granularity; it over-counts
 * only untouched parts of large blocks and of arena headers, and pages
 * purged with MADV_FREE, which stay resident until the kernel wants them.
 *
 * Counting happens on slow paths only (bins count blocks under their lock),
 * so the fast paths pay nothing.  small_cached counts the calling thread's
 * cache exactly and every other thread's as its owner last published it,
 * on its last refill or flush of each class (core/thread.c: nobody else may
 * read a thread's stacks), so while other threads run it may be off by up
 * to a stack's capacity per class and thread.  Bins and caches are read at
 * slightly different moments, so small_cached is capped at small_used.
 */
#include "internal.h"

/* A module's counters, read under its one lock (the lock set says which). */
static void read_locked(const ebb__lockset_t *locks, void (*read)(ebb_stats_t *), ebb_stats_t *s)
{
    ebb__lock(locks->one);
    read(s);
    ebb__unlock(locks->one);
}

static void collect(ebb_stats_t *out, size_t per_class_used[EBB_CLASSES],
                    size_t per_class_pools[EBB_CLASSES])
{
    ebb_stats_t s = { 0 };
    ebb__ensure_init();
    ebb__heap_stats(&s, per_class_used, per_class_pools);
    ebb__thread_stats(&s);
    read_locked(&ebb__arena_locks, ebb__arena_stats_locked, &s);
    read_locked(&ebb__large_locks, ebb__large_stats_locked, &s);
    read_locked(&ebb__sample_locks, ebb__sample_stats_locked, &s);
    s.mapped = atomic_load_explicit(&ebb__ledger.mapped, memory_order_relaxed);
    s.peak_mapped = atomic_load_explicit(&ebb__ledger.peak_mapped, memory_order_relaxed);
    s.committed = ebb__committed_now();
    s.peak_committed = atomic_load_explicit(&ebb__ledger.peak_committed, memory_order_relaxed);
    s.purged = atomic_load_explicit(&ebb__ledger.purged, memory_order_relaxed);
    s.purges = atomic_load_explicit(&ebb__ledger.purges, memory_order_relaxed);
    s.heaps = ebb__heaps.n;
    s.foreign_frees = atomic_load_explicit(&ebb__misuse.foreign_frees, memory_order_relaxed);
    s.errors = atomic_load_explicit(&ebb__misuse.errors, memory_order_relaxed);
    if (s.small_cached > s.small_used)
        s.small_cached = s.small_used;
    *out = s;
}

EBB_API void ebb_stats(ebb_stats_t *out)
{
    size_t per_class[EBB_CLASSES] = { 0 }, pools[EBB_CLASSES] = { 0 };
    if (out)
        collect(out, per_class, pools);
}

EBB_API size_t ebb_class_stats(ebb_class_stats_t *out, size_t n)
{
    if (out == NULL || n == 0)
        return EBB_CLASSES; /* only the count: no walk over the heaps */
    size_t per_class[EBB_CLASSES] = { 0 }, pools[EBB_CLASSES] = { 0 };
    ebb_stats_t s;
    collect(&s, per_class, pools);
    ebb__large_sampled_classes(per_class);
    for (size_t c = 0; c < n && c < EBB_CLASSES; c++) {
        out[c].size = ebb__classes[c].size;
        out[c].used = per_class[c];
        out[c].pools = pools[c];
        out[c].pool_bytes = pools[c] * ebb__classes[c].span * EBB_SLOT_SIZE;
    }
    return EBB_CLASSES;
}

/* ------------------------------------------------- extended statistics */

/* Nanoseconds on the monotonic clock to the wall clock's, through now. */
static uint64_t wall_of(uint64_t mono_ns)
{
    uint64_t mono_now = ebb__os_now_ns(), wall_now = ebb__os_wall_ns();
    uint64_t ago = mono_now > mono_ns ? mono_now - mono_ns : 0;
    return wall_now > ago ? wall_now - ago : 0;
}

uint64_t ebb__peak_committed_times(uint64_t *wall_ns, uint64_t *uptime_ns)
{
    ebb__ensure_init();
    uint64_t start = ebb__ledger.start_ns, now = ebb__os_now_ns();
    uint64_t peak = atomic_load_explicit(&ebb__ledger.peak_committed_ns, memory_order_relaxed);
    *wall_ns = peak ? wall_of(peak) : 0;
    *uptime_ns = peak > start ? peak - start : 0;
    return now - start;
}

static void small_detail(ebb_stats_ex_t *x, const ebb__class_walk_t walk[EBB_CLASSES])
{
    size_t used_bytes = 0;
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        const ebb__class_walk_t *w = &walk[c];
        size_t out = w->used * ebb__classes[c].size;
        used_bytes += out;
        x->pools_in_use += w->pools - w->pools_empty;
        x->pools_empty += w->pools_empty;
        x->pool_free += w->in_use_bytes > out ? w->in_use_bytes - out : 0;
        x->pools_committed += w->committed_pages * EBB_PAGE;
        x->pools_empty_committed += w->empty_committed_pages * EBB_PAGE;
    }
    /* The walk and ebb_stats read the bins at different moments: the
     * walk's figures are the ones its other fields come from. */
    x->base.small_used = used_bytes;
    if (x->base.small_cached > used_bytes)
        x->base.small_cached = used_bytes;
    x->small_live = used_bytes - x->base.small_cached;
}

EBB_API size_t ebb_stats_ex(ebb_stats_ex_t *out, size_t size)
{
    if (out == NULL || size < sizeof(ebb_stats_t))
        return 0;
    ebb_stats_ex_t x;
    memset(&x, 0, sizeof x);
    size_t per_class[EBB_CLASSES] = { 0 }, pools[EBB_CLASSES] = { 0 };
    ebb__class_walk_t walk[EBB_CLASSES];
    collect(&x.base, per_class, pools);
    ebb__heap_class_walk(walk);
    small_detail(&x, walk);
    ebb__lock(ebb__arena_locks.one);
    x.free_slots_committed = ebb__arena_free_committed_locked() * EBB_PAGE;
    ebb__unlock(ebb__arena_locks.one);
    ebb__lock(ebb__large_locks.one);
    ebb__large_detail_locked(&x.large_cached_blocks, &x.large_sampled);
    ebb__unlock(ebb__large_locks.one);
    x.uptime_ns = ebb__peak_committed_times(&x.peak_committed_wall_ns,
                                            &x.peak_committed_uptime_ns);
    return ebb__copy_sized(out, size, &x, sizeof x);
}

EBB_API size_t ebb_class_stats_ex(ebb_class_ex_t *out, size_t n, size_t size)
{
    if (out == NULL || n == 0 || size == 0)
        return EBB_CLASSES;
    ebb__ensure_init();
    ebb__class_walk_t walk[EBB_CLASSES];
    size_t cached[EBB_CLASSES] = { 0 }, sampled[EBB_CLASSES] = { 0 };
    ebb__heap_class_walk(walk);
    ebb__thread_cached_classes(cached);
    ebb__large_sampled_classes(sampled);
    for (size_t c = 0; c < n && c < EBB_CLASSES; c++) {
        const ebb__class_walk_t *w = &walk[c];
        ebb_class_ex_t e;
        e.size = ebb__classes[c].size;
        e.cached = cached[c] < w->used ? cached[c] : w->used;
        e.sampled = sampled[c];
        e.used = w->used + e.sampled;
        e.live = w->used - e.cached;
        e.live_bytes = e.live * e.size;
        e.pools = w->pools;
        e.pool_bytes = w->pools * ebb__classes[c].span * EBB_SLOT_SIZE;
        e.pools_empty = w->pools_empty;
        size_t out_bytes = w->used * e.size;
        e.free_bytes = w->in_use_bytes > out_bytes ? w->in_use_bytes - out_bytes : 0;
        e.committed = w->committed_pages * EBB_PAGE;
        e.empty_committed = w->empty_committed_pages * EBB_PAGE;
        ebb__copy_sized((char *)out + c * size, size, &e, sizeof e);
    }
    return EBB_CLASSES;
}

EBB_API void ebb_stats_print(void)
{
    size_t per_class[EBB_CLASSES] = { 0 }, pools[EBB_CLASSES] = { 0 };
    ebb_stats_t s;
    collect(&s, per_class, pools);
    ebb__diag("ebb %s statistics\n", EBB_VERSION_STRING);
    ebb__diag("  class     size   blocks used        bytes used\n");
    for (unsigned c = 0; c < EBB_CLASSES; c++)
        if (per_class[c])
            ebb__diag("  %u\t%u\t%zu\t%zu\n", c, ebb__classes[c].size, per_class[c],
                      per_class[c] * ebb__classes[c].size);
    ebb__diag("  mapped %zu = meta %zu + pools %zu + free slots %zu + large %zu + large cached %zu\n",
              s.mapped, s.mapped_meta, s.mapped_pools, s.mapped_free_slots, s.mapped_large,
              s.mapped_large_cached);
    ebb__diag("  small used %zu (in thread caches %zu), large used %zu in %zu blocks\n",
              s.small_used, s.small_cached, s.large_used, s.large_blocks);
    ebb__diag("  arenas %zu, pools %zu, heaps %zu, threads %zu, peak mapped %zu\n", s.arenas,
              s.pools, s.heaps, s.threads, s.peak_mapped);
    ebb__diag("  committed %zu (peak %zu), purged %zu bytes in %zu calls\n", s.committed,
              s.peak_committed, s.purged, s.purges);
    ebb__diag("  foreign frees %zu, misuse errors %zu\n", s.foreign_frees, s.errors);
}
