/*
 * large.c -- blocks above 128 KiB, each in its own mapping.
 *
 * Owns: the table of live large blocks (address -> mapping size), and a small
 * cache of freed mappings.
 *
 * Large blocks never share an arena with small ones, so small survivors never
 * split the address space that large blocks need, and a freed large block
 * goes back to the OS as a whole.  Their descriptors live in an open-address
 * hash table outside the blocks (linear probing, backward-shift deletion,
 * grown by doubling), so an overflow out of a block cannot rewrite them and
 * a foreign pointer is recognised by not being in the table.
 *
 * The cache keeps up to EBB_LARGE_CACHE_SLOTS freed mappings, at most
 * EBB_LARGE_CACHE bytes (64 MiB by default) or half the live large bytes
 * if that is more (up to 512 MiB: config.h has the numbers): a program that frees and
 * allocates a same-sized buffer in a loop (the malloc-large pattern, where
 * mimalloc and jemalloc pay 6 to 7 times glibc's time refaulting pages)
 * reuses the mapping with no system call and no page fault; a bigger cached
 * mapping is split, and smaller ones are moved into a new block's mapping
 * by the kernel (mremap moves their page tables), so resident pages are
 * reused before new ones are faulted in.  The oldest entries are unmapped
 * first.  Growth by
 * realloc uses mremap, which moves page tables instead of copying bytes, and
 * leaves 25% headroom so that a buffer grown step by step is remapped
 * O(log n) times; a shrink happens only when it saves a quarter, and puts
 * the tail in the cache (resident pages a regrowth absorbs in place; given
 * back with mremap, they were a third of what bench/run.py realloc faulted
 * in again: 175K faults a run before, 30K after, mimalloc 10K).
 *
 * On 32-bit the cache is off by default (config.h has the numbers): while a
 * freed mapping waits in the cache, new blocks go into lower holes, and the
 * long-lived ones among them push the large-block region down into the gap
 * a big request needs.  For the same reason, on 32-bit a large block goes
 * to the lowest free place that fits, not where the kernel's top-down mmap
 * would put it: the space below a program's image fills first, and the gap
 * above its break stays whole (bench/rss scenario 8: the largest block
 * with 480 MiB of buffers live went from 1714-1794 MiB to 2047).  Whatever
 * the setting, a request the OS refuses is retried once after the cache is
 * unmapped, so ebb fails only when what it keeps for reuse could not have
 * served the request either.
 *
 * Cached mappings are unmapped once they have stayed unused for the purge
 * delay (ebb__large_purge), so the cache only ever holds memory a program
 * is cycling through; with a delay of 0 nothing is cached.  And whatever of
 * a new block the cache cannot fill makes the cache give back what it holds
 * beyond a small budget, as much as comes in (cache_yield): what waits for
 * the clock never adds to a peak of new memory.  The threshold
 * between pool and large blocks is fixed: it never ratchets up the way
 * glibc's mmap threshold does after a large free.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

typedef struct {
    uintptr_t addr; /* 0 = empty */
    size_t size;    /* bytes mapped, a multiple of the page size */
    union {
        uint32_t stamp;  /* cache entries: ms when freed */
        uint32_t usable; /* live entries: usable bytes if not all of `size` */
    };
    uint32_t tag;   /* live entries: the block's sample record (sample.c), 0 if not sampled */
} ebb__large_entry_t;

#define INITIAL_CAPACITY 256
#define RECENTLY_FREED 64

static struct {
    ebb__lock_t lock;
    ebb__large_entry_t *table;
    size_t cap, count;
    size_t table_bytes; /* mapped for a grown table (0 while initial) */
    size_t live_bytes;
    ebb__large_entry_t initial[INITIAL_CAPACITY];
    ebb__large_entry_t cache[EBB_LARGE_CACHE_SLOTS]; /* oldest first */
    unsigned ncache;
    size_t cache_bytes;
    ebb__demand_t demand; /* pages of blocks handed out (the surplus rule) */
    /* Live sampled blocks standing in for a small block, by the class they
     * stand for (their `usable`), so class statistics count them. */
    size_t sampled_small[EBB_CLASSES];
    /* The starts of the last blocks freed, so that freeing one again is
     * named a double free, not a pointer ebb never made. */
    uintptr_t freed[RECENTLY_FREED];
    unsigned freed_next;
} large = { .lock = EBB_LOCK_INIT };

static void count_sampled_small(uint32_t usable, int delta)
{
    if (usable != 0)
        large.sampled_small[ebb__class_of(usable)] += (size_t)delta;
}

