/*
 * arena.c -- 4 MiB size-aligned regions, cut into 64 KiB slots for pools.
 *
 * Owns: the list of arenas, the free-slot set of each, the ownership map
 * entries, and the decision to map or unmap an arena.
 *
 * Layout: slot 0 is the header (ebb__arena_t: slot classes, pool descriptors,
 * free bitmaps packed low), slots 1..63 hold pools.  Its first page holds
 * the fields and what every pool needs of its descriptor; the pages after
 * it are resident only while a pool is on a purge list or has bitmap words
 * on them ("Header pages" below), so an arena whose pools keep a few blocks
 * each (sparse, pool.c) keeps 1 of its 10.  Metadata never shares a page with
 * user blocks, so an overflow out of a block cannot reach it without first
 * crossing into another slot, and purging user pages never loses bookkeeping.
 *
 * Placement: arenas sit in 64 lists by their number of free slots, with a bit
 * mask of non-empty lists.  A new pool goes to the fullest arena that has room
 * (fewest free slots), as pymalloc does, so live data concentrates and the
 * emptiest arenas drain until they can be unmapped.  Finding the list is one
 * count-trailing-zeros; finding a run of `span` free slots in an arena is
 * `span` shifts and ands of its free mask.
 *
 * Where arenas live: at the lowest free arena-aligned addresses from
 * EBB_ARENA_BRK_GAP above the program break, tried with a mapping that never
 * replaces another (MAP_FIXED_NOREPLACE), lowest first, so arenas cluster at
 * the bottom of the big gap while the kernel's top-down mmap fills it with
 * large blocks from the top: small survivors never sit between large blocks.
 * When those places are taken (a full address space, a foreign mapping) or
 * the break is unknown, the kernel places the arena, except on 32-bit, where
 * it goes to the lowest free place of the whole space first
 * (EBB_ARENA_FROM_BOTTOM: the kernel would pick a hole between large
 * blocks).  On 32-bit, arenas also first fill the stretch between the
 * program's image and its break (EBB_ARENA_BELOW_BRK), room the brk heap
 * never uses.  Measured on bench/rss
 * scenario 8 (32-bit, 100 rounds of 1-64 MiB buffers among small objects):
 * the largest block left after the rounds went from 1468 MiB (the kernel
 * placing every arena) to 1788-1792 MiB (glibc 1813-1835).  Nothing is
 * reserved in advance: on 32-bit a reservation is address space no large
 * block can have.  docs/design-notes.md has what was tried and dropped.
 *
 * Purging: a pool that goes back to its arena leaves its pages dirty (a new
 * pool in the same slots reuses them without a page fault).  Once no pool
 * has gone back to the arena for the purge delay, the pass purges its free
 * slots' dirty pages (ebb__arena_purge).  Empty arenas beyond the spare are
 * unmapped at once; the spare is purged like any free slot, so it costs
 * address space, not memory.
 *
 * Invariants (checked by ebb_check): nfree == popcount(free_mask); slot 0 is
 * never free; a free or lent slot has class EBB_NO_CLASS; an arena is in list
 * nfree; at most EBB_SPARE_ARENAS arenas are entirely free at rest; no slot
 * is lent outside a purge pass.
 */
#include "internal.h"

#include <string.h>

EBB_HIDDEN ebb__arena_set_t ebb__arenas = { .lock = EBB_LOCK_INIT, .lend_lock = EBB_LOCK_INIT };

#define ALL_POOL_SLOTS (~(uint64_t)1) /* every slot but the header */
#define POOL_PAGES ((size_t)(EBB_SLOTS - 1) * EBB_SLOT_PAGES)

/* Dirty pages of the slots in `mask`. */
static size_t dirty_pages(const ebb__arena_t *a, uint64_t mask)
{
    size_t n = 0;
    for (; mask; mask &= mask - 1)
        n += (size_t)__builtin_popcount(a->dirty[__builtin_ctzll(mask)]);
    return n;
}

