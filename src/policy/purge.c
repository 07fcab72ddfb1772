/*
 * purge.c -- giving memory back to the OS on a clock.
 *
 * Owns: the purger thread, the purge pass, the one place that calls the OS
 * to purge (and counts what it purged), and ebb_collect().
 *
 * Policy.  Memory a program frees is given back once it has stayed unused
 * for the purge delay (EBB_PURGE_DELAY_MS), at the finest grain the OS
 * allows: empty pools go back to their arenas and their pages are purged;
 * inside partly used pools, every 4 KiB page that holds no live block is
 * purged; free arena slots are purged, empty arenas unmapped (one spare
 * kept, purged); cached large mappings unmapped.  The layers keep their own
 * timestamps (heap.c: a purge list per bin, restamped while a pool is
 * allocated from; arena.c: when a pool last came back; large.c: when a
 * mapping was freed), and a pass asks each to give back what is due.
 *
 * Who runs the pass.  A background thread, so memory goes back even when the
 * thread that freed it is blocked, idle or gone, and when the whole process
 * is idle: mimalloc and jemalloc (without its optional background thread)
 * purge only when the owning thread next calls the allocator, which is why
 * an idle program keeps its peak there.  The thread:
 *   - starts on the first free that leaves something to purge, never from a
 *     constructor or before ebb's own constructor ran, so it cannot start
 *     before the program's first thread could;
 *   - sleeps until the earliest item falls due (plus EBB_PURGE_SLACK_MS, so
 *     nearby deadlines share one wake-up), and ends once nothing waits: an
 *     idle process has no purger and sees no wake-ups at all;
 *   - is started again by the next free that leaves something to purge
 *     after it ended: the free bumps a counter and, seeing no purger, starts
 *     one after dropping its locks (creating a thread costs tens of
 *     microseconds, once per idle-to-busy change).  No system call is ever
 *     made on the malloc or free fast paths, which never reach this file;
 *   - never keeps a process alive: a program whose last thread calls
 *     pthread_exit ends when its threads are gone.  The purger ends when
 *     idle, and when it finds itself the only thread left (checked before
 *     every sleep, and it sleeps at most EBB_PURGE_MAX_SLEEP_MS);
 *   - has every signal blocked, and is not inherited by a fork child (the
 *     child starts its own when it first needs one).  Fork waits for a pass
 *     to give back the arena slots it has lent (purge_lock).
 * If the thread cannot be started, passes run inline on the slow paths of
 * free, at most once per delay: memory still goes back, on activity.
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

void ebb__purge_range(void *p, size_t bytes)
{
    if (ebb__opt.purge_lazy)
        ebb__os_purge_lazy(p, bytes);
    else
        ebb__os_purge(p, bytes);
    atomic_fetch_add_explicit(&ebb__g.purged, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&ebb__g.purges, 1, memory_order_relaxed);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Ask every thread to give back the blocks in its cache (tcache.c says
 * why and how), at most once a delay: a busy thread pays a refill per class
 * per poke. */
static unsigned poke_threads(uint32_t now, long delay)
{
    uint32_t last = atomic_load_explicit(&ebb__g.poked_at, memory_order_relaxed);
    if (delay > 0 && !ebb__due(now, last, delay))
        return 0;
    if (atomic_compare_exchange_strong_explicit(&ebb__g.poked_at, &last, now,
                                                memory_order_relaxed, memory_order_relaxed))
        return ebb__tcache_poke_all();
    return 0;
}

/* Give back everything due at `now`; returns ms until the next item falls
 * due, or UINT32_MAX if nothing waits. */
static uint32_t purge_pass(uint32_t now, long delay)
{
    /* Poked threads answer within moments if they are running, with blocks
     * that are due at once: come back for them soon. */
    uint32_t next = poke_threads(now, delay) ? EBB_PURGE_SLACK_MS : UINT32_MAX;
    next = min_u32(next, ebb__heap_purge(now, delay));
    /* After the heaps: pools released just now bring their slots. */
    next = min_u32(next, ebb__arena_purge(now, delay));
    return min_u32(next, ebb__large_purge(now, delay));
}

