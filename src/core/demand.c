/*
 * demand.c -- how much of its free memory the program is about to reuse:
 * the recent demand, and the surplus rule built on it.
 *
 * Owns: the estimate of what an owner of free memory (a bin, the arenas,
 * the large blocks) handed out over the last purge delay, and the answer
 * to "how long must free memory here stay quiet before it is purged".
 *
 * Why.  The purge delay (policy/purge.c) keeps freed memory for 100 ms in
 * case the program reuses it, which is right for a program that frees and
 * allocates in turn and wrong for one that just freed a gigabyte it will
 * not ask for again: there the delay only keeps RSS at the peak for 100 to
 * 300 ms after the free, and a pass over the gigabyte then takes another
 * 100 ms of madvise (bench/rss scenarios 1 and 2: RSS at 8 to 20 times the
 * floor 100 ms after the free).  What a program will reuse soon is
 * estimated by what it took recently: an owner whose free memory is more
 * than it took over the last delay holds surplus, and the surplus goes back
 * once it has been quiet for EBB_SURPLUS_QUIET_MS (1 ms), the rest after
 * the delay as before.  A teardown is then purged while it runs, a few ms
 * behind the frees, on the purger's core (bench/rss scenario 2: 1035 MiB
 * resident as its free loop ended before, 714 MiB after; under the bound
 * 159 ms after it, against 290).  A program that frees and allocates in
 * turn (bench/run.py churn, tests/api/test_purge.c reuse_is_not_surplus)
 * took as much as it freed over the delay, so nothing it holds is surplus
 * and nothing it will reuse is purged early.
 *
 * The estimate.  Each owner counts units taken (blocks, slots, pages) under
 * its own lock, an add on a slow path that already holds it.  Purge passes
 * read it through a sliding window of the delay's length, approximated by
 * two buckets: what was taken since the current window began, plus the
 * previous window's count scaled by the part of it still inside the last
 * delay.  After a long silence (no pass for two windows or more) the
 * previous count is the average over the silence.  An owner's first look
 * counts everything taken before it as recent (an overestimate that fades
 * within one window: never purging early what a program that just started
 * is about to reuse).  So the estimate falls to
 * zero one delay after the program stops taking, and a pass that runs
 * every few ms sees it fall smoothly.
 *
 * Threads that leave.  A bin also counts each thread's share of its
 * current window (ebb__took_t, kept in the thread's state), and a thread
 * that exits takes its share back, when no thread was made within the
 * last delay (core/thread.c, threads_settled): producers that exit will
 * not take again, but a program that runs a thread per request takes as
 * much again with the next one.  And a bin from which nothing was taken
 * over the delay keeps no pool's worth back (the margin in heap.c's
 * bin_quiet): no reuse is in sight.  bench/rss scenario 7 (C: three
 * producer and consumer pairs, all joined) held 3.6 MiB of such pools for
 * the delay after the join, one bin's margin each and the producers'
 * takes: 1.3x its floor in 10 ms in 1 run of 5, 100-125 ms in the others;
 * with both, in 5, 5, 10, 10 and 20 ms.  Purger threads do not count as
 * made (the purger ends and starts again as work comes and goes).
 */
#include "internal.h"

/* Start a new window at `now` if the current one is over. */
static void window_roll(ebb__demand_t *d, uint32_t now, uint32_t window)
{
    if (d->since == 0 && d->mark == 0) { /* first look: all taken so far is recent */
        d->last = d->taken;
        d->mark = d->taken;
        d->since = now;
        return;
    }
    uint32_t age = ebb__age_ms(now, d->since);
    if (age < window)
        return;
    uint32_t in_window = d->taken - d->mark;
    /* Over two windows or more: the average rate over the silence. */
    d->last = age >= 2 * window ? (uint32_t)((uint64_t)in_window * window / age) : in_window;
    d->mark = d->taken;
    d->since = now;
}

uint32_t ebb__demand_recent(ebb__demand_t *d, uint32_t now, uint32_t window)
{
    if (window == 0)
        return d->taken - d->mark;
    window_roll(d, now, window);
    uint32_t age = ebb__age_ms(now, d->since); /* < window */
    uint64_t still = (uint64_t)d->last * (window - age) / window;
    return (d->taken - d->mark) + (uint32_t)still;
}

void ebb__demand_count(ebb__demand_t *d, ebb__took_t *t, uint32_t n)
{
    d->taken += n;
    if (t == NULL)
        return;
    if (t->since != d->since) { /* a new window: the thread's share starts again */
        t->since = d->since;
        t->n = 0;
    }
    t->n += n;
}

void ebb__demand_forget(ebb__demand_t *d, ebb__took_t *t)
{
    if (t->since == d->since) {
        uint32_t current = d->taken - d->mark;
        d->mark += t->n < current ? t->n : current;
    } else { /* counted in an earlier window: at most the one before */
        d->last -= t->n < d->last ? t->n : d->last;
    }
    t->n = 0;
}

long ebb__surplus_delay(long delay, size_t free_bytes, size_t demand_bytes, size_t margin,
                        int *surplus)
{
    if (delay <= EBB_SURPLUS_QUIET_MS || !ebb__opt.purge_surplus)
        return delay;
    if (free_bytes <= demand_bytes || free_bytes - demand_bytes <= margin)
        return delay;
    *surplus = 1;
    return EBB_SURPLUS_QUIET_MS;
}