static size_t slot_of_addr(uintptr_t a, size_t cap)
{
    uint64_t h = (uint64_t)(a >> 12) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

static void table_ready(void)
{
    if (large.table == NULL) {
        large.table = large.initial;
        large.cap = INITIAL_CAPACITY;
    }
}

static void table_put(ebb__large_entry_t *t, size_t cap, ebb__large_entry_t e)
{
    size_t i = slot_of_addr(e.addr, cap);
    while (t[i].addr != 0)
        i = (i + 1) & (cap - 1);
    t[i] = e;
}

/* Move the entries to a table of ncap slots: the static one at the
 * initial capacity, else a new mapping; 0 if it cannot be mapped. */
static int table_resize(size_t ncap)
{
    size_t bytes = ncap > INITIAL_CAPACITY ? ncap * sizeof(ebb__large_entry_t) : 0;
    ebb__large_entry_t *t = large.initial, *old = large.table;
    if (bytes) {
        if ((t = ebb__os_map_meta(bytes)) == NULL)
            return 0;
        ebb__mapped_add(bytes);
    } else {
        ebb__assert(old != large.initial);
        memset(large.initial, 0, sizeof large.initial);
    }
    for (size_t i = 0; i < large.cap; i++)
        if (old[i].addr)
            table_put(t, ncap, old[i]);
    if (old != large.initial) {
        ebb__os_unmap(old, large.table_bytes);
        ebb__mapped_sub(large.table_bytes);
    }
    large.table = t;
    large.cap = ncap;
    large.table_bytes = bytes;
    return 1;
}

/* Room for one more entry; 0 if the table could not grow. */
static int table_reserve(void)
{
    table_ready();
    if ((large.count + 1) * 4 <= large.cap * 3)
        return 1;
    return table_resize(large.cap * 2);
}

/* A grown table that an eighth fills goes back to a quarter full (the
 * initial one at least): after a teardown that freed thousands of large or
 * sampled blocks, bench/rss scenario 3 in C kept a table of 4096 empty
 * entries, 96 KiB resident.  A table grows at three quarters, so a count
 * that swings between the two moves it at most once a purge pass. */
static void table_shrink(void)
{
    if (large.table == NULL || large.table == large.initial || large.count * 8 > large.cap)
        return;
    size_t ncap = INITIAL_CAPACITY;
    while (ncap < large.count * 4)
        ncap *= 2;
    if (ncap < large.cap)
        table_resize(ncap); /* if the OS refuses, the big table stays */
}

static ebb__large_entry_t *table_find(uintptr_t a)
{
    if (large.table == NULL || a == 0)
        return NULL;
    size_t i = slot_of_addr(a, large.cap);
    while (large.table[i].addr != 0) {
        if (large.table[i].addr == a)
            return &large.table[i];
        i = (i + 1) & (large.cap - 1);
    }
    return NULL;
}

/* Remove by shifting later members of the probe run back into the hole. */
static void table_remove(ebb__large_entry_t *e)
{
    count_sampled_small(e->usable, -1);
    size_t hole = (size_t)(e - large.table), i = hole;
    for (;;) {
        i = (i + 1) & (large.cap - 1);
        if (large.table[i].addr == 0)
            break;
        size_t home = slot_of_addr(large.table[i].addr, large.cap);
        /* Move i into the hole unless its home lies cyclically in (hole, i]. */
        int stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            large.table[hole] = large.table[i];
            hole = i;
        }
    }
    large.table[hole] = (ebb__large_entry_t){ 0, 0, { 0 }, 0 };
    large.count--;
}

static void record_live(uintptr_t a, size_t size, uint32_t tag, uint32_t usable)
{
    table_put(large.table, large.cap, (ebb__large_entry_t){ a, size, { .usable = usable }, tag });
    count_sampled_small(usable, 1);
    large.count++;
    large.live_bytes += size;
    large.demand.taken += (uint32_t)(size >> EBB_PAGE_SHIFT);
}

static size_t page_round(size_t n)
{
    size_t page = ebb__os_page_size();
    if (n > SIZE_MAX - page)
        return 0;
    return (n + page - 1) & ~(page - 1);
}

static void cache_remove(unsigned i)
{
    large.cache_bytes -= large.cache[i].size;
    memmove(&large.cache[i], &large.cache[i + 1], (large.ncache - i - 1) * sizeof large.cache[0]);
    large.ncache--;
}

/* A cached mapping turned into `need` bytes: the best fit, split if it is
 * bigger, its tail staying cached.  The tail is never handed out with the
 * block: its pages are resident (the previous owner wrote them), and in a
 * live block nothing would give them back until the block is freed -- a
 * 9.4 MiB request that took an 18 MiB mapping whole kept 9 MiB resident
 * and unused (bench/rss scenario 5).  Cached, the tail is unmapped on the
 * purge clock, a realloc can still absorb it in place, and cache_put merges
 * it with the head again.  0 if no cached mapping is big enough: then the
 * block is mapped fresh and smaller ones are moved into it (cache_fill). */
