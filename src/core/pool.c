/*
 * pool.c -- a run of 1 to 8 slots holding blocks of one size class.
 *
 * Owns: the free bitmap of each pool (in the arena header, bit set = free),
 * the count of blocks out, and the scan hint.  All calls are made under the
 * lock of the bin the pool belongs to.
 *
 * Why a bitmap and not a free list threaded through the blocks: the next
 * issue releases the pages of free blocks inside partly used pools, and the
 * OS then zeroes them; a list kept in those blocks would be lost, a bitmap in
 * the header is not.  The bitmap also catches double frees and frees of
 * interior pointers exactly, and costs nothing on the fast paths, which work
 * on thread-cache stacks: pools are only touched when a cache refills or
 * flushes half its capacity at a time.
 *
 * Blocks are taken lowest address first, so a pool fills from the bottom and
 * its upper pages stay untouched (never resident) or become free together.
 *
 * Pages: every OS page of a pool is clean (known not resident: never touched
 * or purged) or dirty (arena header, one bit per page).  Handing a block out
 * marks its pages dirty; ebb__pool_purge gives back the dirty pages that hold
 * no block that is out and marks them clean.  Invariant: every page that
 * overlaps a block that is out is dirty, but for blocks a purge pass has
 * borrowed (ebb__pool_borrow: marked out so that no refill hands them out
 * while their clean pages are purged with the bin lock let go; ebb_check
 * never sees them, since the pass holds the lend lock until they are
 * back).  Bookkeeping never reads a purged page, so a purged page coming
 * back zeroed is always correct.
 *
 * Sparse pools.  A pool left with a few blocks out (at most
 * EBB_SPARSE_BLOCKS) after a purge pass keeps their indices in its
 * descriptor and gives its bitmap words back to the arena (ebb__pool_sparsen),
 * so that the header pages those words were on can be purged (arena.c).  A
 * teardown with scattered survivors leaves a few blocks in each of thousands
 * of pools; their bitmaps held 2 of each arena header's 4 resident pages.  A
 * free into a sparse pool takes the index out of the list; anything else that
 * needs the bitmap (a refill, a borrow) makes it again first (densify), from
 * the list.  Both directions take the arena lock under the bin lock, the
 * order the rest of ebb uses.  Measured on bench/rss scenario 2 in C (0.1%
 * of 1 GiB survives, in about 7,400 pools of 290 arenas): metadata resident
 * 4.0 -> 2.7 MiB, RSS 1.08 -> 1.05 times the floor; Python 1.05 -> 1.03.
 */
#include "internal.h"

#include <string.h>

/* Every block of p free in its bitmap, none past its last. */
static void bits_all_free(ebb__pool_t *p)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    uint64_t *bits = ebb__pool_bitmap(p);
    unsigned full_words = c->blocks / 64, rest = c->blocks % 64;
    memset(bits, 0xff, full_words * sizeof *bits);
    if (rest)
        bits[full_words] = ebb__bit_run(rest, 0);
}

void ebb__pool_format(ebb__pool_t *p, ebb__heap_t *h, unsigned cls)
{
    ebb__assert(p->span == ebb__classes[cls].span);
    ebb__pool_set_heap(p, h);
    p->cls = (uint8_t)cls;
    p->used = 0;
    p->scan = 0;
    p->bucket = EBB_BUCKET_NONE;
    p->next = p->prev = NULL;
    bits_all_free(p);
}

/* A mask of pages first..last (inclusive) of a slot. */
static uint16_t page_mask(unsigned first, unsigned last)
{
    return (uint16_t)((0xffffu >> (15 - (last - first))) << first);
}

/*
 * Bitmap words.  A pool's bitmap needs a bit per block: 64 words for the
 * 16-byte class, 3 for 336-byte blocks.  Rows of the largest size for every
 * slot would make the header 8 pages of bitmaps, all of them resident in an
 * arena whose pools keep a few survivors each, whatever their classes:
 * measured in bench/rss scenario 2 (0.1% survivors of 1 GiB), 10 header pages
 * per arena, 11 MiB over 284 arenas against a floor of 49 MiB of survivor
 * pages.  So each pool gets just the words its class needs, first fit in the
 * lowest 64-word chunk with room, and live bitmaps pack into the first page
 * or two.  A pool's words never straddle two chunks, so at most 63 other
 * pools touch at most 63 chunks and a whole chunk is always free for the
 * 64th: a reservation cannot fail.
 */
