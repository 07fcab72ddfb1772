/*
 * purge.c -- giving memory back to the OS: the purge pass and ebb_collect().
 *
 * Owns: what a pass gives back and in which order, the poking of threads
 * whose caches pin pages, and ebb_collect() (a pass with everything due).
 *
 * Policy.  Memory a program frees is given back once it has stayed unused
 * for the purge delay (EBB_PURGE_DELAY_MS), at the finest grain the OS
 * allows: empty pools go back to their arenas and their pages are purged;
 * inside partly used pools, every 4 KiB page that holds no live block is
 * purged; free arena slots are purged, empty arenas unmapped (one spare
 * kept, purged); cached large mappings unmapped.  The mechanism keeps its
 * own timestamps (heap.c: a purge list per bin, restamped while a pool is
 * allocated from; arena.c: when a pool last came back; large.c: when a
 * mapping was freed), and a pass asks each to give back what is due.
 * Whether freed memory is purged at once, after the delay or never is
 * answered in one place, ebb__purge_when() (internal.h), which the
 * mechanism asks when memory comes back.
 *
 * Who runs the pass: the purger thread (front/purger.c), so memory goes
 * back even when the thread that freed it is blocked, idle or gone; or,
 * when no thread can be started, the slow paths of free, at most once per
 * delay; and ebb_collect, the pressure watcher and the limit's episodes, with
 * everything due.
 *
 * Surplus does not wait the delay.  Free memory beyond what its owner (a
 * bin, the arenas, the large-block cache) handed out over the last delay
 * is unlikely to be reused soon, and goes back once quiet for
 * EBB_SURPLUS_QUIET_MS (core/demand.c has the estimate and the numbers);
 * while surplus waits, the purger gathers deadlines within
 * EBB_SURPLUS_SLACK_MS, not EBB_PURGE_SLACK_MS.  A mass free is thus given
 * back while it runs, and a program that reuses what it frees keeps it.
 * While surplus goes back and for EBB_SURPLUS_POKE_WINDOW_MS after, threads
 * are also asked for their cached blocks every EBB_SURPLUS_POKE_MS, not
 * once a delay: the blocks a thread cached as its teardown ended each hold
 * a pool of it (bench/rss scenario 1 in C: 670 pools in 211 arenas, 8.4 MiB
 * resident from 20 to 85 ms after the free; with the sooner pokes under
 * 1.3x the floor 10-30 ms after it in 6 runs of 7, against 30-90).
 *
 * Delay 0 purges at once on the slow path that frees (and caches no large
 * mapping); -1 never purges on its own (only ebb_collect does).
 *
 * The default delay, 100 ms, was chosen by a sweep (bench/run.py, each
 * speed workload under delays 0, 10, 50, 100, 250 and 1000 ms and purging
 * off, interleaved, 3 repetitions; minor page faults as the noise-free
 * measure, since a purge costs only when purged memory is touched again, 2
 * to 6 us a page here).  Delay 0 multiplies faults by 6.6 on realloc, 10 on
 * largeblk and 600 on prodcons, and time by 1.7 to 8; 10 ms adds 26% faults
 * on churn and about 1% on realloc and buildfree; from 50 ms up the faults
 * equal purging off on every workload.  100 ms keeps twice that margin for
 * programs whose reuse gaps are longer than the benchmarks', and still gives
 * a 1 GiB teardown back within about a quarter of a second.
 */
#include "internal.h"

/* ms: when threads were last asked to flush their caches. */
EBB_HIDDEN _Atomic uint32_t ebb__purge_poked_at;

/* When the blocks of threads that leave a poke unanswered may be taken
 * (thread.c, "Idle threads"), if take_waits. */
static _Atomic uint32_t take_due;
static _Atomic int take_waits;

static void take_at(uint32_t now, uint32_t in)
{
    if (in != UINT32_MAX)
        atomic_store_explicit(&take_due, now + in, memory_order_relaxed);
    atomic_store_explicit(&take_waits, in != UINT32_MAX, memory_order_relaxed);
}

/* ms: when a pass last found surplus waiting (core/demand.c), if one has. */
EBB_HIDDEN _Atomic uint32_t ebb__purge_surplus_at;
EBB_HIDDEN _Atomic int ebb__purge_surplus_seen;

/* A pass found surplus within the poke window: a mass free ran just now,
 * and the blocks threads cached at its end pin pages of pools it emptied.
 * (With a delay no longer than the window, pokes come once a delay.) */