static int cache_take(size_t need, ebb__large_entry_t *out)
{
    unsigned fit = large.ncache;
    for (unsigned i = 0; i < large.ncache; i++) {
        size_t s = large.cache[i].size;
        if (s >= need && (fit == large.ncache || s < large.cache[fit].size))
            fit = i;
    }
    if (fit == large.ncache)
        return 0;
    if (large.cache[fit].size == need) {
        *out = large.cache[fit];
        cache_remove(fit);
        return 1;
    }
    out->addr = large.cache[fit].addr;
    out->size = need;
    large.cache[fit].addr += need; /* the tail stays cached, with its stamp */
    large.cache[fit].size -= need;
    large.cache_bytes -= need;
    return 1;
}

/* The cached mapping cache_fill would move next into `room` bytes: the
 * largest that fits, at least EBB_LARGE_PIECE_MIN, not in `tried` (a bit
 * per slot); ncache if none. */
static unsigned piece_pick(size_t room, uint32_t tried)
{
    unsigned best = large.ncache;
    for (unsigned i = 0; i < large.ncache; i++) {
        size_t s = large.cache[i].size;
        if (s >= EBB_LARGE_PIECE_MIN && s <= room && !(tried >> i & 1) &&
            (best == large.ncache || s > large.cache[best].size))
            best = i;
    }
    return best;
}

/* What cache_fill would move into a fresh block of `need` bytes, as far as
 * the cache shows now (the memory limit's admission asks for the rest). */
static size_t cache_fill_estimate(size_t need)
{
    size_t filled = 0;
    uint32_t tried = 0;
    for (int k = 0; k < EBB_LARGE_PIECES; k++) {
        unsigned i = piece_pick(need - filled, tried);
        if (i == large.ncache)
            break;
        tried |= (uint32_t)1 << i;
        filled += large.cache[i].size;
    }
    return filled;
}

/* A fresh block [dst, dst + need) takes the pages of cached mappings that
 * fit in it, moved there by the OS (ebb__os_move: page tables move, nothing
 * is copied or faulted), largest first, from its start: pages a freed block
 * left resident serve the new one instead of waiting for the clock while
 * fresh ones are faulted in beside them.  That is issue 15's "no growth
 * while freed memory waits" for large blocks of changing sizes (bench/rss
 * scenario 5: a 48 MiB buffer mapped while the cache held 21 MiB in smaller
 * mappings), and it saves the faults too.  At most EBB_LARGE_PIECES
 * mappings of EBB_LARGE_PIECE_MIN or more: each stays a kernel mapping of
 * its own inside the block (config.h).  A mapping the OS will not move (one
 * that spans two kernel mappings, on kernels before 6.17) stays cached.
 * *filled: the bytes filled, from dst on; the pieces leave the books of
 * cached memory here.  0 if a refused move left a hole in the block that
 * could not be mapped again (the caller gives the block up).  Large lock
 * held. */
static int cache_fill(uintptr_t dst, size_t need, size_t *filled)
{
    uint32_t tried = 0;
    *filled = 0;
    for (int k = 0; k < EBB_LARGE_PIECES;) {
        unsigned i = piece_pick(need - *filled, tried);
        if (i == large.ncache)
            break;
        ebb__large_entry_t c = large.cache[i];
        int moved = ebb__os_move((void *)c.addr, c.size, (void *)(dst + *filled));
        if (moved < 0)
            return 0;
        if (moved == 0) {
            tried |= (uint32_t)1 << i;
            continue;
        }
        cache_remove(i);
        /* the slots above i moved down a place, and their marks with them:
         * a mapping the OS refused is not tried again */
        tried = (tried & (((uint32_t)1 << i) - 1)) | (tried >> (i + 1) << i);
        ebb__mapped_sub(c.size);
        *filled += c.size;
        k++;
    }
    return 1;
}

/* What freed memory may wait while new memory comes in: EBB_WAITING_BUDGET
 * or a share of committed, whichever is more (config.h). */
static size_t waiting_budget(void)
{
    size_t share = ebb__committed_now() / EBB_WAITING_BUDGET_SHARE;
    size_t budget = share > EBB_WAITING_BUDGET ? share : EBB_WAITING_BUDGET;
    return budget & ~(ebb__os_page_size() - 1);
}