/* The free slots of a that have dirty pages. */
static uint64_t dirty_free_slots(const ebb__arena_t *a)
{
    uint64_t d = 0;
    for (uint64_t m = a->free_mask; m; m &= m - 1) {
        unsigned s = (unsigned)__builtin_ctzll(m);
        if (a->dirty[s])
            d |= (uint64_t)1 << s;
    }
    return d;
}

static void list_push(ebb__arena_t *a)
{
    unsigned n = a->nfree;
    a->prev = NULL;
    a->next = ebb__arenas.by_nfree[n];
    if (a->next)
        a->next->prev = a;
    ebb__arenas.by_nfree[n] = a;
    ebb__arenas.by_nfree_mask |= (uint64_t)1 << n;
}

static void list_remove(ebb__arena_t *a)
{
    unsigned n = a->nfree;
    if (a->prev)
        a->prev->next = a->next;
    else
        ebb__arenas.by_nfree[n] = a->next;
    if (a->next)
        a->next->prev = a->prev;
    if (ebb__arenas.by_nfree[n] == NULL)
        ebb__arenas.by_nfree_mask &= ~((uint64_t)1 << n);
    a->next = a->prev = NULL;
}

/* Bit i of the result: slots i .. i+span-1 are all free. */
static uint64_t runs_of(uint64_t free_mask, unsigned span)
{
    uint64_t m = free_mask;
    for (unsigned j = 1; j < span; j++)
        m &= free_mask >> j;
    return m;
}

/* Places for arenas, as ownership-map indices, lowest first: [low, low_end)
 * between the program's image and its break (32-bit only, see config.h),
 * then [base, EBB_MAP_ENTRIES) from the break plus its room.  A bound of 0
 * means unknown: the kernel places every arena.  Arena lock. */
static struct {
    uintptr_t low, low_end, base;
    int known;
} place;

static void arena_place_init(void)
{
    if (place.known)
        return;
    uintptr_t brk = ebb__os_program_break();
    uintptr_t lim = (EBB_MAP_ENTRIES - 1) << EBB_ARENA_SHIFT;
    place.base = brk == 0 || brk > lim - EBB_ARENA_BRK_GAP ? 0
                 : (brk + EBB_ARENA_BRK_GAP + EBB_ARENA_SIZE - 1) >> EBB_ARENA_SHIFT;
    if (EBB_ARENA_BELOW_BRK && place.base != 0) {
        uintptr_t end = ebb__os_image_end();
        if (end != 0 && end < brk) {
            place.low = (end + EBB_ARENA_SIZE - 1) >> EBB_ARENA_SHIFT;
            place.low_end = brk >> EBB_ARENA_SHIFT; /* whole arenas below the break */
        }
    }
    place.known = 1;
}

/* The lowest free place in [i, end), trying at most *tries more of them. */
static ebb__arena_t *arena_place_in(uintptr_t i, uintptr_t end, unsigned *tries)
{
    for (; i != 0 && i < end && *tries < EBB_ARENA_PLACE_TRIES; i++) {
        if (__atomic_load_n(&ebb__owner_map[i], __ATOMIC_RELAXED))
            continue; /* one of ours */
        ++*tries;
        ebb__arena_t *a = ebb__os_map_at((void *)(i << EBB_ARENA_SHIFT), EBB_ARENA_SIZE);
        if (a != NULL)
            return a;
    }
    return NULL;
}

/* A fresh arena at the lowest free place, else (on 32-bit) at the lowest
 * free place of the whole space, else wherever the kernel puts it (address
 * space is full there, or the break is unknown). */
static ebb__arena_t *arena_map(void)
{
    unsigned tries = 0;
    arena_place_init();
    ebb__arena_t *a = arena_place_in(place.low, place.low_end, &tries);
    if (a == NULL)
        a = arena_place_in(place.base, EBB_MAP_ENTRIES, &tries);
    if (a == NULL && EBB_ARENA_FROM_BOTTOM)
        a = ebb__os_map_bottom(EBB_ARENA_SIZE, EBB_ARENA_SIZE);
    return a != NULL ? a : ebb__os_map_aligned(EBB_ARENA_SIZE, EBB_ARENA_SIZE);
}

