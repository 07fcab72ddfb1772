/*
 * check.c -- ebb_check(): walk every structure and verify its invariants.
 *
 * With every lock held (front/init.c takes them, from the one list), checks,
 * arena by arena and pool by pool, what the rest of the code assumes:
 * free-slot counts, slot classes, pool geometry, bitmap population against
 * the used count, bucket placement, bin membership and totals, every thread
 * cache's geometry and the calling thread's cache contents (each cached
 * block is allocated as far as its pool knows; other threads' stacks are
 * theirs alone to read, core/thread.c says why), the large-block table,
 * that the mapped categories add up to the mapped counter, that every page
 * under a block that is out is marked dirty (never purged), the purge
 * lists, and the count of clean pages behind the committed estimate.  Each
 * fault is one line on stderr; the return value is how many.  Cost is linear
 * in the heap's metadata, not in its bytes.  Debug builds (EBB_DEBUG >= 2)
 * run it on every slow path, so there each thread's cache is checked by its
 * owner; tests call it after every scenario.
 */
#include "internal.h"

#include <string.h>

/* Evaluates to the count with this fault in it, so that `return FAULT(...)`
 * counts it. */
#define FAULT(...) (ebb__diag("ebb_check: " __VA_ARGS__), ++faults)

static int popcount_words(const uint64_t *w, unsigned n)
{
    int c = 0;
    for (unsigned i = 0; i < n; i++)
        c += __builtin_popcountll(w[i]);
    return c;
}

/* Every page that overlaps a block that is out must be dirty: a clean page
 * may be purged or zero, so a live block on it would lose its contents. */
static int check_pool_pages(ebb__arena_t *a, ebb__pool_t *p)
{
    int faults = 0;
    const ebb__class_t *c = &ebb__classes[p->cls];
    for (uint32_t i = 0; i < c->blocks; i++) {
        if (ebb__pool_is_free(p, i))
            continue;
        size_t lo = (size_t)i * c->size, hi = lo + c->size - 1;
        for (size_t pg = lo >> EBB_PAGE_SHIFT; pg <= hi >> EBB_PAGE_SHIFT; pg++) {
            unsigned slot = p->head_slot + (unsigned)(pg / EBB_SLOT_PAGES);
            if (!((a->dirty[slot] >> (pg % EBB_SLOT_PAGES)) & 1))
                return FAULT("pool %p: block %u is out but its page %zu is clean\n",
                             (void *)ebb__pool_start(p), i, pg);
        }
    }
    return faults;
}

/* A dense pool's bitmap: in its chunk, counting its free blocks, no free
 * bit past the last block or below the scan hint. */
static int check_bitmap(ebb__pool_t *p, const ebb__class_t *c)
{
    int faults = 0;
    unsigned words = ebb__bitmap_words(p->cls);
    if (p->bits_at % 64 + words > 64 || p->bits_at + words > EBB_SLOTS * EBB_BITMAP_WORDS)
        return FAULT("pool %p: bitmap at word %u straddles a chunk\n", (void *)ebb__pool_start(p),
                     (unsigned)p->bits_at);
    uint64_t *bits = ebb__pool_bitmap(p);
    int nfree = popcount_words(bits, words);
    if ((uint32_t)nfree + p->used != c->blocks)
        FAULT("pool %p: %d free + %u used != %u blocks\n", (void *)ebb__pool_start(p), nfree, p->used, c->blocks);
    for (unsigned w = 0; w < words; w++) {
        uint64_t valid = w + 1 < words ? ~(uint64_t)0 : w + 1 == words ?
            (c->blocks % 64 ? ((uint64_t)1 << (c->blocks % 64)) - 1 : ~(uint64_t)0) : 0;
        if (bits[w] & ~valid)
            FAULT("pool %p: free bits beyond the last block\n", (void *)ebb__pool_start(p));
        if (w < p->scan && bits[w])
            FAULT("pool %p: free block below the scan hint\n", (void *)ebb__pool_start(p));
    }
    return faults;
}