void ebb__pool_bits_reserve(ebb__pool_t *p, unsigned cls)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    unsigned n = ebb__bitmap_words(cls);
    ebb__assert(n >= 1 && n <= 64);
    for (unsigned c = 0; c < EBB_SLOTS; c++) {
        uint64_t room = ~a->bits_used[c];
        for (unsigned j = 1; j < n && room; j++)
            room &= ~a->bits_used[c] >> j; /* bit i: words i..i+j free, in the chunk */
        if (room) {
            unsigned at = (unsigned)__builtin_ctzll(room);
            a->bits_used[c] |= ebb__bit_run(n, at);
            p->bits_at = (uint16_t)(c * 64 + at);
            ebb__arena_header_touch(a, &a->bits_used[c], sizeof a->bits_used[c]);
            ebb__arena_header_touch(a, &a->bits[p->bits_at], n * sizeof(uint64_t));
            return;
        }
    }
    ebb__assert(!"a free chunk always exists");
}

void ebb__pool_bits_release(ebb__pool_t *p)
{
    if (p->bits_at == EBB_BITS_SPARSE)
        return;
    ebb__arena_t *a = ebb__arena_of_pool(p);
    unsigned n = ebb__bitmap_words(p->cls);
    a->bits_used[p->bits_at / 64] &= ~ebb__bit_run(n, p->bits_at % 64);
    a->bits_freed_at = ebb__os_now_ms();
    a->bits_freed = 1;
}

int ebb__pool_sparsen(ebb__pool_t *p)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    if (p->bits_at == EBB_BITS_SPARSE || p->used == 0 || p->used > EBB_SPARSE_BLOCKS)
        return 0;
    const uint64_t *bits = ebb__pool_bitmap(p);
    unsigned words = (c->blocks + 63) / 64, n = 0;
    for (unsigned w = 0; w < words; w++) {
        uint64_t out = ~bits[w];
        if (w + 1 == words && c->blocks % 64)
            out &= ebb__bit_run(c->blocks % 64, 0);
        for (; out; out &= out - 1)
            p->held[n++] = (uint16_t)(w * 64 + (unsigned)__builtin_ctzll(out));
    }
    ebb__assert(n == p->used);
    ebb__lock(&ebb__arenas.lock);
    ebb__pool_bits_release(p);
    ebb__unlock(&ebb__arenas.lock);
    p->bits_at = EBB_BITS_SPARSE;
    ebb__purge_announce(); /* header pages may have no word in use now */
    return 1;
}

/* Sparse pool p gets a bitmap again, made from its list. */
static EBB_NOINLINE void densify(ebb__pool_t *p)
{
    ebb__lock(&ebb__arenas.lock);
    ebb__pool_bits_reserve(p, p->cls);
    ebb__unlock(&ebb__arenas.lock);
    bits_all_free(p);
    uint64_t *bits = ebb__pool_bitmap(p);
    for (unsigned i = 0; i < p->used; i++)
        bits[p->held[i] / 64] &= ~((uint64_t)1 << (p->held[i] % 64));
    p->scan = 0;
}

static inline void dense(ebb__pool_t *p)
{
    if (EBB_UNLIKELY(p->bits_at == EBB_BITS_SPARSE))
        densify(p);
}

/* Index i is in sparse pool p's list of blocks out: its position, else -1. */
static int held_at(const ebb__pool_t *p, uint32_t i)
{
    for (unsigned k = 0; k < p->used; k++)
        if (p->held[k] == i)
            return (int)k;
    return -1;
}

/* Pages first..last of pool p (counted from its start) may now be resident. */
static void mark_dirty(ebb__pool_t *p, size_t first, size_t last)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    size_t dirtied = 0;
    for (size_t pg = first; pg <= last;) {
        unsigned slot = p->head_slot + (unsigned)(pg / EBB_SLOT_PAGES);
        unsigned lo = (unsigned)(pg % EBB_SLOT_PAGES);
        unsigned hi = last / EBB_SLOT_PAGES == pg / EBB_SLOT_PAGES ? (unsigned)(last % EBB_SLOT_PAGES)
                                                                 : EBB_SLOT_PAGES - 1;
        /* Mostly the pages are dirty already (blocks reused): no count
         * then, which without a popcount instruction is a library call. */
        uint16_t fresh = (uint16_t)(page_mask(lo, hi) & ~a->dirty[slot]);
        if (fresh) {
            dirtied += (size_t)__builtin_popcount(fresh);
            a->dirty[slot] |= fresh;
        }
        pg += hi - lo + 1;
    }
    if (dirtied)
        ebb__pages_dirtied(dirtied);
}

