/*
 * purger.c -- the purger thread: the purge policy run on a clock.
 *
 * Owns: the purger thread's life (started, running a pass or waiting for the
 * next to fall due, ended when idle), the fallback when no thread can be
 * started (passes inline on the slow paths of free), and the black box's
 * refresh after each pass.
 *
 * Why a thread.  Memory must go back even when the thread that freed it is
 * blocked, idle or gone, and when the whole process is idle: mimalloc and
 * jemalloc (without its optional background thread) purge only when the
 * owning thread next calls the allocator, which is why an idle program keeps
 * its peak there.  The thread:
 *   - starts on the first free that leaves something to purge, never from a
 *     constructor or before ebb's own constructor ran, so it cannot start
 *     before the program's first thread could;
 *   - sleeps until the earliest item falls due (plus EBB_PURGE_SLACK_MS, so
 *     nearby deadlines share one wake-up; EBB_SURPLUS_SLACK_MS while
 *     surplus waits, core/demand.c), and ends once nothing waits: an
 *     idle process has no purger and sees no wake-ups at all;
 *   - is started again by the next free that leaves something to purge
 *     after it ended.  The mechanism only records that purgeable memory
 *     appeared (core/ledger.c: a counter, and a mark on the announcing
 *     thread); the front, on its way out of the slow path that announced
 *     and holding no lock, calls ebb__purger_kick, which starts a thread
 *     when none runs (creating one costs tens of microseconds, once per
 *     idle-to-busy change).  No system call is ever made on the malloc or
 *     free fast paths, which never reach this file;
 *   - is never started from inside glibc's thread-stack cache.  glibc
 *     frees an evicted cached stack's TLS vector (from the loader,
 *     _dl_deallocate_tls) while it holds the cache's lock, and
 *     pthread_create takes that lock: a free there that started the purger
 *     deadlocked the thread on itself (tests/api/test_races.c, in
 *     pthread_join once five 8 MiB stacks overflowed the 40 MiB cache).  So
 *     a free starts the thread only if the loader is not among its callers
 *     (ebb__os_inside_loader, one backtrace per start; a static program has
 *     no loader, and there the lock's own word is read instead:
 *     tests/static/join.c deadlocked every time before); otherwise the start
 *     is owed, and the next slow path that is not inside the loader, of any
 *     thread, makes it;
 *   - never keeps a process alive: a program whose last thread calls
 *     pthread_exit ends when its threads are gone.  The purger ends when
 *     idle, and when it finds itself the only thread left (checked before
 *     every sleep once the main thread has left through pthread_exit, the
 *     only way it can be; it sleeps at most EBB_PURGE_MAX_SLEEP_MS).  The
 *     check reads /proc, so it is not made otherwise: a descriptor opened
 *     here shows in the program's table (insight/timeline.c says why that
 *     matters);
 *   - has every signal blocked, and is not inherited by a fork child (the
 *     child starts its own when it first needs one).  Fork waits for a pass
 *     to give back the arena slots it has lent (arena.c's lend lock).
 * If the thread cannot be started, passes run inline on the slow paths of
 * free, at most once per delay: memory still goes back, on activity.
 *
 * The thread is a driver, like the malloc front: it calls the policy
 * (policy/purge.c's pass) and the black box (insight/blackbox.c), and
 * nothing below calls it.
 *
 * Observing.  After each pass the purger also takes the memory timeline's
 * point (insight/timeline.c) and refreshes the status page `ebb top` reads
 * (insight/status.c), each when its interval passed: wake-ups it makes
 * anyway, none of their own.  One more reason starts or wakes it: the
 * ledger saw committed move a sixteenth since the timeline's last point
 * (core/ledger.c's watch), which the front's kick on its way out of the
 * slow path acts on once per move -- a start if no purger runs, a wake if
 * it sleeps -- whatever the purge delay says (with EBB_PURGE_DELAY_MS 0 or
 * -1 the thread then runs no pass, takes the point and ends).  Growth and
 * shrinkage are activity; an idle process still sees no wake-up.
 */
#include "internal.h"

EBB_HIDDEN _Atomic int ebb__purger_state; /* EBB_PURGER_* */
EBB_HIDDEN _Atomic int ebb__purger_start_owed;
/* ms: the next inline pass, when no thread could be started. */
static _Atomic uint32_t inline_due;
/* The purger's wake-ups since start (passes run), for the status page. */
static _Atomic unsigned long wakes;

void ebb__purger_observe(void)
{
    int point = ebb__timeline_tick();
    ebb__status_tick(atomic_load_explicit(&wakes, memory_order_relaxed), point == 2);
}

