/*
 * heapmap.c -- a picture of ebb's own heap: arenas as rows, pools as cells.
 *
 * Owns: the heap map, a copy of what every arena slot holds (the arena's
 * header, a pool of some size class and how full it is, a free slot) and
 * how much of it is resident, taken in one consistent moment; its text
 * (ebb_heap_map(): a row per arena, a character per 64 KiB slot) and the
 * JSON the report embeds ("heap_map", drawn by the HTML report).
 *
 * Why a copy.  Walking the arenas needs the bins' and the arenas' locks,
 * and writing the picture out is file I/O: taking the copy under the locks
 * (a few microseconds an arena) and writing it after they are dropped
 * keeps every other thread's slow path waiting only for the copy.  The
 * copy is mapped (EBB_SLOTS cells of 8 bytes and the base: 520 bytes an
 * arena, 130 KiB for a 1 GiB heap), never malloc'd: a report is written
 * when allocation fails.  If it cannot be mapped there is no map, said so.
 *
 * Consistency.  Locks are taken in the order fork takes them: the lend
 * lock (a purge pass in flight has slots out of their arenas and is
 * touching their resident bits), every bin, then the arenas.  Under them
 * a slot's class, its pool's count and its resident bits agree.  The peak
 * snapshot (peak.c) takes a map from inside an allocation: it does not
 * wait for a purge pass (which holds the lend lock for up to 150 ms on a
 * gigabyte), it keeps the map it had.
 */
#include "internal.h"

#include <string.h>

/* What a slot of the copy is. */
enum { SLOT_HEADER, SLOT_POOL, SLOT_POOL_MORE, SLOT_FREE };

typedef struct {
    uint8_t kind;      /* SLOT_* */
    uint8_t cls;       /* a pool's size class */
    uint8_t resident;  /* pages of the slot that may be resident (of 16) */
    uint32_t used;     /* a pool's blocks out (its first slot) */
} map_slot_t;

typedef struct {
    uintptr_t base;
    map_slot_t slot[EBB_SLOTS];
} map_arena_t;

_Static_assert(EBB_SLOT_SIZE / EBB_PAGE <= 255, "a slot's resident pages fit a byte");

static unsigned resident_pages(const ebb__arena_t *a, unsigned s)
{
    return (unsigned)__builtin_popcount(a->dirty[s]);
}

/* Locks held: the arena's slots into out. */
static void copy_arena(const ebb__arena_t *a, map_arena_t *out)
{
    out->base = (uintptr_t)a;
    for (unsigned s = 0; s < EBB_SLOTS; s++) {
        map_slot_t *m = &out->slot[s];
        m->resident = (uint8_t)resident_pages(a, s);
        m->cls = 0;
        m->used = 0;
        if (s == 0) {
            m->kind = SLOT_HEADER;
        } else if ((a->free_mask >> s) & 1) {
            m->kind = SLOT_FREE;
        } else if (a->slot_head[s] != s) {
            m->kind = SLOT_POOL_MORE;
            m->cls = a->slot_class[s];
        } else {
            const ebb__pool_t *p = &a->pool[s];
            m->kind = SLOT_POOL;
            m->cls = p->cls;
            m->used = p->used;
        }
    }
}

/* Shell sort by base: a few thousand arenas at most, no allocation. */
static void sort_by_base(map_arena_t *v, size_t n)
{
    static const size_t gaps[] = { 701, 301, 132, 57, 23, 10, 4, 1 };
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; i++) {
            map_arena_t t = v[i];
            size_t j = i;
            for (; j >= gap && v[j - gap].base > t.base; j -= gap)
                v[j] = v[j - gap];
            v[j] = t;
        }
    }
}

int ebb__heapmap_take(ebb__heapmap_t *m, int wait)
{
    memset(m, 0, sizeof *m);
    for (int tries = 0; tries < 4; tries++) {
        size_t want = ebb__arenas.count + 4; /* unlocked: a guess, checked below */
        size_t bytes = (want * sizeof(map_arena_t) + EBB_PAGE - 1) & ~(size_t)(EBB_PAGE - 1);
        map_arena_t *v = ebb__os_map_meta(bytes);
        if (v == NULL)
            return -1;
        size_t n = 0;
        if (wait) {
            ebb__lock(&ebb__arenas.lend_lock);
        } else if (!ebb__trylock(&ebb__arenas.lend_lock)) {
            ebb__os_unmap(v, bytes); /* a purge pass is out: not now */
            return -1;
        }
        ebb__heap_locks.lock();
        ebb__lock(&ebb__arenas.lock);
        int fits = ebb__arenas.count <= want;
        for (unsigned l = 0; fits && l < EBB_SLOTS; l++)
            for (const ebb__arena_t *a = ebb__arenas.by_nfree[l]; a; a = a->next)
                copy_arena(a, &v[n++]);
        ebb__unlock(&ebb__arenas.lock);
        ebb__heap_locks.unlock();
        ebb__unlock(&ebb__arenas.lend_lock);
        if (!fits) { /* arenas came meanwhile: again, bigger */
            ebb__os_unmap(v, bytes);
            continue;
        }
        sort_by_base(v, n);
        m->arena = v;
        m->narenas = n;
        m->bytes = bytes;
        return 0;
    }
    return -1;
}