unsigned ebb__pool_take(ebb__pool_t *p, void **end, unsigned want)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    dense(p);
    uint64_t *bits = ebb__pool_bitmap(p);
    void **out = end;
    unsigned words = (c->blocks + 63) / 64, got = 0, w = p->scan;
    for (; w < words && got < want; w++) {
        uint64_t m = bits[w];
        uint8_t *base = ebb__pool_start(p) + (size_t)w * 64 * c->size;
        if (m == ~(uint64_t)0 && want - got >= 64) {
            /* 64 free blocks in a row (a pool's untouched part): by address
             * arithmetic, no bit scan.  Measured (callgrind, bench buildfree
             * at scale 0.02): this function 19.6 instructions a block before,
             * 16.3 after, since only refills of 64 (classes to 256 bytes)
             * take a whole word; prodcons 2.2% fewer in all. */
            uint8_t *blk = base;
            for (unsigned i = 0; i < 64; i++, blk += c->size)
                ebb__tbin_put(--out, blk); /* out may be a cache's */
            got += 64;
            m = 0;
        }
        while (m && got < want) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            m &= m - 1;
            ebb__tbin_put(--out, base + (size_t)b * c->size);
            got++;
        }
        bits[w] = m;
        if (m)
            break;
    }
    p->scan = w;
    p->used += got;
    ebb__assert(p->used <= c->blocks);
    /* Blocks are taken in address order and every block between the first
     * and the last taken was already out, so the pages from the first to the
     * end of the last are exactly the ones to mark. */
    if (got) {
        size_t lo = (size_t)((uint8_t *)end[-1] - ebb__pool_start(p));
        size_t hi = (size_t)((uint8_t *)end[-(ptrdiff_t)got] - ebb__pool_start(p)) + c->size - 1;
        mark_dirty(p, lo >> EBB_PAGE_SHIFT, hi >> EBB_PAGE_SHIFT);
    }
    return got;
}

/* Bits first..last of the bitmap are all set (all those blocks free). */
static int all_free(const uint64_t *bits, uint32_t first, uint32_t last)
{
    for (uint32_t i = first; i <= last;) {
        uint32_t w = i / 64, lo = i % 64;
        uint32_t hi = last / 64 == w ? last % 64 : 63;
        uint64_t m = (~(uint64_t)0 >> (63 - (hi - lo))) << lo;
        if ((bits[w] & m) != m)
            return 0;
        i += hi - lo + 1;
    }
    return 1;
}

/* Sparse pool p has no block first..last out. */
static int none_held(const ebb__pool_t *p, uint32_t first, uint32_t last)
{
    for (unsigned k = 0; k < p->used; k++)
        if (p->held[k] >= first && p->held[k] <= last)
            return 0;
    return 1;
}

/* Page pg of pool p holds no block that is out. */
static int page_is_free(const ebb__pool_t *p, const uint64_t *bits, size_t pg)
{
    if (p->used == 0)
        return 1;
    const ebb__class_t *c = &ebb__classes[p->cls];
    size_t lo = pg << EBB_PAGE_SHIFT, hi = lo + EBB_PAGE - 1;
    size_t first = lo / c->size, last = hi / c->size;
    if (first >= c->blocks)
        return 1; /* the pool's tail, past its last block */
    if (last >= c->blocks)
        last = c->blocks - 1;
    if (p->bits_at == EBB_BITS_SPARSE)
        return none_held(p, (uint32_t)first, (uint32_t)last);
    return all_free(bits, (uint32_t)first, (uint32_t)last);
}

/* Purge pages [lo, hi) of pool p, all free, and mark them clean; into
 * `batch` if there is one, else at once. */