static int surplus_recent(uint32_t now, long delay)
{
    return delay > EBB_SURPLUS_POKE_WINDOW_MS &&
           atomic_load_explicit(&ebb__purge_surplus_seen, memory_order_relaxed) &&
           !ebb__due(now, atomic_load_explicit(&ebb__purge_surplus_at, memory_order_relaxed),
                     EBB_SURPLUS_POKE_WINDOW_MS);
}

/* How often threads may be asked for their cached blocks: once a delay
 * (a busy thread pays a refill per class per poke), or EBB_SURPLUS_POKE_MS
 * while surplus is recent. */
static long poke_period(uint32_t now, long delay)
{
    return surplus_recent(now, delay) ? EBB_SURPLUS_POKE_MS : delay;
}

/* Ask every thread to give back the blocks in its cache (thread.c says
 * why and how), at most once per poke_period. */
static unsigned poke_threads(uint32_t now, long delay)
{
    uint32_t last = atomic_load_explicit(&ebb__purge_poked_at, memory_order_relaxed);
    if (delay > 0 && !ebb__due(now, last, poke_period(now, delay)))
        return 0;
    if (!atomic_compare_exchange_strong_explicit(&ebb__purge_poked_at, &last, now,
                                                 memory_order_relaxed, memory_order_relaxed))
        return 0;
    uint32_t take_in;
    unsigned n = ebb__thread_poke_all(now, &take_in);
    take_at(now, take_in);
    return n;
}

/* After a pass: note surplus, and ms until the next poke is owed while
 * surplus is recent (UINT32_MAX if none is). */
static uint32_t surplus_pokes(uint32_t now, long delay, int surplus)
{
    if (surplus) {
        atomic_store_explicit(&ebb__purge_surplus_at, now, memory_order_relaxed);
        atomic_store_explicit(&ebb__purge_surplus_seen, 1, memory_order_relaxed);
    }
    if (!surplus_recent(now, delay))
        return UINT32_MAX;
    uint32_t last = atomic_load_explicit(&ebb__purge_poked_at, memory_order_relaxed);
    return ebb__ms_until(now, last, EBB_SURPLUS_POKE_MS);
}

/* Take the blocks of threads that left a poke unanswered long enough;
 * ms until the next may be, UINT32_MAX if none waits. */
static uint32_t take_from_idle(uint32_t now)
{
    if (!atomic_load_explicit(&take_waits, memory_order_relaxed))
        return UINT32_MAX;
    uint32_t due = atomic_load_explicit(&take_due, memory_order_relaxed);
    if ((int32_t)(due - now) > 0)
        return due - now;
    uint32_t in = ebb__thread_take_idle(now);
    take_at(now, in);
    return in;
}

/* Give back everything due at `now`; returns ms until the next item falls
 * due, or UINT32_MAX if nothing waits.  *surplus is set if surplus waits
 * (core/demand.c): the purger then gathers what falls due within
 * EBB_SURPLUS_SLACK_MS of it, not EBB_PURGE_SLACK_MS. */
uint32_t ebb__purge_pass(uint32_t now, long delay, int *surplus)
{
    /* Poked threads answer within moments if they are running, with blocks
     * that are due at once: come back for them soon. */
    uint32_t next = take_from_idle(now); /* before the heaps: they purge what it takes */
    next = ebb__sooner_ms(next, poke_threads(now, delay) ? EBB_PURGE_SLACK_MS : UINT32_MAX);
    next = ebb__sooner_ms(next, ebb__heap_purge(now, delay, surplus));
    /* After the heaps: pools released just now bring their slots. */
    next = ebb__sooner_ms(next, ebb__arena_purge(now, delay, surplus));
    next = ebb__sooner_ms(next, ebb__large_purge(now, delay, surplus));
    return ebb__sooner_ms(next, surplus_pokes(now, delay, *surplus));
}

EBB_API void ebb_collect(int force)
{
    ebb__ensure_init();
    ebb__thread_t *self = ebb__thread_get_slow();
    if (self)
        ebb__tcache_flush_all(self);
    /* A delay of 0: everything is due, and every other thread is poked; its
     * cached blocks go home at its next call, and a pass a delay later
     * purges them. */
    int surplus = 0;
    ebb__purge_pass(ebb__os_now_ms(), 0, &surplus);
    ebb__arena_collect(force);
}