void ebb__heapmap_drop(ebb__heapmap_t *m)
{
    if (m->arena)
        ebb__os_unmap(m->arena, m->bytes);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------- reading */

static const map_slot_t *slot_of(const ebb__heapmap_t *m, size_t a, unsigned s)
{
    return &((const map_arena_t *)m->arena)[a].slot[s];
}

uintptr_t ebb__heapmap_base(const ebb__heapmap_t *m, size_t a)
{
    return ((const map_arena_t *)m->arena)[a].base;
}

/* The pool covering slot s of arena a: its first slot's copy. */
static const map_slot_t *head_of(const ebb__heapmap_t *m, size_t a, unsigned s)
{
    while (s > 0 && slot_of(m, a, s)->kind == SLOT_POOL_MORE)
        s--;
    return slot_of(m, a, s);
}

int ebb__heapmap_pool(const ebb__heapmap_t *m, size_t a, unsigned s, ebb__heapmap_pool_t *out)
{
    const map_slot_t *h = slot_of(m, a, s);
    if (h->kind != SLOT_POOL)
        return 0;
    const ebb__class_t *c = &ebb__classes[h->cls];
    unsigned resident = 0, span = 1;
    for (unsigned t = s; t < EBB_SLOTS; t++) {
        const map_slot_t *x = slot_of(m, a, t);
        if (t > s && x->kind != SLOT_POOL_MORE)
            break;
        span = t - s + 1;
        resident += x->resident;
    }
    out->slot = s;
    out->span = span;
    out->cls = h->cls;
    out->block_size = c->size;
    out->blocks = c->blocks;
    out->used = h->used;
    out->resident_pages = resident;
    out->state = h->used >= c->blocks ? EBB__POOL_FULL
                 : h->used > 0        ? EBB__POOL_PARTIAL
                 : resident > 0       ? EBB__POOL_EMPTY
                                      : EBB__POOL_PURGED;
    return 1;
}

/* A cell of the text: what a person sees of slot s at a glance. */
char ebb__heapmap_cell(const ebb__heapmap_t *m, size_t a, unsigned s)
{
    const map_slot_t *x = slot_of(m, a, s);
    switch (x->kind) {
    case SLOT_HEADER:
        return 'H';
    case SLOT_FREE:
        return x->resident ? ',' : ' ';
    default: {
        const map_slot_t *h = head_of(m, a, s);
        uint32_t blocks = ebb__classes[h->cls].blocks;
        if (h->used >= blocks)
            return '#';
        if (h->used == 0)
            return x->resident ? 'o' : '_';
        /* 1..9: how full, in tenths rounded down, but never 0 for a pool
         * with a block out */
        uint32_t tenths = (uint32_t)((uint64_t)h->used * 10 / blocks);
        return (char)('0' + (tenths ? tenths : 1));
    }
    }
}

/* The text: a legend, then a row per arena with its address. */
static void put_text(int fd, const ebb__heapmap_t *m)
{
    char line[EBB_SLOTS + 48];
    size_t n = ebb__format(line, sizeof line,
                           "ebb heap map: %zu arenas of %zu KiB, a cell per %zu KiB slot\n",
                           m->narenas, (size_t)(EBB_ARENA_SIZE >> 10),
                           (size_t)(EBB_SLOT_SIZE >> 10));
    ebb__os_write_all(fd, line, n);
    static const char legend[] =
        "  H header  # full pool  1-9 tenths full  o empty pool (resident)  _ empty pool (purged)\n"
        "  , free slot (resident)  ' ' free slot (purged or never touched)\n";
    ebb__os_write_all(fd, legend, sizeof legend - 1);
    for (size_t a = 0; a < m->narenas; a++) {
        n = ebb__format(line, sizeof line, "%p |", (void *)ebb__heapmap_base(m, a));
        for (unsigned s = 0; s < EBB_SLOTS && n + 3 < sizeof line; s++)
            line[n++] = ebb__heapmap_cell(m, a, s);
        line[n++] = '|';
        line[n++] = '\n';
        ebb__os_write_all(fd, line, n);
    }
}

EBB_API int ebb_heap_map(int fd)
{
    ebb__heapmap_t m;
    if (ebb__heapmap_take(&m, 1) != 0) {
        static const char none[] = "ebb heap map: not taken (no memory for its copy)\n";
        ebb__os_write_all(fd, none, sizeof none - 1);
        return -1;
    }
    put_text(fd, &m);
    ebb__heapmap_drop(&m);
    return 0;
}
