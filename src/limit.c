/*
 * limit.c -- a ceiling on what ebb commits, pressure callbacks, and why the
 * last allocation failed.
 *
 * Owns: the limit (ebb_set_limit), the callbacks run under pressure
 * (ebb_on_pressure), the per-thread record of the last failure
 * (ebb_last_failure), and the rule that decides when each runs.
 *
 * What counts is `committed` (stats.c): ebb's estimate of its resident
 * memory, the figure that costs RSS and that a cgroup charges, so a purge
 * lowers it.  Growth is admitted where committed can grow on a slow path:
 * a bin taking a new pool from its arena (charged its whole span, at most
 * 512 KiB, before any of its pages is touched) and a new or grown large
 * mapping (charged its size).  Pages re-dirtied inside pools a heap already
 * has are not admitted one by one: they are bounded by what the pools span,
 * which was admitted when they were taken.
 *
 * Two levels (EBB_LIMIT_SOFT_PERCENT):
 *   soft   growth past it starts an episode: the growing thread, once it
 *          holds no lock, runs the callbacks (level EBB_PRESSURE_SOFT) and
 *          purges everything, once per episode.  The episode ends when an
 *          admission finds committed back below the soft level.
 *   hard   growth past the limit is refused.  The front (alloc.c), holding
 *          no lock, runs the callbacks (EBB_PRESSURE_HARD), purges, and tries
 *          once more; if that is refused too the request fails: NULL with
 *          errno = ENOMEM, and ebb_last_failure() says why.
 * Admission reads two counters and never blocks, so it may run under any
 * lock; callbacks and purges run only from the front's slow paths with no
 * lock held.  A thread inside a callback is never called back again (its
 * refused requests simply fail), and other threads' callbacks may run at the
 * same time: callbacks must be thread-safe.  Nothing here runs from a signal
 * handler unless the program allocates from one.
 *
 * Without a limit (the default) admission is one relaxed load and a branch.
 */
#include "internal.h"

#include <errno.h>

typedef struct {
    ebb_pressure_fn fn;
    void *arg;
} callback_t;

static struct {
    _Atomic int episode;         /* soft callbacks ran, committed still above soft */
    _Atomic int soft_due;        /* growth crossed the soft level: callbacks owed */
    _Atomic int reported;        /* a failure at the limit was reported this episode */
    ebb__lock_t lock;            /* guards the callback table */
    callback_t cb[EBB_PRESSURE_CALLBACKS];
    unsigned ncb;
} Lim = { .lock = EBB_LOCK_INIT };

/* Per thread: set by a refusal (possibly under a lock), read by the front;
 * and whether this thread is inside a callback. */
static __thread size_t refused_bytes __attribute__((tls_model("initial-exec")));
static __thread int in_callback __attribute__((tls_model("initial-exec")));
static __thread ebb_failure_t last_failure __attribute__((tls_model("initial-exec")));

static size_t soft_level(size_t limit)
{
    return limit / 100 * EBB_LIMIT_SOFT_PERCENT;
}

int ebb__limit_admits(size_t bytes)
{
    size_t limit = atomic_load_explicit(&ebb__g.limit, memory_order_relaxed);
    if (EBB_LIKELY(limit == 0))
        return 1;
    size_t committed = ebb__committed_now();
    size_t after = committed + bytes < committed ? SIZE_MAX : committed + bytes;
    if (after > limit) {
        refused_bytes = bytes;
        return 0;
    }
    if (after > soft_level(limit)) {
        if (!atomic_load_explicit(&Lim.episode, memory_order_relaxed))
            atomic_store_explicit(&Lim.soft_due, 1, memory_order_relaxed);
    } else if (atomic_load_explicit(&Lim.episode, memory_order_relaxed)) {
        atomic_store_explicit(&Lim.episode, 0, memory_order_relaxed);
        atomic_store_explicit(&Lim.reported, 0, memory_order_relaxed);
    }
    return 1;
}

static void run_callbacks(int level, size_t request)
{
    callback_t cb[EBB_PRESSURE_CALLBACKS];
    ebb__lock(&Lim.lock);
    unsigned n = Lim.ncb;
    for (unsigned i = 0; i < n; i++)
        cb[i] = Lim.cb[i];
    ebb__unlock(&Lim.lock);
    size_t limit = atomic_load_explicit(&ebb__g.limit, memory_order_relaxed);
    in_callback = 1;
    for (unsigned i = 0; i < n; i++)
        cb[i].fn(cb[i].arg, level, request, ebb__committed_now(), limit);
    in_callback = 0;
}

