/*
 * arena.c -- 4 MiB size-aligned regions, cut into 64 KiB slots for pools.
 *
 * Owns: the list of arenas, the free-slot set of each, the ownership map
 * entries, and the decision to map or unmap an arena.
 *
 * Layout: slot 0 is the header (ebb__arena_t: slot classes, pool descriptors,
 * free bitmaps), slots 1..63 hold pools.  Metadata never shares a page with
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
 * Invariants (checked by ebb_check): nfree == popcount(free_mask); slot 0 is
 * never free; a free slot has class EBB_NO_CLASS; an arena is in list nfree;
 * at most EBB_SPARE_ARENAS arenas are entirely free at rest.
 */
#include "internal.h"

#include <string.h>

#define ALL_POOL_SLOTS (~(uint64_t)1) /* every slot but the header */

static void list_push(ebb__arena_t *a)
{
    unsigned n = a->nfree;
    a->prev = NULL;
    a->next = ebb__g.by_nfree[n];
    if (a->next)
        a->next->prev = a;
    ebb__g.by_nfree[n] = a;
    ebb__g.by_nfree_mask |= (uint64_t)1 << n;
}

static void list_remove(ebb__arena_t *a)
{
    unsigned n = a->nfree;
    if (a->prev)
        a->prev->next = a->next;
    else
        ebb__g.by_nfree[n] = a->next;
    if (a->next)
        a->next->prev = a->prev;
    if (ebb__g.by_nfree[n] == NULL)
        ebb__g.by_nfree_mask &= ~((uint64_t)1 << n);
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

static ebb__arena_t *arena_create(void)
{
    ebb__arena_t *a = ebb__os_map_aligned(EBB_ARENA_SIZE, EBB_ARENA_SIZE);
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
    ebb__owner_set(a, 1);
    ebb__mapped_add(EBB_ARENA_SIZE);
    ebb__g.arenas++;
    ebb__g.spare_arenas++;
    list_push(a);
    return a;
}

static void arena_destroy(ebb__arena_t *a)
{
    list_remove(a);
    ebb__owner_set(a, 0);
    a->magic = 0;
    ebb__g.arenas--;
    ebb__mapped_sub(EBB_ARENA_SIZE);
    ebb__os_unmap(a, EBB_ARENA_SIZE);
}

/* The fullest arena with a run of `span` free slots; sets *first. */
static ebb__arena_t *find_room(unsigned span, unsigned *first)
{
    uint64_t lists = ebb__g.by_nfree_mask & ~(((uint64_t)1 << span) - 1);
    while (lists) {
        unsigned n = (unsigned)__builtin_ctzll(lists);
        lists &= lists - 1;
        for (ebb__arena_t *a = ebb__g.by_nfree[n]; a; a = a->next) {
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
    ebb__lock(&ebb__g.arena_lock);
    unsigned first = 0;
    ebb__arena_t *a = find_room(span, &first);
    if (a == NULL) {
        a = arena_create();
        if (a == NULL) {
            ebb__unlock(&ebb__g.arena_lock);
            return NULL;
        }
        first = 1;
    }
    if (a->nfree == EBB_SLOTS - 1)
        ebb__g.spare_arenas--;
    list_remove(a);
    uint64_t run = (((uint64_t)1 << span) - 1) << first;
    ebb__assert((a->free_mask & run) == run);
    a->free_mask &= ~run;
    a->nfree -= span;
    list_push(a);
    for (unsigned s = first; s < first + span; s++) {
        a->slot_head[s] = (uint8_t)first;
        __atomic_store_n(&a->slot_class[s], (uint8_t)cls, __ATOMIC_RELAXED);
    }
    ebb__pool_t *p = &a->pool[first];
    p->head_slot = (uint8_t)first;
    p->span = (uint8_t)span;
    p->start = (uint8_t *)a + (uintptr_t)first * EBB_SLOT_SIZE;
    ebb__g.pools++;
    ebb__g.pool_slots += span;
    ebb__unlock(&ebb__g.arena_lock);
    return p;
}

void ebb__arena_release_pool(ebb__pool_t *p)
{
    ebb__arena_t *a = ebb__arena_of_pool(p);
    unsigned first = p->head_slot, span = p->span;
    ebb__lock(&ebb__g.arena_lock);
    for (unsigned s = first; s < first + span; s++)
        __atomic_store_n(&a->slot_class[s], (uint8_t)EBB_NO_CLASS, __ATOMIC_RELAXED);
    __atomic_store_n(&p->heap, NULL, __ATOMIC_RELEASE);
    p->bucket = EBB_BUCKET_NONE;
    list_remove(a);
    a->free_mask |= (((uint64_t)1 << span) - 1) << first;
    a->nfree += span;
    ebb__g.pools--;
    ebb__g.pool_slots -= span;
    list_push(a);
    if (a->nfree == EBB_SLOTS - 1) {
        if (ebb__g.spare_arenas >= EBB_SPARE_ARENAS)
            arena_destroy(a);
        else
            ebb__g.spare_arenas++;
    }
    ebb__unlock(&ebb__g.arena_lock);
}

/* Give back empty arenas (all of them if force, else all but the spares)
 * and the pages of free slots in the others. */
void ebb__arena_collect(int force)
{
    ebb__lock(&ebb__g.arena_lock);
    ebb__arena_t *a = ebb__g.by_nfree[EBB_SLOTS - 1];
    size_t keep = force ? 0 : EBB_SPARE_ARENAS;
    while (a && ebb__g.spare_arenas > keep) {
        ebb__arena_t *next = a->next;
        ebb__g.spare_arenas--;
        arena_destroy(a);
        a = next;
    }
    for (unsigned n = 1; n < EBB_SLOTS; n++) {
        for (a = ebb__g.by_nfree[n]; a; a = a->next) {
            uint64_t m = a->free_mask;
            while (m) {
                unsigned s = (unsigned)__builtin_ctzll(m);
                unsigned e = s;
                while (e < EBB_SLOTS && (m >> e) & 1)
                    e++;
                ebb__os_purge((uint8_t *)a + (uintptr_t)s * EBB_SLOT_SIZE,
                              (size_t)(e - s) * EBB_SLOT_SIZE);
                m &= e >= EBB_SLOTS ? 0 : ~(uint64_t)0 << e;
            }
        }
    }
    ebb__unlock(&ebb__g.arena_lock);
}