static void purger_main(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned seen = atomic_load_explicit(&ebb__g.purge_work, memory_order_seq_cst);
        uint32_t next = purge_pass(ebb__os_now_ms(), ebb__opt.purge_delay);
        ebb__blackbox_tick();
        if (next == 0)
            continue; /* more was due than one pass takes per lock hold */
        if (next != UINT32_MAX) {
            /* The program's threads are all gone (the last one called
             * pthread_exit): the process ends as soon as this thread does,
             * as it would have without ebb; pending purges do not matter. */
            if (ebb__os_thread_count() == 1)
                return;
            /* Nobody wakes a running purger: this is a plain timed sleep,
             * short enough to notice the above soon. */
            long sleep = (long)next + EBB_PURGE_SLACK_MS;
            ebb__os_wait(&ebb__g.purger, EBB_PURGER_RUNNING,
                         sleep < EBB_PURGE_MAX_SLEEP_MS ? sleep : EBB_PURGE_MAX_SLEEP_MS);
            continue;
        }
        /* Nothing waits: the thread ends (a thread of ebb's must never keep
         * a process alive that the program is done with), and the next free
         * that leaves something to purge starts another.  Announce the end,
         * then look once more: a free that bumped the counter before seeing
         * NONE is caught here and this thread carries on, unless that free
         * already started a new one (both sides are sequentially
         * consistent, so one of them sees the other). */
        atomic_store_explicit(&ebb__g.purger, EBB_PURGER_NONE, memory_order_seq_cst);
        if (atomic_load_explicit(&ebb__g.purge_work, memory_order_seq_cst) == seen)
            return;
        int none = EBB_PURGER_NONE;
        if (!atomic_compare_exchange_strong_explicit(&ebb__g.purger, &none, EBB_PURGER_RUNNING,
                                                     memory_order_seq_cst, memory_order_relaxed))
            return; /* a new purger is on its way */
    }
}

/* Without a purger thread: a pass on this slow path, at most once per delay. */
static void purge_inline(void)
{
    uint32_t now = ebb__os_now_ms();
    uint32_t due = atomic_load_explicit(&ebb__g.inline_due, memory_order_relaxed);
    if ((int32_t)(now - due) < 0)
        return;
    long delay = ebb__opt.purge_delay;
    if (!atomic_compare_exchange_strong_explicit(&ebb__g.inline_due, &due, now + (uint32_t)delay,
                                                 memory_order_relaxed, memory_order_relaxed))
        return; /* another thread runs this one */
    uint32_t next = purge_pass(now, delay);
    if (next != UINT32_MAX)
        atomic_store_explicit(&ebb__g.inline_due, now + next, memory_order_relaxed);
}

void ebb__purge_kick(void)
{
    if (ebb__opt.purge_delay <= 0)
        return;
    int state = atomic_load_explicit(&ebb__g.purger, memory_order_seq_cst);
    if (state == EBB_PURGER_NONE) {
        if (!atomic_load_explicit(&ebb__g.threads_allowed, memory_order_acquire))
            return; /* too early: a later free starts it */
        /* RUNNING before the thread exists: a free meanwhile needs no wake,
         * the thread's first pass will see its work. */
        if (!atomic_compare_exchange_strong_explicit(&ebb__g.purger, &state, EBB_PURGER_RUNNING,
                                                     memory_order_seq_cst, memory_order_relaxed))
            return;
        if (ebb__os_thread_start(purger_main, NULL, "ebb-purge") != 0)
            atomic_store_explicit(&ebb__g.purger, EBB_PURGER_INLINE, memory_order_seq_cst);
    } else if (state == EBB_PURGER_INLINE) {
        purge_inline();
    }
}

/* The child of a fork has no purger thread; it starts one when it needs it. */
void ebb__purge_fork_child(void)
{
    ebb__lock_reset(&ebb__g.purge_lock);
    if (atomic_load_explicit(&ebb__g.purger, memory_order_relaxed) != EBB_PURGER_INLINE)
        atomic_store_explicit(&ebb__g.purger, EBB_PURGER_NONE, memory_order_relaxed);
}

EBB_API void ebb_collect(int force)
{
    ebb__ensure_init();
    ebb__tcache_t *tc = ebb__tcache_get_slow();
    if (tc)
        ebb__tcache_flush_all(tc);
    /* A delay of 0: everything is due, and every other thread is poked; its
     * cached blocks go home at its next call, and a pass a delay later
     * purges them. */
    purge_pass(ebb__os_now_ms(), 0);
    ebb__arena_collect(force);
}
