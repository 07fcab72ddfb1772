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
 * Two levels (the soft one at EBB_LIMIT_SOFT percent of the limit, 90 by
 * default: EBB_LIMIT_SOFT_PERCENT):
 *   soft   growth past it starts an episode: the growing thread, once it
 *          holds no lock, runs the callbacks (level EBB_PRESSURE_SOFT) and
 *          purges everything, once per episode.  The episode ends when an
 *          admission finds committed back below the soft level.
 *   hard   growth past the limit less its emergency reserve is refused.
 *          The front (alloc.c), holding no lock, runs the callbacks
 *          (EBB_PRESSURE_HARD), purges, and tries once more; if that is
 *          refused too the request fails: NULL with errno = ENOMEM, and
 *          ebb_last_failure() says why.  The failure opens the reserve (the
 *          top EBB_LIMIT_RESERVE bytes, at most 1/32 of the limit):
 *          what the program does about the failure (a traceback, a message,
 *          dropping a cache) gets memory up to the limit itself (passed by a
 *          few re-dirtied pool pages at most, as above).  The reserve closes
 *          once committed is back below the limit less twice the reserve.
 * Admission reads two counters and never blocks, so it may run under any
 * lock; callbacks and purges run only from the front's slow paths with no
 * lock held.  A thread inside a callback is never called back again (its
 * refused requests simply fail), and other threads' callbacks may run at the
 * same time: callbacks must be thread-safe.  Nothing here runs from a signal
 * handler unless the program allocates from one.
 *
 * Without a limit (the default) admission is one relaxed load and a branch.
 *
 * The kernel's word (pressure.c, EBB_LIMIT_PSI).  While a limit is set, a
 * watcher thread listens for memory pressure the counters cannot see (other
 * processes in the same cgroup, or the whole machine, stalling on memory):
 * on an event it purges everything at once and owes the soft callbacks
 * (ebb__limit_external_pressure); the next slow path holding no lock runs
 * them, once per event, unless an episode of ebb's own is open (they ran
 * for it).  The kernel's episode is its event: committed is usually below
 * the soft level then, so ebb's own episode rule would not end it.
 *
 * Where the limit comes from.  EBB_LIMIT=SIZE, ebb_set_limit(), or an auto
 * limit (EBB_LIMIT=auto or N%, ebb_set_limit_auto): the effective limit is
 * the smallest bound the system puts on the process (os.h reads them), less
 * the headroom for memory ebb does not manage:
 *   cgroup v2 memory.max, v1 memory limit, of the cgroup and its ancestors:
 *          what the kernel's OOM killer enforces in a container.  Headroom:
 *          the process's RSS that is not ebb's committed memory.
 *   physical memory plus swap: past it the whole machine is out.  Headroom
 *          as for a cgroup.
 *   RLIMIT_AS, RLIMIT_DATA: these bound address space (all mappings, or the
 *          private writable ones), not resident memory, and ebb maps more
 *          than it commits (untouched and purged pages, arena slack, its
 *          32 MiB ownership map).  Past them mmap fails, which ebb already
 *          turns into a clean NULL, so they are taken for what they can
 *          still give: headroom is the address space the process has that is
 *          not ebb's mapped memory, and the limit on committed so derived is
 *          an upper bound that at least starts the pressure callbacks as the
 *          rlimit nears; the kernel may still refuse a mapping first (that
 *          failure is EBB_FAIL_NO_MEMORY, not EBB_FAIL_LIMIT).
 * The candidate that leaves ebb the least room wins; N% takes N percent of
 * that room.  On top of what is measured comes a margin (config.h) for what
 * grows later, and at least half the bound is always left to ebb.  The
 * measure is taken once, when the limit is derived (at start-up for
 * EBB_LIMIT): memory another process in the same cgroup takes, or code
 * loaded beyond the margin, is not seen later.  What was found, and its
 * source in words, is kept for ebb_limit_info().
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

typedef struct {
    ebb_pressure_fn fn;
    void *arg;
} callback_t;

