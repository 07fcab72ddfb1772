/*
 * rss.c -- the process's resident memory taken apart: ebb's part, category
 * by category, and everything else, mapping by mapping (ebb_rss).
 *
 * Owns: the reading behind ebb_rss() and the report's `rss` section.
 *
 * Why not from ebb's counters.  `committed` is ebb's estimate of its
 * resident memory, kept at page granularity, but it is an estimate: a large
 * block is committed whole and may be written only in part, pages purged
 * with MADV_FREE stay resident until the kernel takes them, swapped pages
 * are not resident, a page only read maps the zero page.  A user who asks
 * "where is my RSS" wants the kernel's answer, so ebb's part is measured:
 * every mapping ebb holds is asked page by page (mincore), with every lock
 * of ebb's held (as ebb_check takes them, from the one list), so that no
 * pool changes hands and no block changes state during the walk.  Each
 * resident page of ebb's then lands in exactly one category:
 *
 *   arena header (slot 0)                  metadata
 *   a free slot                            free_slots
 *   a pool with no block out               pools_empty
 *   a pool with blocks out                 its resident bytes are taken as
 *                                          the blocks' first (min(out,
 *                                          resident)), the rest pool_free;
 *                                          of the blocks' bytes, as many as
 *                                          the class has in thread caches
 *                                          are thread_caches, the rest
 *                                          live_small
 *   a live large block / a cached one      live_large / large_cached
 *   thread caches' arrays, tables, the
 *   static ownership map and heaps, and
 *   this reading's own list                metadata
 *
 * The split inside a pool in use is by bytes, not pages: which of its
 * resident pages hold which blocks is not asked (a page holds parts of
 * several), so a block out whose pages were never written (a 20 KiB block
 * used for 100 bytes) is counted resident and its pool's free space short
 * by as much.  The totals are exact either way.  Against the ledger, page by
 * page: committed pages not resident, and resident pages not committed.
 *
 * The rest of the process comes from /proc/self/smaps, read after the locks
 * are let go (it takes the kernel a while): each mapping's Rss, less the
 * resident pages of ebb's mappings inside it (a list of them, sorted, is
 * kept from the walk; the kernel merges neighbouring anonymous mappings, so
 * one of its mappings may hold ebb's memory and a thread's stack), goes to
 * the mapping's kind.  The total is smaps_rollup's Rss; what the process
 * changed between the reads is `unaccounted` (a reading that misses by
 * more than 1% is taken again: ebb__rss_read says why).
 *
 * Nothing here allocates: the list of ebb's mappings is a mapping of its
 * own, sized from a count taken under the locks (and if it cannot be had,
 * ebb's part is taken from the anonymous memory as a whole); smaps streams
 * through a line buffer on the stack.
 */
#include "internal.h"

typedef struct {
    uintptr_t start;
    size_t size;
    size_t resident;
} range_t;

typedef struct {
    ebb_rss_t r;
    range_t *list;            /* ebb's mappings, then sorted by start */
    size_t n, cap, list_bytes;
    size_t unlisted;          /* resident bytes of ranges the list had no room for */
    size_t next;              /* the smaps walk: first range not below the mapping */
    uint64_t out_resident[EBB_CLASSES]; /* resident bytes of blocks out, by class */
    unsigned char pages[EBB_SLOTS * EBB_SLOT_PAGES]; /* an arena's, one byte a page */
} walk_t;

static void list_add(walk_t *w, const void *start, size_t size, size_t resident)
{
    if (w->n < w->cap)
        w->list[w->n++] = (range_t){ (uintptr_t)start, size, resident };
    else
        w->unlisted += resident;
}

/* Committed bytes `committed` of a range against the `resident` measured. */
static void against_committed(walk_t *w, size_t committed, size_t resident)
{
    if (committed > resident)
        w->r.committed_not_resident += committed - resident;
    else
        w->r.resident_not_committed += resident - committed;
}

/* ------------------------------------------------------------ arenas */

static size_t slots_resident(const walk_t *w, unsigned first, unsigned span)
{
    size_t n = 0;
    for (unsigned i = first * EBB_SLOT_PAGES; i < (first + span) * EBB_SLOT_PAGES; i++)
        n += w->pages[i];
    return n * EBB_PAGE;
}

static void pool_resident(walk_t *w, const ebb__pool_t *p, size_t resident)
{
    if (p->used == 0) {
        w->r.pools_empty += resident;
        return;
    }
    size_t out = (size_t)p->used * ebb__classes[p->cls].size;
    size_t blocks = out < resident ? out : resident;
    w->out_resident[p->cls] += blocks;
    w->r.pool_free += resident - blocks;
}