/* A sparse pool's list: as many indices as blocks out (none, once its
 * last block came back), each a block, no two alike. */
static int check_sparse(const ebb__pool_t *p, const ebb__class_t *c)
{
    int faults = 0;
    if (p->used > EBB_SPARSE_BLOCKS)
        return FAULT("pool %p: sparse with %u blocks out\n", (void *)ebb__pool_start(p), p->used);
    for (unsigned k = 0; k < p->used; k++) {
        if (p->held[k] >= c->blocks)
            FAULT("pool %p: sparse list holds block %u of %u\n", (void *)ebb__pool_start(p),
                  (unsigned)p->held[k], c->blocks);
        for (unsigned j = 0; j < k; j++)
            if (p->held[j] == p->held[k])
                FAULT("pool %p: block %u listed twice\n", (void *)ebb__pool_start(p), (unsigned)p->held[k]);
    }
    return faults;
}

static int check_pool(ebb__arena_t *a, unsigned s, size_t *pools_in_bins, size_t *pools_listed)
{
    int faults = 0;
    ebb__pool_t *p = &a->pool[s];
    unsigned cls = a->slot_class[s];
    if (p->cls != cls || cls >= EBB_CLASSES)
        return FAULT("pool %p: class %u, slot says %u\n", (void *)ebb__pool_start(p), (unsigned)p->cls, cls);
    const ebb__class_t *c = &ebb__classes[cls];
    if (p->span != c->span || p->head_slot != s)
        FAULT("pool %p: bad geometry\n", (void *)ebb__pool_start(p));
    for (unsigned k = s; k < s + p->span && k < EBB_SLOTS; k++) {
        if (a->slot_head[k] != s || a->slot_class[k] != cls || ((a->free_mask >> k) & 1))
            FAULT("pool %p: slot %u not marked as its own\n", (void *)ebb__pool_start(p), k);
    }
    int bad = p->bits_at == EBB_BITS_SPARSE ? check_sparse(p, c) : check_bitmap(p, c);
    faults += bad;
    if (p->heap >= ebb__heaps.n)
        return FAULT("pool %p: no owning heap\n", (void *)ebb__pool_start(p));
    unsigned want = p->used == c->blocks ? (unsigned)EBB_BUCKET_FULL
                    : (unsigned)(((uint64_t)p->used * EBB_POOL_BUCKETS) / c->blocks);
    if (want != ebb__bucket_for(p->used, cls))
        FAULT("pool %p: fast bucket formula disagrees with division\n", (void *)ebb__pool_start(p));
    if (p->bucket != want)
        FAULT("pool %p: in bucket %u, belongs in %u\n", (void *)ebb__pool_start(p), (unsigned)p->bucket, want);
    if (!bad) /* else its blocks' state cannot be trusted */
        faults += check_pool_pages(a, p);
    *pools_listed += p->listed;
    (*pools_in_bins)++;
    return faults;
}

/* Mark the bitmap words of pool p in `claimed`, a pool at a time. */
static void claim_bitmap_words(const ebb__arena_t *a, const ebb__pool_t *p, uint64_t *claimed)
{
    unsigned cls = a->slot_class[p->head_slot];
    if (cls >= EBB_CLASSES || p->bits_at >= EBB_SLOTS * EBB_BITMAP_WORDS)
        return; /* sparse, or reported by check_pool */
    for (unsigned w = p->bits_at; w < p->bits_at + ebb__bitmap_words(cls); w++)
        claimed[w / 64] |= (uint64_t)1 << (w % 64);
}