static struct {
    _Atomic int episode;         /* soft callbacks ran, committed still above soft */
    _Atomic int soft_due;        /* growth crossed the soft level: callbacks owed */
    _Atomic int reported;        /* a failure at the limit was reported this episode */
    _Atomic int kernel_due;      /* the kernel reported pressure: callbacks owed */
    ebb__lock_t lock;            /* guards the callback table, info, soft_percent */
    _Atomic size_t soft;         /* the soft level in bytes, beside ebb__g.limit */
    callback_t cb[EBB_PRESSURE_CALLBACKS];
    unsigned ncb;
    /* Also guarded by the lock: what ebb_limit_info reports about the limit
     * in force, and the soft level's percentage. */
    ebb_limit_info_t info;
    unsigned soft_percent;
    /* The emergency reserve: the top `reserve` bytes below the limit are
     * held back until a request is refused, so that handling the failure
     * (a traceback, an error message, the report's caller) still gets
     * memory; the reserve closes again once committed is back below
     * limit - 2 * reserve. */
    _Atomic size_t reserve;
    _Atomic int reserve_open;
} Lim = { .lock = EBB_LOCK_INIT, .soft_percent = EBB_LIMIT_SOFT_PERCENT,
          .info = { .soft_percent = EBB_LIMIT_SOFT_PERCENT, .source = "none" } };

/* Per thread: set by a refusal (possibly under a lock), read by the front;
 * and whether this thread is inside a callback. */
static __thread size_t refused_bytes __attribute__((tls_model("initial-exec")));
static __thread int in_callback __attribute__((tls_model("initial-exec")));
static __thread ebb_failure_t last_failure __attribute__((tls_model("initial-exec")));

/* percent% of n, rounded down, without overflow. */
static uint64_t percent_of(uint64_t n, unsigned percent)
{
    return n / 100 * percent + n % 100 * percent / 100;
}

