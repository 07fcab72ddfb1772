/*
 * pressure.c -- listening to the kernel: memory pressure that ebb's own
 * counters cannot see.
 *
 * Owns: the watcher thread, what it watches (a PSI trigger and cgroup v2
 * memory.events, opened by the OS layer), what it does on an event, and
 * EBB_LIMIT_PSI.
 *
 * Why.  A limit (limit.c) sees only ebb's committed memory.  In a container
 * the memory that runs out is shared: other processes in the same cgroup,
 * or the machine as a whole, can push it into reclaim while ebb is far below
 * its own soft level, holding free pages it could give back at once.  The
 * kernel says so: a PSI trigger fires when the tasks of the cgroup (or of
 * the system) stalled on memory for EBB_PSI_STALL_US within
 * EBB_PSI_WINDOW_US (config.h has why those), and a cgroup v2's
 * memory.events changes when its "high" or "max" counts grow (throttling at
 * memory.high, reclaim at memory.max).  Which files: os.h.
 *
 * An event means what pressure already means in ebb.  The watcher counts
 * it, gives back everything free at once (ebb_collect(0), which any thread
 * may call), and records that the soft pressure callbacks are owed: limit.c
 * takes the record (ebb__pressure_take_event) on the next allocation slow
 * path that holds no lock, and runs them with EBB_PRESSURE_SOFT and purges,
 * once, unless an episode of ebb's own is open (its callbacks ran already).
 * Callbacks never run on the watcher (it is one of ebb's own threads, so
 * even its own allocations, its thread cache's, owe nothing): include/ebb.h
 * promises them the allocating thread, and a runtime's callback (CPython's
 * schedules a pending call) may need to be on one of the program's threads.
 * After acting, the watcher pauses for
 * EBB_PRESSURE_QUIET_MS, so a burst of events is one action; a trigger
 * fires at most once per window anyway.
 *
 * When.  Only while a limit is set: the watcher is started by the first
 * allocation slow path that polls the limit (limit.c's poll, holding no
 * lock) after ebb's constructor ran, never from a constructor, so it cannot
 * start before the program's first thread could.  That path opens the files
 * (a read of /proc/self/cgroup and mountinfo, once) and starts the thread,
 * with every signal blocked (ebb__os_thread_start).  Without PSI, or when
 * the kernel refuses the trigger (before Linux 6.5 an unprivileged process
 * may not write one), nothing is watched and nothing is said unless
 * EBB_LIMIT_PSI=1 asked for it; EBB_LIMIT_PSI=0 never watches.  Once the
 * limit is removed the watcher ends at its next wake-up, and a new limit
 * starts another.
 *
 * The watcher never keeps a process alive.  It is detached, so exit() and a
 * return from main end the process whatever it is doing; and when main
 * leaves with pthread_exit, the process lasts as long as any thread does:
 * so the watcher wakes every EBB_PRESSURE_ALIVE_MS (its poll's timeout),
 * and ends once it finds itself the only thread left (as purge.c's purger
 * does, and, as there, looking only once the main thread has left).  A fork child has no watcher: its files are the parent's (the
 * kernel keeps one trigger per open file, so a child must not share it),
 * and the child closes them and opens its own on its first slow path.
 */
#include "internal.h"

#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
EBB_HIDDEN const char ebb__pressure_trigger[] =
    "some " STR(EBB_PSI_STALL_US) " " STR(EBB_PSI_WINDOW_US);

EBB_HIDDEN _Atomic int ebb__pressure_state;

static struct {
    ebb__os_pressure_t h;     /* the watcher's files: set before it starts, -1 once closed */
    _Atomic size_t events;    /* events seen in this process (a fork child keeps the count) */
    _Atomic int owed;         /* an event the soft callbacks have not answered yet */
    _Atomic int quiet;        /* a word nobody wakes: the watcher's pause after an event */
    ebb__lock_t lock;         /* guards source */
    char source[sizeof ((ebb_limit_info_t *)0)->pressure_source]; /* "" when not watching */
} watcher = { .h = { .psi = -1, .events = -1 }, .lock = EBB_LOCK_INIT };

static void set_source(const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof watcher.source)
        n = sizeof watcher.source - 1;
    ebb__lock(&watcher.lock);
    memcpy(watcher.source, s, n);
    watcher.source[n] = '\0';
    ebb__unlock(&watcher.lock);
}

void ebb__pressure_event(void)
{
    atomic_fetch_add_explicit(&watcher.events, 1, memory_order_relaxed);
    atomic_store_explicit(&watcher.owed, 1, memory_order_relaxed);
    ebb_collect(0);
}

/* Events that come before a slow path answers them are one (and at most one
 * gets through per PSI window). */