static ebb__arena_t *arena_create(void)
{
    ebb__arena_t *a = arena_map();
    if (a == NULL)
        return NULL;
    if (((uintptr_t)a >> EBB_ARENA_SHIFT) >= EBB_MAP_ENTRIES) {
        ebb__os_unmap(a, EBB_ARENA_SIZE); /* beyond what the map can record */
        return NULL;
    }
    /* Fresh mappings are zero; set only what is not. */
    a->magic = EBB_ARENA_MAGIC;
    a->free_mask = ALL_POOL_SLOTS;
    a->nfree = EBB_SLOTS - 1;
    memset(a->slot_class, EBB_NO_CLASS, sizeof a->slot_class);
    for (unsigned s = 0; s < EBB_SLOTS; s++)
        a->pool[s].heap = EBB_NO_HEAP;
    ebb__owner_set(a, 1);
    ebb__pages_cleaned(POOL_PAGES + EBB_SLOT_PAGES); /* untouched: mapped, not resident */
    ebb__arena_header_touch(a, a, offsetof(ebb__arena_t, bits)); /* ...but for the header */
    ebb__mapped_add(EBB_ARENA_SIZE);
    ebb__arenas.count++;
    ebb__arenas.spare++;
    list_push(a);
    return a;
}

static void arena_destroy(ebb__arena_t *a)
{
    ebb__assert(a->purging == 0);
    /* Its pages leave the books: the clean ones from the clean count. */
    atomic_fetch_sub_explicit(&ebb__ledger.clean_pages,
                              POOL_PAGES + EBB_SLOT_PAGES - dirty_pages(a, ~(uint64_t)0),
                              memory_order_relaxed);
    list_remove(a);
    ebb__owner_set(a, 0);
    a->magic = 0;
    ebb__arenas.count--;
    ebb__mapped_sub(EBB_ARENA_SIZE);
    ebb__os_unmap(a, EBB_ARENA_SIZE);
}

/* The fullest arena with a run of `span` free slots; sets *first. */
static ebb__arena_t *find_room(unsigned span, unsigned *first)
{
    uint64_t lists = ebb__arenas.by_nfree_mask & ~(((uint64_t)1 << span) - 1);
    while (lists) {
        unsigned n = (unsigned)__builtin_ctzll(lists);
        lists &= lists - 1;
        for (ebb__arena_t *a = ebb__arenas.by_nfree[n]; a; a = a->next) {
            uint64_t runs = runs_of(a->free_mask, span);
            if (runs) {
                *first = (unsigned)__builtin_ctzll(runs);
                return a;
            }
        }
    }
    return NULL;
}

ebb__pool_t *ebb__arena_take_pool(unsigned span, unsigned cls)
{
    ebb__lock(&ebb__arenas.lock);
    unsigned first = 0;
    ebb__arena_t *a = find_room(span, &first);
    if (a == NULL) {
        a = arena_create();
        if (a == NULL) {
            ebb__unlock(&ebb__arenas.lock);
            return NULL;
        }
        first = 1;
    }
    if (a->nfree == EBB_SLOTS - 1)
        ebb__arenas.spare--;
    ebb__arenas.demand.taken += span;
    list_remove(a);
    uint64_t run = (((uint64_t)1 << span) - 1) << first;
    ebb__assert((a->free_mask & run) == run);
    a->free_mask &= ~run;
    a->nfree -= span;
    list_push(a);
    for (unsigned s = first; s < first + span; s++) {
        a->slot_head[s] = (uint8_t)first;
        __atomic_store_n(&a->slot_back[s], (uint32_t)(s - first) << EBB_SLOT_SHIFT, __ATOMIC_RELAXED);
        __atomic_store_n(&a->slot_class[s], (uint8_t)cls, __ATOMIC_RELAXED);
    }
    ebb__pool_t *p = &a->pool[first];
    p->head_slot = (uint8_t)first;
    p->span = (uint8_t)span;
    ebb__pool_bits_reserve(p, cls);
    ebb__arenas.pools++;
    ebb__arenas.pool_slots += span;
    ebb__unlock(&ebb__arenas.lock);
    return p;
}