int ebb__limit_admits(size_t bytes)
{
    size_t limit = atomic_load_explicit(&ebb__g.limit, memory_order_relaxed);
    if (EBB_LIKELY(limit == 0))
        return 1;
    size_t committed = ebb__committed_now();
    size_t after = committed + bytes < committed ? SIZE_MAX : committed + bytes;
    size_t reserve = atomic_load_explicit(&Lim.reserve, memory_order_relaxed);
    int open = atomic_load_explicit(&Lim.reserve_open, memory_order_relaxed);
    if (after > (open ? limit : limit - reserve)) {
        refused_bytes = bytes;
        return 0;
    }
    if (open && after <= limit - 2 * reserve)
        atomic_store_explicit(&Lim.reserve_open, 0, memory_order_relaxed);
    if (after > atomic_load_explicit(&Lim.soft, memory_order_relaxed)) {
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

/* The calling thread is ebb's own (the pressure watcher): never a callback
 * on it, as if it were inside one; its refused requests simply fail. */
void ebb__limit_no_callbacks_here(void)
{
    in_callback = 1;
}

/* Pressure the kernel reported owes the soft callbacks once: events that
 * come before a slow path runs them are one (and pressure.c lets at most
 * one through per PSI window).  The kernel's episode is that one event, not
 * ebb's: committed is usually far below the soft level then, and an episode
 * of ebb's own ends only when an admission finds it there, which a program
 * that reuses its memory may not make for a long time. */
void ebb__limit_external_pressure(void)
{
    if (atomic_load_explicit(&ebb__g.limit, memory_order_relaxed) != 0)
        atomic_store_explicit(&Lim.kernel_due, 1, memory_order_relaxed);
}

/* The kernel's event is owed: its callbacks, unless an episode of ebb's own
 * is open (they ran for it, and committed is still above the soft level). */
static int kernel_poll(void)
{
    if (!atomic_load_explicit(&Lim.kernel_due, memory_order_relaxed) ||
        !atomic_exchange_explicit(&Lim.kernel_due, 0, memory_order_relaxed) ||
        atomic_load_explicit(&Lim.episode, memory_order_relaxed))
        return 0;
    run_callbacks(EBB_PRESSURE_SOFT, 0);
    ebb_collect(0);
    return 1;
}

/* The soft level was crossed by some thread's growth: the first thread to
 * come by with no lock held runs the episode's callbacks and purges. */
void ebb__limit_poll_slow(void)
{
    refused_bytes = 0; /* a refill refused part-way still got blocks */
    ebb__pressure_arm();
    int due = 1;
    if (in_callback || kernel_poll() ||
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
    atomic_store_explicit(&Lim.kernel_due, 0, memory_order_relaxed);
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
    if (at_limit)
        atomic_store_explicit(&Lim.reserve_open, 1, memory_order_relaxed);
    /* One line per episode: a program that probes for the biggest block it
     * can get should not fill its stderr. */
    if (at_limit && !atomic_exchange_explicit(&Lim.reported, 1, memory_order_relaxed))
        ebb__diag("ebb: allocation of %zu bytes refused: limit %zu bytes, committed %zu\n",
                  request, limit, committed);
}

/* ------------------------------------------------------- the auto limit */

static void copy_source(ebb_limit_info_t *info, const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof info->source)
        n = sizeof info->source - 1;
    memcpy(info->source, s, n);
    info->source[n] = '\0';
}

static uint64_t minus(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static uint64_t plus(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

/* One bound: the room it leaves ebb is the bound less what the process uses
 * of it that is not ebb's (`foreign`) and the margin, but at least
 * 1/EBB_LIMIT_AUTO_MIN_SHARE of it.  Kept in *out if it leaves the least
 * room so far (of equal ones, the first). */
static void consider(ebb_limit_info_t *out, uint64_t *least, uint64_t bound, uint64_t foreign,
                     int from, const char *source)
{
    if (bound == UINT64_MAX || bound == 0)
        return;
    if (bound > SIZE_MAX)
        bound = SIZE_MAX; /* 32-bit: no more can be mapped, let alone committed */
    uint64_t headroom = plus(plus(foreign, EBB_LIMIT_AUTO_MARGIN),
                             bound >> EBB_LIMIT_AUTO_MARGIN_SHIFT);
    uint64_t keep = bound / EBB_LIMIT_AUTO_MIN_SHARE;
    uint64_t room = headroom < bound - keep ? bound - headroom : keep;
    if (room >= *least)
        return;
    *least = room;
    out->from = from;
    out->effective = (size_t)bound;
    out->headroom = (size_t)(bound - room);
    copy_source(out, source);
}

int ebb__limit_derive(const char *root, const ebb__limit_inputs_t *in, unsigned percent,
                      ebb_limit_info_t *out)
{
    ebb__os_usage_t use = { 0, 0, 0 };
    ebb__os_bound_t b;
    uint64_t least = UINT64_MAX;
    *out = (ebb_limit_info_t){ .from = EBB_LIMIT_FROM_NONE };
    copy_source(out, "none");
    /* Without statm nothing is measured: the margin stands alone. */
    ebb__os_usage(root, &use);
    uint64_t resident = minus(use.resident, in->committed);
    if (ebb__os_cgroup_limit(root, &b))
        consider(out, &least, b.bytes, resident,
                 b.cgroup == 2 ? EBB_LIMIT_FROM_CGROUP2 : EBB_LIMIT_FROM_CGROUP1, b.source);
    consider(out, &least, in->rlimit_as, minus(use.size, in->mapped), EBB_LIMIT_FROM_RLIMIT_AS,
             "RLIMIT_AS");
    consider(out, &least, in->rlimit_data, minus(use.data, in->mapped),
             EBB_LIMIT_FROM_RLIMIT_DATA, "RLIMIT_DATA");
    if (ebb__os_physical_memory(root, &b))
        consider(out, &least, b.bytes, resident, EBB_LIMIT_FROM_MEMORY, b.source);
    if (least == UINT64_MAX)
        return -1;
    uint64_t limit = percent_of(least, percent);
    out->limit = limit ? (size_t)limit : 1; /* 0 would mean none; room <= SIZE_MAX */
    out->percent = percent;
    return 0;
}

/* ------------------------------------------------------------- public API */

/* The emergency reserve of a limit: EBB_LIMIT_RESERVE, but at most
 * 1/EBB_LIMIT_RESERVE_SHARE of the limit. */
static size_t reserve_of(size_t limit)
{
    size_t share = limit / EBB_LIMIT_RESERVE_SHARE;
    return share < EBB_LIMIT_RESERVE ? share : EBB_LIMIT_RESERVE;
}

/* Put `info` in force (its limit, its reserve, and a soft level at the
 * current percentage) and start afresh: no episode open, reserve closed. */
static void limit_install(const ebb_limit_info_t *info)
{
    ebb__lock(&Lim.lock);
    Lim.info = *info;
    Lim.info.soft_percent = Lim.soft_percent;
    Lim.info.soft = (size_t)percent_of(info->limit, Lim.soft_percent);
    Lim.info.reserve = reserve_of(info->limit);
    atomic_store_explicit(&Lim.reserve, Lim.info.reserve, memory_order_relaxed);
    atomic_store_explicit(&Lim.reserve_open, 0, memory_order_relaxed);
    atomic_store_explicit(&Lim.soft, Lim.info.soft, memory_order_relaxed);
    atomic_store_explicit(&ebb__g.limit, info->limit, memory_order_relaxed);
    atomic_store_explicit(&Lim.episode, 0, memory_order_relaxed);
    atomic_store_explicit(&Lim.soft_due, 0, memory_order_relaxed);
    atomic_store_explicit(&Lim.kernel_due, 0, memory_order_relaxed);
    ebb__unlock(&Lim.lock);
}

static void limit_given(ebb_limit_info_t *info, size_t bytes, int from, const char *source)
{
    *info = (ebb_limit_info_t){ .limit = bytes, .from = bytes ? from : EBB_LIMIT_FROM_NONE };
    copy_source(info, bytes ? source : "none");
}

EBB_API int ebb_set_limit(size_t bytes)
{
    ebb__ensure_init();
    ebb_limit_info_t info;
    limit_given(&info, bytes, EBB_LIMIT_FROM_API, "ebb_set_limit");
    limit_install(&info);
    return 0;
}

static int derive_now(unsigned percent, ebb_limit_info_t *out)
{
    ebb__limit_inputs_t in = {
        .committed = ebb__committed_now(),
        .mapped = atomic_load_explicit(&ebb__g.mapped, memory_order_relaxed),
    };
    ebb__os_rlimits(&in.rlimit_as, &in.rlimit_data);
    return ebb__limit_derive(ebb__system_root(), &in, percent, out);
}

EBB_API int ebb_limit_auto(ebb_limit_info_t *out)
{
    ebb__ensure_init();
    int rc = derive_now(100, out);
    ebb__lock(&Lim.lock);
    out->soft_percent = Lim.soft_percent;
    ebb__unlock(&Lim.lock);
    out->soft = (size_t)percent_of(out->limit, out->soft_percent);
    if (rc == 0)
        return 0;
    errno = ENOENT;
    return -1;
}

EBB_API int ebb_set_limit_auto(unsigned percent)
{
    ebb__ensure_init();
    ebb_limit_info_t info;
    if (percent == 0 || percent > 100) {
        errno = EINVAL;
        return -1;
    }
    if (derive_now(percent, &info) != 0) {
        errno = ENOENT;
        return -1;
    }
    limit_install(&info);
    return 0;
}

EBB_API int ebb_set_limit_soft(unsigned percent)
{
    if (percent == 0 || percent > 100) {
        errno = EINVAL;
        return -1;
    }
    ebb__ensure_init();
    ebb__lock(&Lim.lock);
    Lim.soft_percent = percent;
    Lim.info.soft_percent = percent;
    Lim.info.soft = (size_t)percent_of(Lim.info.limit, percent);
    atomic_store_explicit(&Lim.soft, Lim.info.soft, memory_order_relaxed);
    ebb__unlock(&Lim.lock);
    return 0;
}

EBB_API int ebb_limit_info(ebb_limit_info_t *out)
{
    ebb__ensure_init();
    ebb__lock(&Lim.lock);
    *out = Lim.info;
    ebb__unlock(&Lim.lock);
    ebb__pressure_info(out); /* after: no lock is taken while Lim.lock is held */
    return 0;
}

void ebb__limit_start(const ebb__options_t *o)
{
    ebb_limit_info_t info;
    ebb__lock(&Lim.lock);
    Lim.soft_percent = o->limit_soft;
    ebb__unlock(&Lim.lock);
    if (o->limit_percent == 0) {
        limit_given(&info, o->limit, EBB_LIMIT_FROM_ENV, "EBB_LIMIT");
    } else if (derive_now(o->limit_percent, &info) != 0) {
        ebb__diag("ebb: EBB_LIMIT: no memory bound found (cgroup, rlimit, physical memory): "
                  "no limit set\n");
    }
    limit_install(&info);
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

/* Fork and ebb_check take every lock; the callback table's (which also
 * guards the limit's description) comes last: no other lock is ever taken
 * while it is held.  The child keeps the limit
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