/* The soft level was crossed by some thread's growth: the first thread to
 * come by with no lock held runs the episode's callbacks and purges. */
void ebb__limit_poll_slow(void)
{
    refused_bytes = 0; /* a refill refused part-way still got blocks */
    int due = 1;
    if (in_callback ||
        !atomic_compare_exchange_strong_explicit(&Lim.soft_due, &due, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    int was = 0;
    if (!atomic_compare_exchange_strong_explicit(&Lim.episode, &was, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return; /* another thread opened this episode */
    run_callbacks(EBB_PRESSURE_SOFT, 0);
    ebb_collect(0);
}

int ebb__limit_relieve(void)
{
    size_t bytes = refused_bytes;
    if (bytes == 0)
        return 0;
    refused_bytes = 0;
    if (in_callback)
        return 0;
    atomic_store_explicit(&Lim.episode, 1, memory_order_relaxed);
    atomic_store_explicit(&Lim.soft_due, 0, memory_order_relaxed);
    run_callbacks(EBB_PRESSURE_HARD, bytes);
    ebb_collect(0);
    return 1;
}

void ebb__limit_record_failure(size_t request)
{
    size_t limit = atomic_load_explicit(&ebb__g.limit, memory_order_relaxed);
    size_t committed = ebb__committed_now();
    int at_limit = refused_bytes != 0;
    refused_bytes = 0;
    last_failure.reason = at_limit ? EBB_FAIL_LIMIT : EBB_FAIL_NO_MEMORY;
    last_failure.request = request;
    last_failure.committed = committed;
    last_failure.limit = limit;
    /* One line per episode: a program that probes for the biggest block it
     * can get should not fill its stderr. */
    if (at_limit && !atomic_exchange_explicit(&Lim.reported, 1, memory_order_relaxed))
        ebb__diag("ebb: allocation of %zu bytes refused: limit %zu bytes, committed %zu\n",
                  request, limit, committed);
}

/* For the report (report.c). */
size_t ebb__limit_soft_level(size_t limit)
{
    return soft_level(limit);
}

const char *ebb__limit_source(void)
{
    return ebb__g.opt.limit && ebb__g.opt.limit == ebb_get_limit() ? "EBB_LIMIT" : "ebb_set_limit";
}

/* ------------------------------------------------------------- public API */

void ebb__limit_set(size_t bytes)
{
    atomic_store_explicit(&ebb__g.limit, bytes, memory_order_relaxed);
    atomic_store_explicit(&Lim.episode, 0, memory_order_relaxed);
    atomic_store_explicit(&Lim.soft_due, 0, memory_order_relaxed);
}

EBB_API int ebb_set_limit(size_t bytes)
{
    ebb__ensure_init();
    ebb__limit_set(bytes);
    return 0;
}

EBB_API size_t ebb_get_limit(void)
{
    return atomic_load_explicit(&ebb__g.limit, memory_order_relaxed);
}

EBB_API int ebb_on_pressure(ebb_pressure_fn fn, void *arg)
{
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    int rc = 0;
    ebb__lock(&Lim.lock);
    if (Lim.ncb == EBB_PRESSURE_CALLBACKS) {
        errno = ENOSPC;
        rc = -1;
    } else {
        Lim.cb[Lim.ncb++] = (callback_t){ fn, arg };
    }
    ebb__unlock(&Lim.lock);
    return rc;
}

EBB_API int ebb_on_pressure_remove(ebb_pressure_fn fn, void *arg)
{
    int rc = -1;
    ebb__lock(&Lim.lock);
    for (unsigned i = 0; i < Lim.ncb; i++) {
        if (Lim.cb[i].fn == fn && Lim.cb[i].arg == arg) {
            Lim.cb[i] = Lim.cb[--Lim.ncb];
            rc = 0;
            break;
        }
    }
    ebb__unlock(&Lim.lock);
    return rc;
}

EBB_API int ebb_last_failure(ebb_failure_t *out, int clear)
{
    int reason = last_failure.reason;
    if (out)
        *out = last_failure;
    if (clear)
        last_failure = (ebb_failure_t){ 0 };
    return reason;
}

/* Fork and ebb_check take every lock; the callback table's comes last (no
 * other lock is ever taken while it is held).  The child keeps the limit
 * and the callbacks. */
void ebb__limit_lock_all(void)
{
    ebb__lock(&Lim.lock);
}

void ebb__limit_unlock_all(int child)
{
    if (child)
        ebb__lock_reset(&Lim.lock);
    else
        ebb__unlock(&Lim.lock);
}