/* Arena a has no pool left: keep it as a spare or give it back. */
static void arena_now_empty(ebb__arena_t *a)
{
    if (ebb__arenas.spare >= EBB_SPARE_ARENAS)
        arena_destroy(a);
    else
        ebb__arenas.spare++;
}

/* The slots in `mask` were purged: their pages are clean. */
static void slots_mark_clean(ebb__arena_t *a, uint64_t mask)
{
    ebb__pages_cleaned(dirty_pages(a, mask));
    for (uint64_t m = mask; m; m &= m - 1)
        a->dirty[__builtin_ctzll(m)] = 0;
}

/* Purge the units of arena a in `mask` (unit i: bytes from i << shift), a
 * range per run of adjacent ones: into `batch` if there is one, else a call
 * each. */
static void purge_runs(ebb__arena_t *a, uint64_t mask, unsigned shift, ebb__purge_batch_t *batch)
{
    while (mask) {
        unsigned s = (unsigned)__builtin_ctzll(mask);
        unsigned e = s;
        while (e < 64 && ((mask >> e) & 1))
            e++;
        ebb__purge_batch_add(batch, (uint8_t *)a + ((uintptr_t)s << shift),
                             (size_t)(e - s) << shift);
        mask &= e >= 64 ? 0 : ~(uint64_t)0 << e;
    }
}

/* Purge the slots in `mask`: into `batch` if there is one (flushed before
 * the slots are given back), else a call each. */
static void purge_slots(ebb__arena_t *a, uint64_t mask, ebb__purge_batch_t *batch)
{
    purge_runs(a, mask, EBB_SLOT_SHIFT, batch);
}

void ebb__arena_release_pool(ebb__pool_t *p)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    unsigned first = p->head_slot, span = p->span;
    uint64_t run = (((uint64_t)1 << span) - 1) << first;
    ebb__purge_when_t when = ebb__purge_when();
    ebb__lock(&ebb__arenas.lock);
    if (dirty_pages(a, run) != 0) {
        if (when == EBB_PURGE_NOW) {
            purge_slots(a, run, NULL);
            slots_mark_clean(a, run);
        } else if (when == EBB_PURGE_LATER) {
            a->freed_stamp = ebb__os_now_ms();
            ebb__purge_announce();
        }
    }
    for (unsigned s = first; s < first + span; s++)
        __atomic_store_n(&a->slot_class[s], (uint8_t)EBB_NO_CLASS, __ATOMIC_RELAXED);
    ebb__pool_bits_release(p);
    ebb__pool_set_heap(p, NULL);
    p->bucket = EBB_BUCKET_NONE;
    list_remove(a);
    a->free_mask |= run;
    a->nfree += span;
    ebb__arenas.pools--;
    ebb__arenas.pool_slots -= span;
    list_push(a);
    if (a->nfree == EBB_SLOTS - 1)
        arena_now_empty(a);
    ebb__unlock(&ebb__arenas.lock);
}

/* Give back empty arenas: all of them if force, else all but the spares. */
void ebb__arena_collect(int force)
{
    ebb__lock(&ebb__arenas.lock);
    ebb__arena_t *a = ebb__arenas.by_nfree[EBB_SLOTS - 1];
    size_t keep = force ? 0 : EBB_SPARE_ARENAS;
    while (a && ebb__arenas.spare > keep) {
        ebb__arena_t *next = a->next;
        ebb__arenas.spare--;
        arena_destroy(a);
        a = next;
    }
    ebb__unlock(&ebb__arenas.lock);
}

/* ------------------------------------------------------------- purging */

