/*
 * timeline.c -- memory over time: a bounded record of the whole run.
 *
 * Owns: the timeline's points (time, live, committed, RSS, limit, purged so
 * far), when one is taken, how the record stays bounded, and the peak of
 * committed with its time as the reports and the status page give it.
 *
 * When.  A point costs the statistics (every bin lock once) and a read of
 * /proc/self/statm, about 25 us, so it is never taken on an allocation
 * path; the purger thread takes them (front/purger.c calls the tick after
 * each pass).  Two rules, and no clock of the timeline's own:
 *   - when the purger wakes anyway, a point if the last one is
 *     EBB_TIMELINE_INTERVAL_MS old: a busy process gets a steady trace;
 *   - when committed has moved a sixteenth (at least 1 MiB) from the last
 *     point, a point at once: the ledger watches for that move on the slow
 *     paths that map, dirty, purge or unmap memory (core/ledger.c), and the
 *     front starts or wakes the purger for it.  A fast climb towards the
 *     limit or the OOM killer is recorded step by step; a fall too.
 * An idle process takes no point and no wake-up: its purger has ended, and
 * nothing it does moves committed.  Its last point stays the last one until
 * something changes (the reports add a point for "now" themselves).
 *
 * Bounded.  The record holds EBB_TIMELINE_POINTS points, oldest first.  At
 * first each point is one sample.  When the record is full, neighbours are
 * merged pairwise, so it is half full, and from then on each point stands
 * for twice as many samples as before (`stride`): the samples of a point are
 * merged into a pending point, which joins the record once complete.  So
 * every kept point stands for the same number of samples, and the record
 * always covers the whole run, from ebb's start, at a resolution that halves
 * as the run doubles.  A merge keeps the larger of each figure (the peak of
 * live, committed, RSS; purged only grows), at the time of the larger
 * committed: a peak is never averaged away, and a plot of the record shows
 * the envelope of what happened.  The exact peak of committed and its time
 * come from the ledger (ebb__ledger.peak_committed and its time), which
 * sees every rise, not only those a point caught.
 *
 * Reading.  ebb__timeline_copy gives the points, oldest first (the pending
 * one last), merged further the same way to fit the caller's room: the
 * status page takes the whole record, a JSON report a smaller copy.  One
 * lock, taken for the copy or to add a sample, never while taking the
 * statistics.
 */
#include "internal.h"

#include <string.h>

static struct {
    ebb__lock_t lock;                 /* guards the record */
    ebb__timeline_ring_t ring;
    /* Set once at start, read without the lock. */
    _Atomic int started;
    uint64_t t0_ns;                   /* ebb__os_now_ns at start */
    uint32_t t0_ms;                   /* ebb__os_now_ms at start (the ledger's clock) */
    uint64_t t0_wall_ms;
    _Atomic uint32_t last_ms;         /* ebb__os_now_ms: the last sample */
    _Atomic uint32_t rss_ms;          /* ebb__os_now_ms: RSS last read */
    _Atomic uint64_t rss;             /* what it read (0: not yet) */
    _Atomic int any;                  /* a sample was taken */
} tl = { .lock = EBB_LOCK_INIT };

