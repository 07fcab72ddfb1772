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
 */
#include "internal.h"

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

static void bin_rebucket(ebb__bin_t *b, ebb__pool_t *p)
{
    unsigned k = bucket_for(p);
    if (k != p->bucket) {
        bin_unlink(b, p);
        bin_link(b, p, k);
    }
}

/* The fullest pool with a free block, or a new one; NULL if out of memory. */
static ebb__pool_t *bin_pool_with_room(ebb__heap_t *h, ebb__bin_t *b, unsigned cls)
{
    uint32_t partial = b->nonempty & ((1u << EBB_POOL_BUCKETS) - 1);
    if (partial) {
        unsigned k = 31u - (unsigned)__builtin_clz(partial);
        return b->bucket[k];
    }
    ebb__pool_t *p = ebb__arena_take_pool(ebb__classes[cls].span, cls);
    if (p == NULL)
        return NULL;
    ebb__pool_format(p, h, cls);
    b->pools++;
    bin_link(b, p, 0);
    return p;
}

unsigned ebb__heap_alloc(ebb__heap_t *h, unsigned cls, void **out, unsigned want)
{
    ebb__bin_t *b = &h->bin[cls];
    unsigned got = 0;
    ebb__lock(&b->lock);
    while (got < want) {
        ebb__pool_t *p = bin_pool_with_room(h, b, cls);
        if (p == NULL)
            break;
        got += ebb__pool_take(p, out + got, want - got);
        bin_rebucket(b, p);
    }
    b->used += got;
    ebb__unlock(&b->lock);
    return got;
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

static void report_return_fault(uintptr_t a, int fault)
{
    ebb__report_misuse("free", (void *)a, fault == 1 ? "not the start of a block"
                                                     : "double free (block is already free)");
}

/* Blocks of one pool, returned under its bin lock: a run of blocks[i..]
 * inside the pool is taken back with an index multiply and a bit test each,
 * no lookups.  Returns how many entries it consumed (at least one). */
static unsigned return_run(ebb__bin_t *b, ebb__pool_t *p, void *const *blocks, unsigned n)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    uintptr_t start = (uintptr_t)p->start, span = (uintptr_t)c->blocks * c->size;
    uint64_t *bits = ebb__pool_bitmap(p);
    uint32_t returned = 0, scan = p->scan;
    unsigned i = 0;
    for (; i < n; i++) {
        uintptr_t off = (uintptr_t)blocks[i] - start;
        if (off >= span)
            break; /* another pool: the caller looks it up */
        uint32_t idx;
        if (!ebb__offset_to_index(off, p->cls, &idx)) {
            report_return_fault((uintptr_t)blocks[i], 1);
            continue;
        }
        uint64_t bit = (uint64_t)1 << (idx % 64);
        if (bits[idx / 64] & bit) {
            report_return_fault((uintptr_t)blocks[i], 2);
            continue;
        }
        bits[idx / 64] |= bit;
        if (idx / 64 < scan)
            scan = idx / 64;
        returned++;
    }
    ebb__assert(p->used >= returned);
    p->scan = scan;
    p->used -= returned;
    b->used -= returned;
    return i ? i : 1;
}

/* Blocks come home from a thread cache, in the order they were cached, so
 * runs of them share a pool: the bin lock is kept across runs of one bin,
 * and each run of one pool costs a lookup, a bucket update and, per block,
 * an index multiply and a bit test-and-set. */
void ebb__heap_free(void *const *blocks, unsigned n)
{
    ebb__bin_t *locked = NULL;
    for (unsigned i = 0; i < n;) {
        uintptr_t a = (uintptr_t)blocks[i];
        ebb__arena_t *ar = ebb__arena_of(a);
        ebb__pool_t *p = ar ? ebb__pool_of(ar, a) : NULL;
        ebb__heap_t *h = p ? __atomic_load_n(&p->heap, __ATOMIC_ACQUIRE) : NULL;
        if (h == NULL) {
            ebb__report_misuse("free", (void *)a, "block is in no pool (already freed?)");
            i++;
            continue;
        }
        ebb__bin_t *b = &h->bin[p->cls];
        if (b != locked) {
            if (locked)
                ebb__unlock(&locked->lock);
            ebb__lock(&b->lock);
            locked = b;
        }
        /* A stale pointer may have seen the pool change hands meanwhile. */
        if (p->heap != h || &h->bin[p->cls] != b) {
            ebb__report_misuse("free", (void *)a, "block is in no pool (already freed?)");
            i++;
            continue;
        }
        i += return_run(b, p, blocks + i, n - i);
        if (p->used == 0 && bin_has_other_room(b, p)) {
            /* Unlinked and released under the bin lock (bin -> arena is the
             * lock order), so a fork never sees the pool in neither place. */
            bin_unlink(b, p);
            b->pools--;
            ebb__arena_release_pool(p);
        } else {
            bin_rebucket(b, p);
        }
    }
    if (locked)
        ebb__unlock(&locked->lock);
}

/* Release the empty pools bins keep against thrash (ebb_collect). */
void ebb__heap_collect(void)
{
    for (unsigned h = 0; h < ebb__g.nheaps; h++) {
        for (unsigned c = 0; c < EBB_CLASSES; c++) {
            ebb__bin_t *b = &ebb__g.heaps[h].bin[c];
            ebb__lock(&b->lock);
            ebb__pool_t *p = b->bucket[0];
            while (p) {
                ebb__pool_t *next = p->next;
                if (p->used == 0) {
                    bin_unlink(b, p);
                    b->pools--;
                    ebb__arena_release_pool(p); /* bin -> arena: lock order kept */
                }
                p = next;
            }
            ebb__unlock(&b->lock);
        }
    }
}

ebb__heap_t *ebb__heap_pick(void)
{
    unsigned i = ebb__g.next_heap++ % ebb__g.nheaps;
    return &ebb__g.heaps[i];
}