/* Free slots are purged outside the arena lock, so a pass never stalls
 * threads that need a pool: the slots are first lent to the pass (out of
 * the free mask, so nobody takes them), purged, then given back clean. */
typedef struct {
    ebb__arena_t *arena;
    uint64_t slots;
} lent_t;

#define LEND_BATCH 64

static void slots_lend(ebb__arena_t *a, uint64_t mask)
{
    if (a->nfree == EBB_SLOTS - 1)
        ebb__arenas.spare--; /* not empty while lent */
    list_remove(a);
    a->free_mask &= ~mask;
    a->nfree -= (unsigned)__builtin_popcountll(mask);
    a->purging |= mask;
    list_push(a);
}

static void slots_return(ebb__arena_t *a, uint64_t mask)
{
    slots_mark_clean(a, mask);
    list_remove(a);
    a->purging &= ~mask;
    a->free_mask |= mask;
    a->nfree += (unsigned)__builtin_popcountll(mask);
    list_push(a);
    if (a->nfree == EBB_SLOTS - 1)
        arena_now_empty(a);
}

/* What one pass may purge: slots quiet for the delay, and while surplus
 * (core/demand.c) remains, slots quiet for less. */
typedef struct {
    uint32_t now;
    long delay;
    long quiet;    /* the delay, or the surplus time */
    size_t excess; /* dirty pages of free slots beyond the demand, not yet lent */
} lend_rule_t;

/* The pass's rule: is there surplus, and how much.  Arena lock held. */
static lend_rule_t lend_rule(uint32_t now, long delay, int *surplus)
{
    lend_rule_t r = { now, delay, delay, 0 };
    if (delay <= 0)
        return r;
    size_t dirty = ebb__arena_free_committed_locked() * EBB_PAGE;
    size_t demand = (size_t)ebb__demand_recent(&ebb__arenas.demand, now, (uint32_t)delay) *
                    EBB_SLOT_SIZE;
    int any = 0;
    r.quiet = ebb__surplus_delay(delay, dirty, demand, EBB_SURPLUS_MARGIN, &any);
    r.excess = any ? (dirty - demand) / EBB_PAGE : 0;
    *surplus |= any;
    return r;
}

/* Lend arena a's dirty free slots if the rule says they are due, else
 * note when they will be in *next; returns the slots lent. */
static uint64_t lend_if_due(ebb__arena_t *a, lend_rule_t *r, uint32_t *next)
{
    uint64_t d = dirty_free_slots(a);
    if (d == 0)
        return 0;
    long wait = r->excess ? r->quiet : r->delay;
    if (wait > 0 && !ebb__due(r->now, a->freed_stamp, wait)) {
        uint32_t left = ebb__ms_until(r->now, a->freed_stamp, (uint32_t)wait);
        if (left < *next)
            *next = left;
        return 0;
    }
    size_t n = dirty_pages(a, d);
    r->excess = n >= r->excess ? 0 : r->excess - n;
    slots_lend(a, d);
    return d;
}

/* Lend up to LEND_BATCH arenas' due dirty free slots; *next gets the ms until
 * the earliest one not yet due.  Surplus goes from the emptiest arenas
 * first: new pools go to the fullest (find_room), so the slots they would
 * reuse are the ones kept.  Arena lock held. */
static unsigned lend_due(lent_t *out, lend_rule_t *r, uint32_t *next)
{
    unsigned n = 0;
    int emptiest_first = r->excess != 0;
    for (unsigned i = 1; i < EBB_SLOTS && n < LEND_BATCH; i++) {
        unsigned k = emptiest_first ? EBB_SLOTS - i : i;
        ebb__arena_t *a = ebb__arenas.by_nfree[k];
        while (a && n < LEND_BATCH) {
            ebb__arena_t *following = a->next; /* lending moves a to another list */
            uint64_t lent = lend_if_due(a, r, next);
            if (lent) {
                out[n].arena = a;
                out[n].slots = lent;
                n++;
            }
            a = following;
        }
    }
    return n;
}