static void walk_arena(walk_t *w, const ebb__arena_t *a)
{
    list_add(w, a, EBB_ARENA_SIZE, ebb__os_resident(a, EBB_ARENA_SIZE, w->pages));
    for (unsigned s = 0; s < EBB_SLOTS; s++) {
        for (unsigned i = 0; i < EBB_SLOT_PAGES; i++) {
            int dirty = (a->dirty[s] >> i) & 1, in = w->pages[s * EBB_SLOT_PAGES + i];
            w->r.committed_not_resident += dirty && !in ? EBB_PAGE : 0;
            w->r.resident_not_committed += in && !dirty ? EBB_PAGE : 0;
        }
    }
    w->r.metadata += slots_resident(w, 0, 1);
    for (unsigned s = 1; s < EBB_SLOTS;) {
        if ((a->free_mask >> s) & 1) {
            w->r.free_slots += slots_resident(w, s, 1);
            s++;
            continue;
        }
        const ebb__pool_t *p = &a->pool[s];
        unsigned span = p->span ? p->span : 1;
        pool_resident(w, p, slots_resident(w, s, span));
        s += span;
    }
}

static void walk_arenas(walk_t *w)
{
    for (unsigned n = 0; n < EBB_SLOTS; n++)
        for (const ebb__arena_t *a = ebb__arenas.by_nfree[n]; a; a = a->next)
            walk_arena(w, a);
}

/* The blocks out of each class's pools: those in thread caches (as the
 * caches last published their depth) first, the rest the program's. */
static void split_blocks_out(walk_t *w)
{
    for (unsigned c = 0; c < EBB_CLASSES; c++) {
        size_t cached = 0;
        for (const ebb__thread_t *tc = ebb__threads.active; tc; tc = tc->next)
            cached += ebb__tcache_depth(tc, c) * ebb__classes[c].size;
        size_t in_cache = cached < w->out_resident[c] ? cached : w->out_resident[c];
        w->r.thread_caches += in_cache;
        w->r.live_small += w->out_resident[c] - in_cache;
    }
}

/* ------------------------------------------------- the other mappings */

/* A mapping the ledger counts committed whole (mapped_*). */
static void visit_range(void *ctx, const void *start, size_t size, int kind)
{
    walk_t *w = ctx;
    size_t resident = ebb__os_resident(start, size, NULL);
    list_add(w, start, size, resident);
    against_committed(w, size, resident);
    if (kind == EBB_RANGE_LARGE)
        w->r.live_large += resident;
    else if (kind == EBB_RANGE_LARGE_CACHED)
        w->r.large_cached += resident;
    else
        w->r.metadata += resident;
}

/* ebb's memory the ledger does not count: static tables, the list. */
static void visit_uncounted(walk_t *w, const void *start, size_t size)
{
    size_t resident = ebb__os_resident(start, size, NULL);
    list_add(w, start, size, resident);
    against_committed(w, 0, resident);
    w->r.metadata += resident;
}

static void count_range(void *ctx, const void *start, size_t size, int kind)
{
    (void)start, (void)size, (void)kind;
    ++*(size_t *)ctx;
}

/* Every lock held: how many ranges the walk will list. */
static size_t ranges_to_list(void)
{
    size_t n = ebb__arenas.count + 3; /* + two static tables and the list itself */
    ebb__large_each_locked(count_range, &n);
    ebb__thread_each_map_locked(count_range, &n);
    ebb__sample_each_map_locked(count_range, &n);
    return n;
}

static void list_map(walk_t *w)
{
    w->cap = ranges_to_list();
    w->list_bytes = (w->cap * sizeof(range_t) + EBB_PAGE - 1) & ~(size_t)(EBB_PAGE - 1);
    w->list = ebb__os_map(w->list_bytes);
    if (w->list == NULL)
        w->cap = 0;
}

/* Every lock held: ebb's part, each resident byte in one category. */
static void walk_locked(walk_t *w)
{
    list_map(w);
    walk_arenas(w);
    split_blocks_out(w);
    ebb__large_each_locked(visit_range, w);
    ebb__thread_each_map_locked(visit_range, w);
    ebb__sample_each_map_locked(visit_range, w);
    visit_uncounted(w, ebb__owner_map, sizeof ebb__owner_map);
    visit_uncounted(w, &ebb__heaps, sizeof ebb__heaps);
    if (w->list)
        visit_uncounted(w, w->list, w->list_bytes);
    w->r.committed = ebb__committed_now();
}

/* ------------------------------------------------------------- smaps */