static void purger_main(void *arg)
{
    (void)arg;
    ebb__thread_mark_internal();
    for (;;) {
        unsigned seen = atomic_load_explicit(&ebb__ledger.purge_work, memory_order_seq_cst);
        atomic_fetch_add_explicit(&wakes, 1, memory_order_relaxed);
        int surplus = 0;
        uint32_t next = ebb__purge_when() == EBB_PURGE_LATER
                            ? ebb__purge_pass(ebb__os_now_ms(), ebb__opt.purge_delay, &surplus)
                            : UINT32_MAX; /* started for a timeline point only */
        ebb__blackbox_tick();
        ebb__purger_observe();
        if (next == 0)
            continue; /* more was due than one pass takes per lock hold */
        if (next != UINT32_MAX) {
            /* The program's threads are all gone (the last one called
             * pthread_exit): the process ends as soon as this thread does,
             * as it would have without ebb; pending purges do not matter. */
            if (ebb__maybe_last_thread())
                return;
            /* Nobody wakes a running purger: this is a plain timed sleep,
             * short enough to notice the above soon. */
            long sleep = (long)next + (surplus ? EBB_SURPLUS_SLACK_MS : EBB_PURGE_SLACK_MS);
            ebb__os_wait(&ebb__purger_state, EBB_PURGER_RUNNING,
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
        atomic_store_explicit(&ebb__purger_state, EBB_PURGER_NONE, memory_order_seq_cst);
        if (atomic_load_explicit(&ebb__ledger.purge_work, memory_order_seq_cst) == seen)
            return;
        int none = EBB_PURGER_NONE;
        if (!atomic_compare_exchange_strong_explicit(&ebb__purger_state, &none, EBB_PURGER_RUNNING,
                                                     memory_order_seq_cst, memory_order_relaxed))
            return; /* a new purger is on its way */
    }
}

/* Without a purger thread: a pass on this slow path, at most once per delay
 * (and what the purger observes after a pass, each at its own pace). */
static void purge_inline(void)
{
    ebb__purger_observe();
    if (ebb__purge_when() != EBB_PURGE_LATER)
        return;
    uint32_t now = ebb__os_now_ms();
    uint32_t due = atomic_load_explicit(&inline_due, memory_order_relaxed);
    if ((int32_t)(now - due) < 0)
        return;
    long delay = ebb__opt.purge_delay;
    if (!atomic_compare_exchange_strong_explicit(&inline_due, &due, now + (uint32_t)delay,
                                                 memory_order_relaxed, memory_order_relaxed))
        return; /* another thread runs this one */
    int surplus = 0; /* the pass runs at most once a delay here anyway */
    uint32_t next = ebb__purge_pass(now, delay, &surplus);
    if (next != UINT32_MAX)
        atomic_store_explicit(&inline_due, now + next, memory_order_relaxed);
}

/* A free may start a thread only from outside the loader (see above); when
 * that cannot be told (the unwinder was not loaded by ebb's constructor:
 * a program that runs before it), it waits too, and so does any call from
 * one of ebb's own threads (the start is owed to the program's next slow
 * path). */
static int may_start_here(int from_free)
{
    /* Nor from one of ebb's own threads: an exiting purger frees its TLS
     * vector (on 32-bit, where its stack is ebb's, glibc frees it at every
     * exit), and that free would start the next purger, which would do the
     * same when it ends. */
    if (ebb__thread_is_internal())
        return 0;
    return !from_free || ebb__os_inside_loader() == 0;
}

static void kick(int from_free)
{
    ebb__purge_owed = 0;
    /* Committed moved a step: the timeline owes a point. */
    int moved = atomic_load_explicit(&ebb__ledger.watch, memory_order_relaxed) == EBB_WATCH_MOVED;
    if (ebb__purge_when() != EBB_PURGE_LATER && !moved)
        return;
    int state = atomic_load_explicit(&ebb__purger_state, memory_order_seq_cst);
    if (state == EBB_PURGER_NONE) {
        /* Too early (before ebb's constructor): a later free starts it, and
         * for a point owed the next slow path of any thread. */
        int early = !ebb__may_start_threads();
        if (early || !may_start_here(from_free)) {
            if (!early || moved)
                atomic_store_explicit(&ebb__purger_start_owed, 1, memory_order_relaxed);
            return;
        }
        atomic_store_explicit(&ebb__purger_start_owed, 0, memory_order_relaxed);
        /* RUNNING before the thread exists: a free meanwhile needs no wake,
         * the thread's first pass will see its work. */
        if (!atomic_compare_exchange_strong_explicit(&ebb__purger_state, &state, EBB_PURGER_RUNNING,
                                                     memory_order_seq_cst, memory_order_relaxed))
            return;
        (void)ebb__ledger_watch_kick(); /* the new thread takes the point */
        ebb__thread_t *paused = ebb__thread_cache_pause();
        int rc = ebb__start_thread(purger_main, NULL, "ebb-purge");
        ebb__thread_cache_resume(paused);
        if (rc != 0)
            atomic_store_explicit(&ebb__purger_state, EBB_PURGER_INLINE, memory_order_seq_cst);
    } else {
        /* Written only when set: every busy thread's kicks come here. */
        if (atomic_load_explicit(&ebb__purger_start_owed, memory_order_relaxed))
            atomic_store_explicit(&ebb__purger_start_owed, 0, memory_order_relaxed);
        if (state == EBB_PURGER_INLINE)
            purge_inline();
        else if (moved && ebb__ledger_watch_kick())
            ebb__os_wake_all(&ebb__purger_state); /* once per move */
    }
}

void ebb__purger_kick(void)
{
    kick(0);
}

void ebb__purger_kick_from_free(void)
{
    kick(1);
}

/* The child of a fork has no purger thread; it starts one when it needs it. */
static void purger_fork_child(void)
{
    atomic_store_explicit(&ebb__purger_start_owed, 0, memory_order_relaxed);
    if (atomic_load_explicit(&ebb__purger_state, memory_order_relaxed) != EBB_PURGER_INLINE)
        atomic_store_explicit(&ebb__purger_state, EBB_PURGER_NONE, memory_order_relaxed);
}

EBB_HIDDEN const ebb__lockset_t ebb__purger_locks = { .name = "purger",
                                                      .child = purger_fork_child };