static int check_arena(ebb__arena_t *a, unsigned list, size_t *pools, size_t *slots,
                       size_t *listed, size_t *clean)
{
    int faults = 0;
    uint64_t claimed[EBB_SLOTS] = { 0 };
    size_t listed_before = *listed;
    if (a->magic != EBB_ARENA_MAGIC)
        return FAULT("arena %p: bad magic\n", (void *)a);
    if (a->nfree != list || (unsigned)__builtin_popcountll(a->free_mask) != a->nfree)
        FAULT("arena %p: nfree %u, mask has %d, list %u\n", (void *)a, a->nfree,
              __builtin_popcountll(a->free_mask), list);
    if (a->free_mask & 1)
        FAULT("arena %p: header slot marked free\n", (void *)a);
    if (ebb__arena_of((uintptr_t)a) != a)
        FAULT("arena %p: missing from the ownership map\n", (void *)a);
    if (a->slot_class[0] != EBB_NO_CLASS)
        FAULT("arena %p: header slot has a class\n", (void *)a);
    if (a->purging)
        FAULT("arena %p: slots still lent to a purge pass\n", (void *)a);
    if (!(a->dirty[0] & 1))
        FAULT("arena %p: header's first page not counted resident\n", (void *)a);
    for (unsigned s = 0; s < EBB_SLOTS; s++)
        *clean += EBB_SLOT_PAGES - (size_t)__builtin_popcount(a->dirty[s]);
    for (unsigned s = 1; s < EBB_SLOTS;) {
        if ((a->free_mask >> s) & 1) {
            if (a->slot_class[s] != EBB_NO_CLASS)
                FAULT("arena %p: free slot %u has class %u\n", (void *)a, s, (unsigned)a->slot_class[s]);
            s++;
            continue;
        }
        if (a->slot_head[s] != s) {
            FAULT("arena %p: slot %u starts no pool\n", (void *)a, s);
            s++;
            continue;
        }
        faults += check_pool(a, s, pools, listed);
        claim_bitmap_words(a, &a->pool[s], claimed);
        *slots += a->pool[s].span ? a->pool[s].span : 1;
        s += a->pool[s].span ? a->pool[s].span : 1;
    }
    /* The cold part of the header: purged (and then not read: that would
     * map the zero page) only while no pool has a bitmap or is listed. */
    static const uint64_t none_used[EBB_SLOTS];
    int cold_in = (a->dirty[0] & EBB_COLD_PAGES) == EBB_COLD_PAGES;
    uint32_t cold = atomic_load_explicit(&a->cold_users, memory_order_relaxed);
    size_t listed_here = *listed - listed_before;
    if ((cold & EBB_COLD_USERS) != listed_here || (cold & EBB_COLD_BUSY))
        FAULT("arena %p: %zu pools listed, its cold part counts %u%s\n", (void *)a, listed_here,
              (unsigned)(cold & EBB_COLD_USERS), cold & EBB_COLD_BUSY ? " and is being purged" : "");
    if ((cold & EBB_COLD_GONE) ? cold_in : !cold_in)
        FAULT("arena %p: cold part %s, its pages say otherwise\n", (void *)a,
              cold & EBB_COLD_GONE ? "purged" : "resident");
    if (memcmp(claimed, cold_in ? a->bits_used : none_used, sizeof claimed) != 0)
        FAULT("arena %p: bitmap words in use do not match its pools'\n", (void *)a);
    for (unsigned w = 0; w < EBB_SLOTS * EBB_BITMAP_WORDS; w++) {
        size_t pg = ((size_t)((uint8_t *)&a->bits[w] - (uint8_t *)a)) >> EBB_PAGE_SHIFT;
        if (((claimed[w / 64] >> (w % 64)) & 1) && !((a->dirty[0] >> pg) & 1))
            return FAULT("arena %p: bitmap word %u in use on a header page not counted\n",
                         (void *)a, w);
    }
    return faults;
}

/* The purge list: pools of this bin, flagged, linked both ways, each last
 * active no earlier than it joined (wrap-safe: within a day). */