static void purge_pages(ebb__pool_t *p, size_t lo, size_t hi, ebb__purge_batch_t *batch)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    size_t cleaned = 0;
    for (size_t pg = lo; pg < hi; pg++) {
        uint16_t *d = &a->dirty[p->head_slot + pg / EBB_SLOT_PAGES];
        uint16_t bit = (uint16_t)(1u << (pg % EBB_SLOT_PAGES));
        cleaned += (*d & bit) != 0;
        *d &= (uint16_t)~bit;
    }
    ebb__purge_batch_add(batch, ebb__pool_start(p) + (lo << EBB_PAGE_SHIFT), (hi - lo) << EBB_PAGE_SHIFT);
    ebb__pages_cleaned(cleaned);
}

/* Dirty pages of pool p holding no block that is out, counted; with
 * `purge`, also purged.  A run of free pages is purged with one call from
 * its first dirty page to its last, clean ones in between included (they
 * hold only free blocks, and purging them again costs next to nothing),
 * so a pool purged piecemeal before goes back in one call, not a dozen. */
static size_t free_dirty_pages(ebb__pool_t *p, int purge, ebb__purge_batch_t *batch)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    const uint64_t *bits = p->bits_at == EBB_BITS_SPARSE ? NULL : ebb__pool_bitmap(p);
    size_t npages = (size_t)p->span * EBB_SLOT_PAGES, found = 0;
    size_t first = SIZE_MAX, last = 0; /* dirty ends of the current run */
    for (size_t pg = 0; pg <= npages; pg++) {
        int free_page = pg < npages && page_is_free(p, bits, pg);
        if (free_page) {
            uint16_t dirty = a->dirty[p->head_slot + pg / EBB_SLOT_PAGES];
            if ((dirty >> (pg % EBB_SLOT_PAGES)) & 1) {
                found++;
                if (first == SIZE_MAX)
                    first = pg;
                last = pg;
            }
            continue;
        }
        if (first != SIZE_MAX && purge)
            purge_pages(p, first, last + 1, batch);
        first = SIZE_MAX;
    }
    return found;
}

size_t ebb__pool_purge(ebb__pool_t *p, size_t min_pages, ebb__purge_batch_t *batch)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    /* Too few free blocks to cover enough pages: nothing worth finding. */
    if ((size_t)(c->blocks - p->used) * c->size < (min_pages ? min_pages : 1) * EBB_PAGE)
        return 0;
    if (min_pages > 1 && free_dirty_pages(p, 0, NULL) < min_pages)
        return 0;
    return free_dirty_pages(p, 1, batch);
}

/* The blocks of p that overlap [from, from + bytes), clamped to its last
 * block: [*first, return). */
static uint32_t blocks_over(const ebb__pool_t *p, const void *from, size_t bytes, uint32_t *first)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    size_t lo = (size_t)((const uint8_t *)from - ebb__pool_start(p)), hi = lo + bytes - 1;
    *first = (uint32_t)(lo / c->size);
    size_t last = hi / c->size;
    return (uint32_t)(last < c->blocks ? last + 1 : c->blocks);
}

size_t ebb__pool_borrow(ebb__pool_t *p, const void *from, size_t bytes)
{
    dense(p);
    uint64_t *bits = ebb__pool_bitmap(p);
    uint32_t i, end = blocks_over(p, from, bytes, &i);
    size_t n = 0;
    for (; i < end; i++) {
        uint64_t bit = (uint64_t)1 << (i % 64);
        ebb__assert(bits[i / 64] & bit); /* the pages were free */
        bits[i / 64] &= ~bit;
        n++;
    }
    p->used += (uint32_t)n;
    return n;
}

size_t ebb__pool_unborrow(ebb__pool_t *p, const void *from, size_t bytes)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    dense(p); /* made dense by the borrow, but ebb_collect may have made it sparse since */
    uint64_t *bits = ebb__pool_bitmap(p);
    uint32_t i, end = blocks_over(p, from, bytes, &i);
    if (i / 64 < p->scan)
        p->scan = i / 64;
    size_t n = 0;
    for (; i < end; i++) {
        uint64_t bit = (uint64_t)1 << (i % 64);
        if (EBB_UNLIKELY(bits[i / 64] & bit)) {
            /* Freed while borrowed: the free took it for a block that was
             * out (and counted it back), but it was free all along. */
            ebb__report_corruption("free", ebb__pool_start(p) + (size_t)i * c->size,
                                   "double free (the block was free, its page being purged)");
            continue;
        }
        bits[i / 64] |= bit;
        n++;
    }
    ebb__assert(p->used >= n);
    p->used -= (uint32_t)n;
    return n;
}