/* `fresh` bytes of a new large block are new memory, the part that no
 * cached mapping could fill: cached mappings beyond the waiting budget go
 * back, oldest first, as much as comes in, so freed memory waiting for the
 * clock does not add to a peak (issue 15); the block is still untouched, so
 * RSS never holds both.  An entry is cut from its end when only part must
 * go.  Large lock held; the ranges to unmap (counted off mapped here) go to
 * out[*n], for the caller to unmap once it has let go of the lock.  A live
 * block grown by realloc yields nothing: yielding there too cost
 * bench/run.py largeblk 18% more faults and 12-18% more time for 3% less
 * peak. */
static void cache_yield(size_t fresh, ebb__large_entry_t *out, unsigned *n)
{
    if (fresh == 0 || large.ncache == 0)
        return;
    size_t budget = waiting_budget();
    while (fresh > 0 && large.ncache > 0 && large.cache_bytes > budget) {
        ebb__large_entry_t *c = &large.cache[0];
        size_t k = large.cache_bytes - budget;
        k = k < fresh ? k : fresh;
        k = k < c->size ? k : c->size;
        if (k == c->size) {
            out[(*n)++] = *c;
            cache_remove(0);
        } else {
            c->size -= k;
            large.cache_bytes -= k;
            out[(*n)++] = (ebb__large_entry_t){ c->addr + c->size, k, { 0 }, 0 };
        }
        ebb__mapped_sub(k);
        fresh -= k;
    }
}

/* Unmap ranges a caller took out of the books under the lock, once it has
 * let go of it. */
static void unmap_all(const ebb__large_entry_t *v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ebb__os_unmap((void *)v[i].addr, v[i].size);
}

/* Out of address space or memory: unmap every cached mapping, so that a
 * request fails only when what ebb holds for reuse could not serve it either
 * (on 32-bit, a cached mapping may sit just where a big block would fit).
 * 1 if anything was given back.  Large-block lock not held. */
static int cache_give_back(void)
{
    ebb__lock(&large.lock);
    unsigned n = large.ncache;
    ebb__unlock(&large.lock);
    if (n == 0)
        return 0;
    int surplus = 0;
    ebb__large_purge(ebb__os_now_ms(), 0, &surplus);
    return 1;
}

/* A fresh mapping.  On 32-bit a sampled block that stands for a small one
 * (usable != 0) is mapped from the bottom of the address space up, as
 * arenas are when the gap is full: it lives as long as the small object it
 * is, and the kernel would put it in the highest hole that fits, which may
 * be one a freed large block left in the middle of the gap: a surviving
 * sample there cut the largest block left from 2047 to 1361 MiB
 * (tests/api/test_gap.c).  Every other large block goes to the lowest free
 * place that fits (EBB_LARGE_FROM_BOTTOM, config.h has the numbers), never
 * at the bottom-up cursor: a block comes and goes, and a cursor past a
 * freed one would put the next metadata page in the middle of the gap. */
static void *map_block(size_t need, size_t align, uint32_t usable)
{
    size_t page_align = align < ebb__os_page_size() ? ebb__os_page_size() : align;
    if (EBB_ARENA_FROM_BOTTOM && usable != 0) {
        void *p = ebb__os_map_bottom(need, page_align);
        if (p != NULL)
            return p;
    }
    if (EBB_LARGE_FROM_BOTTOM) {
        int refused;
        void *p = ebb__os_map_lowest(need, page_align, &refused);
        if (p != NULL || refused)
            return p; /* out of memory: the kernel's place would be refused too */
    }
    return ebb__os_map_aligned(need, align);
}

/* tag: the block's sample record (sample.c), 0 for an unsampled block;
 * usable: what ebb_usable_size answers if not the whole mapping (a sampled
 * small block answers as the pool block it stands in for would). */