static int check_purge_list(ebb__bin_t *b, unsigned h, unsigned c, size_t *listed)
{
    int faults = 0;
    ebb__pool_t *prev = NULL;
    for (ebb__pool_t *p = b->purge_head; p; prev = p, p = ebb__pool_cold(p)->purge_next) {
        if (ebb__pool_cold(p)->purge_prev != prev || !p->listed || p->heap != h || p->cls != c)
            return FAULT("heap %u class %u: purge list broken at pool %p\n", h, c, (void *)ebb__pool_start(p));
        if ((uint32_t)(ebb__pool_cold(p)->stamp - ebb__pool_cold(p)->listed_at) > 86400000u)
            FAULT("heap %u class %u: pool %p active before it joined the purge list\n", h, c,
                  (void *)ebb__pool_start(p));
        if (prev && (int32_t)(ebb__pool_cold(p)->queued_at - ebb__pool_cold(prev)->queued_at) < 0)
            FAULT("heap %u class %u: purge list out of order at pool %p\n", h, c,
                  (void *)ebb__pool_start(p));
        (*listed)++;
    }
    if (b->purge_tail != prev)
        FAULT("heap %u class %u: purge list tail wrong\n", h, c);
    for (unsigned k = 0; k < EBB_PURGE_HINTS; k++) {
        const ebb__pool_t *p = b->purge_hint[k];
        if (p && (!p->listed || p->heap != h || p->cls != c ||
                  ebb__pool_cold(p)->queued_at % EBB_PURGE_HINTS != k))
            FAULT("heap %u class %u: purge hint %u is not a listed pool with its key\n", h, c,
                  k);
    }
    return faults;
}

static int check_bins(size_t *pools_listed, size_t *purge_listed)
{
    int faults = 0;
    for (unsigned h = 0; h < ebb__heaps.n; h++) {
        for (unsigned c = 0; c < EBB_CLASSES; c++) {
            ebb__bin_t *b = &ebb__heaps.heap[h].bin[c];
            size_t n = 0, used = 0;
            for (unsigned k = 0; k <= EBB_POOL_BUCKETS; k++) {
                if (((b->nonempty >> k) & 1) != (b->bucket[k] != NULL))
                    FAULT("heap %u class %u: bucket %u mask wrong\n", h, c, k);
                ebb__pool_t *prev = NULL;
                for (ebb__pool_t *p = b->bucket[k]; p; prev = p, p = p->next) {
                    if (p->prev != prev || p->heap != h || p->cls != c || p->bucket != k) {
                        FAULT("heap %u class %u: pool %p misfiled\n", h, c, (void *)ebb__pool_start(p));
                        break;
                    }
                    n++;
                    used += p->used;
                }
            }
            if (n != b->pools || used != b->used)
                FAULT("heap %u class %u: lists hold %zu pools/%zu blocks, counters %zu/%zu\n",
                      h, c, n, used, b->pools, b->used);
            *pools_listed += n;
            faults += check_purge_list(b, h, c, purge_listed);
        }
    }
    return faults;
}

/* The calling thread's stack cls: in bounds, every entry a block of the
 * class that its pool counts as out. */
static int check_own_stack(const ebb__thread_t *tc, unsigned c)
{
    int faults = 0;
    const ebb__tbin_t *b = &tc->bin[c];
    if (b->top < b->low || b->top > b->high)
        return FAULT("thread cache %p class %u: top outside its stack\n", (void *)tc, c);
    for (void *const *e = b->low; e < b->top; e++) {
        uintptr_t a = (uintptr_t)*e;
        ebb__arena_t *ar = ebb__arena_of(a);
        ebb__pool_t *p = ar ? ebb__pool_of(ar, a) : NULL;
        uint32_t idx;
        if (p == NULL || p->cls != c || !ebb__pool_block_index(p, a, &idx) ||
            ebb__pool_is_free(p, idx))
            FAULT("thread cache %p class %u: entry %p is not an allocated block\n",
                  (void *)tc, c, *e);
    }
    return faults;
}

/* Every cache's geometry (fixed while the registry lock is held) and
 * published depths; the entries of the calling thread's own only: another
 * thread's stacks change under its fast paths with no lock and no atomic
 * (core/thread.c), so reading them would race with its pushes. */