void ebb__timeline_start(void)
{
    if (atomic_load_explicit(&tl.started, memory_order_acquire))
        return;
    tl.t0_ns = ebb__os_now_ns();
    tl.t0_ms = ebb__os_now_ms();
    tl.t0_wall_ms = (uint64_t)ebb__os_wall_ms();
    atomic_store_explicit(&tl.started, 1, memory_order_release);
    ebb__ledger_watch(ebb__committed_now());
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* a and b as one point: the larger of each figure, at the time of the
 * larger committed (the later one on a tie). */
static ebb__timeline_point_t merge(const ebb__timeline_point_t *a, const ebb__timeline_point_t *b)
{
    ebb__timeline_point_t m;
    m.ms = a->committed > b->committed ? a->ms : b->ms;
    m.live = max64(a->live, b->live);
    m.committed = max64(a->committed, b->committed);
    m.rss = max64(a->rss, b->rss);
    m.limit = max64(a->limit, b->limit);
    m.purged = max64(a->purged, b->purged);
    return m;
}

/* RSS is read from /proc/self/statm: a file opened for a moment.  On one
 * of ebb's own threads that descriptor appears, for those microseconds, in
 * the program's table while its threads may be listing their descriptors
 * or dup2ing onto the numbers they found free (under ebb.install(),
 * CPython's test_subprocess failed in CI, whose fd_status.py child lists
 * them, and multiprocessing's test_large_fd_transfer here).  So the purger reads it only
 * for a consumer that follows the run as it goes, the status page (`ebb
 * top`), report files written at exit or on failure, the black box; a
 * point taken on a program's thread (an inline pass) always reads it, and a
 * report made on demand adds its own "now" with RSS.  Otherwise the point
 * says 0: not recorded.  The file is read at most once per
 * EBB_RSS_READ_INTERVAL_MS (config.h has the measurement), and points and
 * the status page reuse the reading in between (ebb__timeline_rss). */
static int rss_wanted(void)
{
    /* From the options: those modules read the timeline, not the reverse. */
    return !ebb__thread_is_internal() || ebb__opt.top || ebb__opt.report_files[0] ||
           ebb__opt.report_folded[0] || ebb__opt.blackbox_path[0];
}

uint64_t ebb__timeline_rss(void)
{
    uint32_t now = ebb__os_now_ms();
    uint32_t at = atomic_load_explicit(&tl.rss_ms, memory_order_relaxed);
    uint64_t rss = atomic_load_explicit(&tl.rss, memory_order_relaxed);
    if (rss && !ebb__due(now, at, EBB_RSS_READ_INTERVAL_MS))
        return rss;
    ebb__os_usage_t use;
    if (!ebb__os_usage("", &use))
        return 0;
    atomic_store_explicit(&tl.rss, use.resident, memory_order_relaxed);
    atomic_store_explicit(&tl.rss_ms, now, memory_order_relaxed);
    return use.resident;
}

void ebb__timeline_now(ebb__timeline_point_t *p)
{
    ebb_stats_t s;
    ebb_stats(&s);
    int started = atomic_load_explicit(&tl.started, memory_order_acquire);
    p->ms = started ? (ebb__os_now_ns() - tl.t0_ns) / 1000000u : 0;
    p->live = (uint64_t)(s.small_used - s.small_cached) + s.large_used;
    p->committed = s.committed;
    p->rss = rss_wanted() ? ebb__timeline_rss() : 0;
    p->limit = atomic_load_explicit(&ebb__budget.limit, memory_order_relaxed);
    p->purged = s.purged;
}

/* The record halves, and each point from now on stands for twice the
 * samples. */
static void halve(ebb__timeline_ring_t *r)
{
    for (size_t i = 0; i < r->nkept / 2; i++)
        r->kept[i] = merge(&r->kept[2 * i], &r->kept[2 * i + 1]);
    r->nkept /= 2;
    r->stride *= 2;
}

void ebb__timeline_ring_add(ebb__timeline_ring_t *r, const ebb__timeline_point_t *p)
{
    if (r->stride == 0)
        r->stride = 1;
    r->pending = r->npending ? merge(&r->pending, p) : *p;
    r->npending++;
    r->samples++;
    if (r->npending < r->stride)
        return;
    if (r->nkept == EBB_TIMELINE_POINTS)
        halve(r); /* the pending point is half of one now */
    if (r->npending >= r->stride) {
        r->kept[r->nkept++] = r->pending;
        r->npending = 0;
    }
}

/* The points, oldest first, the pending one last. */
static size_t ring_count(const ebb__timeline_ring_t *r)
{
    return r->nkept + (r->npending != 0);
}

static const ebb__timeline_point_t *ring_point(const ebb__timeline_ring_t *r, size_t i)
{
    return i < r->nkept ? &r->kept[i] : &r->pending;
}

size_t ebb__timeline_ring_copy(const ebb__timeline_ring_t *r, ebb__timeline_point_t *out,
                               size_t max)
{
    if (out == NULL || max == 0)
        return 0;
    size_t n = ring_count(r);
    /* Groups of `group` points each make one, as the record's own halving
     * merges them; the last group may be short. */
    size_t group = (n + max - 1) / max, written = 0;
    if (group == 0)
        group = 1;
    for (size_t i = 0; i < n; i += group) {
        ebb__timeline_point_t m = *ring_point(r, i);
        for (size_t j = i + 1; j < i + group && j < n; j++)
            m = merge(&m, ring_point(r, j));
        out[written++] = m;
    }
    return written;
}

void ebb__timeline_record(const ebb__timeline_point_t *p)
{
    ebb__lock(&tl.lock);
    ebb__timeline_ring_add(&tl.ring, p);
    ebb__unlock(&tl.lock);
    atomic_store_explicit(&tl.any, 1, memory_order_relaxed);
}

int ebb__timeline_tick(void)
{
    if (!atomic_load_explicit(&tl.started, memory_order_acquire))
        return 0;
    uint32_t now = ebb__os_now_ms();
    uint32_t last = atomic_load_explicit(&tl.last_ms, memory_order_relaxed);
    int moved = atomic_load_explicit(&ebb__ledger.watch, memory_order_relaxed) >= EBB_WATCH_MOVED;
    if (!moved && atomic_load_explicit(&tl.any, memory_order_relaxed) &&
        !ebb__due(now, last, EBB_TIMELINE_INTERVAL_MS))
        return 0;
    if (!atomic_compare_exchange_strong_explicit(&tl.last_ms, &last, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return 0; /* another thread takes this one (inline passes) */
    ebb__timeline_point_t p;
    ebb__timeline_now(&p);
    ebb__timeline_record(&p);
    ebb__ledger_watch((size_t)p.committed);
    return moved ? 2 : 1;
}

size_t ebb__timeline_copy(ebb__timeline_point_t *out, size_t max)
{
    ebb__lock(&tl.lock);
    size_t n = ebb__timeline_ring_copy(&tl.ring, out, max);
    ebb__unlock(&tl.lock);
    return n;
}

/* ms the coarse clock may be behind the precise one: a scheduler tick at
 * 100 Hz, the slowest Linux is built with. */
#define CLOCK_SKEW_MS 10

void ebb__timeline_info(ebb__timeline_info_t *out)
{
    memset(out, 0, sizeof *out);
    if (!atomic_load_explicit(&tl.started, memory_order_acquire))
        return;
    out->now_ms = (ebb__os_now_ns() - tl.t0_ns) / 1000000u;
    out->started_wall_ms = tl.t0_wall_ms;
    out->peak_committed = atomic_load_explicit(&ebb__ledger.peak_committed, memory_order_relaxed);
    uint32_t at = atomic_load_explicit(&ebb__ledger.peak_committed_ms, memory_order_relaxed);
    /* A peak before the timeline started (inside ebb's own start-up) is
     * at its start.  (The ledger's clock wraps after 49 days.)  The peak's
     * clock and t0_ms are the coarse one, now_ms the precise one, so a peak
     * raised in the last tick can come out a few ms after now: it is now. */
    uint64_t since = (uint32_t)(at - tl.t0_ms);
    out->peak_committed_ms = since <= out->now_ms                ? since
                             : since - out->now_ms <= CLOCK_SKEW_MS ? out->now_ms
                                                                   : 0;
    ebb__lock(&tl.lock);
    out->kept = ring_count(&tl.ring);
    out->stride = tl.ring.stride ? tl.ring.stride : 1;
    out->samples = tl.ring.samples;
    ebb__unlock(&tl.lock);
}

/* The child of a fork keeps the record (its memory until the fork was the
 * parent's); its watch is armed again, since the parent's purger, which
 * may have been about to take an owed point, is not in the child. */
static void timeline_fork_child(void)
{
    atomic_store_explicit(&tl.last_ms, 0, memory_order_relaxed);
    /* The parent's last RSS stands for the child's first interval: a read
     * by the child's purger right after the fork would open a file while
     * the child's own code may be setting up its descriptors. */
    if (atomic_load_explicit(&tl.rss, memory_order_relaxed))
        atomic_store_explicit(&tl.rss_ms, ebb__os_now_ms(), memory_order_relaxed);
    if (atomic_load_explicit(&tl.started, memory_order_relaxed))
        ebb__ledger_watch(ebb__committed_now());
}

EBB_HIDDEN const ebb__lockset_t ebb__timeline_locks = { .name = "timeline",
                                                        .one = &tl.lock,
                                                        .child = timeline_fork_child };