void *ebb__large_alloc(size_t size, size_t align, int zero, uint32_t tag, uint32_t usable)
{
    size_t need = page_round(size ? size : 1);
    if (need == 0 || need > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    ebb__large_entry_t e, yielded[EBB_LARGE_CACHE_SLOTS + 1];
    unsigned nyielded = 0;
    ebb__lock(&large.lock);
    if (!table_reserve()) {
        ebb__unlock(&large.lock);
        errno = ENOMEM;
        return NULL;
    }
    if (align <= ebb__os_page_size() && cache_take(need, &e)) {
        record_live(e.addr, e.size, tag, usable);
        ebb__unlock(&large.lock);
        if (zero)
            memset((void *)e.addr, 0, e.size);
        return (void *)e.addr;
    }
    size_t expected = cache_fill_estimate(need);
    ebb__unlock(&large.lock);

    if (!ebb__budget_admits(need - expected)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = map_block(need, align, usable);
    if (p == NULL && cache_give_back())
        p = map_block(need, align, usable);
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    ebb__lock(&large.lock);
    if (!table_reserve()) {
        ebb__unlock(&large.lock);
        ebb__os_unmap(p, need);
        errno = ENOMEM;
        return NULL;
    }
    /* Counted when recorded, under the lock, so a fork never sees one
     * without the other.  What the cache could not fill is fresh, and as
     * much of what still waits there beyond the budget goes back. */
    ebb__mapped_add(need);
    size_t reused;
    if (!cache_fill((uintptr_t)p, need, &reused)) {
        ebb__mapped_sub(need);
        ebb__unlock(&large.lock);
        ebb__os_unmap(p, need);
        errno = ENOMEM;
        return NULL;
    }
    cache_yield(need - reused, yielded, &nyielded);
    record_live((uintptr_t)p, need, tag, usable);
    ebb__unlock(&large.lock);
    unmap_all(yielded, nyielded);
    if (zero && reused)
        memset(p, 0, reused); /* the rest is fresh, so zero */
    return p;
}

/* What the cache may hold: EBB_LARGE_CACHE, or half the live large bytes
 * if more (up to EBB_LARGE_CACHE_GROWN_MAX); nothing when the option is 0
 * (32-bit's default) or freed memory goes back at once. */
static size_t cache_limit(void)
{
    size_t floor = ebb__opt.large_cache;
    if (ebb__purge_when() == EBB_PURGE_NOW || floor == 0)
        return 0;
    size_t grown = large.live_bytes / 2;
    if (grown > EBB_LARGE_CACHE_GROWN_MAX)
        grown = EBB_LARGE_CACHE_GROWN_MAX;
    return grown > floor ? grown : floor;
}

/* The cache can take `size` more bytes without evicting anything. */
static int cache_has_room(size_t size, size_t limit)
{
    return large.ncache < EBB_LARGE_CACHE_SLOTS && large.cache_bytes + size <= limit;
}

/* Keep a freed mapping if the cache allows, merged with cached neighbours
 * (a split tail meets its head again); returns what to unmap. */
static ebb__large_entry_t cache_put(uintptr_t a, size_t size, ebb__large_entry_t *evicted,
                                    unsigned *nevicted)
{
    ebb__large_entry_t rest = { 0, 0, { 0 }, 0 };
    size_t limit = cache_limit();
    for (unsigned i = 0; i < large.ncache;) {
        ebb__large_entry_t c = large.cache[i];
        /* Merged entries stay within the limit, or the next eviction would
         * unmap the whole run at once. */
        if ((c.addr + c.size == a || a + size == c.addr) && size + c.size <= limit / 2) {
            a = c.addr < a ? c.addr : a;
            size += c.size;
            cache_remove(i);
            i = 0; /* the merged range may now touch another entry */
            continue;
        }
        i++;
    }
    if (size > limit) {
        rest.addr = a;
        rest.size = size;
        return rest;
    }
    while (large.ncache > 0 && !cache_has_room(size, limit)) {
        evicted[(*nevicted)++] = large.cache[0];
        cache_remove(0);
    }
    large.cache[large.ncache].addr = a;
    large.cache[large.ncache].size = size;
    large.cache[large.ncache].stamp = ebb__os_now_ms();
    large.ncache++;
    large.cache_bytes += size;
    return rest;
}

/* Free large block p; *tag gets its sample record (0 if none), which the
 * caller gives back once it holds no lock.  0 if p is not ours. */
int ebb__large_free(void *p, uint32_t *tag)
{
    ebb__large_entry_t evicted[EBB_LARGE_CACHE_SLOTS + 1];
    unsigned nevicted = 0;
    ebb__lock(&large.lock);
    ebb__large_entry_t *e = table_find((uintptr_t)p);
    if (e == NULL) {
        ebb__unlock(&large.lock);
        return 0;
    }
    uintptr_t a = e->addr;
    size_t size = e->size;
    *tag = e->tag;
    large.live_bytes -= size;
    table_remove(e);
    large.freed[large.freed_next++ % RECENTLY_FREED] = a;
    ebb__large_entry_t rest = cache_put(a, size, evicted, &nevicted);
    if (rest.addr)
        evicted[nevicted++] = rest;
    for (unsigned i = 0; i < nevicted; i++)
        ebb__mapped_sub(evicted[i].size);
    if (rest.addr == 0 && ebb__purge_when() == EBB_PURGE_LATER)
        ebb__purge_announce(); /* cached: unmapped once unused for the delay */
    ebb__unlock(&large.lock);
    unmap_all(evicted, nevicted);
    return 1;
}

/* a lies inside a live large block (large.lock held): a walk of the
 * table, on the error path only. */
static int inside_live(uintptr_t a)
{
    for (size_t i = 0; large.table && i < large.cap; i++)
        if (large.table[i].addr != 0 && a - large.table[i].addr < large.table[i].size)
            return 1;
    return 0;
}

/* p, not a live block, was one: it is among the last blocks freed, or
 * inside a freed mapping the cache keeps. */
int ebb__large_was_freed(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int freed = 0;
    ebb__lock(&large.lock);
    if (table_find(a) == NULL) {
        for (unsigned i = 0; i < RECENTLY_FREED && !freed; i++)
            freed = a != 0 && large.freed[i] == a;
        for (unsigned i = 0; i < large.ncache && !freed; i++)
            freed = a - large.cache[i].addr < large.cache[i].size;
        /* A block freed here once, whose pages a later block now covers:
         * p is inside that one, not a block freed again (seen when a new
         * mapping took the old one's place a page lower). */
        if (freed && inside_live(a))
            freed = 0;
    }
    ebb__unlock(&large.lock);
    return freed;
}

/* Give live large block p the sample record `tag`; 0 if p is not ours. */
int ebb__large_set_tag(void *p, uint32_t tag)
{
    ebb__lock(&large.lock);
    ebb__large_entry_t *e = table_find((uintptr_t)p);
    if (e)
        e->tag = tag;
    ebb__unlock(&large.lock);
    return e != NULL;
}

size_t ebb__large_usable(const void *p)
{
    ebb__lock(&large.lock);
    ebb__large_entry_t *e = table_find((uintptr_t)p);
    size_t size = e ? (e->usable ? e->usable : e->size) : 0;
    ebb__unlock(&large.lock);
    return size;
}

/* The cache holds a mapping that could take `need` bytes whole. */
static int resident_fit_exists(size_t need)
{
    for (unsigned i = 0; i < large.ncache; i++)
        if (large.cache[i].size >= need)
            return 1;
    return 0;
}

/* Live block e now spans `size` bytes from the same address; a sampled
 * small block it stood in for is one no longer. */
static void live_resize(ebb__large_entry_t *e, size_t size)
{
    large.live_bytes = large.live_bytes - e->size + size;
    e->size = size;
    count_sampled_small(e->usable, -1);
    e->usable = 0;
}

/* Grow live block e in place to `need` bytes out of a cached mapping that
 * starts where it ends; 1 if done.  All or nothing, so a realloc that fails
 * later leaves the block exactly as it was. */
static int absorb_cached_tail(ebb__large_entry_t *e, size_t need)
{
    size_t want = need - e->size;
    for (unsigned i = 0; i < large.ncache; i++) {
        ebb__large_entry_t *c = &large.cache[i];
        if (c->addr != e->addr + e->size || c->size < want)
            continue;
        if (c->size > want) {
            c->addr += want;
            c->size -= want;
            large.cache_bytes -= want;
        } else {
            cache_remove(i);
        }
        live_resize(e, need);
        return 1;
    }
    return 0;
}

/* Shrink live block e to `need` bytes by handing its tail to the cache: the
 * tail's pages are resident (the block wrote them), and the truncated
 * buffers of a string or vector builder grow again (bench/run.py realloc:
 * shrunk tails given back with mremap were 247 MiB of the 754 MiB its
 * growth faulted back in).  Cached, the tail goes back on the purge clock,
 * and a regrowth absorbs it in place.  1 if done: the cache takes the tail
 * whole, evicting nothing (an eviction would unmap under the lock). */
static int shrink_into_cache(ebb__large_entry_t *e, size_t need)
{
    size_t tail = e->size - need;
    if (!cache_has_room(tail, cache_limit()))
        return 0;
    ebb__large_entry_t evicted[EBB_LARGE_CACHE_SLOTS + 1];
    unsigned nevicted = 0;
    ebb__large_entry_t rest = cache_put(e->addr + need, tail, evicted, &nevicted);
    ebb__assert(rest.addr == 0 && nevicted == 0);
    (void)rest;
    live_resize(e, need);
    return 1;
}

/* Grow live block [p, p + old) to `need` bytes where mremap cannot resize
 * it (it spans two kernel mappings: it absorbed a cached tail, or was filled
 * from the cache): a fresh mapping takes the block's pages by a move, which
 * kernels from 6.17 make for several mappings at once, so nothing is copied,
 * and the growth up to `want` (the request, not the headroom) is filled from
 * the cache first.  bench/run.py bigblocks (73% of its reallocs met such a
 * block): 1.54 s and 243K faults copying them, 1.14 s moving them; without
 * the fill, run.py realloc faulted 63K pages instead of 10K.  NULL if the OS
 * will not, the block as it was: the caller copies it.  Large lock held. */
static void *grow_by_move(void *p, size_t old, size_t need, size_t want)
{
    void *q = map_block(need, 0, 0);
    if (q == NULL)
        return NULL;
    size_t filled = 0;
    if ((want <= old || cache_fill((uintptr_t)q + old, want - old, &filled)) &&
        ebb__os_move(p, old, q) == 1)
        return q;
    ebb__os_unmap(q, need); /* with what the fill moved in: free memory */
    return NULL;
}

void *ebb__large_realloc(void *p, size_t size, int *not_ours, int *resized, uint32_t *tag)
{
    size_t need = page_round(size);
    *not_ours = 0;
    *resized = 0;
    *tag = 0;
    if (need == 0 || need > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    ebb__lock(&large.lock);
    ebb__large_entry_t *e = table_find((uintptr_t)p);
    if (e == NULL) {
        ebb__unlock(&large.lock);
        *not_ours = 1;
        return NULL;
    }
    size_t old = e->size;
    if (need <= old && need > old - old / 4) {
        ebb__unlock(&large.lock); /* shrinking would save less than a quarter */
        return p;
    }
    /* Growing into an adjacent cached tail takes just what was asked for:
     * those pages are resident, so headroom there would be memory held and
     * never used (3.8 MiB behind a 13 MiB buffer in bench/rss scenario 5),
     * and the next step can absorb again without a system call.  A shrink
     * leaves its tail resident in the cache for the same reason. */
    if ((need > old && absorb_cached_tail(e, need)) || (need < old && shrink_into_cache(e, need))) {
        *resized = 1; /* its sample, if any, is the caller's to settle */
        *tag = e->tag;
        e->tag = 0;
        ebb__unlock(&large.lock); /* resized in place */
        return p;
    }
    if (need > old) {
        /* Growth by mremap leaves headroom (untouched, so it costs no
         * memory), so that a buffer grown a little at a time is remapped a
         * few times, not at every step. */
        size_t headroom = old / 4 < EBB_LARGE_REALLOC_HEADROOM ? old / 4 : EBB_LARGE_REALLOC_HEADROOM;
        size_t roomy = page_round(old + headroom);
        if (roomy > need && roomy <= (size_t)PTRDIFF_MAX)
            need = roomy;
    }
    if (need > old && resident_fit_exists(need)) {
        /* Copying into resident memory is cheaper than faulting the growth
         * in (a fault costs about 6 us a page here, a copy about 0.4 us):
         * the caller moves the block by allocate, copy, free. */
        ebb__unlock(&large.lock);
        return NULL;
    }
    if (need > old && !ebb__budget_admits(need - old)) {
        ebb__unlock(&large.lock);
        errno = ENOMEM;
        return NULL;
    }
    int no_memory;
    void *q = ebb__os_remap(p, old, need, need > old, &no_memory);
    if (q == NULL && no_memory && large.ncache > 0) {
        /* As in ebb__large_alloc: the cache goes before the request fails.
         * Its entries are unmapped under the lock (a rare path), so e stays
         * valid.  Not when mremap cannot resize a block that spans two
         * kernel mappings (one that absorbed a cached tail, or was filled
         * from the cache): the caller copies it, and the cache may serve. */
        while (large.ncache > 0) {
            ebb__mapped_sub(large.cache[0].size);
            ebb__os_unmap((void *)large.cache[0].addr, large.cache[0].size);
            cache_remove(0);
        }
        q = ebb__os_remap(p, old, need, need > old, &no_memory);
    }
    if (q == NULL && !no_memory && need > old)
        q = grow_by_move(p, old, need, page_round(size));
    if (q == NULL) {
        ebb__unlock(&large.lock);
        errno = ENOMEM;
        return NULL;
    }
    /* The entry count does not change, so the table needs no room.  The
     * resized block's sample, if any, is the caller's to settle. */
    *resized = 1;
    *tag = e->tag;
    table_remove(e);
    record_live((uintptr_t)q, need, 0, 0);
    large.live_bytes -= old;
    if (need > old)
        ebb__mapped_add(need - old);
    else
        ebb__mapped_sub(old - need);
    ebb__unlock(&large.lock);
    return q;
}

/* How long a cached entry of `size` bytes must stay unused: the oldest
 * entries, up to the bytes the cache holds beyond the recent demand
 * (*excess, counted down here), the surplus time (core/demand.c); the
 * rest the delay.  Called for the entries oldest first. */
static long cache_entry_delay(long delay, long quiet, size_t *excess, size_t size)
{
    if (*excess == 0)
        return delay;
    *excess = size >= *excess ? 0 : *excess - size;
    return quiet;
}

/* Unmap cached mappings freed at least `delay` ms ago (surplus: quiet for
 * less, core/demand.c); returns the ms until the next falls due, or
 * UINT32_MAX.  *surplus is set if any was judged surplus. */
uint32_t ebb__large_purge(uint32_t now, long delay, int *surplus)
{
    ebb__large_entry_t victims[EBB_LARGE_CACHE_SLOTS];
    unsigned n = 0;
    uint32_t next = UINT32_MAX;
    ebb__lock(&large.lock);
    size_t demand = large.ncache && delay > 0
                        ? (size_t)ebb__demand_recent(&large.demand, now, (uint32_t)delay) << EBB_PAGE_SHIFT
                        : 0;
    int any = 0;
    long quiet = ebb__surplus_delay(delay, large.cache_bytes, demand, EBB_SURPLUS_MARGIN, &any);
    size_t excess = any ? large.cache_bytes - demand : 0;
    *surplus |= any;
    for (unsigned i = 0; i < large.ncache;) {
        long wait = cache_entry_delay(delay, quiet, &excess, large.cache[i].size);
        if (ebb__due(now, large.cache[i].stamp, wait)) {
            victims[n++] = large.cache[i];
            ebb__mapped_sub(large.cache[i].size);
            cache_remove(i);
            continue;
        }
        uint32_t left = ebb__ms_until(now, large.cache[i].stamp, (uint32_t)wait);
        if (left < next)
            next = left;
        i++;
    }
    table_shrink();
    ebb__unlock(&large.lock);
    unmap_all(victims, n);
    return next;
}

/* The large-block counters; the caller holds the large-block lock. */
void ebb__large_stats_locked(ebb_stats_t *s)
{
    s->mapped_large = large.live_bytes;
    s->large_used = large.live_bytes;
    s->mapped_large_cached = large.cache_bytes;
    s->large_blocks = large.count;
    s->mapped_meta += large.table_bytes;
}

void ebb__large_detail_locked(size_t *cached_blocks, size_t *sampled)
{
    size_t n = 0;
    for (unsigned c = 0; c < EBB_CLASSES; c++)
        n += large.sampled_small[c];
    *cached_blocks = large.ncache;
    *sampled = n;
}

void ebb__large_each_locked(ebb__range_fn fn, void *ctx)
{
    for (size_t i = 0; large.table && i < large.cap; i++)
        if (large.table[i].addr)
            fn(ctx, (const void *)large.table[i].addr, large.table[i].size, EBB_RANGE_LARGE);
    for (unsigned i = 0; i < large.ncache; i++)
        fn(ctx, (const void *)large.cache[i].addr, large.cache[i].size, EBB_RANGE_LARGE_CACHED);
    if (large.table_bytes)
        fn(ctx, large.table, large.table_bytes, EBB_RANGE_META);
}

/* Lock held by the caller (ebb_check takes every lock). */
int ebb__large_check(void)
{
    int faults = 0;
    size_t live = 0, n = 0, cached = 0;
    size_t page = ebb__os_page_size();
    for (size_t i = 0; large.table && i < large.cap; i++) {
        ebb__large_entry_t *e = &large.table[i];
        if (e->addr == 0)
            continue;
        n++;
        live += e->size;
        if (e->addr % page || e->size % page || e->size == 0) {
            ebb__diag("ebb_check: large block %p has bad geometry (size %zu)\n", (void *)e->addr, e->size);
            faults++;
        }
        if (table_find(e->addr) != e) {
            ebb__diag("ebb_check: large block %p is unreachable in its table\n", (void *)e->addr);
            faults++;
        }
        if (ebb__arena_of(e->addr)) {
            ebb__diag("ebb_check: large block %p lies inside an arena\n", (void *)e->addr);
            faults++;
        }
    }
    for (unsigned i = 0; i < large.ncache; i++)
        cached += large.cache[i].size;
    if (n != large.count || live != large.live_bytes || cached != large.cache_bytes) {
        ebb__diag("ebb_check: large-block totals disagree (%zu/%zu blocks, %zu/%zu bytes)\n",
                  n, large.count, live, large.live_bytes);
        faults++;
    }
    return faults;
}

EBB_HIDDEN const ebb__lockset_t ebb__large_locks = { .name = "large blocks",
                                                      .one = &large.lock };

/* Add the live sampled blocks that stand in for small blocks to used[],
 * by class (stats.c). */
void ebb__large_sampled_classes(size_t used[EBB_CLASSES])
{
    ebb__lock(&large.lock);
    for (unsigned c = 0; c < EBB_CLASSES; c++)
        used[c] += large.sampled_small[c];
    ebb__unlock(&large.lock);
}
