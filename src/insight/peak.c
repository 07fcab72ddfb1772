/*
 * peak.c -- who held the memory at its worst moment.
 *
 * Owns: the peak snapshot: the highest committed memory the sampler has
 * seen, when it was, and the sampled sites that held the most live bytes
 * then (their numbers in the sampler's table and their weights at that
 * moment, not now).
 *
 * Why.  A program that is killed, fails, or just ends has usually freed
 * part of what made it big: the sites live at the end are not the ones that
 * pushed it to its peak.  Fil's main answer, "what was live at the worst
 * moment", needs a copy of the live sites taken at that moment, and kept
 * while everything after it is freed.
 *
 * When.  malloc calls ebb__peak_consider() after each sampled block it
 * serves (never on the fast path: about one call per EBB_SAMPLE_RATE bytes;
 * a sampled request that is refused never counts, or the peak would hold
 * the weight of a block that never existed).  A
 * snapshot is taken when committed memory passes the last snapshot's by
 * a margin, the larger of a sixteenth and EBB_PEAK_MARGIN_MIN, so the
 * snapshots of a growing program are a geometric series: a program that
 * grows to 1 GiB takes about 90 of them (each a walk of the site table, a
 * few microseconds for hundreds of sites), and one that goes up and down
 * below its peak takes none.  The snapshot kept is never more than a
 * margin and one sample gap below the true peak.  A full report refreshes
 * it first when committed is at or above the snapshot's (the peak is now),
 * so a report never shows an older, lower peak than the moment it
 * describes.
 *
 * Invariants: `committed` only grows; the sites are in order of live bytes
 * at the peak, most first, and every number names a site of the sampler's
 * table (sites are never removed, so a number stays good).
 *
 * The heap map.  Each snapshot also copies the heap (heapmap.c: 520 bytes
 * an arena, taken under the bin and arena locks, a few microseconds an
 * arena), so the HTML report can draw the heap at its worst next to the
 * heap at the end.  A snapshot that finds a purge pass out keeps the map
 * it had, which says at which committed size it was taken.
 *
 * Locks: one, taken with trylock by the sampling thread (a thread that
 * finds another snapshotting skips its turn: the other is taking the same
 * moment) and with a plain lock by readers, which copy the snapshot out.
 * It comes before the heap's locks and the sampler's (a snapshot copies
 * both under it), and fork and ebb_check take it in that order
 * (front/init.c).
 */
#include "internal.h"

#include <string.h>

static struct {
    ebb__lock_t lock;
    _Atomic size_t next;   /* committed at which the next snapshot is due */
    ebb__peak_t snap;
    ebb__heapmap_t map;    /* the heap at the snapshot (or an earlier one) */
    size_t map_committed;  /* committed when map was taken */
} top_moment = { .lock = EBB_LOCK_INIT };

static size_t margin(size_t committed)
{
    size_t sixteenth = committed / 16;
    return sixteenth > EBB_PEAK_MARGIN_MIN ? sixteenth : EBB_PEAK_MARGIN_MIN;
}

static void take(size_t committed)
{
    ebb__peak_t *s = &top_moment.snap;
    s->committed = committed;
    s->wall_seconds = ebb__os_wall_seconds();
    s->nsites = ebb__sample_top_weights(s->site, EBB_PEAK_SITES, &s->sampled_live);
    s->snapshots++;
    size_t due = committed + margin(committed);
    if (due > atomic_load_explicit(&top_moment.next, memory_order_relaxed))
        atomic_store_explicit(&top_moment.next, due, memory_order_relaxed);
    ebb__heapmap_t m;
    if (ebb__heapmap_take(&m, 0) == 0) {
        ebb__heapmap_drop(&top_moment.map);
        top_moment.map = m;
        top_moment.map_committed = committed;
    }
}

void ebb__peak_consider(void)
{
    size_t now = ebb__committed_now();
    size_t due = atomic_load_explicit(&top_moment.next, memory_order_relaxed);
    if (now < due || !ebb__trylock(&top_moment.lock))
        return;
    if (now >= atomic_load_explicit(&top_moment.next, memory_order_relaxed))
        take(now);
    ebb__unlock(&top_moment.lock);
}

void ebb__peak_refresh(void)
{
    size_t now = ebb__committed_now();
    ebb__lock(&top_moment.lock);
    if (now >= top_moment.snap.committed && now > 0)
        take(now);
    ebb__unlock(&top_moment.lock);
}

int ebb__peak_get(ebb__peak_t *out)
{
    ebb__lock(&top_moment.lock);
    *out = top_moment.snap;
    ebb__unlock(&top_moment.lock);
    return out->snapshots != 0;
}

void ebb__peak_with_map(void (*use)(const ebb__heapmap_t *m, size_t committed, void *arg),
                        void *arg)
{
    ebb__lock(&top_moment.lock);
    if (top_moment.map.arena)
        use(&top_moment.map, top_moment.map_committed, arg);
    ebb__unlock(&top_moment.lock);
}

EBB_API size_t ebb_peak_sites(ebb_peak_t *info, ebb_site_t *out, size_t n)
{
    ebb__peak_t s;
    ebb__peak_get(&s);
    if (info) {
        memset(info, 0, sizeof *info);
        info->committed = s.committed;
        info->sampled_live = s.sampled_live;
        info->time = s.wall_seconds;
        info->snapshots = s.snapshots;
    }
    for (size_t i = 0; out && i < n && i < s.nsites; i++)
        ebb__sample_site_at_peak(&out[i], &s.site[i]);
    return s.nsites;
}

EBB_HIDDEN const ebb__lockset_t ebb__peak_locks = { .name = "peak snapshot",
                                                     .one = &top_moment.lock };