/*
 * Header pages.  The header's first page holds the arena's fields and the
 * hot part of its 64 pool descriptors (types.h), all a pool with a few
 * blocks out needs.  The pages after it hold the cold part of the
 * descriptors (the purge-list links and clocks), which words of the
 * bitmaps are in use, and the bitmaps.  After a
 * teardown that leaves survivors scattered, most arenas have only sparse
 * pools (pool.c) and none on a purge list, and then every page but the
 * first is purged like a free slot's: bench/rss scenario 2 in C kept 290
 * arenas at 2 pages each, 2.3 MiB of its 2.7 MiB over the floor, and keeps
 * 1 MiB less now (RSS / floor 1.053 -> 1.034).
 *
 * A bitmap page goes once no pool has a word on it.  The cold part goes
 * once no pool of the arena has a bitmap (words are reserved and given back
 * under the arena lock, which the purge holds throughout) and none is
 * listed.  A pool joins a purge list under its bin lock, not the arena's,
 * so cold_users counts the listed pools atomically: the purge claims the
 * cold part only from a count of 0 (EBB_COLD_BUSY), and marks it gone when
 * the pages are; a pool that joins meanwhile, or later, sees the mark and
 * takes the arena lock (waiting out a purge in flight) to count the pages
 * resident again before it writes (ebb__arena_cold_restore).  The last pool
 * to leave a list sets EBB_COLD_RECHECK, so the next pass looks at the
 * arena again.  That is rare (an arena's pages go once after a teardown,
 * not again until its pools need them) and one vector call serves up to
 * LEND_BATCH arenas.
 */

_Static_assert((offsetof(ebb__arena_t, cold) >> EBB_PAGE_SHIFT) == 0 &&
                   ((offsetof(ebb__arena_t, bits) - 1) >> EBB_PAGE_SHIFT) >= 1,
               "the hot part is the first page, and it is followed by cold pages");

void ebb__arena_header_touch(ebb__arena_t *a, const void *at, size_t len)
{
    size_t lo = (size_t)((const uint8_t *)at - (const uint8_t *)a) >> EBB_PAGE_SHIFT;
    size_t hi = ((size_t)((const uint8_t *)at - (const uint8_t *)a) + len - 1) >> EBB_PAGE_SHIFT;
    uint16_t m = (uint16_t)ebb__bit_run((unsigned)(hi - lo + 1), (unsigned)lo);
    size_t fresh = (size_t)__builtin_popcount((unsigned)(m & ~a->dirty[0]));
    a->dirty[0] |= m;
    if (fresh == 0)
        return;
    ebb__pages_dirtied(fresh);
    if ((a->dirty[0] & EBB_COLD_PAGES) == EBB_COLD_PAGES)
        atomic_fetch_and_explicit(&a->cold_users, ~EBB_COLD_GONE, memory_order_relaxed);
}

void ebb__arena_cold_restore(ebb__arena_t *a)
{
    ebb__lock(&ebb__arenas.lock); /* a purge of the cold part holds it */
    if (atomic_load_explicit(&a->cold_users, memory_order_relaxed) & EBB_COLD_GONE)
        ebb__arena_header_touch(a, a->cold,
                                offsetof(ebb__arena_t, bits) - offsetof(ebb__arena_t, cold));
    ebb__assert(!(atomic_load_explicit(&a->cold_users, memory_order_relaxed) &
                  (EBB_COLD_GONE | EBB_COLD_BUSY)));
    ebb__unlock(&ebb__arenas.lock);
}

/* Does any pool hold a bitmap word in [w, end)?  A chunk's mask at a time. */
static int words_in_use(const ebb__arena_t *a, size_t w, size_t end)
{
    while (w < end) {
        size_t c = w / 64, lo = w % 64, hi = end - c * 64 < 64 ? end - c * 64 : 64;
        if (a->bits_used[c] & ebb__bit_run((unsigned)(hi - lo), (unsigned)lo))
            return 1;
        w = c * 64 + hi;
    }
    return 0;
}

