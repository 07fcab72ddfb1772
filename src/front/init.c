/*
 * init.c -- start-up, fork, and the whole-heap check: what needs every
 * module at once.
 *
 * Start-up.  ebb starts on the first allocation, which may come from the
 * dynamic loader or a constructor before main: nothing here allocates, reads
 * the environment through stdio, or depends on the C library being set up.
 * The mechanism gets ready first (core/setup.c: options, size classes,
 * heaps), then the modules above it that must act before the first
 * allocation: the options' limit (policy/limit.c), the sampler's rate and
 * the black box (insight/).  A module whose API is called before any
 * allocation starts itself the same way.  ebb's constructor starts
 * everything eagerly, registers the fork handlers, loads the unwinder, lets
 * ebb's threads start, does what `ebb run` asked for, and in a CPython
 * process reads its Python stacks and names the limit in MemoryError
 * (cpython.c).
 *
 * Locks.  Every module's locks are registered here, once, in the lock order
 * (internal.h draws it): fork and ebb_check take them all from that one
 * list (base/process.c).  Sets that carry only a fork-child handler come
 * first, so that in a child they run after every lock is usable again.
 *
 * Fork: the prepare handler takes every lock, the sampler's unwind gate
 * first (no unwind in flight across a fork), so the child inherits
 * consistent structures; the child makes the locks usable again, gives back
 * the blocks cached by threads it does not have, and drops ebb's threads
 * and open files, which it starts again when it needs them.
 */
#include "internal.h"

#include <errno.h>

EBB_HIDDEN _Atomic int ebb__started;

/* Every module's locks, in the lock order; the child-only sets first, but
 * for the unwind gate, which fork closes before it holds anything: an
 * unwind in flight may allocate (a thread's first unwind asks
 * pthread_getattr_np, which mallocs), and an allocation may take any lock
 * (EBB_DEBUG=2 checks the heap on every slow path), so a fork that held
 * one while it waited for the unwind to end would wait forever (seen:
 * test_unwind's fork while sampling, hung 2 runs in 6 in that build). */
static void register_locksets(void)
{
    static const ebb__lockset_t *const order[] = {
        &ebb__sample_unwind_locks, /* fork only: no unwind in flight */
        &ebb__purger_locks,        /* child: no purger thread */
        &ebb__report_locks,        /* child: no reporter thread */
        &ebb__report_files_locks,  /* child: the lock made usable */
        &ebb__pressure_locks,      /* child: no watcher, its own files */
        &ebb__blackbox_locks,      /* child: its own box, or none */
        &ebb__status_locks,        /* child: its own status page, or none */
        &ebb__crash_locks,         /* child: the record's writer lock usable */
        &ebb__peak_locks,          /* a snapshot copies the heap and the sites */
        &ebb__arena_lend_locks,    /* a purge pass lends arena slots */
        &ebb__thread_locks,        /* the thread registry */
        &ebb__heap_locks,          /* every bin */
        &ebb__arena_locks,
        &ebb__large_locks,
        &ebb__limit_locks,         /* no other lock is taken under it */
        &ebb__sample_locks,        /* the profiler's tables (a gate) */
        &ebb__debug_locks,         /* the debug heap's quarantine */
        &ebb__timeline_locks,      /* taken alone: a leaf */
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        ebb__locksets_register(order[i]);
}

void ebb__start_slow(void)
{
    static ebb__lock_t start_lock = EBB_LOCK_INIT;
    ebb__ensure_init();
    ebb__lock(&start_lock);
    if (!atomic_load_explicit(&ebb__started, memory_order_relaxed)) {
        register_locksets();
        ebb__os_purge_setup();
        ebb__limit_start();
        ebb__blackbox_start();
        ebb__report_files_start();
        ebb__timeline_start();
        ebb__status_start();
        ebb__sample_start();
        ebb__debug_start();
        atomic_store_explicit(&ebb__started, 1, memory_order_release);
    }
    ebb__unlock(&start_lock);
}

/* ----------------------------------------------------------------- fork */

static void fork_prepare(void)
{
    ebb__lock_everything(1);
}

static void fork_parent(void)
{
    ebb__unlock_everything(1);
}

static void fork_child(void)
{
    ebb__locksets_fork_child();
    ebb__watch_main_thread(); /* the forking thread is the child's main thread */
}

/* ---------------------------------------------------------------- check */

EBB_API int ebb_check(void)
{
    ebb__start();
    ebb__lock_everything(0);
    int faults = ebb__check_locked();
    ebb__unlock_everything(0);
    return faults;
}

/* Here, beside ebb_check, because the walk takes every lock on the list,
 * which ebb's start fills. */
EBB_API int ebb_rss(ebb_rss_t *out, size_t size)
{
    if (out == NULL) {
        errno = EINVAL;
        return -1;
    }
    ebb__start();
    ebb_rss_t r;
    int rc = ebb__rss_read(&r);
    ebb__copy_sized(out, size, &r, sizeof r);
    if (rc != 0)
        errno = ENOENT;
    return rc;
}

#if EBB_DEBUG >= 2
void ebb__check_or_die(void)
{
    /* ebb_check takes locks and may be reached again from inside itself. */
    static __thread int inside __attribute__((tls_model("initial-exec")));
    if (inside || !atomic_load_explicit(&ebb__started, memory_order_acquire))
        return;
    inside = 1;
    int faults = ebb_check();
    inside = 0;
    if (faults != 0) {
        ebb__diag("ebb: heap consistency check failed\n");
        ebb__os_abort();
    }
}
#endif

/* ------------------------------------------------------------- the end */

static void at_exit_report(void)
{
    if (ebb__opt.verbose)
        ebb_stats_print();
    ebb__report_files_at_exit();
}

__attribute__((constructor)) static void ebb__constructor(void)
{
    ebb__start();
    ebb__watch_main_thread();
    ebb__os_atfork(fork_prepare, fork_parent, fork_child);
    ebb__sample_prime();
    /* Whatever the sampling rate: the purger's starter unwinds (purger.c),
     * and only here is loading the unwinder sure to be safe (a malloc may
     * come from inside dlopen, which cannot open another library). */
    ebb__sample_unwinder_prime();
    atomic_store_explicit(&ebb__threads_allowed, 1, memory_order_release);
    ebb__launched_setup();
    /* The timeline's first point, and the status page made and filled, so
     * a process shows in `ebb top` from its start: by the process's ebb,
     * not by a second copy beside it (the Python package's private one,
     * loaded under `ebb run`), which sees another ebb_malloc exported. */
    void *exported = ebb__os_symbol("ebb_malloc");
    if (exported == NULL || exported == (void *)ebb_malloc)
        ebb__status_enable();
    ebb__purger_observe();
    ebb__python_attach();
    ebb__crash_start();
    /* Registered here, before the program's own handlers (they run in the
     * reverse order): the report files describe the state after them. */
    if (ebb__opt.verbose || ebb__report_files_wanted()) {
        extern int atexit(void (*)(void));
        atexit(at_exit_report);
    }
}