int ebb__pool_block_index(const ebb__pool_t *p, uintptr_t a, uint32_t *idx)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    uintptr_t off = a - (uintptr_t)ebb__pool_start(p);
    if (a < (uintptr_t)ebb__pool_start(p) || off >= (uintptr_t)c->blocks * c->size)
        return 0;
    return ebb__offset_to_index(off, p->cls, idx);
}

int ebb__pool_is_free(ebb__pool_t *p, uint32_t idx)
{
    if (p->bits_at == EBB_BITS_SPARSE)
        return held_at(p, idx) < 0;
    return (int)((ebb__pool_bitmap(p)[idx / 64] >> (idx % 64)) & 1);
}

EBB_NOINLINE unsigned ebb__pool_put_sparse(ebb__pool_t *p, void *const *blocks, unsigned n)
{
    const ebb__class_t *c = &ebb__classes[p->cls];
    const uintptr_t start = (uintptr_t)ebb__pool_start(p), span = (uintptr_t)c->blocks * c->size;
    unsigned i = 0;
    for (; i < n; i++) {
        uintptr_t off = (uintptr_t)blocks[i] - start;
        if (off >= span)
            break; /* another pool's */
        uint32_t idx = (uint32_t)(((uint64_t)off * ebb__class_recip[p->cls]) >> 48);
        int k = held_at(p, idx);
        if (EBB_UNLIKELY((uintptr_t)idx * c->size != off))
            ebb__report_misuse("free", blocks[i], "not the start of a block");
        else if (EBB_UNLIKELY(k < 0))
            ebb__report_corruption("free", blocks[i],
                                   "double free (its pool holds the block as free)");
        else
            p->held[k] = p->held[--p->used];
    }
    return i ? i : 1;
}

/* Blocks come back to their pool (its bin lock held), a run at a time: the
 * blocks at the start of `blocks` that lie in p are taken back with an
 * index multiply and a bit test each, no lookups; a block that is not the
 * start of one, or already free, is reported and left out.  Returns how
 * many entries it consumed (at least one): the caller looks up the pool of
 * the next. */
EBB_INLINE_ACROSS unsigned ebb__pool_put_run(ebb__pool_t *p, void *const *blocks, unsigned n)
{
    if (EBB_UNLIKELY(p->bits_at == EBB_BITS_SPARSE))
        return ebb__pool_put_sparse(p, blocks, n);
    const unsigned cls = p->cls;
    const uintptr_t start = (uintptr_t)ebb__pool_start(p), size = ebb__class_size[cls];
    const uintptr_t span = (uintptr_t)ebb__classes[cls].blocks * size;
    const uint64_t recip = ebb__class_recip[cls];
    uint64_t *bits = ebb__pool_bitmap(p);
    uint32_t skipped = 0, scan = p->scan;
    unsigned i = 0;
    for (; i < n; i++) {
        uintptr_t off = (uintptr_t)blocks[i] - start;
        if (off >= span)
            break; /* another pool's */
        /* The free paths checked this before the block entered a cache;
         * checked again here, for a multiply, since a pointer that is not
         * a block's start would set the bit of another block. */
        uint32_t idx = (uint32_t)(((uint64_t)off * recip) >> 48);
        uint64_t *word = &bits[idx / 64], bit = (uint64_t)1 << (idx % 64);
        if (EBB_UNLIKELY((uintptr_t)idx * size != off)) {
            ebb__report_misuse("free", blocks[i], "not the start of a block");
            skipped++;
        } else if (EBB_UNLIKELY(*word & bit)) {
            ebb__report_corruption("free", blocks[i],
                                   "double free (its pool holds the block as free)");
            skipped++;
        } else {
            *word |= bit;
            scan = idx / 64 < scan ? idx / 64 : scan;
        }
    }
    ebb__assert(p->used >= i - skipped);
    p->scan = scan;
    p->used -= i - skipped;
    return i ? i : 1;
}

ebb__pool_t *ebb__pool_of(ebb__arena_t *a, uintptr_t addr)
{
    unsigned s = ebb__slot_of(addr);
    if (__atomic_load_n(&a->slot_class[s], __ATOMIC_ACQUIRE) == EBB_NO_CLASS)
        return NULL;
    return &a->pool[a->slot_head[s]];
}