/* Claim a's cold part for a purge: its pages are resident and no pool has
 * a bitmap or is listed.  Arena lock held. */
static int cold_claim(ebb__arena_t *a)
{
    if (!(a->dirty[0] & EBB_COLD_PAGES) || words_in_use(a, 0, EBB_SLOTS * EBB_BITMAP_WORDS))
        return 0;
    uint32_t was = atomic_load_explicit(&a->cold_users, memory_order_relaxed);
    return !(was & (EBB_COLD_USERS | EBB_COLD_BUSY)) &&
           atomic_compare_exchange_strong_explicit(&a->cold_users, &was,
                                                   (was & ~EBB_COLD_GONE) | EBB_COLD_BUSY,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

/* Pages of a's header past the first, resident and unused: no bitmap word
 * in use on them, and if they hold cold descriptors, the cold part claimed. */
static uint16_t header_pages_unused(const ebb__arena_t *a, int cold_claimed)
{
    const size_t at = offsetof(ebb__arena_t, bits), words = EBB_SLOTS * EBB_BITMAP_WORDS;
    /* With the cold part purged no word is in use, and reading bits_used
     * would map the zero page there (which mincore, and so ebb_rss, would
     * count resident). */
    int none_in_use = !(a->dirty[0] & EBB_COLD_PAGES);
    uint16_t m = 0;
    for (size_t pg = 1; (pg << EBB_PAGE_SHIFT) < at + words * 8; pg++) {
        if (!((a->dirty[0] >> pg) & 1) || (((EBB_COLD_PAGES >> pg) & 1) && !cold_claimed))
            continue;
        size_t from = pg << EBB_PAGE_SHIFT, to = from + EBB_PAGE;
        size_t w = from > at ? (from - at) / 8 : 0, end = to > at ? (to - at) / 8 : 0;
        if (none_in_use || !words_in_use(a, w, end < words ? end : words))
            m |= (uint16_t)(1u << pg);
    }
    return m;
}

_Static_assert(sizeof(ebb__arena_t) <= (size_t)EBB_SLOT_PAGES << EBB_PAGE_SHIFT,
               "a header page is a bit of dirty[0]");
_Static_assert(offsetof(ebb__arena_t, bits) % 8 == 0 && EBB_PAGE % 8 == 0,
               "no bitmap word straddles two header pages");

/* The last listed pool of a left its list: look at its header again, a
 * whole delay from now, or when words given back fall due, if sooner. */
static void cold_recheck(ebb__arena_t *a, uint32_t now)
{
    if (!(atomic_load_explicit(&a->cold_users, memory_order_relaxed) & EBB_COLD_RECHECK))
        return;
    atomic_fetch_and_explicit(&a->cold_users, ~EBB_COLD_RECHECK, memory_order_relaxed);
    if (!a->bits_freed) {
        a->bits_freed = 1;
        a->bits_freed_at = now;
    }
}

/* Purge the unused pages of the headers whose pools last gave words back
 * (or left a purge list) a whole delay ago, surplus or not: the calls hold
 * the arena lock, which a teardown's frees need whenever a pool empties, so
 * they wait until the arena is quiet; a header's pages are a small part of
 * what a teardown leaves (2 MiB of 1 GiB in bench/rss scenario 2), and the
 * steady state is what they are for.  bench/run.py buildfree, 15
 * interleaved repetitions against the library before sparse pools: 1.947 s
 * against 1.925 (spread 9%).  Arena lock held. */
static void purge_headers_due(const lend_rule_t *r, uint32_t *next)
{
    ebb__purge_batch_t batch;
    ebb__arena_t *claimed[EBB_PURGE_RANGES];
    unsigned nclaimed = 0;
    batch.n = 0;
    size_t cleaned = 0;
    long wait = r->delay;
    for (unsigned k = 0; k < EBB_SLOTS; k++) {
        for (ebb__arena_t *a = ebb__arenas.by_nfree[k]; a; a = a->next) {
            cold_recheck(a, r->now);
            if (!a->bits_freed)
                continue;
            if (wait > 0 && !ebb__due(r->now, a->bits_freed_at, wait)) {
                uint32_t left = ebb__ms_until(r->now, a->bits_freed_at, (uint32_t)wait);
                if (left < *next)
                    *next = left;
                continue;
            }
            if (batch.n + EBB_SLOT_PAGES / 2 > EBB_PURGE_RANGES) {
                *next = 0; /* the rest in the next round */
                goto flush;
            }
            a->bits_freed = 0;
            int cold = cold_claim(a);
            if (cold)
                claimed[nclaimed++] = a;
            uint16_t m = header_pages_unused(a, cold);
            cleaned += (size_t)__builtin_popcount(m);
            a->dirty[0] &= (uint16_t)~m;
            purge_runs(a, m, EBB_PAGE_SHIFT, &batch);
        }
    }
flush:
    ebb__purge_batch_flush(&batch);
    ebb__pages_cleaned(cleaned);
    for (unsigned i = 0; i < nclaimed; i++) /* gone; a pool waiting to join waits for the lock */
        atomic_fetch_xor_explicit(&claimed[i]->cold_users, EBB_COLD_BUSY | EBB_COLD_GONE,
                                  memory_order_acq_rel);
}

uint32_t ebb__arena_purge(uint32_t now, long delay, int *surplus)
{
    lent_t lent[LEND_BATCH];
    uint32_t next = UINT32_MAX;
    unsigned n;
    /* One pass lends at a time, and fork waits for it to give all back. */
    ebb__lock(&ebb__arenas.lend_lock);
    ebb__lock(&ebb__arenas.lock);
    lend_rule_t rule = lend_rule(now, delay, surplus);
    purge_headers_due(&rule, &next);
    ebb__unlock(&ebb__arenas.lock);
    do {
        ebb__lock(&ebb__arenas.lock);
        n = lend_due(lent, &rule, &next);
        ebb__unlock(&ebb__arenas.lock);
        ebb__purge_batch_t batch;
        batch.n = 0;
        for (unsigned i = 0; i < n; i++)
            purge_slots(lent[i].arena, lent[i].slots, &batch);
        ebb__purge_batch_flush(&batch); /* before the slots go back */
        ebb__lock(&ebb__arenas.lock);
        for (unsigned i = 0; i < n; i++)
            slots_return(lent[i].arena, lent[i].slots);
        ebb__unlock(&ebb__arenas.lock);
    } while (n == LEND_BATCH);
    ebb__unlock(&ebb__arenas.lend_lock);
    return next;
}

/* ---------------------------------------------------- statistics, fork */

void ebb__arena_stats_locked(ebb_stats_t *s)
{
    s->arenas = ebb__arenas.count;
    s->pools = ebb__arenas.pools;
    s->mapped_meta += ebb__arenas.count * EBB_SLOT_SIZE;
    s->mapped_pools = ebb__arenas.pool_slots * EBB_SLOT_SIZE;
    s->mapped_free_slots = ebb__arenas.count * (EBB_SLOTS - 1) * EBB_SLOT_SIZE - s->mapped_pools;
}

size_t ebb__arena_free_committed_locked(void)
{
    size_t pages = 0;
    for (unsigned n = 0; n < EBB_SLOTS; n++)
        for (const ebb__arena_t *a = ebb__arenas.by_nfree[n]; a; a = a->next)
            pages += dirty_pages(a, a->free_mask);
    return pages;
}

EBB_HIDDEN const ebb__lockset_t ebb__arena_locks = { .name = "arenas",
                                                      .one = &ebb__arenas.lock };

/* A purge pass lends free slots out of the arenas; fork waits until it has
 * given them all back, so a child never finds slots in neither place. */
EBB_HIDDEN const ebb__lockset_t ebb__arena_lend_locks = { .name = "arena lend",
                                                           .one = &ebb__arenas.lend_lock };