static int check_tcaches(void)
{
    int faults = 0;
    const ebb__thread_t *own = ebb__thread_own();
    for (ebb__thread_t *tc = ebb__threads.active; tc; tc = tc->next) {
        for (unsigned c = 0; c < EBB_CLASSES; c++) {
            const ebb__tbin_t *b = &tc->bin[c];
            size_t cap = ebb__classes[c].tcache_cap;
            void **high = __atomic_load_n(&b->high, __ATOMIC_RELAXED);
            void **low = ebb__tbin_low(b);
            if (high < low || (size_t)(high - low) > cap) {
                FAULT("thread cache %p class %u: bad stack\n", (void *)tc, c);
                continue;
            }
            if (ebb__tcache_depth(tc, c) > cap)
                FAULT("thread cache %p class %u: %zu blocks published, capacity %zu\n",
                      (void *)tc, c, ebb__tcache_depth(tc, c), cap);
            if (tc == own)
                faults += check_own_stack(tc, c);
        }
    }
    return faults;
}

/* Every change to the mapped counter happens under one of the locks held
 * here, so with all of them held the categories must sum to it exactly. */
static int check_mapped_adds_up(void)
{
    int faults = 0;
    ebb_stats_t s = { 0 };
    s.mapped_meta = ebb__threads.bytes;
    ebb__arena_stats_locked(&s);
    ebb__large_stats_locked(&s);
    ebb__sample_stats_locked(&s);
    size_t sum = s.mapped_meta + s.mapped_pools + s.mapped_free_slots + s.mapped_large +
                 s.mapped_large_cached;
    size_t mapped = atomic_load_explicit(&ebb__ledger.mapped, memory_order_relaxed);
    if (sum != mapped)
        FAULT("mapped categories sum to %zu, mapped counter says %zu\n", sum, mapped);
    return faults;
}

int ebb__check_locked(void)
{
    int faults = 0;

    size_t pools = 0, slots = 0, arenas = 0, listed = 0, empty = 0;
    size_t flagged = 0, on_lists = 0, clean = 0;
    for (unsigned n = 0; n < EBB_SLOTS; n++) {
        if (((ebb__arenas.by_nfree_mask >> n) & 1) != (ebb__arenas.by_nfree[n] != NULL))
            FAULT("arena list %u: mask wrong\n", n);
        for (ebb__arena_t *a = ebb__arenas.by_nfree[n]; a; a = a->next) {
            faults += check_arena(a, n, &pools, &slots, &flagged, &clean);
            arenas++;
            empty += n == EBB_SLOTS - 1;
        }
    }
    if (arenas != ebb__arenas.count || pools != ebb__arenas.pools || slots != ebb__arenas.pool_slots)
        FAULT("arena totals: %zu arenas/%zu pools/%zu slots walked, counters %zu/%zu/%zu\n",
              arenas, pools, slots, ebb__arenas.count, ebb__arenas.pools, ebb__arenas.pool_slots);
    if (empty != ebb__arenas.spare || empty > EBB_SPARE_ARENAS)
        FAULT("%zu empty arenas, %zu counted as spare\n", empty, ebb__arenas.spare);
    faults += check_bins(&listed, &on_lists);
    if (listed != pools)
        FAULT("%zu pools in arenas but %zu in bins\n", pools, listed);
    if (flagged != on_lists)
        FAULT("%zu pools flagged for purging but %zu on purge lists\n", flagged, on_lists);
    if (clean != atomic_load_explicit(&ebb__ledger.clean_pages, memory_order_relaxed))
        FAULT("%zu clean arena pages, counter says %zu\n", clean,
              atomic_load_explicit(&ebb__ledger.clean_pages, memory_order_relaxed));
    faults += check_tcaches();
    faults += ebb__large_check();
    faults += ebb__sample_check();
    faults += check_mapped_adds_up();
    return faults;
}