static uintptr_t range_end(const range_t *g)
{
    return g->start + ((g->size + EBB_PAGE - 1) & ~(size_t)(EBB_PAGE - 1));
}

/* Heap sort by start: no allocation, and n may be tens of thousands. */
static void sift(range_t *v, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && v[child + 1].start > v[child].start)
            child++;
        if (v[root].start >= v[child].start)
            return;
        range_t t = v[root];
        v[root] = v[child];
        v[child] = t;
    }
}

static void sort_ranges(range_t *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(v, i, n);
    for (size_t end = n; end-- > 1;) {
        range_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift(v, 0, end);
    }
}

/* Resident bytes of ebb's ranges inside [start, end): a range wholly inside
 * counts what the walk measured, one the mapping cuts is asked again. */
static size_t ebb_inside(walk_t *w, uintptr_t start, uintptr_t end)
{
    while (w->next < w->n && range_end(&w->list[w->next]) <= start)
        w->next++;
    size_t in = 0;
    for (size_t i = w->next; i < w->n && w->list[i].start < end; i++) {
        const range_t *g = &w->list[i];
        uintptr_t lo = g->start > start ? g->start : start;
        uintptr_t hi = range_end(g) < end ? range_end(g) : end;
        if (lo == g->start && hi == range_end(g))
            in += g->resident;
        else
            in += ebb__os_resident((const void *)lo, hi - lo, NULL);
    }
    return in;
}

static void on_mapping(const ebb__os_vma_t *v, void *ctx)
{
    walk_t *w = ctx;
    size_t mine = ebb_inside(w, v->start, v->end);
    uint64_t rest = v->rss > mine ? v->rss - mine : 0;
    switch (v->kind) {
    case EBB__OS_VMA_FILE:
        w->r.files += rest;
        break;
    case EBB__OS_VMA_HEAP:
        w->r.brk_heap += rest;
        break;
    case EBB__OS_VMA_STACK:
    case EBB__OS_VMA_THREAD_STACK:
        w->r.stacks += rest;
        break;
    case EBB__OS_VMA_OTHER:
        w->r.kernel += rest;
        break;
    default:
        w->r.anonymous += rest;
        break;
    }
}

static int read_smaps(walk_t *w)
{
    const char *root = ebb__system_root();
    sort_ranges(w->list, w->n);
    int ok = ebb__os_vmas(root, on_mapping, w) && ebb__os_rss(root, &w->r.rss);
    /* ebb's pages the list could not place are anonymous memory. */
    uint64_t unplaced = w->list ? w->unlisted : w->r.ebb;
    w->r.anonymous = w->r.anonymous > unplaced ? w->r.anonymous - unplaced : 0;
    w->r.other = w->r.files + w->r.stacks + w->r.brk_heap + w->r.anonymous + w->r.kernel;
    w->r.unaccounted = ok ? (int64_t)(w->r.rss - w->r.ebb - w->r.other) : 0;
    return ok;
}

/* One reading: the walk under every lock, then smaps with none. */
static int read_once(ebb_rss_t *out)
{
    walk_t w;
    memset(&w, 0, sizeof w);
    ebb__lock_everything(0);
    walk_locked(&w);
    ebb__unlock_everything(0);
    ebb_rss_t *r = &w.r;
    r->ebb = r->live_small + r->live_large + r->thread_caches + r->pool_free + r->pools_empty +
             r->free_slots + r->large_cached + r->metadata;
    int ok = read_smaps(&w);
    if (!ok)
        r->rss = r->other = r->files = r->stacks = r->brk_heap = r->anonymous = r->kernel = 0;
    if (w.list)
        ebb__os_unmap(w.list, w.list_bytes);
    *out = w.r;
    return ok;
}

static uint64_t magnitude(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

/* The smaps read comes after the locks are let go (holding them for the
 * tenths of a second the kernel takes would stall every thread's slow
 * paths), so a purge pass that runs in between (the purger wakes on its own
 * clock) makes ebb's part, measured before it, disagree with the kernel's
 * total, measured after.  Such a pass takes milliseconds: a reading that
 * misses by more than 1% is taken again, at most twice, and the closest
 * kept. */
int ebb__rss_read(ebb_rss_t *out)
{
    ebb__ensure_init();
    int ok = read_once(out);
    for (int again = 0; ok && again < 2 && magnitude(out->unaccounted) * 100 > out->rss; again++) {
        ebb_rss_t next;
        if (read_once(&next) && magnitude(next.unaccounted) < magnitude(out->unaccounted))
            *out = next;
    }
    return ok ? 0 : -1;
}