int ebb__pressure_take_event(void)
{
    return atomic_load_explicit(&watcher.owed, memory_order_relaxed) &&
           atomic_exchange_explicit(&watcher.owed, 0, memory_order_relaxed);
}

/* The watcher is done: its files closed first, then the state, so a new
 * watcher never finds the old one's files in use. */
static void watcher_end(int state)
{
    set_source("");
    ebb__os_pressure_close(&watcher.h);
    atomic_store_explicit(&ebb__pressure_state, state, memory_order_release);
}

static void watcher_main(void *arg)
{
    (void)arg;
    /* ebb_collect may allocate here (this thread's cache): a slow path
     * that must not run the callbacks it owes to the program's threads. */
    ebb__thread_mark_internal();
    for (;;) {
        int got = ebb__os_pressure_wait(&watcher.h, EBB_PRESSURE_ALIVE_MS);
        /* A watched file failed: its cgroup cannot be removed while this
         * process is in it, so something is wrong; stop listening. */
        if (got & EBB__OS_PRESSURE_GONE) {
            watcher_end(EBB_PRESSURE_OFF);
            return;
        }
        if (atomic_load_explicit(&ebb__budget.limit, memory_order_relaxed) == 0) {
            watcher_end(EBB_PRESSURE_IDLE); /* a new limit starts a new watcher */
            return;
        }
        if (got) {
            ebb__pressure_event();
            ebb__os_wait(&watcher.quiet, 0, EBB_PRESSURE_QUIET_MS);
        }
        /* The program's threads are all gone (main called pthread_exit):
         * end, so the process does.  The state stays WATCHING: nothing will
         * start another. */
        if (ebb__maybe_last_thread()) {
            ebb__os_pressure_close(&watcher.h);
            return;
        }
    }
}

/* The state is WATCHING, owned by the caller: watch p. */
static int watcher_start(const ebb__os_pressure_t *p)
{
    watcher.h = *p;
    set_source(p->source);
    if (ebb__start_thread(watcher_main, NULL, "ebb-pressure") == 0)
        return 0;
    watcher_end(EBB_PRESSURE_OFF);
    return -1;
}

int ebb__pressure_watch(const ebb__os_pressure_t *p)
{
    int idle = EBB_PRESSURE_IDLE;
    if (!atomic_compare_exchange_strong_explicit(&ebb__pressure_state, &idle,
                                                 EBB_PRESSURE_WATCHING, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return -1;
    return watcher_start(p);
}

void ebb__pressure_arm_slow(void)
{
    if (!ebb__may_start_threads())
        return; /* too early: a later slow path starts it */
    int idle = EBB_PRESSURE_IDLE;
    int want = ebb__opt.limit_psi;
    if (!atomic_compare_exchange_strong_explicit(&ebb__pressure_state, &idle,
                                                 want ? EBB_PRESSURE_WATCHING : EBB_PRESSURE_OFF,
                                                 memory_order_acq_rel, memory_order_relaxed) ||
        !want)
        return;
    ebb__os_pressure_t h;
    if (ebb__os_pressure_open(ebb__system_root(), ebb__pressure_trigger, &h) != 0) {
        if (want == 1)
            ebb__diag("ebb: EBB_LIMIT_PSI=1: no memory pressure file could be watched "
                      "(no PSI, or the trigger \"%s\" was refused)\n", ebb__pressure_trigger);
        atomic_store_explicit(&ebb__pressure_state, EBB_PRESSURE_OFF, memory_order_release);
        return;
    }
    if (watcher_start(&h) != 0 && want == 1)
        ebb__diag("ebb: EBB_LIMIT_PSI=1: cannot start the pressure watcher thread\n");
}

void ebb__pressure_info(ebb_limit_info_t *out)
{
    out->pressure_events = atomic_load_explicit(&watcher.events, memory_order_relaxed);
    ebb__lock(&watcher.lock);
    memcpy(out->pressure_source, watcher.source, sizeof watcher.source);
    ebb__unlock(&watcher.lock);
}

/* The child of a fork has no watcher, and the files it inherited share
 * their triggers with the parent's: close them; the first slow path opens
 * its own.  watcher.h holds only the watcher's open files or -1, never stale
 * numbers (a fork while a slow path is still opening leaks those into the
 * child; they are close-on-exec). */
static void watcher_fork_child(void)
{
    ebb__lock_reset(&watcher.lock);
    watcher.source[0] = '\0';
    if (atomic_load_explicit(&ebb__pressure_state, memory_order_relaxed) == EBB_PRESSURE_WATCHING) {
        ebb__os_pressure_close(&watcher.h);
        atomic_store_explicit(&ebb__pressure_state, EBB_PRESSURE_IDLE, memory_order_relaxed);
    }
}

EBB_HIDDEN const ebb__lockset_t ebb__pressure_locks = { .name = "pressure watcher",
                                                        .child = watcher_fork_child };
